"""Dedup's candidate index: an SQLite copy of the lake's LSH band keys and content hashes, kept in step by snapshot.

Why: each batch asks which earlier articles share a band key (48 per article) or a content hash with its
articles. In the lake that is a join against article_bands (48 rows per article ever fingerprinted) and
article_fingerprints, and band keys are hashes, so no sort order or row-group statistic can prune it: a
batch's ~5,000 random keys touch nearly every row group. The cost grows with the warehouse (0.25 s per
100 articles at 100k articles, 1.7 s at 1M; benchmarks/lookups.py). Here each key is a B-tree seek.

The lake stays the source of truth (and the only copy other hosts and SQL see); this file is a cache of it,
like the search sidecar (warehouse/search_sidecar.py), and is synced the same way: it records the lake
snapshot it reflects; a writer brings it up to the latest snapshot before each batch's transaction,
applying only what changed since (DuckLake's `table_changes()` over article_bands and
article_fingerprints, maintenance-only snapshots skipped; per row the last change wins). A missing or
damaged file, another lake, an expired snapshot or a new file format rebuilds it from the lake in one
transaction. Rows a batch writes inside its own (uncommitted) transaction are not here: find_candidates
matches the batch against itself in memory.

A writer puts its own batch in directly after its commit (the write-through: the commit is tagged, and
when it is the one snapshot after the index's, the batch's new fingerprints are inserted), so the next
batch's sync has nothing to read; the change feed covers everything else (other writers, re-fingerprints,
`newsflow dedup`, maintenance). Cost: ~1.3 ms per new article (48 random B-tree inserts) against a lake
join that grows with the warehouse, so the index is built only once the warehouse holds
`dedup.index_min_articles` fingerprinted articles (50,000; measured break-even ~50-60k) and kept after.

Where: `<catalog>.dedup.sqlite` beside a SQLite catalog; for a PostgreSQL catalog a per-host cache file
under $XDG_CACHE_HOME (~/.cache)/newsflow/. `NEWSFLOW_DEDUP__INDEX=false` turns it off (every batch then
joins the lake tables); when the file cannot be opened or written, the run says so once and does the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.search_sidecar import MAINTENANCE_KINDS, Head, catalog_head, connect, lake_head, lake_key, snapshot_time, write_transaction

if TYPE_CHECKING:
    import duckdb

    from ingest.models import Fingerprint
    from ingest.settings import Settings
    from warehouse.db import LakeTarget

log = logging.getLogger(__name__)

# Bump when the tables below change: an older file is rebuilt.
FORMAT = "1"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ROWS_PER_FETCH = 20_000

_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # band_key first: lookups seek by key; article_id last keeps (band, key, article) unique, as in the lake.
    "CREATE TABLE bands (band_key INTEGER NOT NULL, band INTEGER NOT NULL, article_id TEXT NOT NULL, "
    "PRIMARY KEY (band_key, band, article_id)) WITHOUT ROWID",
    "CREATE TABLE hashes (article_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL) WITHOUT ROWID",
    "CREATE INDEX hashes_by_hash ON hashes (content_hash)",
]
_TEMP = [
    "CREATE TEMP TABLE IF NOT EXISTS q_bands (query_id TEXT NOT NULL, band INTEGER NOT NULL, band_key INTEGER NOT NULL)",
    "CREATE TEMP TABLE IF NOT EXISTS q_hashes (query_id TEXT NOT NULL, content_hash TEXT NOT NULL)",
]


def _us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def path_for(settings: Settings) -> Path:
    """Where the dedup index file of this lake lives."""
    from warehouse import db

    return _path(db.target(settings))


def _path(t: LakeTarget) -> Path:
    if t.kind == "sqlite":
        catalog = Path(t.location)
        return catalog.with_name(f"{catalog.stem}.dedup.sqlite")
    # A PostgreSQL catalog is shared by hosts; the index is each host's own cache of it.
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsflow"
    key = hashlib.sha256(f"{t.kind}:{t.location}\n{t.data_path}".encode()).hexdigest()[:16]
    return cache / f"dedup-{key}.sqlite"


def _meta(side: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(side.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:  # a new (empty) file
        return {}


def _usable(meta: dict[str, str], key: str) -> bool:
    return meta.get("format") == FORMAT and meta.get("lake") == key and "snapshot" in meta


@dataclass
class SyncResult:
    """What a sync did: 'fresh' (nothing to do), 'applied' (changes) or 'rebuilt'; rows written; lake snapshot."""

    action: str
    rows: int
    snapshot: int
    seconds: float


def _fetch(cur: duckdb.DuckDBPyConnection) -> Iterator[list[tuple]]:
    while rows := cur.fetchmany(_ROWS_PER_FETCH):
        yield rows


def _rebuild(side: sqlite3.Connection, lake: duckdb.DuckDBPyConnection) -> int:
    """Replace the file's content with the lake's bands and hashes (inside the caller's write transaction)."""
    for (name,) in side.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'bands', 'hashes')").fetchall():
        side.execute(f"DROP TABLE {name}")
    for statement in _SCHEMA:
        side.execute(statement)
    n = 0
    # Sorted by the B-tree's key, the inserts append instead of splitting pages all over the tree.
    for rows in _fetch(lake.execute("SELECT band_key, band, article_id FROM article_bands ORDER BY band_key, band, article_id")):
        side.executemany("INSERT OR IGNORE INTO bands (band_key, band, article_id) VALUES (?, ?, ?)", rows)
        n += len(rows)
    for rows in _fetch(lake.execute("SELECT article_id, content_hash FROM article_fingerprints ORDER BY article_id")):
        side.executemany("INSERT OR REPLACE INTO hashes (article_id, content_hash) VALUES (?, ?)", rows)
        n += len(rows)
    return n


