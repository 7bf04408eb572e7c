-- Articles per publication day (first-seen day when the page gave no date) and source.
CREATE OR REPLACE VIEW v_articles_daily AS
SELECT CAST(coalesce(published_at, first_seen_at) AS DATE) AS day, source, count(*) AS articles, sum(word_count) AS words
FROM articles
GROUP BY ALL;
