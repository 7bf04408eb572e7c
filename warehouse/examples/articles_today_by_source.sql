-- Articles of one day per source (publication day, else first-seen day), with their titles.
-- $day is a date ('2023-03-03'); 'latest' means the latest day that has articles from a fetched source
-- (not the seed corpus), so the query answers on old data too.
-- param: day = 'latest'
WITH d AS (
    SELECT coalesce(try_cast($day AS DATE),
                    (SELECT max(CAST(coalesce(published_at, first_seen_at) AS DATE)) FROM articles WHERE source <> 'seed')) AS day
)
SELECT d.day, a.source, count(*) AS articles, sum(a.word_count) AS words,
       list(a.title ORDER BY coalesce(a.published_at, a.first_seen_at)) AS titles
FROM articles a, d
WHERE CAST(coalesce(a.published_at, a.first_seen_at) AS DATE) = d.day
GROUP BY d.day, a.source
ORDER BY articles DESC, a.source;
