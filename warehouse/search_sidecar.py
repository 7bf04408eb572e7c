"""The fast path of `newsflow search`: an SQLite FTS5 copy of the lake's search index, kept in step by snapshot.

The lake index (warehouse/search.py: search_postings + article_search_docs, the `search_articles()`
SQL macro) stays the source of truth, for SQL and for every host; this file is a cache of it. Each
indexed article is one FTS5 row whose text is its terms from `ingest.terms` (stems, stop words out,
title terms repeated TITLE_WEIGHT times) joined by spaces, under a tokenizer that only splits on
spaces (no second stemming), so FTS5's bm25() sees the same term frequencies, document lengths,
N and document frequencies as the lake's BM25, whose IDF is FTS5's (migration 006): same scores,
same order. Title, text, URL, source and dates are kept beside it, so ranking, --source/--since,
snippets and highlights need no lake scan.

Where: `<catalog>.search.sqlite` beside a SQLite catalog; for a PostgreSQL catalog a per-host cache
file under $XDG_CACHE_HOME (~/.cache)/newsflow/, named by a hash of the catalog. WAL mode and a busy
timeout let searches read while a sync writes.

Freshness: the file records the lake snapshot it reflects (id and commit time). A search first
compares it with the lake's latest snapshot (for a SQLite catalog by reading the catalog file
directly, no DuckDB needed); when behind, it applies only what changed since, read with DuckLake's
`table_changes()` over articles and article_search_docs (maintenance-only snapshots skipped; a
file rewrite re-lists unchanged rows, which the generation check then skips). A missing file, an
expired snapshot, another lake, or a change of terms version or file format rebuilds it from the
lake, in one transaction. Syncs take SQLite's write lock (BEGIN IMMEDIATE) and re-check the
snapshot under it, so two searches syncing at once never duplicate rows. The writer syncs at the
end of each run (flows/run.py), so searches after a run start fresh.

Measured (benchmarks/search_bench.py, 100k synthetic articles of real news sentences, 2 cores shared
with other work, load average ~4): the query path of `newsflow search` warm (freshness check, BM25,
snippets) p50 52 ms / p95 98 ms (with --source/--since 35 / 62 ms), against the in-lake search()
p50 1.6 s / p95 2.0 s and the SQL macro p50 0.73 s; a sync after one 100-article batch 149 ms
(median of 5); the full build 61 s (715 MB with its WAL); the same top-20 ids in the same order as
search_articles() for all 14 queries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.terms import TERMS_VERSION, TITLE_WEIGHT, query_terms, term_counts

if TYPE_CHECKING:
    import duckdb

    from ingest.settings import Settings
    from warehouse.db import LakeTarget

log = logging.getLogger(__name__)

# Bump when the tables below or the term encoding change: an older file is rebuilt.
FORMAT = "1"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Terms of [a-z0-9] are tokens as they are; any other term (non-ASCII letters) is written as "_" + its
# UTF-8 hex, so FTS5's tokenizer can neither split nor fold it ("_" never occurs in a term: it splits).
_PLAIN = re.compile(r"[a-z0-9]+")
# DuckLake snapshot change kinds that move or compact data without changing any row.
MAINTENANCE_KINDS = frozenset({"flushed_inlined", "merge_adjacent", "rewrite_delete", "compacted_table"})
_ROWS_PER_FETCH = 2000
_IDS_PER_QUERY = 500

_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # rowid = the article's FTS5 rowid; dated_us = published_at, else first seen (µs since 1970, UTC).
    "CREATE TABLE docs (rowid INTEGER PRIMARY KEY, article_id TEXT NOT NULL UNIQUE, generation INTEGER NOT NULL, "
    "source TEXT NOT NULL, dated_us INTEGER, published_at TEXT, first_seen_at TEXT, url TEXT, title TEXT, text TEXT NOT NULL)",
    "CREATE INDEX docs_source ON docs (source)",
    "CREATE VIRTUAL TABLE fts USING fts5(terms, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\")",
]

# The indexed articles as the lake ranks them (what search_articles() joins): the lake index's row for
# each article (source, date, generation) with the article's current title, text and display fields.
_LAKE_DOCS = (
    "SELECT d.article_id, d.generation, d.source, d.dated_at, a.published_at, a.first_seen_at, a.url, a.title, a.text "
    "FROM article_search_docs d JOIN articles a ON a.id = d.article_id"
)


def path_for(settings: Settings) -> Path:
    """Where the sidecar file of this lake lives."""
    from warehouse import db

    return _path(db.target(settings))


def _path(t: LakeTarget) -> Path:
    if t.kind == "sqlite":
        catalog = Path(t.location)
        return catalog.with_name(f"{catalog.stem}.search.sqlite")
    # A PostgreSQL catalog is shared by hosts; the sidecar is each host's own cache of it.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsflow"
    key = hashlib.sha256(f"{t.kind}:{t.location}\n{t.data_path}".encode()).hexdigest()[:16]
    return cache / f"search-{key}.sqlite"


def token(term: str) -> str:
    """The FTS5 token of one search term."""
    return term if _PLAIN.fullmatch(term) else "_" + term.encode().hex()


def doc_tokens(title: str | None, text: str) -> str:
    """An article as FTS5 sees it: each term repeated as often as the lake index counts it (tf)."""
    counts, _ = term_counts(title, text)
    return " ".join(" ".join([token(t)] * n) for t, n in counts.items())


def _us(value: datetime | None) -> int | None:
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def _from_iso(value: str | None) -> datetime | None:
    # Shown in the local time zone, as DuckDB shows TIMESTAMPTZ values to the lake search.
    return None if value is None else datetime.fromisoformat(value).astimezone()


def _since_us(since: date | datetime | str | None) -> int | None:
    """--since as µs UTC, read like the lake search's CAST(since AS TIMESTAMPTZ) (naive = local time)."""
    if since is None:
        return None
    if isinstance(since, str):
        since = datetime.fromisoformat(since)
    if not isinstance(since, datetime):
        since = datetime(since.year, since.month, since.day)
    if since.tzinfo is None:
        since = since.astimezone()
    return _us(since)


