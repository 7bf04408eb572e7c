-- Named entities: entities (stable ids), their aliases, mentions per article, and which model produced them.

-- One row per entity. `id` is assigned once (a hash of the key it was created with) and never changes,
-- even when `key`/`name` are later upgraded from a short form ("PERSON:lavrov") to a full name.
-- key: id; key is unique too (enforced by warehouse/entities_store.py)
CREATE TABLE entities (
    id             BIGINT NOT NULL,
    key            VARCHAR NOT NULL,    -- "TYPE:normalised canonical name", e.g. PERSON:antony blinken
    name           VARCHAR NOT NULL,           -- display name, e.g. Antony Blinken
    type           VARCHAR NOT NULL,           -- voted label: PERSON, ORG, GPE, ...
    first_seen_at  TIMESTAMPTZ,                -- earliest first_seen_at of an article mentioning it
    article_count  INTEGER NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Normalised surfaces seen for an entity ("blinken", "antony blinken"): resolves cross-article short forms.
-- key: (alias, entity_id)
CREATE TABLE entity_aliases (
    alias      VARCHAR NOT NULL,
    entity_id  BIGINT NOT NULL,
    surface    VARCHAR NOT NULL,               -- one written example
    count      INTEGER NOT NULL                -- mentions with this alias
);

-- key: (article_id, start_char, end_char)
CREATE TABLE mentions (
    article_id     VARCHAR NOT NULL,
    entity_id      BIGINT NOT NULL,
    surface        VARCHAR NOT NULL,
    alias          VARCHAR NOT NULL,           -- normalised surface (feeds entity_aliases)
    start_char     INTEGER NOT NULL,           -- character offsets into articles.text
    end_char       INTEGER NOT NULL,
    snippet        VARCHAR,
    raw_label      VARCHAR NOT NULL,           -- the model's label; entities.type is the voted one
    model          VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL
);

-- Which model (and normalisation) version produced an article's entities, or why it was skipped.
-- key: article_id
CREATE TABLE article_entity_runs (
    article_id      VARCHAR NOT NULL,
    model           VARCHAR NOT NULL,
    model_version   VARCHAR NOT NULL,
    skipped_reason  VARCHAR,
    mention_count   INTEGER NOT NULL,
    copied_from     VARCHAR,                   -- canonical article whose entities an exact duplicate reuses
    first_seen_at   TIMESTAMPTZ,               -- the article's first_seen_at as given by the caller
    processed_at    TIMESTAMPTZ NOT NULL
);
