-- Full-text search index (warehouse/search.py): an inverted index of stemmed terms, ranked with BM25.
-- Written by the batch load in the same transaction as the articles. DuckLake-compatible: no keys or
-- indexes; warehouse.search keeps article_id unique in article_search_docs.

-- Postings: for one term, the articles containing it with the term's frequency there. Each batch load
-- adds one row per distinct term of its articles (merged = false); index_articles merges those rows
-- into one per term once they pile up, and compact_search_index (maintenance) rewrites the whole
-- index to one row per term. A query reads only the rows of its terms.
-- An entry counts only while its generation equals the article's in article_search_docs, so
-- re-indexing a changed article needs no rewrite of old postings (compaction drops the stale ones).
-- Merged rows are written sorted by term in small row groups, so a query's term filter skips the rest.
CREATE TABLE search_postings (
    term      VARCHAR NOT NULL,               -- Porter stem (ingest/terms.py)
    -- tf: count in the text + TITLE_WEIGHT x count in the title
    postings  STRUCT(article_id VARCHAR, tf INTEGER, generation BIGINT)[] NOT NULL,
    merged    BOOLEAN NOT NULL
);

-- One row per indexed article: its length in weighted terms (BM25 length normalisation), source and
-- date (filters without a join), current generation, and what the postings were made from.
CREATE TABLE article_search_docs (
    article_id     VARCHAR NOT NULL,
    source         VARCHAR NOT NULL,
    dated_at       TIMESTAMPTZ,                -- published_at, else first seen
    length         INTEGER NOT NULL,
    generation     BIGINT NOT NULL,
    content_hash   VARCHAR NOT NULL,           -- hash of title + text the postings were made from
    terms_version  VARCHAR NOT NULL,           -- ingest.terms.TERMS_VERSION
    indexed_at     TIMESTAMPTZ NOT NULL
);

-- The same BM25 ranking as `newsflow search`, as a table macro (needs DuckDB's fts extension for
-- stem(); newsflow loads it). Usage: SELECT * FROM search_articles('peace talks') LIMIT 10;
-- The phrase is tokenised like ingest/terms.py: lower-case, split on non-letters/digits, stop words and
-- one-letter words dropped, Porter stems.
CREATE OR REPLACE MACRO search_articles(phrase) AS TABLE
WITH q AS (
    SELECT DISTINCT stem(w, 'porter') AS term
    FROM (SELECT unnest(regexp_split_to_array(lower(phrase), '[^\p{L}\p{N}]+')) AS w)
    WHERE length(w) > 1 AND NOT list_contains(
        ['a', 'about', 'after', 'all', 'also', 'an', 'and', 'any', 'are', 'as', 'at', 'be', 'been', 'but', 'by',
         'can', 'could', 'did', 'do', 'does', 'for', 'from', 'had', 'has', 'have', 'he', 'her', 'his', 'how', 'i',
         'if', 'in', 'into', 'is', 'it', 'its', 'just', 'more', 'most', 'not', 'now', 'of', 'on', 'one', 'or', 'our',
         'out', 'over', 'said', 'says', 'she', 'so', 'some', 'than', 'that', 'the', 'their', 'them', 'then',
         'there', 'these', 'they', 'this', 'those', 'to', 'up', 'was', 'we', 'were', 'what', 'when', 'which', 'who',
         'will', 'with', 'would', 'you'], w)
),
entries AS (
    SELECT p.term, unnest(p.postings, recursive := true)
    FROM search_postings p WHERE p.term IN (SELECT term FROM q)
),
hits AS MATERIALIZED (
    SELECT e.term, e.article_id, e.tf, d.length
    FROM entries e JOIN article_search_docs d ON d.article_id = e.article_id AND d.generation = e.generation
),
stats AS (SELECT count(*)::DOUBLE AS n, avg(length)::DOUBLE AS avgdl FROM article_search_docs),
df AS (SELECT term, count(*)::DOUBLE AS df FROM hits GROUP BY term),
scored AS (
    SELECT h.article_id,
           sum(ln(1 + (s.n - df.df + 0.5) / (df.df + 0.5)) * h.tf * (1.2 + 1)
               / (h.tf + 1.2 * (1 - 0.75 + 0.75 * h.length / s.avgdl))) AS score,
           count(*) AS matched_terms
    FROM hits h JOIN df ON df.term = h.term CROSS JOIN stats s
    GROUP BY h.article_id
)
SELECT a.id AS article_id, a.title, a.source, a.published_at, a.first_seen_at, a.url, s.score, s.matched_terms
FROM scored s
JOIN articles a ON a.id = s.article_id
ORDER BY s.score DESC, a.id;