# ---------------------------------------------------------------- the file


def connect(path: Path, *, timeout_s: float = 60.0) -> sqlite3.Connection:
    """Open (creating if needed) the sidecar: WAL, a busy timeout, transactions left to the caller."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        # Persistent: readers keep their snapshot while a sync writes, and a sync never waits for them.
        con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")  # a cache: losing the last sync on power loss is fine
    return con


def _meta(side: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(side.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:  # a new (empty) file
        return {}


def _usable(meta: dict[str, str], key: str) -> bool:
    """Whether the file holds this lake's index in the current format (else it is rebuilt)."""
    return (
        meta.get("format") == FORMAT and meta.get("terms_version") == TERMS_VERSION
        and meta.get("title_weight") == str(TITLE_WEIGHT) and meta.get("lake") == key and "snapshot" in meta
    )


def lake_key(t: LakeTarget) -> str:
    # A SQLite catalog deleted and created again is another lake, with snapshot ids starting over.
    ino = os.stat(t.location).st_ino if t.kind == "sqlite" and os.path.exists(t.location) else 0
    return f"{t.kind}:{t.location}#{ino}"


@contextmanager
def write_transaction(side: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken before reading (BEGIN IMMEDIATE): syncs are serialised."""
    side.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        side.execute("ROLLBACK")
        raise
    side.execute("COMMIT")


# ---------------------------------------------------------------- the lake's side


@dataclass(frozen=True)
class Head:
    """A lake snapshot: id and commit time (µs), which together tell a lake's history apart."""

    snapshot: int
    time_us: int


def lake_head(con: duckdb.DuckDBPyConnection) -> Head:
    """The snapshot this (read-only) session reads."""
    from warehouse.db import LAKE

    sid = con.execute("SELECT id FROM ducklake_current_snapshot(?)", [LAKE]).fetchone()[0]
    return Head(int(sid), snapshot_time(con, int(sid)) or 0)


def snapshot_time(con: duckdb.DuckDBPyConnection, snapshot: int) -> int | None:
    from warehouse.db import LAKE

    row = con.execute("SELECT snapshot_time FROM ducklake_snapshots(?) WHERE snapshot_id = ?", [LAKE, snapshot]).fetchone()
    return _us(row[0]) if row else None


def catalog_head(t: LakeTarget) -> Head | None:
    """The latest snapshot read straight from a SQLite catalog (no DuckDB); None when not possible."""
    if t.kind != "sqlite":
        return None
    try:
        cat = sqlite3.connect(f"file:{t.location}?mode=ro", uri=True, timeout=5)
        try:
            row = cat.execute("SELECT snapshot_id, snapshot_time FROM ducklake_snapshot ORDER BY snapshot_id DESC LIMIT 1").fetchone()
        finally:
            cat.close()
        return Head(int(row[0]), _us(datetime.fromisoformat(row[1]))) if row else None
    except (sqlite3.Error, ValueError, TypeError):  # layout or format not as expected: ask DuckDB instead
        return None


def _is_fresh(meta: dict[str, str], head: Head) -> bool:
    return int(meta["snapshot"]) == head.snapshot and int(meta["snapshot_time_us"]) == head.time_us


# ---------------------------------------------------------------- sync


@dataclass
class SyncResult:
    """What a sync did: 'fresh' (nothing to do), 'applied' (changes) or 'rebuilt'; rows written; lake snapshot."""

    action: str
    articles: int
    snapshot: int
    seconds: float


def _insert(side: sqlite3.Connection, rows: Iterable[tuple]) -> int:
    n = 0
    for article_id, generation, source, dated_at, published_at, first_seen_at, url, title, text in rows:
        cur = side.execute(
            "INSERT INTO docs (article_id, generation, source, dated_us, published_at, first_seen_at, url, title, text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (article_id, generation, source, _us(dated_at), _iso(published_at), _iso(first_seen_at), url, title, text),
        )
        side.execute("INSERT INTO fts (rowid, terms) VALUES (?, ?)", (cur.lastrowid, doc_tokens(title, text)))
        n += 1
    return n


def _fetch(cur: duckdb.DuckDBPyConnection) -> Iterator[tuple]:
    while rows := cur.fetchmany(_ROWS_PER_FETCH):
        yield from rows


def _rebuild(side: sqlite3.Connection, lake: duckdb.DuckDBPyConnection) -> int:
    """Replace the whole file's content with the lake's index (inside the caller's write transaction)."""
    for (name,) in side.execute("SELECT name FROM sqlite_master WHERE type IN ('table') AND name IN ('meta', 'docs', 'fts')").fetchall():
        side.execute(f"DROP TABLE {name}")
    for statement in _SCHEMA:
        side.execute(statement)
    return _insert(side, _fetch(lake.execute(_LAKE_DOCS)))


def _last_changes(lake: duckdb.DuckDBPyConnection, table: str, key: str, columns: str, since: int, head: int, skip: list[int]) -> dict[str, tuple | None]:
    """Per changed key, its row as of `head` from DuckLake's change feed (None: deleted), maintenance snapshots skipped.

    Within one snapshot a row deleted and inserted again (a re-load) counts as the insert.
    """
    rows = lake.execute(
        f"SELECT {key}, change_type, {columns} FROM table_changes('{table}', ?, ?) "
        "WHERE change_type <> 'update_preimage' AND NOT list_contains(?::BIGINT[], snapshot_id) "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY snapshot_id DESC, change_type = 'delete') = 1",
        [since + 1, head, skip],
    ).fetchall()
    return {r[0]: (None if r[1] == "delete" else r[2:]) for r in rows}


