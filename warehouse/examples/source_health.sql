-- Is each source working? Last success, items per run, share of not-modified feed checks, failure
-- rate, and sources gone silent (no new item for over three times their usual gap), silent first.
SELECT source, kind, silent, last_success_at, runs, articles, items_per_run, not_modified_share,
       failure_rate, failing_urls, newest_item_at, usual_gap_hours, hours_since_newest_item
FROM v_source_health
ORDER BY silent DESC, source;
