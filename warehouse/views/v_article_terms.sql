-- The full-text index as one row per (article, stemmed term) with its weighted frequency (current entries only).
-- Built from search_postings (migration 005); for exploring the index, `search_articles()` to rank.
CREATE OR REPLACE VIEW v_article_terms AS
SELECT e.article_id, e.term, e.tf
FROM (
    SELECT p.term, unnest(p.postings, recursive := true)
    FROM search_postings p
) e
JOIN article_search_docs d ON d.article_id = e.article_id AND d.generation = e.generation;
