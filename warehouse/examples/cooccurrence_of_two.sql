-- Articles naming both of two entities, looked up by display name or any alias (case-insensitive).
-- param: a = 'Blinken'
-- param: b = 'Lavrov'
WITH a AS (SELECT DISTINCT entity_id FROM entity_aliases WHERE alias = lower($a)
           UNION SELECT id FROM entities WHERE lower(name) = lower($a)),
     b AS (SELECT DISTINCT entity_id FROM entity_aliases WHERE alias = lower($b)
           UNION SELECT id FROM entities WHERE lower(name) = lower($b))
SELECT ae1.article_id, ae1.title, ae1.published_at, ae1.name AS name_a, ae1.mention_count AS mentions_a,
       ae2.name AS name_b, ae2.mention_count AS mentions_b
FROM v_article_entities ae1
JOIN v_article_entities ae2 ON ae1.article_id = ae2.article_id
WHERE ae1.entity_id IN (SELECT entity_id FROM a) AND ae2.entity_id IN (SELECT entity_id FROM b)
  AND ae1.entity_id <> ae2.entity_id
ORDER BY coalesce(ae1.published_at, ae1.first_seen_at), ae1.article_id;
