-- Top people of the last 7 days (by publication day, else first-seen day): articles and mentions.
-- Parameter: $as_of (DATE), the last day of the week, e.g. current_date.
SELECT entity_id, name, sum(articles) AS articles, sum(mentions) AS mentions
FROM v_entity_daily
WHERE type = 'PERSON' AND day > CAST($as_of AS DATE) - INTERVAL 7 DAY AND day <= CAST($as_of AS DATE)
GROUP BY entity_id, name
ORDER BY articles DESC, mentions DESC, name
LIMIT 20;
