-- Articles mentioning an entity, newest first, each with its mention count and the sentence of its
-- first mention. $entity: a display name or any written form (alias).
-- param: entity = 'Lavrov'
-- param: limit = 20
WITH target AS (
    SELECT id FROM entities WHERE lower(name) = lower($entity)
    UNION SELECT entity_id FROM entity_aliases WHERE alias = lower($entity)
)
SELECT a.title, a.source, coalesce(a.published_at, a.first_seen_at) AS dated, count(*) AS mentions,
       arg_min(m.snippet, m.start_char) AS first_snippet, a.url
FROM mentions m
JOIN articles a ON a.id = m.article_id
WHERE m.entity_id IN (SELECT id FROM target)
GROUP BY a.id, a.title, a.source, a.published_at, a.first_seen_at, a.url
ORDER BY dated DESC, a.id
LIMIT $limit;