def _apply(side: sqlite3.Connection, lake: duckdb.DuckDBPyConnection, since: int, head: int) -> int:
    """Apply the lake's changes after snapshot `since` up to `head` (inside the caller's write transaction)."""
    from warehouse.db import LAKE

    snaps = lake.execute(
        "SELECT snapshot_id, changes FROM ducklake_snapshots(?) WHERE snapshot_id > ? AND snapshot_id <= ?", [LAKE, since, head]
    ).fetchall()
    # Flushes, merges and rewrites move rows between files without changing any; a rewrite re-lists rows.
    skip = [sid for sid, changes in snaps if changes and set(changes) <= MAINTENANCE_KINDS]
    if all(sid in skip for sid, _ in snaps):
        return 0
    # Per row, its last change; in one snapshot a row deleted and inserted again (a re-fingerprint giving
    # the same key) counts as the insert.
    bands = lake.execute(
        "SELECT band_key, band, article_id, change_type = 'delete' FROM table_changes('article_bands', ?, ?) "
        "WHERE change_type <> 'update_preimage' AND NOT list_contains(?::BIGINT[], snapshot_id) "
        "QUALIFY row_number() OVER (PARTITION BY band_key, band, article_id ORDER BY snapshot_id DESC, change_type = 'delete') = 1",
        [since + 1, head, skip],
    ).fetchall()
    hashes = lake.execute(
        "SELECT article_id, content_hash, change_type = 'delete' FROM table_changes('article_fingerprints', ?, ?) "
        "WHERE change_type <> 'update_preimage' AND NOT list_contains(?::BIGINT[], snapshot_id) "
        "QUALIFY row_number() OVER (PARTITION BY article_id ORDER BY snapshot_id DESC, change_type = 'delete') = 1",
        [since + 1, head, skip],
    ).fetchall()
    side.executemany("DELETE FROM bands WHERE band_key = ? AND band = ? AND article_id = ?", [r[:3] for r in bands if r[3]])
    side.executemany("INSERT OR IGNORE INTO bands (band_key, band, article_id) VALUES (?, ?, ?)", [r[:3] for r in bands if not r[3]])
    side.executemany("DELETE FROM hashes WHERE article_id = ?", [r[:1] for r in hashes if r[2]])
    side.executemany("INSERT OR REPLACE INTO hashes (article_id, content_hash) VALUES (?, ?)", [r[:2] for r in hashes if not r[2]])
    return len(bands) + len(hashes)


