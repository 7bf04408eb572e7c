-- Stories per day: all articles, unique stories (not a recorded duplicate of another article) and
-- duplicates, for the $days days up to the latest day with articles from a fetched source (the seed
-- corpus, dated by when it was loaded, is left out of the anchor).
-- param: days = 30
WITH per_article AS (
    SELECT CAST(coalesce(a.published_at, a.first_seen_at) AS DATE) AS day, a.source,
           EXISTS (SELECT 1 FROM duplicates d WHERE d.article_id = a.id) AS is_duplicate
    FROM articles a
),
last AS (SELECT coalesce(max(day) FILTER (WHERE source <> 'seed'), max(day)) AS day FROM per_article)
SELECT p.day, count(*) AS articles,
       count(*) FILTER (WHERE NOT p.is_duplicate) AS unique_stories,
       count(*) FILTER (WHERE p.is_duplicate) AS duplicates
FROM per_article p, last
WHERE p.day > last.day - to_days(CAST($days AS INTEGER)) AND p.day <= last.day
GROUP BY p.day
ORDER BY p.day;
