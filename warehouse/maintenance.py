"""Lake housekeeping: inlined rows to Parquet, small files merged, old snapshots expired, files cleaned up.

Every batch commits a snapshot, and a batch of a few rows would make a tiny Parquet file per table. Small
inserts stay inlined in the catalog (DATA_INLINING_ROW_LIMIT); at the end of each run (and with
`newsflow maintain`) they are flushed, adjacent small files are merged, snapshots older than the
retention setting are expired (time travel reaches back that far), and files no snapshot needs any
more are deleted. The number of live data files therefore stays bounded however many batches ran.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from warehouse import db

if TYPE_CHECKING:
    from ingest.settings import Settings

_META = f"__ducklake_metadata_{db.LAKE}"


@dataclass
class MaintenanceReport:
    """What a maintenance pass did, with file counts before and after."""

    live_files_before: int = 0
    live_files_after: int = 0
    disk_files_before: int = 0
    disk_files_after: int = 0
    flushed: int = 0
    merged: int = 0
    rewritten: int = 0
    expired_snapshots: int = 0
    deleted_files: int = 0
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"live data files {self.live_files_before} -> {self.live_files_after}, "
            f"files on disk {self.disk_files_before} -> {self.disk_files_after}, "
            f"snapshots expired {self.expired_snapshots}, files deleted {self.deleted_files} ({self.seconds:.2f}s)"
        )


def live_data_files(con: duckdb.DuckDBPyConnection) -> int:
    """Parquet data and delete files that the current snapshot reads."""
    data = con.execute(f"SELECT count(*) FROM {_META}.ducklake_data_file WHERE end_snapshot IS NULL").fetchall()[0][0]
    deletes = con.execute(f"SELECT count(*) FROM {_META}.ducklake_delete_file WHERE end_snapshot IS NULL").fetchall()[0][0]
    return int(data) + int(deletes)


def disk_files(t: db.LakeTarget) -> int:
    """Parquet files under a local data path (-1 for object stores, where we do not list)."""
    if "://" in t.data_path:
        return -1
    root = Path(t.data_path)
    return sum(1 for _dir, _sub, files in os.walk(root) for f in files if f.endswith(".parquet")) if root.exists() else 0


def warehouse_bytes(t: db.LakeTarget) -> int:
    """Bytes of a local lake on disk: the SQLite catalog (with its WAL) and the data files (-1 if not local)."""
    if "://" in t.data_path or t.kind != "sqlite":
        return -1
    total = 0
    for p in (Path(t.location), Path(t.location + "-wal")):
        if p.exists():
            total += p.stat().st_size
    root = Path(t.data_path)
    for d, _sub, files in os.walk(root) if root.exists() else ():
        total += sum((Path(d) / f).stat().st_size for f in files)
    return total


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    rows = con.execute(sql, params or []).fetchall()
    return len(rows)


def flush_inlined(con: duckdb.DuckDBPyConnection) -> int:
    """Write every table's inlined rows to Parquet, one table per call; returns the tables that had any."""
    # One call per table, never the all-tables form `ducklake_flush_inlined_data(lake)`: with DuckLake 1.5.5
    # that form corrupted the heap in about 1 of 180 maintenance passes here (4 in ~715: SIGSEGV in a
    # DuckDB worker thread, "malloc(): unaligned tcache chunk detected" then SIGABRT, a commit failing
    # with "basic_string::_M_create"); table by table, 0 in 960. Calling it for every table (~12 ms each
    # when there is nothing to flush) keeps whatever the flush covers (inlined rows and inlined deletes).
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name", [db.LAKE]
    ).fetchall()
    return sum(
        1 for (name,) in tables
        if con.execute("CALL ducklake_flush_inlined_data(?, table_name => ?)", [db.LAKE, name]).fetchall()
    )


def maintain(settings: "Settings", *, retention_days: float | None = None, full: bool = False) -> MaintenanceReport:
    """Flush inlined rows, merge small files, expire old snapshots and delete unneeded files.

    Call with the writer lock held (a run's end, or `newsflow maintain`). `full` also compacts the
    SQLite catalog file (pages freed by flushed inlined rows).
    """
    # Imported here, not with the module: `newsflow status` reads through this module, and
    # warehouse.search pulls in pyarrow.
    from warehouse import search

    t = db.target(settings)
    days = settings.snapshot_retention_days if retention_days is None else retention_days
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    report = MaintenanceReport()
    start = time.perf_counter()
    with db.session(settings) as con:
        report.live_files_before = live_data_files(con)
        report.disk_files_before = disk_files(t)

        def step(name: str, sql: str, params: list | None = None) -> int:
            t0 = time.perf_counter()
            n = _count(con, sql, params)
            report.steps[name] = round(time.perf_counter() - t0, 3)
            return n

        t0 = time.perf_counter()
        with db.transaction(con):
            # One row per term again once per-batch postings pile up (a search reads only its terms' rows).
            search.compact_search_index(con) if full else search.compact_if_fragmented(con)
        report.steps["search index"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        report.flushed = flush_inlined(con)
        report.steps["flush"] = round(time.perf_counter() - t0, 3)
        # Files whose rows were mostly updated or deleted (e.g. `runs`, whose row each run rewrites) are
        # rewritten without them first, so the merge can fold them in; `full` rewrites any file with deletes.
        report.rewritten = step(
            "rewrite", f"CALL ducklake_rewrite_data_files('{db.LAKE}', delete_threshold => {0.0 if full else 0.5})"
        )
        report.merged = step("merge", f"CALL ducklake_merge_adjacent_files('{db.LAKE}')")
        report.expired_snapshots = step("expire", f"CALL ducklake_expire_snapshots('{db.LAKE}', older_than => ?)", [cutoff])
        report.deleted_files = step("cleanup", f"CALL ducklake_cleanup_old_files('{db.LAKE}', older_than => ?)", [cutoff])
        report.live_files_after = live_data_files(con)
    report.disk_files_after = disk_files(t)
    if t.kind == "sqlite":
        _compact_sqlite(Path(t.location), full=full)
    report.seconds = time.perf_counter() - start
    return report


def after_run(settings: "Settings") -> MaintenanceReport:
    """The maintenance pass at the end of each run (same as `newsflow maintain` without --full)."""
    return maintain(settings)


def _compact_sqlite(path: Path, *, full: bool) -> None:
    # The catalog was created with auto_vacuum=INCREMENTAL, so freed pages go back to the file system
    # without the exclusive lock a VACUUM needs (readers keep reading). A WAL checkpoint keeps the
    # -wal file from growing between runs.
    con = sqlite3.connect(path, timeout=30)
    try:
        con.execute("PRAGMA incremental_vacuum")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)" if full else "PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.OperationalError:
        pass  # busy: the next pass will do it
    finally:
        con.close()