class DedupIndex:
    """An open, synced index: the lake snapshot it reflects and candidate look-ups against it."""

    def __init__(self, side: sqlite3.Connection, path: Path, snapshot: int, sync: SyncResult) -> None:
        self.side = side
        self.path = path
        self.snapshot = snapshot
        self.sync = sync
        self.pending: tuple[str, list[Fingerprint]] | None = None

    def hits(self, fps: Sequence[Fingerprint]) -> set[tuple[str, str]]:
        """(query id, article id) for every indexed article sharing a band key or content hash with a fingerprint."""
        if not fps:
            return set()
        side = self.side
        for statement in _TEMP:
            side.execute(statement)
        side.execute("BEGIN")  # one read snapshot for both look-ups; the temp tables are this connection's own
        try:
            side.execute("DELETE FROM q_bands")
            side.execute("DELETE FROM q_hashes")
            side.executemany(
                "INSERT INTO q_bands (query_id, band, band_key) VALUES (?, ?, ?)",
                [(fp.article_id, b, k) for fp in fps for b, k in enumerate(fp.band_keys)],
            )
            side.executemany("INSERT INTO q_hashes (query_id, content_hash) VALUES (?, ?)", [(fp.article_id, fp.content_hash) for fp in fps])
            # CROSS JOIN keeps SQLite's planner from scanning the index: one seek per query key.
            rows = side.execute(
                "SELECT q.query_id, b.article_id FROM q_bands q CROSS JOIN bands b ON b.band_key = q.band_key AND b.band = q.band "
                "UNION SELECT q.query_id, h.article_id FROM q_hashes q CROSS JOIN hashes h ON h.content_hash = q.content_hash"
            ).fetchall()
        finally:
            side.execute("ROLLBACK")
        return {(q, c) for q, c in rows}

    def by_hash(self, hashes: Sequence[str]) -> dict[str, list[str]]:
        """Content hash -> ids of the indexed articles with that text (one seek per hash in hashes_by_hash)."""
        if not hashes:
            return {}
        rows = self.side.execute(
            "SELECT content_hash, article_id FROM hashes WHERE content_hash IN (SELECT value FROM json_each(?)) ORDER BY article_id",
            (json.dumps(sorted(set(hashes))),),
        ).fetchall()
        out: dict[str, list[str]] = {}
        for h, aid in rows:
            out.setdefault(h, []).append(aid)
        return out

    def tag(self, lake: duckdb.DuckDBPyConnection, fps: Sequence[Fingerprint]) -> None:
        """Mark the open lake transaction as this batch's, so its commit can be written through (see written_through)."""
        from warehouse.db import LAKE

        token = f"newsflow-dedup:{uuid.uuid4().hex}"
        lake.execute("CALL ducklake_set_commit_message(?, 'newsflow', 'batch', extra_info => ?)", [LAKE, token])
        self.pending = (token, list(fps))

    def written_through(self, lake: duckdb.DuckDBPyConnection) -> bool:
        """After the tagged transaction committed: put its fingerprints here directly instead of reading them back.

        Only when that commit is the one snapshot after the index's (nobody else committed in between) and
        every batch article is new to the index or unchanged (a re-fingerprint's old keys are not known
        here): then the lake's bands and hashes now equal the index's plus the batch's. Otherwise the next
        sync reads the change feed, which is always right.
        """
        from warehouse.db import LAKE

        if self.pending is None:
            return False
        token, fps = self.pending
        self.pending = None
        after = lake.execute(
            "SELECT snapshot_id, snapshot_time, commit_extra_info FROM ducklake_snapshots(?) WHERE snapshot_id > ?", [LAKE, self.snapshot]
        ).fetchall()
        if len(after) != 1 or after[0][2] != token:
            return False
        head = Head(int(after[0][0]), _us(after[0][1]))
        side = self.side
        batch = {fp.article_id: fp for fp in fps}
        stored = dict(
            side.execute(
                "SELECT article_id, content_hash FROM hashes WHERE article_id IN (SELECT value FROM json_each(?))", (json.dumps(sorted(batch)),)
            ).fetchall()
        )
        if any(stored[aid] != batch[aid].content_hash for aid in stored):
            return False
        if stored:  # same text: unchanged unless the fingerprint model changed (then its keys are not all here)
            for statement in _TEMP:
                side.execute(statement)
            side.execute("DELETE FROM q_bands")
            side.executemany(
                "INSERT INTO q_bands (query_id, band, band_key) VALUES (?, ?, ?)",
                list({(aid, b, k) for aid in stored for b, k in enumerate(batch[aid].band_keys)}),
            )
            present = dict(
                side.execute(
                    "SELECT q.query_id, count(*) FROM q_bands q CROSS JOIN bands b "
                    "ON b.band_key = q.band_key AND b.band = q.band AND b.article_id = q.query_id GROUP BY q.query_id"
                ).fetchall()
            )
            if any(present.get(aid, 0) != len(set(enumerate(batch[aid].band_keys))) for aid in stored):
                return False
        new = [fp for aid, fp in batch.items() if aid not in stored]
        with write_transaction(side):
            # Under the write lock: if another writer on this host synced meanwhile, leave it to the next sync.
            if _meta(side).get("snapshot") != str(self.snapshot):
                return False
            side.executemany(
                "INSERT OR IGNORE INTO bands (band_key, band, article_id) VALUES (?, ?, ?)",
                sorted({(k, b, fp.article_id) for fp in new for b, k in enumerate(fp.band_keys)}),
            )
            side.executemany("INSERT OR REPLACE INTO hashes (article_id, content_hash) VALUES (?, ?)", [(fp.article_id, fp.content_hash) for fp in new])
            side.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [("snapshot", str(head.snapshot)), ("snapshot_time_us", str(head.time_us))]
            )
        self.snapshot = head.snapshot
        return True

    def invalidate(self) -> None:
        """Mark the file for a rebuild at the next sync (after a failed look-up); best effort."""
        try:
            self.side.execute("DELETE FROM meta")
        except sqlite3.Error:
            pass  # unusable even for that: the next open fails too and the run says so once

    def close(self) -> None:
        """Close the file."""
        self.side.close()


