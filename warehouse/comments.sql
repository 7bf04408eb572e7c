-- Descriptions of every table, view and column, applied after the views by `newsflow init`
-- (warehouse.db.apply_comments). The same text is in warehouse/README.md. `describe t` and
-- duckdb_tables()/duckdb_views()/duckdb_columns() show them.

COMMENT ON TABLE sources IS 'Configured sources (from sources.toml, plus `seed` for the seed corpus): one row per source. Key: name.';
COMMENT ON COLUMN sources.name IS 'Source name as in sources.toml (`seed` for the bundled seed corpus).';
COMMENT ON COLUMN sources.kind IS 'How the source lists articles: rss, atom, sitemap, urls, html, warc, or seed.';
COMMENT ON COLUMN sources.location IS 'Feed/sitemap URL, or the path of a URL list, HTML directory or WARC file.';
COMMENT ON COLUMN sources.options IS 'The source''s other settings as JSON (schedule, max_items, language, enabled, base_url).';
COMMENT ON COLUMN sources.updated_at IS 'When this row was last written (each run re-records its sources).';

COMMENT ON TABLE runs IS 'One row per run of newsflow (init, ingest, reingest) with its outcome and counts. Key: id.';
COMMENT ON COLUMN runs.id IS 'Run number, increasing (assigned by the single writer).';
COMMENT ON COLUMN runs.flow_run_id IS 'Prefect flow run id (links to the Prefect UI); NULL outside Prefect.';
COMMENT ON COLUMN runs.flow IS 'init | ingest | reingest.';
COMMENT ON COLUMN runs.trigger IS 'cli (newsflow command) | schedule (a deployment''s schedule) | manual (a deployment run by hand).';
COMMENT ON COLUMN runs.params IS 'The run''s parameters as JSON (e.g. sources, feeds, path; reingest selection and mode).';
COMMENT ON COLUMN runs.sources IS 'The sources the run read, comma-separated (", "); NULL for runs that read none.';
COMMENT ON COLUMN runs.pid IS 'Process id of the writer, used to detect crashed runs.';
COMMENT ON COLUMN runs.started_at IS 'When the run took the writer lock.';
COMMENT ON COLUMN runs.finished_at IS 'When the run ended (NULL while running).';
COMMENT ON COLUMN runs.status IS 'running | completed | failed | crashed.';
COMMENT ON COLUMN runs.error IS 'One-line error of a failed or crashed run.';
COMMENT ON COLUMN runs.discovered IS 'Article URLs found by discovery.';
COMMENT ON COLUMN runs.fetched IS 'Pages fetched with a body.';
COMMENT ON COLUMN runs.not_modified IS 'Conditional requests answered 304 Not Modified.';
COMMENT ON COLUMN runs.new IS 'Articles added.';
COMMENT ON COLUMN runs.updated IS 'Articles whose text changed (old version kept in article_versions).';
COMMENT ON COLUMN runs.unchanged IS 'Articles processed again without a change (e.g. a reprocess with the same versions).';
COMMENT ON COLUMN runs.duplicates IS 'Duplicate decisions written (url, exact or near).';
COMMENT ON COLUMN runs.entities IS 'Entity mentions written.';
COMMENT ON COLUMN runs.failed IS 'Items that failed (rows in failures).';
COMMENT ON COLUMN runs.snapshot_id IS 'DuckLake snapshot after the run''s last write: query the warehouse as it was with AT (VERSION => snapshot_id) or newsflow sql --as-of-run ID.';

COMMENT ON TABLE pages IS 'Latest raw HTTP response per URL (articles, feeds, sitemaps), zlib-compressed, so articles can be re-processed offline. Key: url.';
COMMENT ON COLUMN pages.url IS 'The URL requested.';
COMMENT ON COLUMN pages.url_key IS 'Lookup key: the first 16 hex digits of md5(url); the table is sorted by it, so a lookup by url_key and url reads few row groups.';
COMMENT ON COLUMN pages.kind IS 'article | feed | sitemap.';
COMMENT ON COLUMN pages.source IS 'Source the URL belongs to (sources.name).';
COMMENT ON COLUMN pages.final_url IS 'URL after redirects.';
COMMENT ON COLUMN pages.status IS 'HTTP status of the last response (304 when not modified).';
COMMENT ON COLUMN pages.content_type IS 'Content-Type of the last body.';
COMMENT ON COLUMN pages.etag IS 'ETag validator for the next conditional GET.';
COMMENT ON COLUMN pages.last_modified IS 'Last-Modified validator for the next conditional GET.';
COMMENT ON COLUMN pages.fetched_at IS 'Last time a body was received.';
COMMENT ON COLUMN pages.checked_at IS 'Last time the URL was requested (including 304 answers); checked_at > fetched_at means the last check was not modified.';
COMMENT ON COLUMN pages.body_zlib IS 'The response body, zlib-compressed.';
COMMENT ON COLUMN pages.body_bytes IS 'Uncompressed body size in bytes.';
COMMENT ON COLUMN pages.body_sha256 IS 'SHA-256 of the uncompressed body.';
COMMENT ON COLUMN pages.run_id IS 'Run that last wrote the row (runs.id).';

