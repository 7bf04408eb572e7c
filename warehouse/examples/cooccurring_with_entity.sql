-- What co-occurs with an entity: the entities named in the same articles, most shared articles first.
-- $entity: a display name or any written form (alias), e.g. 'Blinken', 'U.S.'.
-- param: entity = 'Blinken'
-- param: limit = 20
WITH target AS (
    SELECT id FROM entities WHERE lower(name) = lower($entity)
    UNION SELECT entity_id FROM entity_aliases WHERE alias = lower($entity)
)
SELECT c.name, c.other_name, c.other_type, c.article_count
FROM v_entity_cooccurrence c
WHERE c.entity_id IN (SELECT id FROM target)
ORDER BY c.article_count DESC, c.other_name
LIMIT $limit;
