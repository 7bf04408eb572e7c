-- Core schema: sources, runs, raw pages, fetch state, articles (+ history and URL aliases), failures.
-- DuckLake has no PRIMARY KEY/UNIQUE constraints: each table's natural key is named in a `key:` comment
-- and enforced by the loads in warehouse/loads.py (MERGE on that key, batches deduplicated first).

-- key: name
CREATE TABLE sources (
    name        VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,
    location    VARCHAR NOT NULL,
    options     JSON,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- key: id (assigned max(id)+1 by the single writer)
CREATE TABLE runs (
    id            BIGINT NOT NULL,
    flow_run_id   VARCHAR,
    flow          VARCHAR NOT NULL,            -- ingest | reingest | init
    trigger       VARCHAR NOT NULL,            -- cli | schedule | manual
    params        JSON,
    sources       VARCHAR,                     -- the sources the run read, comma-separated
    pid           INTEGER,                     -- writer process, to detect crashed runs
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    status        VARCHAR NOT NULL DEFAULT 'running',  -- running | completed | failed | crashed
    error         VARCHAR,
    discovered    INTEGER NOT NULL DEFAULT 0,
    fetched       INTEGER NOT NULL DEFAULT 0,
    not_modified  INTEGER NOT NULL DEFAULT 0,
    new           INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    duplicates    INTEGER NOT NULL DEFAULT 0,
    entities      INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    snapshot_id   BIGINT                       -- DuckLake snapshot after the run's last write (time travel)
);

-- Latest raw response per URL (articles, feeds, sitemaps), compressed, for re-processing offline.
-- key: url
CREATE TABLE pages (
    url            VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,           -- article | feed | sitemap
    source         VARCHAR NOT NULL,
    final_url      VARCHAR,
    status         INTEGER NOT NULL,
    content_type   VARCHAR,
    etag           VARCHAR,
    last_modified  VARCHAR,
    fetched_at     TIMESTAMPTZ NOT NULL,       -- last time a body was received
    checked_at     TIMESTAMPTZ NOT NULL,       -- last time the URL was requested (incl. 304)
    body_zlib      BLOB,
    body_bytes     BIGINT,
    body_sha256    VARCHAR,
    run_id         BIGINT
);

-- Retry bookkeeping for URLs that failed: attempts, next due time, permanent failure.
-- key: url
CREATE TABLE url_retries (
    url              VARCHAR NOT NULL,
    source           VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,
    stage            VARCHAR NOT NULL,
    attempts         INTEGER NOT NULL,
    last_reason      VARCHAR NOT NULL,
    retryable        BOOLEAN NOT NULL,
    next_attempt_at  TIMESTAMPTZ,
    permanent        BOOLEAN NOT NULL DEFAULT false,   -- gave up (limit reached or not retryable)
    updated_at       TIMESTAMPTZ NOT NULL
);

-- key: id (= hash of the canonical url; url is unique too)
CREATE TABLE articles (
    id                 VARCHAR NOT NULL,
    url                VARCHAR NOT NULL,      -- canonical URL
    page_url           VARCHAR NOT NULL,             -- URL fetched (final, after redirects)
    source             VARCHAR NOT NULL,
    title              VARCHAR,
    text               VARCHAR NOT NULL,
    authors            VARCHAR[],
    published_at       TIMESTAMPTZ,
    language           VARCHAR,
    site_name          VARCHAR,
    description        VARCHAR,
    extractor          VARCHAR NOT NULL,
    extractor_version  VARCHAR NOT NULL,
    content_hash       VARCHAR NOT NULL,
    word_count         INTEGER NOT NULL,
    first_seen_at      TIMESTAMPTZ NOT NULL,
    last_seen_at       TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    run_id             BIGINT
);

-- Earlier versions of an article whose page changed (content hash differs).
-- key: (article_id, content_hash, replaced_at)
CREATE TABLE article_versions (
    article_id    VARCHAR NOT NULL,
    content_hash  VARCHAR NOT NULL,
    title         VARCHAR,
    text          VARCHAR,
    valid_from    TIMESTAMPTZ NOT NULL,
    replaced_at   TIMESTAMPTZ NOT NULL,
    run_id        BIGINT
);

-- Every URL (as discovered/fetched) that led to an article.
-- key: url
CREATE TABLE article_urls (
    url            VARCHAR NOT NULL,
    article_id     VARCHAR NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL
);

-- key: id (an event log; max(id)+row_number() by the single writer)
CREATE TABLE failures (
    id          BIGINT NOT NULL,
    url         VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    stage       VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    detail      VARCHAR,
    retryable   BOOLEAN NOT NULL,
    run_id      BIGINT,
    failed_at   TIMESTAMPTZ NOT NULL
);