COMMENT ON TABLE url_retries IS 'URLs that currently fail: attempts, next retry time, or given up. A URL leaves this table when it succeeds. Key: url.';
COMMENT ON COLUMN url_retries.url IS 'The failing URL.';
COMMENT ON COLUMN url_retries.source IS 'Source it belongs to.';
COMMENT ON COLUMN url_retries.kind IS 'article | feed | sitemap.';
COMMENT ON COLUMN url_retries.stage IS 'Pipeline stage that failed: discover, fetch, clean, dedup, entities, load.';
COMMENT ON COLUMN url_retries.attempts IS 'Failed attempts so far.';
COMMENT ON COLUMN url_retries.last_reason IS 'Short reason code of the latest failure (http_500, timeout, no_text, robots_disallowed, ...).';
COMMENT ON COLUMN url_retries.retryable IS 'Whether a later run may succeed.';
COMMENT ON COLUMN url_retries.next_attempt_at IS 'Earliest time of the next retry (exponential backoff, Retry-After honoured).';
COMMENT ON COLUMN url_retries.permanent IS 'True once newsflow gave up (attempt limit reached, or not retryable).';
COMMENT ON COLUMN url_retries.updated_at IS 'Time of the latest failure.';

COMMENT ON TABLE articles IS 'One row per article (canonical URL), with its cleaned text and metadata; the centre of the model. Key: id (= hash of url; url is unique too).';
COMMENT ON COLUMN articles.id IS 'Article id: first 16 hex digits of SHA-256 of the canonical URL (stable across rebuilds).';
COMMENT ON COLUMN articles.url IS 'Canonical URL (seed://FILE for seed articles).';
COMMENT ON COLUMN articles.page_url IS 'URL actually fetched (final, after redirects); joins pages.url.';
COMMENT ON COLUMN articles.source IS 'Source name (sources.name).';
COMMENT ON COLUMN articles.title IS 'Title.';
COMMENT ON COLUMN articles.text IS 'Cleaned body text (paragraphs separated by blank lines).';
COMMENT ON COLUMN articles.authors IS 'Authors, as the page declared them.';
COMMENT ON COLUMN articles.published_at IS 'Publication time declared by the page (NULL when it gave none).';
COMMENT ON COLUMN articles.language IS 'Detected language code (en, de, ...).';
COMMENT ON COLUMN articles.site_name IS 'Site name declared by the page.';
COMMENT ON COLUMN articles.description IS 'Summary/standfirst declared by the page.';
COMMENT ON COLUMN articles.extractor IS 'What produced the text: trafilatura or seed.';
COMMENT ON COLUMN articles.extractor_version IS 'Extractor version (changes make re-processing redo the article).';
COMMENT ON COLUMN articles.content_hash IS 'SHA-256 of the normalised text: equal hashes are exact duplicates.';
COMMENT ON COLUMN articles.word_count IS 'Words in text.';
COMMENT ON COLUMN articles.first_seen_at IS 'When newsflow first stored the article (seeds: when they were loaded).';
COMMENT ON COLUMN articles.last_seen_at IS 'When the article was last fetched or re-processed.';
COMMENT ON COLUMN articles.updated_at IS 'When the text last changed.';
COMMENT ON COLUMN articles.run_id IS 'Run that last wrote the row (runs.id).';

COMMENT ON TABLE article_versions IS 'Earlier versions of articles whose text changed: one row per replaced version. Key: (article_id, content_hash, replaced_at).';
COMMENT ON COLUMN article_versions.article_id IS 'The article (articles.id).';
COMMENT ON COLUMN article_versions.content_hash IS 'Hash of the replaced text.';
COMMENT ON COLUMN article_versions.title IS 'Title of the replaced version.';
COMMENT ON COLUMN article_versions.text IS 'Text of the replaced version.';
COMMENT ON COLUMN article_versions.valid_from IS 'When the replaced version was first stored.';
COMMENT ON COLUMN article_versions.replaced_at IS 'When it was replaced by a newer version.';
COMMENT ON COLUMN article_versions.run_id IS 'Run that replaced it.';

