-- Top people of the 7 days up to $as_of (by publication day, else first-seen day): articles and mentions.
-- $as_of is a date ('2023-03-03'); 'latest' means the latest day with entity data.
-- param: as_of = 'latest'
WITH d AS (SELECT coalesce(try_cast($as_of AS DATE), (SELECT max(day) FROM v_entity_daily)) AS last_day)
SELECT entity_id, name, sum(articles) AS articles, sum(mentions) AS mentions
FROM v_entity_daily, d
WHERE type = 'PERSON' AND day > d.last_day - INTERVAL 7 DAY AND day <= d.last_day
GROUP BY entity_id, name
ORDER BY articles DESC, mentions DESC, name
LIMIT 20;
