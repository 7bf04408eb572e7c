-- Entities per article with their mention counts, and the article's title and dates.
CREATE OR REPLACE VIEW v_article_entities AS
SELECT
    m.article_id,
    m.entity_id,
    e.name,
    e.type,
    count(*) AS mention_count,
    min(m.start_char) AS first_offset,
    a.title,
    a.published_at,
    coalesce(a.first_seen_at, r.first_seen_at) AS first_seen_at
FROM mentions m
JOIN entities e ON e.id = m.entity_id
LEFT JOIN articles a ON a.id = m.article_id
LEFT JOIN article_entity_runs r ON r.article_id = m.article_id
GROUP BY m.article_id, m.entity_id, e.name, e.type, a.title, a.published_at, coalesce(a.first_seen_at, r.first_seen_at);