COMMENT ON TABLE article_urls IS 'Every URL (as discovered or fetched) that led to an article: aliases, redirects, tracking variants. Key: url.';
COMMENT ON COLUMN article_urls.url IS 'A URL that led to the article.';
COMMENT ON COLUMN article_urls.url_key IS 'Lookup key: the first 16 hex digits of md5(url) (see pages.url_key).';
COMMENT ON COLUMN article_urls.article_id IS 'The article (articles.id).';
COMMENT ON COLUMN article_urls.first_seen_at IS 'When this URL was first seen.';

COMMENT ON TABLE failures IS 'Event log of failed items: one row per failure (what, where, why, retryable). Key: id.';
COMMENT ON COLUMN failures.id IS 'Failure number, increasing.';
COMMENT ON COLUMN failures.url IS 'The URL that failed.';
COMMENT ON COLUMN failures.source IS 'Source it belongs to.';
COMMENT ON COLUMN failures.stage IS 'discover | fetch | clean | dedup | entities | load | seed.';
COMMENT ON COLUMN failures.reason IS 'Short reason code: http_404, timeout, no_text, unsupported_language, robots_disallowed, malformed_feed, ...';
COMMENT ON COLUMN failures.detail IS 'Human-readable detail (exception message, HTTP status line).';
COMMENT ON COLUMN failures.retryable IS 'Whether a later run may succeed.';
COMMENT ON COLUMN failures.run_id IS 'Run in which it failed.';
COMMENT ON COLUMN failures.failed_at IS 'When it failed.';

COMMENT ON TABLE article_fingerprints IS 'Dedup fingerprint per article: exact-duplicate hash and MinHash signature. Key: article_id.';
COMMENT ON COLUMN article_fingerprints.article_id IS 'The article (articles.id).';
COMMENT ON COLUMN article_fingerprints.content_hash IS 'SHA-256 of the normalised text (exact-duplicate key).';
COMMENT ON COLUMN article_fingerprints.signature IS 'MinHash signature (uint32 values) of the text''s shingles.';
COMMENT ON COLUMN article_fingerprints.shingle_count IS 'Number of shingles hashed.';
COMMENT ON COLUMN article_fingerprints.model IS 'Dedup parameters that produced the signature (shingle size, permutations, bands, seed).';
COMMENT ON COLUMN article_fingerprints.updated_at IS 'When the fingerprint was written.';

COMMENT ON TABLE article_bands IS 'LSH index for near-duplicate search: articles sharing a (band, band_key) are candidates. Key: (band, band_key, article_id).';
COMMENT ON COLUMN article_bands.band IS 'LSH band number.';
COMMENT ON COLUMN article_bands.band_key IS 'Hash of the signature values in that band.';
COMMENT ON COLUMN article_bands.article_id IS 'The article (articles.id).';

COMMENT ON TABLE duplicates IS 'Duplicate decisions: article_id duplicates the cluster''s canonical (earliest-seen) article duplicate_of. Key: article_id.';
COMMENT ON COLUMN duplicates.article_id IS 'The duplicate article (articles.id).';
COMMENT ON COLUMN duplicates.duplicate_of IS 'The canonical article of its cluster (articles.id; never itself a duplicate).';
COMMENT ON COLUMN duplicates.method IS 'url (same canonical URL) | exact (same normalised text) | near (shingle Jaccard/containment) | contained (the shorter text is almost all in the longer and opens the same way: a copy extracted short or grown by updates).';
COMMENT ON COLUMN duplicates.similarity IS 'Shingle similarity: max(Jaccard, containment) for near, containment for contained (1.0 for url/exact).';
COMMENT ON COLUMN duplicates.run_id IS 'Run that decided it.';
COMMENT ON COLUMN duplicates.detected_at IS 'When it was decided.';

COMMENT ON TABLE articles_boilerplate IS 'Lines removed from an article as its site''s template (they recur on other articles of the same host), with why. Key: (article_id, line).';
COMMENT ON COLUMN articles_boilerplate.article_id IS 'The article (articles.id).';
COMMENT ON COLUMN articles_boilerplate.line IS 'The removed line, normalised as article texts are stored.';
COMMENT ON COLUMN articles_boilerplate.reason IS 'Why it was removed, e.g. site_boilerplate: on >= 3 other articles of this site.';
COMMENT ON COLUMN articles_boilerplate.removed_at IS 'When the article was cleaned with this line removed.';

