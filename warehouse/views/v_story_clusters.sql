-- One row per canonical article (any article not itself a duplicate) with its syndicated copies.
CREATE OR REPLACE VIEW v_story_clusters AS
WITH members AS (
    SELECT a.id AS canonical_id, a.id AS article_id, a.source, a.first_seen_at, a.last_seen_at, false AS is_duplicate
    FROM articles a
    WHERE NOT EXISTS (SELECT 1 FROM duplicates d WHERE d.article_id = a.id)
    UNION ALL
    SELECT d.duplicate_of, a.id, a.source, a.first_seen_at, a.last_seen_at, true
    FROM duplicates d
    JOIN articles a ON a.id = d.article_id
)
SELECT
    c.id AS article_id,
    c.url,
    c.title,
    c.source,
    count(*) FILTER (WHERE m.is_duplicate) AS duplicate_count,
    list(DISTINCT m.source ORDER BY m.source) AS sources,
    coalesce(list(m.article_id ORDER BY m.first_seen_at, m.article_id) FILTER (WHERE m.is_duplicate), []::VARCHAR[]) AS duplicate_ids,
    min(m.first_seen_at) AS first_seen_at,
    max(m.last_seen_at) AS last_seen_at
FROM members m
JOIN articles c ON c.id = m.canonical_id
GROUP BY c.id, c.url, c.title, c.source;
