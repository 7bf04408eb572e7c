-- Core schema: sources, runs, raw pages, fetch state, articles (+ history and URL aliases), failures.

CREATE TABLE sources (
    name        VARCHAR PRIMARY KEY,
    kind        VARCHAR NOT NULL,
    location    VARCHAR NOT NULL,
    options     JSON,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE SEQUENCE runs_id_seq START 1;
CREATE TABLE runs (
    id            BIGINT PRIMARY KEY DEFAULT nextval('runs_id_seq'),
    flow_run_id   VARCHAR,
    flow          VARCHAR NOT NULL,            -- ingest | reingest | init
    trigger       VARCHAR NOT NULL,            -- cli | schedule | manual
    params        JSON,
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
    failed        INTEGER NOT NULL DEFAULT 0
);

-- Latest raw response per URL (articles, feeds, sitemaps), compressed, for re-processing offline.
CREATE TABLE pages (
    url            VARCHAR PRIMARY KEY,
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
CREATE TABLE url_retries (
    url              VARCHAR PRIMARY KEY,
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

CREATE TABLE articles (
    id                 VARCHAR PRIMARY KEY,
    url                VARCHAR NOT NULL UNIQUE,      -- canonical URL
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
CREATE TABLE article_versions (
    article_id    VARCHAR NOT NULL,
    content_hash  VARCHAR NOT NULL,
    title         VARCHAR,
    text          VARCHAR,
    valid_from    TIMESTAMPTZ NOT NULL,
    replaced_at   TIMESTAMPTZ NOT NULL,
    run_id        BIGINT,
    PRIMARY KEY (article_id, content_hash, replaced_at)
);

-- Every URL (as discovered/fetched) that led to an article.
CREATE TABLE article_urls (
    url            VARCHAR PRIMARY KEY,
    article_id     VARCHAR NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL
);

CREATE SEQUENCE failures_id_seq START 1;
CREATE TABLE failures (
    id          BIGINT PRIMARY KEY DEFAULT nextval('failures_id_seq'),
    url         VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    stage       VARCHAR NOT NULL,
    reason      VARCHAR NOT NULL,
    detail      VARCHAR,
    retryable   BOOLEAN NOT NULL,
    run_id      BIGINT,
    failed_at   TIMESTAMPTZ NOT NULL
);
