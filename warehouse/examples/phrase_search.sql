-- Ranked full-text search: articles matching a phrase by BM25 over titles and text (English stemming:
-- "talks" finds "talk", "talking"), the ranking `newsflow search` uses, with a short extract.
-- param: phrase = 'bridge toll ruling'
-- param: limit = 10
SELECT s.title, s.source, coalesce(s.published_at, s.first_seen_at) AS dated, round(s.score, 3) AS score,
       s.matched_terms, left(a.text, 160) AS extract, s.url
FROM search_articles($phrase) s
JOIN articles a ON a.id = s.article_id
ORDER BY s.score DESC, s.article_id
LIMIT $limit;
