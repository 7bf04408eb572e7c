-- Per source: articles, words, newest publication, last ingest, open failures.
CREATE OR REPLACE VIEW v_source_stats AS
SELECT s.name AS source, s.kind,
       count(a.id) AS articles,
       coalesce(sum(a.word_count), 0) AS words,
       max(a.published_at) AS newest_published_at,
       max(a.last_seen_at) AS last_seen_at,
       (SELECT count(*) FROM url_retries r WHERE r.source = s.name) AS failing_urls
FROM sources s
LEFT JOIN articles a ON a.source = s.name
GROUP BY s.name, s.kind;
