-- Dedup: per-article MinHash fingerprints, LSH band index, and recorded duplicate decisions.
-- Keys are enforced by warehouse/dedup_store.py (DuckLake has no constraints). No secondary indexes: lookups are set-based hash joins (one per batch), and DuckDB ART indexes on
-- columns that upserts rewrite (content_hash, duplicate_of) only add write cost and constraint pitfalls.

-- One fingerprint per article. `model` names the parameters (shingle size, permutations, bands, seed,
-- normalisation) so fingerprints made with other settings can be found and recomputed.
-- key: article_id
CREATE TABLE article_fingerprints (
    article_id     VARCHAR NOT NULL,
    content_hash   VARCHAR NOT NULL,            -- sha256 of the normalised text (exact-duplicate key)
    signature      UINTEGER[] NOT NULL,         -- rensa RMinHash values are uint32
    shingle_count  INTEGER NOT NULL,
    model          VARCHAR NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- LSH index: one row per (band, key); articles sharing a key in any band are near-duplicate candidates.
-- key: (band, band_key, article_id)
CREATE TABLE article_bands (
    band        SMALLINT NOT NULL,
    band_key    BIGINT NOT NULL,
    article_id  VARCHAR NOT NULL
);

-- Recorded decisions: `article_id` duplicates the cluster canonical `duplicate_of` (never another duplicate).
-- key: article_id
CREATE TABLE duplicates (
    article_id    VARCHAR NOT NULL,
    duplicate_of  VARCHAR NOT NULL,
    method        VARCHAR NOT NULL,             -- url | exact | near
    similarity    DOUBLE NOT NULL,
    run_id        BIGINT,
    detected_at   TIMESTAMPTZ NOT NULL
);
