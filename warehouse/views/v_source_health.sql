-- Per source: last successful check, new items per run, share of not-modified (304) feed/sitemap
-- checks, failure rate, and whether it went silent (no new item for more than three times its usual
-- gap between items, measured at its last check). One row per configured source; `newsflow status`
-- and the report read it.
CREATE OR REPLACE VIEW v_source_health AS
WITH item_times AS (
    -- Item time: publication, else first seen. Gaps over the source's latest 50 items.
    SELECT source, coalesce(published_at, first_seen_at) AS t,
           row_number() OVER (PARTITION BY source ORDER BY coalesce(published_at, first_seen_at) DESC) AS recency
    FROM articles
),
gaps AS (
    SELECT source, epoch(t - lag(t) OVER (PARTITION BY source ORDER BY t)) AS gap_s
    FROM item_times
    WHERE recency <= 50
),
usual AS (
    SELECT source, median(gap_s) FILTER (WHERE gap_s > 0) AS usual_gap_s, count(gap_s) AS gaps
    FROM gaps GROUP BY source
),
items AS (
    SELECT source, count(*) AS articles, max(coalesce(published_at, first_seen_at)) AS newest_item_at,
           max(first_seen_at) AS last_new_at
    FROM articles GROUP BY source
),
checks AS (
    SELECT source,
           max(checked_at) FILTER (WHERE status BETWEEN 200 AND 399) AS last_success_at,
           count(*) FILTER (WHERE kind IN ('feed', 'sitemap')) AS listings,
           -- checked after the last body was received = the last check was answered 304 Not Modified
           avg(CASE WHEN checked_at > fetched_at THEN 1.0 ELSE 0.0 END) FILTER (WHERE kind IN ('feed', 'sitemap')) AS not_modified_share
    FROM pages GROUP BY source
),
source_runs AS (
    -- Completed runs that covered the source: runs.sources lists what a run read (older runs: an ingest
    -- whose params name the source or none, i.e. every enabled source); for the seed corpus, init runs.
    SELECT s.name AS source, count(r.id) AS runs
    FROM sources s
    JOIN runs r ON r.status = 'completed' AND (
        (s.kind = 'seed' AND r.flow = 'init')
        OR (s.kind <> 'seed' AND r.flow = 'ingest' AND r.sources IS NOT NULL
            AND list_contains(string_split(r.sources, ', '), s.name))
        OR (s.kind <> 'seed' AND r.flow = 'ingest' AND r.sources IS NULL
            AND (json_extract(r.params, '$.sources') IS NULL
                 OR json_type(json_extract(r.params, '$.sources')) = 'NULL'
                 OR json_array_length(json_extract(r.params, '$.sources')) = 0
                 OR list_contains(CAST(json_extract(r.params, '$.sources') AS VARCHAR[]), s.name))))
    GROUP BY s.name
),
fails AS (
    SELECT source, count(*) AS failures, max(failed_at) AS last_failure_at FROM failures GROUP BY source
),
open_fails AS (
    SELECT source, count(*) AS failing_urls FROM url_retries GROUP BY source
)
SELECT
    s.name AS source,
    s.kind,
    c.last_success_at,
    coalesce(r.runs, 0) AS runs,
    coalesce(i.articles, 0) AS articles,
    round(coalesce(i.articles, 0) / nullif(r.runs, 0), 1) AS items_per_run,
    round(c.not_modified_share, 3) AS not_modified_share,
    coalesce(f.failures, 0) AS failures,
    round(coalesce(f.failures, 0) / nullif(coalesce(f.failures, 0) + coalesce(i.articles, 0), 0), 3) AS failure_rate,
    coalesce(o.failing_urls, 0) AS failing_urls,
    f.last_failure_at,
    i.newest_item_at,
    i.last_new_at,
    round(u.usual_gap_s / 3600, 2) AS usual_gap_hours,
    round(epoch(coalesce(c.last_success_at, now()) - i.newest_item_at) / 3600, 2) AS hours_since_newest_item,
    coalesce(
        s.kind <> 'seed' AND u.gaps >= 2 AND u.usual_gap_s IS NOT NULL
        AND epoch(coalesce(c.last_success_at, now()) - i.newest_item_at) > 3 * u.usual_gap_s,
        false
    ) AS silent
FROM sources s
LEFT JOIN items i ON i.source = s.name
LEFT JOIN usual u ON u.source = s.name
LEFT JOIN checks c ON c.source = s.name
LEFT JOIN source_runs r ON r.source = s.name
LEFT JOIN fails f ON f.source = s.name
LEFT JOIN open_fails o ON o.source = s.name;
