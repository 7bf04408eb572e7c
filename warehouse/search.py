"""Full-text search: an inverted index in the lake (search_postings + article_search_docs) ranked with BM25.

DuckDB's FTS extension cannot index a DuckLake table, so the index is two ordinary lake tables written
by the batch load in the same transaction as the articles (`index_articles`): postings (a term and the
articles containing it, with the term's frequency) and one row per article with its length. A query
reads only the postings rows of its terms (merged rows are sorted by term in small row groups, so the
term filter skips the rest), needs no rebuild, sees exactly the committed articles (readers are never
blocked by a writing ingest), and works from any DuckDB session on any catalog. The same ranking is
the SQL table macro `search_articles(phrase)` (warehouse/migrations/005_search.sql, 006_search_idf.sql).

Scores are BM25 (k1 1.2, b 0.75) with SQLite FTS5's IDF (migration 006), so `newsflow search`, which
answers from an FTS5 copy of this index (warehouse/search_sidecar.py, synced from the lake by
snapshot), ranks exactly as the macro and `search()` do. Measured (benchmarks/search_bench.py, 100k
synthetic articles, 2 shared cores): one row per (article, term) means scanning ~20M rows per query,
so the index is inverted; even so a query here costs p50 1.6 s / p95 2.0 s (1.6 s CPU; the macro alone p50 0.73 s) at 100k (postings scan + the text
scan for snippets), against p50 52 ms / p95 98 ms for the sidecar's whole query path for the sidecar, which is why `newsflow search` uses it.

Terms come from `ingest.terms` (lower-case, stop words out, Porter stems), the one tokeniser for the
index, `search()` and (through DuckDB's identical `stem(w, 'porter')`) the SQL macro.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Collection, Sequence
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import duckdb

from ingest.models import Article
from ingest.terms import TERMS_VERSION, query_terms, stem, term_counts
from warehouse.arrow import registered

if TYPE_CHECKING:
    import pyarrow as pa

# BM25 parameters (the usual defaults; Lucene and SQLite FTS5 use the same).
K1 = 1.2
B = 0.75
# IDF is SQLite FTS5's: ln((N - df + 0.5) / (df + 0.5)), floored at this value, so the in-lake ranking
# (here and the search_articles macro, migration 006) and the FTS5 sidecar agree score for score.
IDF_FLOOR = 1e-6
SNIPPET_CHARS = 220

_DOCS_COLUMNS = ("article_id", "source", "dated_at", "length", "generation", "content_hash", "terms_version", "indexed_at")


@functools.cache
def _schemas() -> tuple[pa.Schema, pa.Schema]:
    """(postings, docs) Arrow schemas; pyarrow is imported on first write, so searching never loads it."""
    import pyarrow as pa

    entry = pa.struct([("article_id", pa.string()), ("tf", pa.int32()), ("generation", pa.int64())])
    postings = pa.schema([("term", pa.string()), ("postings", pa.list_(entry))])
    docs = pa.schema(
        [
            ("article_id", pa.string()), ("source", pa.string()), ("dated_at", pa.timestamp("us", tz="UTC")),
            ("length", pa.int32()), ("generation", pa.int64()), ("content_hash", pa.string()), ("terms_version", pa.string()),
            ("indexed_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    return postings, docs
# Unmerged postings rows (one per term per batch, ~6k per 100-article batch) are merged into one row
# per term once there are this many: ~30 batches. Query cost grows with the rows scanned; see
# benchmarks/search_bench.py.
TAIL_MERGE_ROWS = 200_000
# Rows per Parquet row group of merged postings: small groups let a term filter skip almost everything.
ROW_GROUP_ROWS = 1024


def _doc_hash(article: Article) -> str:
    """What the postings of an article depend on: its title and text."""
    return hashlib.sha256(f"{article.title or ''}\n{article.text}".encode()).hexdigest()[:32]


def index_articles(
    con: duckdb.DuckDBPyConnection, articles: Sequence[Article], *, first_seen: dict[str, datetime] | None = None,
    new_ids: Collection[str] = (),
) -> int:
    """Add or refresh the search index of `articles` inside the caller's transaction; returns articles (re)indexed.

    Articles indexed before with the same title, text and TERMS_VERSION are skipped, so a whole batch
    (unchanged articles included) can be passed. A changed article gets a new generation: its old
    postings stop counting at once and are dropped by the next merge. `first_seen` (article id ->
    first-seen time) dates articles without a publication date; else their fetch time is used.
    `new_ids`: articles the caller's transaction inserted, never indexed before (no lookup for them).
    """
    latest: dict[str, Article] = {a.id: a for a in articles}  # last one wins inside a batch
    if not latest:
        return 0
    import pyarrow as pa

    postings_schema, docs_schema = _schemas()
    fresh = set(new_ids)
    lookup = [i for i in latest if i not in fresh]
    known: dict[str, str] = {}
    if lookup:
        # Scans the index's documents table, which grows with the warehouse: a fresh ingest's batch skips it.
        with registered(con, "_search_ids", pa.table({"id": lookup})):
            known = dict(
                con.execute(
                    "SELECT d.article_id, d.content_hash || '#' || d.terms_version FROM article_search_docs d "
                    "JOIN _search_ids i ON i.id = d.article_id"
                ).fetchall()
            )
    todo = [a for a in latest.values() if known.get(a.id) != f"{_doc_hash(a)}#{TERMS_VERSION}"]
    if not todo:
        return 0
    now = datetime.now(timezone.utc)
    generation = time.time_ns() // 1000  # one per call: microseconds, increasing across batches
    postings: dict[str, list[dict[str, Any]]] = {}
    docs: dict[str, list[Any]] = {name: [] for name in _DOCS_COLUMNS}
    for a in todo:
        counts, length = term_counts(a.title, a.text)
        for term, tf in counts.items():
            postings.setdefault(term, []).append({"article_id": a.id, "tf": tf, "generation": generation})
        dated = a.published_at or (first_seen or {}).get(a.id) or a.fetched_at
        row = (a.id, a.source, dated, length, generation, _doc_hash(a), TERMS_VERSION, now)
        for name, value in zip(_DOCS_COLUMNS, row):
            docs[name].append(value)
    terms = sorted(postings)
    table = pa.table([terms, [postings[t] for t in terms]], schema=postings_schema)
    stale = [a.id for a in todo if a.id in known]
    if stale:
        with registered(con, "_search_stale", pa.table({"id": stale})):
            con.execute("DELETE FROM article_search_docs WHERE article_id IN (SELECT id FROM _search_stale)")
    with registered(con, "_search_postings", table), registered(con, "_search_docs", pa.table(docs, schema=docs_schema)):
        con.execute("INSERT INTO search_postings SELECT term, postings, false FROM _search_postings")
        con.execute(f"INSERT INTO article_search_docs SELECT {', '.join(_DOCS_COLUMNS)} FROM _search_docs")
    # `merged = false`, not `NOT merged`: DuckLake skips the files whose statistics say every row is merged
    # for the comparison, and reads them all for the negation (8 of 8 files vs 4 of 8 in a test lake).
    if con.execute("SELECT count(*) FROM search_postings WHERE merged = false").fetchone()[0] > TAIL_MERGE_ROWS:
        merge_postings(con, everything=False)
    return len(todo)


def merge_postings(con: duckdb.DuckDBPyConnection, *, everything: bool = True) -> None:
    """Rewrite postings as one row per term, dropping entries of re-indexed or removed articles.

    everything=False merges only the batches' unmerged rows (cheap, called by index_articles);
    True rewrites the whole index (maintenance: `compact_search_index`). Inside the caller's transaction.
    """
    where = "" if everything else "WHERE p.merged = false"  # prunable by file statistics, as in index_articles
    lake = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"CALL {lake}.set_option('parquet_row_group_size', {ROW_GROUP_ROWS}, table_name => 'search_postings')")
    # The highest row id before the merge: everything up to it is replaced (DuckLake row ids only grow).
    cutoff = con.execute("SELECT max(rowid) FROM search_postings").fetchone()[0]
    if cutoff is None:
        return
    con.execute(
        f"""
        INSERT INTO search_postings
        SELECT e.term, list({{'article_id': e.article_id, 'tf': e.tf, 'generation': e.generation}}), true
        FROM (SELECT p.term, unnest(p.postings, recursive := true) FROM search_postings p {where}) e
        SEMI JOIN article_search_docs d ON d.article_id = e.article_id AND d.generation = e.generation
        GROUP BY e.term
        ORDER BY e.term
        """
    )
    con.execute(f"DELETE FROM search_postings WHERE rowid <= {int(cutoff)}" + ("" if everything else " AND merged = false"))


def compact_search_index(con: duckdb.DuckDBPyConnection) -> None:
    """Maintenance: one postings row per term, stale entries dropped (run in its own transaction)."""
    merge_postings(con, everything=True)


# Rows per distinct term above which maintenance compacts: each tail merge adds up to one row per term.
COMPACT_RATIO = 4.0


def compact_if_fragmented(con: duckdb.DuckDBPyConnection) -> bool:
    """Compact when terms have more than COMPACT_RATIO rows on average (call from maintenance, own transaction)."""
    rows, terms = con.execute("SELECT count(*), count(DISTINCT term) FROM search_postings").fetchone()
    if rows <= COMPACT_RATIO * max(terms, 1):
        return False
    compact_search_index(con)
    return True


def index_missing(con: duckdb.DuckDBPyConnection, chunk: int = 500) -> int:
    """Index every article that has no search index row yet (warehouses made before the index existed);
    returns how many. Inside the caller's transaction; a no-op once every article is indexed."""
    done = 0
    while True:
        rows = con.execute(
            "SELECT a.id, a.url, a.page_url, a.source, a.title, a.text, a.content_hash, a.published_at, a.first_seen_at "
            "FROM articles a ANTI JOIN article_search_docs d ON d.article_id = a.id ORDER BY a.id LIMIT ?",
            [chunk],
        ).fetchall()
        if not rows:
            return done
        arts = [
            Article(id=r[0], url=r[1], page_url=r[2], source=r[3], title=r[4], text=r[5], content_hash=r[6], published_at=r[7], fetched_at=r[8])
            for r in rows
        ]
        done += index_articles(con, arts)


