-- The stories carried by the most outlets: each canonical article with its copies and the sources
-- that ran it (from v_story_clusters), most copies first.
-- param: limit = 10
SELECT c.title, c.source AS first_source, c.duplicate_count AS copies, len(c.sources) AS outlets, c.sources,
       (SELECT list(a.url ORDER BY a.first_seen_at) FROM articles a WHERE list_contains(c.duplicate_ids, a.id)) AS copy_urls,
       c.first_seen_at
FROM v_story_clusters c
ORDER BY c.duplicate_count DESC, len(c.sources) DESC, c.first_seen_at, c.article_id
LIMIT $limit;
