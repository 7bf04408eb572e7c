-- One row per run with its duration and counts, newest first.
CREATE OR REPLACE VIEW v_runs AS
SELECT id, flow_run_id, flow, trigger, status, started_at, finished_at,
       round(epoch(coalesce(finished_at, now()) - started_at), 1) AS seconds,
       discovered, fetched, not_modified, new, updated, unchanged, duplicates, entities, failed, error, params
FROM runs
ORDER BY id DESC;
