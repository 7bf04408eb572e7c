-- Language mix: articles per detected language and source, with each language's share of all articles.
WITH per AS (
    SELECT coalesce(language, 'unknown') AS language, source, count(*) AS articles
    FROM articles GROUP BY ALL
)
SELECT language, source, articles,
       round(100.0 * sum(articles) OVER (PARTITION BY language) / sum(articles) OVER (), 1) AS language_share_pct
FROM per
ORDER BY language_share_pct DESC, language, articles DESC, source;
