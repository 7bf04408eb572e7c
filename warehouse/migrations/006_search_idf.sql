-- search_articles(phrase) with SQLite FTS5's IDF, so the SQL macro, warehouse.search.search() and the
-- FTS5 sidecar of `newsflow search` (warehouse/search_sidecar.py) give the same scores and order:
-- idf = ln((N - df + 0.5) / (df + 0.5)), floored at 1e-6 (a term in more than half the articles adds
-- ~nothing), instead of 005's ln(1 + ...). Everything else is as in 005_search.sql: BM25 k1 = 1.2,
-- b = 0.75, the phrase tokenised like ingest/terms.py (lower-case, split on non-letters/digits, stop
-- words and one-letter words dropped, Porter stems). Needs DuckDB's fts extension for stem().
-- Usage: SELECT * FROM search_articles('peace talks') LIMIT 10;
CREATE OR REPLACE MACRO search_articles(phrase) AS TABLE
WITH q AS (
    SELECT DISTINCT stem(w, 'porter') AS term
    FROM (SELECT unnest(regexp_split_to_array(lower(phrase), '[^\p{L}\p{N}]+')) AS w)
    WHERE length(w) > 1 AND NOT list_contains(
        ['a', 'about', 'after', 'all', 'also', 'an', 'and', 'any', 'are', 'as', 'at', 'be', 'been', 'but', 'by',
         'can', 'could', 'did', 'do', 'does', 'for', 'from', 'had', 'has', 'have', 'he', 'her', 'his', 'how', 'i',
         'if', 'in', 'into', 'is', 'it', 'its', 'just', 'more', 'most', 'not', 'now', 'of', 'on', 'one', 'or', 'our',
         'out', 'over', 'said', 'says', 'she', 'so', 'some', 'than', 'that', 'the', 'their', 'them', 'then',
         'there', 'these', 'they', 'this', 'those', 'to', 'up', 'was', 'we', 'were', 'what', 'when', 'which', 'who',
         'will', 'with', 'would', 'you'], w)
),
entries AS (
    SELECT p.term, unnest(p.postings, recursive := true)
    FROM search_postings p WHERE p.term IN (SELECT term FROM q)
),
hits AS MATERIALIZED (
    SELECT e.term, e.article_id, e.tf, d.length
    FROM entries e JOIN article_search_docs d ON d.article_id = e.article_id AND d.generation = e.generation
),
stats AS (SELECT count(*)::DOUBLE AS n, avg(length)::DOUBLE AS avgdl FROM article_search_docs),
df AS (SELECT term, count(*)::DOUBLE AS df FROM hits GROUP BY term),
scored AS (
    SELECT h.article_id,
           sum(greatest(ln((s.n - df.df + 0.5) / (df.df + 0.5)), 1e-6) * h.tf * (1.2 + 1)
               / (h.tf + 1.2 * (1 - 0.75 + 0.75 * h.length / s.avgdl))) AS score,
           count(*) AS matched_terms
    FROM hits h JOIN df ON df.term = h.term CROSS JOIN stats s
    GROUP BY h.article_id
)
SELECT a.id AS article_id, a.title, a.source, a.published_at, a.first_seen_at, a.url, s.score, s.matched_terms
FROM scored s
JOIN articles a ON a.id = s.article_id
ORDER BY s.score DESC, a.id;
