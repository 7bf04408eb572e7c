-- URLs that currently fail: retry state plus the detail of their latest failure.
CREATE OR REPLACE VIEW v_failures_open AS
SELECT r.url, r.source, r.kind, r.stage, r.last_reason AS reason, r.retryable, r.attempts,
       r.permanent AS gave_up, r.next_attempt_at, r.updated_at AS last_failed_at,
       (SELECT f.detail FROM failures f WHERE f.url = r.url ORDER BY f.failed_at DESC LIMIT 1) AS detail
FROM url_retries r;
