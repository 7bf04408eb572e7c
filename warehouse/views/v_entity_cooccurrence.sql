-- Pairs of entities named in the same article (entity_a < entity_b), with the number of such articles.
CREATE OR REPLACE VIEW v_entity_cooccurrence AS
WITH pairs AS (SELECT DISTINCT article_id, entity_id FROM mentions)
SELECT
    p1.entity_id AS entity_a,
    p2.entity_id AS entity_b,
    ea.name AS name_a,
    ea.type AS type_a,
    eb.name AS name_b,
    eb.type AS type_b,
    count(*) AS article_count
FROM pairs p1
JOIN pairs p2 ON p1.article_id = p2.article_id AND p1.entity_id < p2.entity_id
JOIN entities ea ON ea.id = p1.entity_id
JOIN entities eb ON eb.id = p2.entity_id
GROUP BY ALL;