def remove_articles(con: duckdb.DuckDBPyConnection, article_ids: Sequence[str]) -> None:
    """Drop articles from the search index (inside the caller's transaction); their postings stop counting."""
    if not article_ids:
        return
    import pyarrow as pa

    with registered(con, "_search_gone", pa.table({"id": list(article_ids)})):
        con.execute("DELETE FROM article_search_docs WHERE article_id IN (SELECT id FROM _search_gone)")


# BM25 over the query's terms: only the postings rows of those terms are read; df counts the current
# entries; filters apply after df, so they narrow the results without changing the scores.
_RANK_SQL = f"""
WITH entries AS (
    SELECT p.term, unnest(p.postings, recursive := true) FROM search_postings p WHERE p.term IN ({{terms}})
),
hits AS MATERIALIZED (
    SELECT e.term, e.article_id, e.tf, d.length, d.source, d.dated_at
    FROM entries e JOIN article_search_docs d ON d.article_id = e.article_id AND d.generation = e.generation
),
stats AS (SELECT count(*)::DOUBLE AS n, avg(length)::DOUBLE AS avgdl FROM article_search_docs),
df AS (SELECT term, count(*)::DOUBLE AS df FROM hits GROUP BY term)
SELECT h.article_id,
       sum(greatest(ln((s.n - df.df + 0.5) / (df.df + 0.5)), {IDF_FLOOR}) * h.tf * ({K1} + 1)
           / (h.tf + {K1} * (1 - {B} + {B} * h.length / s.avgdl))) AS score,
       count(*) AS matched_terms
FROM hits h JOIN df ON df.term = h.term CROSS JOIN stats s
WHERE ($source IS NULL OR h.source = $source) AND ($since IS NULL OR h.dated_at >= CAST($since AS TIMESTAMPTZ))
GROUP BY h.article_id
ORDER BY score DESC, h.article_id
LIMIT $limit
"""