def sync(side: sqlite3.Connection, t: LakeTarget, lake: duckdb.DuckDBPyConnection) -> SyncResult:
    """Bring an open index file up to the snapshot `lake` reads now (rebuilding it when it cannot be updated)."""
    t0 = time.perf_counter()
    key = lake_key(t)
    # A SQLite catalog's latest snapshot read straight from the file (~1 ms; two DuckDB catalog queries cost ~35).
    head = catalog_head(t) or lake_head(lake)
    meta = _meta(side)
    if _usable(meta, key) and int(meta["snapshot"]) == head.snapshot and int(meta["snapshot_time_us"]) == head.time_us:
        return SyncResult("fresh", 0, head.snapshot, time.perf_counter() - t0)
    with write_transaction(side):
        meta = _meta(side)  # again, under the write lock: another writer may have just synced
        fresh = _usable(meta, key) and int(meta["snapshot_time_us"]) == head.time_us and int(meta["snapshot"]) == head.snapshot
        if fresh:
            return SyncResult("fresh", 0, head.snapshot, time.perf_counter() - t0)
        since = int(meta["snapshot"]) if _usable(meta, key) else None
        action, n = "applied", 0
        # Incremental only from a snapshot this lake still has, at the time recorded (same history). An index
        # ahead of this session's snapshot (another host synced later) is rebuilt too: it cannot go back.
        if since is None or since > head.snapshot or snapshot_time(lake, since) != int(meta["snapshot_time_us"]):
            action = "rebuilt"
        else:
            try:
                n = _apply(side, lake, since, head.snapshot)
            except Exception as exc:  # noqa: BLE001 - e.g. "No snapshot found": rebuild, which is always right
                log.info("dedup index: incremental sync failed (%s); rebuilding", str(exc).splitlines()[0][:200])
                action = "rebuilt"
        if action == "rebuilt":
            n = _rebuild(side, lake)
        side.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("format", FORMAT), ("lake", key), ("snapshot", str(head.snapshot)), ("snapshot_time_us", str(head.time_us))],
        )
    if action == "rebuilt":
        side.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the build went through the WAL in one transaction
    return SyncResult(action, n, head.snapshot, time.perf_counter() - t0)