COMMENT ON TABLE entities IS 'Named entities (people, organisations, places, ...) with stable ids, resolved across articles. Key: id (key is unique too).';
COMMENT ON COLUMN entities.id IS 'Stable entity id (hash of the key it was created with; never changes).';
COMMENT ON COLUMN entities.key IS 'TYPE:normalised canonical name, e.g. PERSON:antony blinken, GPE:united states.';
COMMENT ON COLUMN entities.name IS 'Display name, e.g. Antony Blinken, United States.';
COMMENT ON COLUMN entities.type IS 'Entity type voted over its mentions: PERSON, ORG, GPE, LOC, NORP, FAC, EVENT, PRODUCT, WORK_OF_ART, LAW, LANGUAGE.';
COMMENT ON COLUMN entities.first_seen_at IS 'Earliest first_seen_at of an article mentioning it.';
COMMENT ON COLUMN entities.article_count IS 'Articles mentioning it.';
COMMENT ON COLUMN entities.created_at IS 'When the entity was created.';
COMMENT ON COLUMN entities.updated_at IS 'When the row last changed.';

COMMENT ON TABLE entity_aliases IS 'Normalised written forms seen for each entity (blinken, antony blinken, us, u.s.): how short forms resolve. Key: (alias, entity_id).';
COMMENT ON COLUMN entity_aliases.alias IS 'Normalised surface form (lower case, no leading ''the'' or possessive).';
COMMENT ON COLUMN entity_aliases.entity_id IS 'The entity (entities.id).';
COMMENT ON COLUMN entity_aliases.surface IS 'One example of the form as written.';
COMMENT ON COLUMN entity_aliases.count IS 'Mentions written in this form.';

COMMENT ON TABLE mentions IS 'Every entity mention in an article, with its character offsets and the sentence around it. Key: (article_id, start_char, end_char).';
COMMENT ON COLUMN mentions.article_id IS 'The article (articles.id).';
COMMENT ON COLUMN mentions.entity_id IS 'The entity mentioned (entities.id).';
COMMENT ON COLUMN mentions.surface IS 'The mention as written.';
COMMENT ON COLUMN mentions.alias IS 'Normalised surface (entity_aliases.alias).';
COMMENT ON COLUMN mentions.start_char IS 'Start offset into articles.text.';
COMMENT ON COLUMN mentions.end_char IS 'End offset into articles.text.';
COMMENT ON COLUMN mentions.snippet IS 'The sentence around the mention.';
COMMENT ON COLUMN mentions.raw_label IS 'The NER model''s label for this mention (entities.type is the voted one).';
COMMENT ON COLUMN mentions.model IS 'spaCy model that found it.';
COMMENT ON COLUMN mentions.model_version IS 'Model version + newsflow normalisation version (+normN).';