def search(
    con: duckdb.DuckDBPyConnection,
    phrase: str,
    *,
    source: str | None = None,
    since: date | datetime | str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Articles matching `phrase`, best BM25 score first, each with a snippet around its best match.

    Each dict: id, title, source, published_at, first_seen_at, url, score, matched_terms, snippet and
    highlights ((start, end) offsets of matched words in the snippet).
    """
    terms = query_terms(phrase)
    if not terms:
        return []
    # The terms as constants (not a join), so the scan skips row groups and files by min/max of term.
    params: dict[str, Any] = {f"t{i}": t for i, t in enumerate(terms)}
    params.update(source=source, since=since, limit=int(limit))
    sql = _RANK_SQL.replace("{terms}", ", ".join(f"$t{i}" for i in range(len(terms))))
    ranked = con.execute(sql, params).fetchall()
    if not ranked:
        return []
    cur = con.execute(
        "SELECT a.id, a.title, a.source, a.published_at, a.first_seen_at, a.url, a.text "
        "FROM articles a WHERE a.id IN (SELECT unnest(?::VARCHAR[]))",
        [[r[0] for r in ranked]],
    )
    cols = [d[0] for d in cur.description]
    found = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
    wanted = set(terms)
    out = []
    for article_id, score, matched in ranked:
        f = found.get(article_id)
        if f is None:  # indexed but not (or no longer) an article
            continue
        f["snippet"], f["highlights"] = snippet(f.pop("text"), wanted)
        f.update(score=float(score), matched_terms=int(matched))
        out.append(f)
    return out


_WORD = re.compile(r"\w+")


def snippet(text: str, terms: set[str], width: int = SNIPPET_CHARS) -> tuple[str, list[tuple[int, int]]]:
    """The `width`-character window of `text` holding the most distinct query terms, and their offsets in it."""
    matches = [(m.start(), m.end(), stem(m.group().lower())) for m in _WORD.finditer(text)]
    matches = [(s, e, t) for s, e, t in matches if t in terms]
    if not matches:
        cut = text[:width].rsplit(" ", 1)[0] if len(text) > width else text
        return cut.strip() + ("…" if len(text) > width else ""), []
    best, best_score = 0, (-1, -1)
    for i, (start, _, _) in enumerate(matches):
        window = [t for s, e, t in matches[i:] if e - start <= width]
        score = (len(set(window)), len(window))
        if score > best_score:
            best, best_score = i, score
    start = matches[best][0]
    # Start a little before the first match, on a word boundary.
    lo = max(0, start - width // 4)
    if lo > 0:
        sp = text.find(" ", lo, start)
        lo = sp + 1 if sp != -1 else lo
    hi = min(len(text), lo + width)
    if hi < len(text):
        sp = text.rfind(" ", start, hi)
        hi = sp if sp > start else hi
    prefix = "…" if lo > 0 else ""
    out = prefix + text[lo:hi].replace("\n", " ")
    marks = [(s - lo + len(prefix), e - lo + len(prefix)) for s, e, _ in matches if s >= lo and e <= hi]
    return out + ("…" if hi < len(text) else ""), marks
