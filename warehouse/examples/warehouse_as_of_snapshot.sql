-- Time travel: the warehouse as an earlier snapshot left it next to now. Each run records its snapshot
-- in runs.snapshot_id (SELECT id, snapshot_id FROM runs); $snapshot must be a number (AT takes no subquery).
-- The whole warehouse as of run N: newsflow sql --as-of-run N "...".
-- param: snapshot = 2
SELECT 'articles' AS what, (SELECT count(*) FROM articles AT (VERSION => $snapshot)) AS then_count,
       (SELECT count(*) FROM articles) AS now_count
UNION ALL
SELECT 'sources', (SELECT count(*) FROM sources AT (VERSION => $snapshot)), (SELECT count(*) FROM sources)
UNION ALL
SELECT 'runs', (SELECT count(*) FROM runs AT (VERSION => $snapshot)), (SELECT count(*) FROM runs)
UNION ALL
SELECT 'article_versions', (SELECT count(*) FROM article_versions AT (VERSION => $snapshot)), (SELECT count(*) FROM article_versions);
