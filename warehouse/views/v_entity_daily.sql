-- Mentions and articles per entity and UTC day (publication date, else the day the article was first seen).
CREATE OR REPLACE VIEW v_entity_daily AS
SELECT
    m.entity_id,
    e.name,
    e.type,
    CAST(timezone('UTC', coalesce(a.published_at, a.first_seen_at, r.first_seen_at)) AS DATE) AS day,
    count(*) AS mentions,
    count(DISTINCT m.article_id) AS articles
FROM mentions m
JOIN entities e ON e.id = m.entity_id
LEFT JOIN articles a ON a.id = m.article_id
LEFT JOIN article_entity_runs r ON r.article_id = m.article_id
GROUP BY ALL;