COMMENT ON TABLE article_entity_runs IS 'Which model and version produced each article''s entities, or why it was skipped. Key: article_id.';
COMMENT ON COLUMN article_entity_runs.article_id IS 'The article (articles.id).';
COMMENT ON COLUMN article_entity_runs.model IS 'spaCy model used ('''' when skipped without a model).';
COMMENT ON COLUMN article_entity_runs.model_version IS 'Model version + normalisation version.';
COMMENT ON COLUMN article_entity_runs.skipped_reason IS 'Why no entities: no_model_for_language:xx, empty_text; NULL when processed.';
COMMENT ON COLUMN article_entity_runs.mention_count IS 'Mentions found.';
COMMENT ON COLUMN article_entity_runs.copied_from IS 'Canonical article whose entities an exact duplicate reuses.';
COMMENT ON COLUMN article_entity_runs.first_seen_at IS 'The article''s first_seen_at when processed.';
COMMENT ON COLUMN article_entity_runs.processed_at IS 'When entities were extracted.';

COMMENT ON TABLE search_postings IS 'Full-text search index: for each stemmed term, the articles containing it and how often (an inverted index; use search_articles() or v_article_terms). Key: term for merged rows (several unmerged rows per term until merged).';
COMMENT ON COLUMN search_postings.term IS 'Porter stem of a word (lower case, stop words dropped).';
COMMENT ON COLUMN search_postings.postings IS 'List of {article_id, tf, generation}: tf = count in the text + 2 x count in the title; an entry counts only while generation equals the article''s in article_search_docs.';
COMMENT ON COLUMN search_postings.merged IS 'false: rows added by one batch load; true: rows merged into one per term.';

COMMENT ON TABLE article_search_docs IS 'One row per article in the search index: length for BM25 and what the index was made from. Key: article_id.';
COMMENT ON COLUMN article_search_docs.article_id IS 'The article (articles.id).';
COMMENT ON COLUMN article_search_docs.source IS 'Its source (filter without a join).';
COMMENT ON COLUMN article_search_docs.dated_at IS 'published_at, else first seen (the --since filter).';
COMMENT ON COLUMN article_search_docs.length IS 'Weighted term count (BM25 length normalisation).';
COMMENT ON COLUMN article_search_docs.generation IS 'Current index generation of the article: postings entries with another generation are stale.';
COMMENT ON COLUMN article_search_docs.content_hash IS 'Hash of the title and text that were indexed.';
COMMENT ON COLUMN article_search_docs.terms_version IS 'Tokeniser/stemmer version (ingest.terms.TERMS_VERSION).';
COMMENT ON COLUMN article_search_docs.indexed_at IS 'When it was indexed.';

COMMENT ON TABLE schema_migrations IS 'Applied schema migrations (warehouse/migrations/NNN_name.sql). Key: version.';
COMMENT ON COLUMN schema_migrations.version IS 'Migration number.';
COMMENT ON COLUMN schema_migrations.name IS 'Migration name.';
COMMENT ON COLUMN schema_migrations.applied_at IS 'When it was applied.';

-- Views: DuckDB comments columns of tables only ("Cannot comment on columns for entry ... - it is not a
-- table"), so a view's comment names its own columns.
COMMENT ON VIEW v_runs IS 'One row per run with its duration in seconds and all counts, newest first (see runs). Columns: seconds: Duration (until now while running).';
COMMENT ON VIEW v_failures_open IS 'URLs that currently fail: retry state plus the detail of their latest failure. Columns: reason: Latest reason code. gave_up: True once newsflow stopped retrying. last_failed_at: Time of the latest failure. detail: Detail of the latest failure.';
COMMENT ON VIEW v_source_stats IS 'Per source: articles, words, newest publication, last ingest, failing URLs. Columns: articles: Articles of the source. words: Total words. newest_published_at: Newest publication time. last_seen_at: Last time one of its articles was fetched. failing_urls: URLs currently failing (url_retries).';
COMMENT ON VIEW v_source_health IS 'Per source health: last success, items per run, not-modified share, failure rate, and a silent flag (no new item for over three times its usual gap). Start here to see whether sources work. Columns: last_success_at: Last successful (2xx/3xx incl. 304) request to the source. runs: Completed ingest runs that covered the source. items_per_run: Articles / runs. not_modified_share: Share of the source''s feeds/sitemaps whose last check was answered 304 Not Modified. failures: Failures recorded (all time). failure_rate: failures / (failures + articles). failing_urls: URLs currently failing. newest_item_at: Newest item time (published_at, else first seen). usual_gap_hours: Median gap between consecutive items (latest 50), in hours. hours_since_newest_item: Hours from the newest item to the last successful check. silent: True when hours_since_newest_item > 3 x usual_gap_hours (never for seeds).';
COMMENT ON VIEW v_articles_daily IS 'Articles and words per day (publication day, else first-seen day) and source. Columns: day: Publication day (else first-seen day). articles: Articles. words: Words.';
COMMENT ON VIEW v_articles_unique IS 'Articles that are not a recorded duplicate of an earlier one (canonicals and singletons): one per story. Start here for counting stories.';
COMMENT ON VIEW v_story_clusters IS 'One row per story (canonical article) with its syndicated copies and the outlets that carried it. Columns: duplicate_count: Copies recorded as duplicates of it. sources: Sources that carried the story (canonical included). duplicate_ids: Ids of the copies, earliest first.';
COMMENT ON VIEW v_article_entities IS 'Entities per article with mention counts and the article''s title and dates. Start here for who/what is in an article. Columns: mention_count: Mentions of the entity in the article. first_offset: Offset of its first mention.';
COMMENT ON VIEW v_entity_daily IS 'Mentions and articles per entity and UTC day (publication day, else first-seen day). Start here for trends. Columns: day: UTC day. mentions: Mentions that day. articles: Articles that day.';
COMMENT ON VIEW v_entity_cooccurrence IS 'Entities named in the same articles, in both orders: filter on entity_id or name to see everything that co-occurs with one entity. Columns: other_id: The co-occurring entity. other_name: Its name. other_type: Its type. article_count: Articles naming both.';
COMMENT ON VIEW v_article_terms IS 'The search index as (article, stemmed term, tf) rows, current entries only. Columns: term: Porter stem. tf: Weighted term frequency.';
