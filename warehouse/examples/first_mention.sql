-- The first article that mentioned an entity (by first-seen time), with the sentence around its first mention.
-- $name: a display name ('Sergei Lavrov') or a short form such as 'Lavrov' (matched through entity_aliases).
-- param: name = 'Lavrov'
WITH target AS (
    SELECT id FROM entities WHERE lower(name) = lower($name)
    UNION SELECT entity_id FROM entity_aliases WHERE alias = lower($name)
)
SELECT e.id AS entity_id, e.name, e.type, m.article_id, a.title,
       coalesce(a.first_seen_at, r.first_seen_at) AS first_seen_at, a.published_at, m.surface, m.snippet
FROM mentions m
JOIN target t ON t.id = m.entity_id
JOIN entities e ON e.id = m.entity_id
LEFT JOIN articles a ON a.id = m.article_id
LEFT JOIN article_entity_runs r ON r.article_id = m.article_id
ORDER BY coalesce(a.first_seen_at, r.first_seen_at), coalesce(a.published_at, a.first_seen_at), m.article_id, m.start_char
LIMIT 1;
