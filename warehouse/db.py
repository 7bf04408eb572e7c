"""DuckDB connections, numbered migrations and views.

Concurrency design: DuckDB lets one process hold a database file for writing and then refuses every
other process, readers included. newsflow therefore never keeps the file open for long: writers open
it for one short transaction per batch and close it again, and both readers and writers retry with
backoff while another process holds it. A separate run lock (see `run_lock`) lets only one ingest
write at a time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VIEWS_DIR = Path(__file__).resolve().parent / "views"
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class WarehouseBusy(RuntimeError):
    """The database file stayed locked by another process for longer than the timeout (retryable)."""

    retryable = True
    reason = "warehouse_busy"


def _is_lock_conflict(exc: BaseException) -> bool:
    msg = str(exc)
    return "Could not set lock" in msg or "Conflicting lock" in msg


def connect(path: Path | str, *, read_only: bool = False, timeout_s: float = 60.0) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, retrying with jittered backoff while another process holds its lock."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}; run `newsflow init` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if not _is_lock_conflict(exc) or time.monotonic() >= deadline:
                if _is_lock_conflict(exc):
                    raise WarehouseBusy(f"{path} is locked by another process for more than {timeout_s:.0f}s") from exc
                raise
            # Jitter so that a reader and a writer retrying together do not collide forever.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)


@contextmanager
def session(path: Path | str, *, read_only: bool = False, timeout_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection that is always closed, releasing the file lock for other processes."""
    con = connect(path, read_only=read_only, timeout_s=timeout_s)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, rolling back on any error so no half-written batch remains."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


def migration_files() -> list[tuple[int, str, Path]]:
    """Numbered migration files in order: (version, name, path)."""
    out = []
    for p in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = _MIGRATION_NAME.match(p.name)
        if not m:
            raise ValueError(f"bad migration file name {p.name!r} (want NNN_name.sql)")
        out.append((int(m.group(1)), m.group(2), p))
    versions = [v for v, _, _ in out]
    if len(versions) != len(set(versions)):
        raise ValueError("two migrations share a version number")
    return out


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations, each in one transaction together with its record; return their names."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, path in migration_files():
        if version in done:
            continue
        with transaction(con):
            con.execute(path.read_text(encoding="utf-8"))
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        applied.append(f"{version:03d}_{name}")
        log.info("applied migration %03d_%s", version, name)
    return applied


def apply_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re)create every view from views/*.sql (one view per file), resolving inter-view order by retry."""
    pending = sorted(VIEWS_DIR.glob("*.sql"))
    created: list[str] = []
    # Views may read other views; create what we can, then retry the rest until no progress.
    while pending:
        failed = []
        last_error: Exception | None = None
        for p in pending:
            try:
                con.execute(p.read_text(encoding="utf-8"))
                created.append(p.stem)
            except duckdb.CatalogException as exc:
                failed.append(p)
                last_error = exc
        if len(failed) == len(pending):
            raise RuntimeError(f"cannot create views {[p.name for p in failed]}: {last_error}")
        pending = failed
    return created


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Highest applied migration version (0 for an empty database)."""
    try:
        row = con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0]
    except duckdb.CatalogException:
        return 0
    return int(row[0] or 0)


def init_db(path: Path | str, *, timeout_s: float = 60.0) -> list[str]:
    """Create or upgrade the warehouse at `path` to the latest schema and views; return applied migrations."""
    with session(path, timeout_s=timeout_s) as con:
        applied = migrate(con)
        with transaction(con):
            apply_views(con)
        return applied


@contextmanager
def run_lock(db_path: Path | str, *, wait: bool = True, on_wait: "callable | None" = None) -> Iterator[None]:
    """Hold an exclusive OS file lock next to the DB so only one ingest writes at a time.

    The lock is released by the kernel when the process dies, so a SIGKILLed run never leaves it stale.
    """
    lock_path = Path(str(db_path) + ".runlock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise WarehouseBusy(f"another newsflow run is writing to {db_path}") from None
            if on_wait:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