# A sidecar row as compared and written by _apply: the index fields, then the display fields.
_ROW = "generation, source, dated_us, published_at, first_seen_at, url, title, text"


def _apply(side: sqlite3.Connection, lake: duckdb.DuckDBPyConnection, since: int, head: int) -> int:
    """Bring the articles changed since `since` in step (inside the caller's write transaction); returns articles changed.

    The new rows come from the change feed itself (it reads only the changed rows; a lookup by id
    would scan every file, ids being hashes), completed from the sidecar's own row for the table that
    did not change; only what neither holds is read from the lake.
    """
    from warehouse.db import LAKE

    snaps = lake.execute("SELECT snapshot_id, changes FROM ducklake_snapshots(?) WHERE snapshot_id > ? AND snapshot_id <= ?", [LAKE, since, head]).fetchall()
    # Flushes, merges and rewrites move rows between files; a rewrite re-lists unchanged rows as inserts.
    skip = [sid for sid, changes in snaps if changes and set(changes) <= MAINTENANCE_KINDS]
    docs = _last_changes(lake, "article_search_docs", "article_id", "generation, source, dated_at", since, head, skip)
    arts = _last_changes(lake, "articles", "id", "published_at, first_seen_at, url, title, text", since, head, skip)
    ids = sorted(set(docs) | set(arts))
    if not ids:
        return 0
    have = {
        r[0]: r[1:]
        for r in side.execute(f"SELECT article_id, rowid, {_ROW} FROM docs WHERE article_id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)).fetchall()
    }
    new: dict[str, tuple | None] = {}
    missing = []
    for article_id in ids:
        old = have.get(article_id)
        d = docs[article_id] if article_id in docs else (old[1:4] if old else ...)
        a = arts[article_id] if article_id in arts else (old[4:] if old else ...)
        if d is None or a is None:
            new[article_id] = None  # no index row, or no article: not searchable (as in search_articles())
        elif d is ... or a is ...:
            missing.append(article_id)  # the sidecar never had it and only one side changed: ask the lake
        else:
            if article_id in docs:
                d = (d[0], d[1], _us(d[2]))
            if article_id in arts:
                a = (_iso(a[0]), _iso(a[1]), a[2], a[3], a[4])
            new[article_id] = (*d, *a)
    for i in range(0, len(missing), _IDS_PER_QUERY):
        chunk = missing[i : i + _IDS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        found = {r[0]: r for r in lake.execute(f"{_LAKE_DOCS} WHERE d.article_id IN ({marks})", chunk).fetchall()}
        for article_id in chunk:
            r = found.get(article_id)
            new[article_id] = None if r is None else (r[1], r[2], _us(r[3]), _iso(r[4]), _iso(r[5]), r[6], r[7], r[8])
    changed = 0
    for article_id, row in new.items():
        old = have.get(article_id)
        if old is not None and row is not None and old[1] == row[0]:
            if old[1:] != row:  # same index row (generation), other fields: no new terms
                side.execute(
                    "UPDATE docs SET source = ?, dated_us = ?, published_at = ?, first_seen_at = ?, url = ?, title = ?, text = ? WHERE rowid = ?",
                    (*row[1:], old[0]),
                )
                changed += 1
            continue
        if old is not None:  # removed, or re-indexed (a new generation): its terms changed
            side.execute("DELETE FROM fts WHERE rowid = ?", (old[0],))
            side.execute("DELETE FROM docs WHERE rowid = ?", (old[0],))
        if row is not None:
            cur = side.execute(f"INSERT INTO docs (article_id, {_ROW}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (article_id, *row))
            side.execute("INSERT INTO fts (rowid, terms) VALUES (?, ?)", (cur.lastrowid, doc_tokens(row[6], row[7])))
        changed += old is not None or row is not None
    return changed


def sync(
    settings: Settings,
    *,
    lake: duckdb.DuckDBPyConnection | None = None,
    notice: Callable[[str], None] | None = None,
) -> SyncResult:
    """Bring the sidecar up to the lake's latest snapshot (rebuilding it when it cannot be updated).

    `lake` is a read-only session to use (one snapshot); else one is opened. `notice` is told, in one
    line, when the whole file is being built.
    """
    from warehouse import db

    t0 = time.perf_counter()
    if lake is None:
        with db.session(settings, read_only=True) as con:
            return sync(settings, lake=con, notice=notice)
    t = db.target(settings)
    path = _path(t)
    key = lake_key(t)
    head = lake_head(lake)
    side = connect(path, timeout_s=max(30.0, settings.db_lock_timeout_s))
    try:
        meta = _meta(side)
        if _usable(meta, key) and int(meta["snapshot"]) >= head.snapshot and (
            int(meta["snapshot"]) > head.snapshot or _is_fresh(meta, head)
        ):
            return SyncResult("fresh", 0, int(meta["snapshot"]), time.perf_counter() - t0)
        with write_transaction(side):
            meta = _meta(side)  # again, under the write lock: another search may have just synced
            if _usable(meta, key) and _is_fresh(meta, head):
                return SyncResult("fresh", 0, head.snapshot, time.perf_counter() - t0)
            action, n = "applied", 0
            since = int(meta["snapshot"]) if _usable(meta, key) else None
            # Incremental only from a snapshot this lake still has, at the time recorded (same history).
            if since is None or since > head.snapshot or snapshot_time(lake, since) != int(meta["snapshot_time_us"]):
                action = "rebuilt"
            else:
                try:
                    n = _apply(side, lake, since, head.snapshot)
                except Exception as exc:  # noqa: BLE001 - e.g. "No snapshot found": rebuild, which is always right
                    log.info("search sidecar: incremental sync failed (%s); rebuilding", str(exc).splitlines()[0][:200])
                    action = "rebuilt"
            if action == "rebuilt":
                if notice:
                    notice(f"building the search index {path} from the warehouse (once; later searches update it)")
                n = _rebuild(side, lake)
            side.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("format", FORMAT), ("terms_version", TERMS_VERSION), ("title_weight", str(TITLE_WEIGHT)), ("lake", key),
                    ("snapshot", str(head.snapshot)), ("snapshot_time_us", str(head.time_us)),
                ],
            )
        if action == "rebuilt":
            # The build went through the WAL in one transaction (hundreds of MB at 100k): fold it back now.
            side.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return SyncResult(action, n, head.snapshot, time.perf_counter() - t0)
    finally:
        side.close()


def sync_after_run(settings: Settings, logger: Any = log) -> None:
    """The writer's sync at the end of a run, so the next search is instant; never raises (it is a cache)."""
    try:
        r = sync(settings, notice=logger.info)
        logger.info("search index: %s, %d article(s), snapshot %d, %.2f s", r.action, r.articles, r.snapshot, r.seconds)
    except Exception as exc:  # noqa: BLE001 - the run's data is committed; searches sync or fall back themselves
        logger.warning("search index not updated after the run: %s", (str(exc).splitlines() or [type(exc).__name__])[0][:200])


# ---------------------------------------------------------------- search


def query(
    side: sqlite3.Connection,
    phrase: str,
    *,
    source: str | None = None,
    since: date | datetime | str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Rank the sidecar's articles for `phrase` (BM25, as warehouse.search.search) with snippets and highlights."""
    from warehouse.search import snippet

    terms = query_terms(phrase)
    if not terms:
        return []
    match = " OR ".join(f'"{token(t)}"' for t in terms)
    # Filters apply after FTS5 has its statistics, so they narrow the results without changing scores.
    ranked = side.execute(
        "SELECT d.rowid, -bm25(fts) AS score FROM fts JOIN docs d ON d.rowid = fts.rowid "
        "WHERE fts MATCH :match AND (:source IS NULL OR d.source = :source) AND (:since IS NULL OR d.dated_us >= :since) "
        "ORDER BY bm25(fts), d.article_id LIMIT :limit",
        {"match": match, "source": source, "since": _since_us(since), "limit": int(limit)},
    ).fetchall()
    if not ranked:
        return []
    rowids = json.dumps([r[0] for r in ranked])
    docs = {
        r[0]: r
        for r in side.execute(
            "SELECT d.rowid, d.article_id, d.title, d.source, d.published_at, d.first_seen_at, d.url, d.text, f.terms "
            "FROM docs d JOIN fts f ON f.rowid = d.rowid WHERE d.rowid IN (SELECT value FROM json_each(?))",
            (rowids,),
        ).fetchall()
    }
    wanted, tokens = set(terms), {token(t) for t in terms}
    out = []
    for rowid, score in ranked:
        _, article_id, title, src, published_at, first_seen_at, url, text, doc_terms = docs[rowid]
        snip, marks = snippet(text, wanted)
        out.append(
            {
                "id": article_id, "title": title, "source": src, "published_at": _from_iso(published_at),
                "first_seen_at": _from_iso(first_seen_at), "url": url, "score": float(score),
                "matched_terms": len(tokens & set(doc_terms.split())), "snippet": snip, "highlights": marks,
            }
        )
    return out


def search(
    settings: Settings,
    phrase: str,
    *,
    source: str | None = None,
    since: date | datetime | str | None = None,
    limit: int = 20,
    notice: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """`newsflow search`: sync the sidecar if the lake moved on, then rank there; the lake index if the file cannot be used."""
    from warehouse import db

    t = db.target(settings)
    path = _path(t)
    if not db.exists(t):  # no warehouse: the lake says so in its own words, and no file is left behind
        with db.session(settings, read_only=True):
            pass
    try:
        side = connect(path, timeout_s=max(30.0, settings.db_lock_timeout_s))
        try:
            meta = _meta(side)
            head = catalog_head(t)
            # Fresh (the common case between runs): no DuckDB at all. Else sync, then query.
            if not (head and _usable(meta, lake_key(t)) and _is_fresh(meta, head)):
                sync(settings, notice=notice)
            return query(side, phrase, source=source, since=since, limit=limit)
        finally:
            side.close()
    except (sqlite3.Error, OSError) as exc:
        # The sidecar is a cache: an unwritable directory or a damaged file must not stop a search.
        if notice:
            notice(f"search index {path} unusable ({str(exc).splitlines()[0][:120]}); searching the warehouse directly (slower)")
        from warehouse import search as lake_search

        with db.session(settings, read_only=True) as con:
            return lake_search.search(con, phrase, source=source, since=since, limit=limit)


def stderr_notice(message: str) -> None:
    """Print a one-line notice on stderr (the CLI's `notice`)."""
    print(message, file=sys.stderr)
