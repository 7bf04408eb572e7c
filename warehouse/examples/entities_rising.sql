-- Entities rising: articles naming each entity in the last $days days vs the $days days before
-- (up to the latest day with entity data), biggest increase first. New entities rise from zero.
-- param: days = 7
-- param: min_articles = 2
WITH last AS (SELECT max(day) AS day FROM v_entity_daily),
windows AS (
    SELECT e.entity_id, e.name, e.type,
           sum(e.articles) FILTER (WHERE e.day > last.day - to_days(CAST($days AS INTEGER))) AS recent,
           sum(e.articles) FILTER (WHERE e.day <= last.day - to_days(CAST($days AS INTEGER))
                                     AND e.day > last.day - to_days(2 * CAST($days AS INTEGER))) AS before
    FROM v_entity_daily e, last
    GROUP BY e.entity_id, e.name, e.type
)
SELECT name, type, coalesce(recent, 0) AS recent_articles, coalesce(before, 0) AS previous_articles,
       coalesce(recent, 0) - coalesce(before, 0) AS change,
       round(coalesce(recent, 0) / nullif(before, 0), 2) AS ratio
FROM windows
WHERE coalesce(recent, 0) >= $min_articles
ORDER BY change DESC, recent_articles DESC, name
LIMIT 25;
