-- Pairs of entities named in the same article, in both orders: filter on `entity_id` (or `name`) to get
-- everything that co-occurs with one entity. `article_count` = articles naming both; each unordered
-- pair appears twice (A,B) and (B,A), so count pairs with `WHERE entity_id < other_id`.
CREATE OR REPLACE VIEW v_entity_cooccurrence AS
WITH pairs AS (SELECT DISTINCT article_id, entity_id FROM mentions)
SELECT
    p1.entity_id,
    e1.name,
    e1.type,
    p2.entity_id AS other_id,
    e2.name AS other_name,
    e2.type AS other_type,
    count(*) AS article_count
FROM pairs p1
JOIN pairs p2 ON p1.article_id = p2.article_id AND p1.entity_id <> p2.entity_id
JOIN entities e1 ON e1.id = p1.entity_id
JOIN entities e2 ON e2.id = p2.entity_id
GROUP BY ALL;
