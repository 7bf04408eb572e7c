-- The latest runs: flow, sources read, trigger, status, duration and every count, with the snapshot each left.
-- param: limit = 10
SELECT r.id, r.flow, r.trigger, r.status, r.started_at, v.seconds, r.discovered, r.fetched, r.not_modified,
       r.new, r.updated, r.unchanged, r.duplicates, r.entities, r.failed, r.snapshot_id,
       r.sources
FROM runs r JOIN v_runs v ON v.id = r.id
ORDER BY r.id DESC
LIMIT $limit;
