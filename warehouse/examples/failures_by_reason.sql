-- Failures by source, stage and reason over the last $days days (of failures recorded): how many,
-- how many URLs, whether retryable, and one example URL.
-- param: days = 30
SELECT source, stage, reason, retryable, count(*) AS failures, count(DISTINCT url) AS urls,
       min(url) AS example_url, max(failed_at) AS last_failed_at
FROM failures
WHERE failed_at > (SELECT max(failed_at) FROM failures) - to_days(CAST($days AS INTEGER))
GROUP BY source, stage, reason, retryable
ORDER BY failures DESC, source, stage, reason;