_warned: set[str] = set()
_small_until: dict[str, float] = {}
# How long a "too small for the index" answer holds before the warehouse is counted again (a count reads
# every fingerprint file's footer; a run adds a few thousand articles in that time).
_RECOUNT_S = 60.0


def _big_enough(settings: Settings, lake: duckdb.DuckDBPyConnection, key: str) -> bool:
    """Whether the warehouse holds enough fingerprinted articles to build the index (settings.dedup.index_min_articles)."""
    minimum = settings.dedup.index_min_articles
    if minimum <= 0:
        return True
    if time.monotonic() < _small_until.get(key, 0.0):
        return False
    n = lake.execute("SELECT count(*) FROM article_fingerprints").fetchone()[0]
    if n >= minimum:
        _small_until.pop(key, None)
        return True
    _small_until[key] = time.monotonic() + _RECOUNT_S
    return False


def open_synced(settings: Settings, lake: duckdb.DuckDBPyConnection, notice: Callable[[str], None] | None = None) -> DedupIndex | None:
    """The index synced to the snapshot `lake` reads (outside a transaction: a failed lake read aborts one).

    None when the settings turn it off or the file cannot be used; the caller then scans the lake (and
    `notice` is told once per file why).
    """
    if not settings.dedup.index:
        return None
    from warehouse import db

    t = db.target(settings)
    path = _path(t)
    if not path.exists() and not _big_enough(settings, lake, str(path)):
        return None
    side = None
    try:
        side = connect(path, timeout_s=max(30.0, settings.db_lock_timeout_s))
        result = sync(side, t, lake)
        if result.action == "rebuilt":
            log.info("dedup index %s built from the warehouse: %d rows in %.1f s", path, result.rows, result.seconds)
        return DedupIndex(side, path, result.snapshot, result)
    except (sqlite3.Error, OSError) as exc:
        if side is not None:
            side.close()
        if notice and str(path) not in _warned:
            _warned.add(str(path))
            notice(f"dedup index {path} unusable ({str(exc).splitlines()[0][:200]}); near-duplicate search scans the warehouse")
        return None


@contextmanager
def opened(
    settings: Settings, lake: duckdb.DuckDBPyConnection, notice: Callable[[str], None] | None = None, *, wanted: bool = True,
    write_through: bool = True,
) -> Iterator[DedupIndex | None]:
    """open_synced as a block: the index (or None; always None when not `wanted`), closed after it.

    `write_through`: after the block, put a batch tagged in it into the file (a writer's block; readers pass False).
    """
    index = open_synced(settings, lake, notice) if wanted else None
    try:
        yield index
        if index is not None and write_through:
            try:
                index.written_through(lake)
            except sqlite3.Error as exc:  # the lake has committed; the next sync reads the change instead
                log.info("dedup index: write-through failed (%s)", str(exc).splitlines()[0][:200])
    finally:
        if index is not None:
            index.close()


def still_current(index: DedupIndex | None, lake: duckdb.DuckDBPyConnection) -> DedupIndex | None:
    """The index if `lake`'s transaction reads the snapshot it was synced to, else None (another writer committed since)."""
    from warehouse.db import LAKE

    if index is None:
        return None
    current = lake.execute("SELECT id FROM ducklake_current_snapshot(?)", [LAKE]).fetchone()[0]
    return index if int(current) == index.snapshot else None

