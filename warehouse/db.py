"""The DuckLake warehouse: connections, numbered migrations, views, and the one-writer run lock.

Storage design: a DuckDB file admits one process, so an analyst's open session used to make scheduled
ingests fail. The warehouse is a DuckLake instead: a catalog database (SQLite by default, PostgreSQL
for several hosts) that records snapshots, plus Parquet data files. Any number of DuckDB sessions,
in any process, attach it and read consistent snapshots while one writer commits batches.

DuckLake has no key constraints, so uniqueness is enforced by the loads (MERGE on natural keys) and
writers are serialised: the run lock (a flock next to a SQLite catalog, a PostgreSQL advisory lock for
a Postgres catalog) lets one run write at a time, wherever runs start.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import random
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ingest.errors import ConfigError, TransientError
from warehouse import extensions

if TYPE_CHECKING:
    from ingest.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VIEWS_DIR = Path(__file__).resolve().parent / "views"
COMMENTS_FILE = Path(__file__).resolve().parent / "comments.sql"
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

# The name the lake is attached under, in newsflow and in the statements `newsflow attach` prints.
LAKE = "newsflow"
# A join with at most this many distinct keys on its build side pushes them into the other side's scan as
# an IN filter (DuckDB's default: 50), which skips the row groups of key-sorted tables (migrations 007, 008)
# whose min/max hold none of them. The check costs one comparison per key and row group, so far larger
# key sets cost more than they save (benchmarks/lookups.py).
LOOKUP_IN_FILTER_MAX_KEYS = 1000


class WarehouseBusy(TransientError):
    """The catalog stayed locked, or another run held the writer lock, for longer than the timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="warehouse_busy")


class CatalogUnreachable(TransientError):
    """The catalog database (PostgreSQL) could not be reached."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="catalog_unreachable")


class NoWarehouse(ConfigError):
    """Nothing to read: the warehouse was never created (run `newsflow init`)."""


class LegacyWarehouse(ConfigError):
    """A warehouse file of newsflow 0.1 (DuckDB 2.0 storage) was found; it must be exported and imported."""


# ---------------------------------------------------------------- where the lake is


@dataclass(frozen=True)
class LakeTarget:
    """A DuckLake: catalog kind and location, and the data path (absolute)."""

    kind: str  # sqlite | postgres
    location: str  # absolute file path, or a libpq connection string
    data_path: str
    # DuckDB checks an extension's signature by hashing the whole file on every LOAD (~0.15-0.3 s each
    # for the 36 MB ducklake and 35 MB sqlite files): most of a read-only command's start-up. newsflow
    # loads only the files it copied from the pinned extension wheels in its own environment, the same
    # trust as the duckdb package itself, so the check is off unless NEWSFLOW_VERIFY_EXTENSION_SIGNATURES=1.
    verify_signatures: bool = field(default=False, compare=False)

    @property
    def display(self) -> str:
        """The catalog as shown to users (a Postgres password is never printed)."""
        return f"{self.kind}:{_PASSWORD.sub('password=***', self.location)}"

    @property
    def extension_names(self) -> tuple[str, ...]:
        """Extensions needed to attach this lake."""
        return ("ducklake", self.kind, "fts")

    def attach_statements(
        self, *, read_only: bool, extension_dir: Path, snapshot: int | None = None, inlining_row_limit: int | None = None
    ) -> list[str]:
        """The SQL that attaches this lake in a plain DuckDB 1.5 session (one statement per item)."""
        opts = [f"DATA_PATH {_quote(self.data_path)}"]
        if read_only:
            opts.append("READ_ONLY")
        elif inlining_row_limit is not None:
            # Inserts of up to this many rows stay in the catalog until maintenance flushes them, so a
            # small batch does not make one tiny Parquet file per table. (An ATTACH option: DuckLake 1.5.5
            # crashes in set_option once macros exist.)
            opts.append(f"DATA_INLINING_ROW_LIMIT {int(inlining_row_limit)}")
        if snapshot is not None:
            opts.append(f"SNAPSHOT_VERSION {int(snapshot)}")
        return [
            f"SET extension_directory = {_quote(str(extension_dir))}",
            "SET autoinstall_known_extensions = false",
            "LOAD ducklake",
            f"LOAD {self.kind}",
            "LOAD fts",  # stem() for full-text search (search_articles macro)
            f"ATTACH {_quote('ducklake:' + self.kind + ':' + self.location)} AS {LAKE} ({', '.join(opts)})",
            f"USE {LAKE}",
        ]


_PASSWORD = re.compile(r"password=\S+")


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def target(settings: "Settings") -> LakeTarget:
    """Where the settings say the lake is (relative paths resolved against the working directory)."""
    catalog = settings.catalog.strip()
    kind, sep, location = catalog.partition(":")
    kind = {"postgresql": "postgres"}.get(kind, kind)
    if not sep or kind not in ("sqlite", "postgres") or not location:
        raise ConfigError(
            f"NEWSFLOW_CATALOG={catalog!r} is not a catalog; use sqlite:PATH or postgres:<libpq connection string>",
            reason="bad_catalog",
        )
    if kind == "sqlite":
        location = str(Path(location).expanduser().resolve())
    data_path = settings.data_path
    if "://" not in data_path:
        data_path = str(Path(data_path).expanduser().resolve()) + "/"
    return LakeTarget(kind=kind, location=location, data_path=data_path, verify_signatures=settings.verify_extension_signatures)


def exists(t: LakeTarget) -> bool:
    """Whether a lake was created at `t` (for SQLite catalogs; a Postgres catalog is assumed to exist)."""
    return t.kind != "sqlite" or Path(t.location).is_file()


def check_legacy(settings: "Settings") -> None:
    """Refuse to start a new lake beside a newsflow 0.1 DuckDB file that holds the user's data."""
    legacy = Path(settings.legacy_db_file)
    t = target(settings)
    if legacy.is_file() and not exists(t):
        raise LegacyWarehouse(
            f"{legacy} is a newsflow 0.1 warehouse (DuckDB 2.0 storage, which DuckDB 1.5 cannot read): "
            f"in any DuckDB 2.x client run EXPORT DATABASE 'nf-export' (FORMAT parquet), then `newsflow import nf-export`",
            reason="legacy_warehouse",
        )


# ---------------------------------------------------------------- connections


def _is_busy(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "database is locked" in msg or "database is busy" in msg or "could not set lock" in msg


def _prepare_sqlite_catalog(path: Path) -> None:
    """Create an empty catalog file in WAL mode, so readers never block the writer (and vice versa)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        # auto_vacuum must be chosen before the first table exists; it lets maintenance return the
        # pages freed when inlined rows are flushed to Parquet without an exclusive VACUUM.
        con.execute("PRAGMA auto_vacuum = INCREMENTAL")
        con.execute("PRAGMA journal_mode = WAL")
    finally:
        con.close()


def open_lake(
    t: LakeTarget,
    *,
    read_only: bool,
    timeout_s: float = 60.0,
    snapshot: int | None = None,
    inlining_row_limit: int | None = None,
    load_fts: bool = True,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """A new DuckDB instance with the lake attached as `newsflow` and selected (USE); `threads`: DuckDB's default (one per core) when None.

    `load_fts=False` leaves fts (stem(), for search_articles and v_article_terms) to DuckDB's autoload
    from the prepared folder on first use, which needs external access left enabled on the instance.
    """
    if t.kind == "sqlite" and not Path(t.location).is_file():
        if read_only:
            raise NoWarehouse(f"no warehouse at {t.location}; run `newsflow init` first", reason="no_warehouse")
        _prepare_sqlite_catalog(Path(t.location))
    if not read_only and "://" not in t.data_path:
        Path(t.data_path).mkdir(parents=True, exist_ok=True)
    ext_dir = extensions.prepare(t.extension_names)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        config: dict[str, Any] = {
            "autoinstall_known_extensions": False,
            "extension_directory": str(ext_dir),
            "dynamic_or_filter_threshold": LOOKUP_IN_FILTER_MAX_KEYS,
        }
        if threads:
            config["threads"] = int(threads)
        if not t.verify_signatures:
            config["allow_unsigned_extensions"] = True
        con = duckdb.connect(config=config)
        try:
            for st in t.attach_statements(
                read_only=read_only, extension_dir=ext_dir, snapshot=snapshot, inlining_row_limit=inlining_row_limit
            )[2:]:
                if st == "LOAD fts" and not load_fts:
                    continue
                con.execute(st)
            return con
        except duckdb.Error as exc:
            con.close()
            if _is_busy(exc) and time.monotonic() < deadline:
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            raise translate(exc, t, timeout_s) from exc


def translate(exc: BaseException, t: LakeTarget, timeout_s: float = 60.0) -> BaseException:
    """Turn a DuckDB error about the catalog into one of ours (one clear line), else return it unchanged."""
    msg = str(exc)
    if _is_busy(exc):
        return WarehouseBusy(f"the catalog {t.display} stayed locked for more than {timeout_s:.0f}s; retry later")
    if t.kind == "postgres" and any(m in msg for m in _PG_CONNECTION_LOST):
        first = next((ln.strip() for ln in msg.splitlines() if any(m in ln for m in _PG_CONNECTION_LOST)), msg.splitlines()[0])
        return CatalogUnreachable(f"lost the PostgreSQL catalog {t.display}: {first[:200]}; check the server, then run again")
    return exc


_PG_CONNECTION_LOST = (
    "Unable to connect", "connection to server", "Connection refused", "server closed the connection",
    "no connection to the server", "terminating connection", "could not connect", "connection is bad",
)

# Connections whose catalog went away mid-transaction. DuckDB's postgres extension throws from a
# destructor when it cannot roll back on a dead connection, which aborts the process (std::terminate).
# So they are never closed or destroyed: kept here, and the process ends with os._exit after its
# one-line error (atexit below), skipping the destructors. Nothing is lost: the transaction never
# committed, and the next run marks this one crashed.
_POISONED: list[duckdb.DuckDBPyConnection] = []


def _poison(*cons: duckdb.DuckDBPyConnection) -> None:
    with _INSTANCES_LOCK:
        _POISONED.extend(cons)
        for key, con in list(_INSTANCES.items()):
            _POISONED.append(con)
            del _INSTANCES[key]


@atexit.register
def _exit_without_destructors() -> None:
    if _POISONED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - closed streams at exit
                pass
        os._exit(1)


# One DuckDB instance per lake per process; sessions are cursors on it (cheap, one per thread/use).
_INSTANCES: dict[tuple, duckdb.DuckDBPyConnection] = {}
_INSTANCES_LOCK = threading.Lock()


def _identity(t: LakeTarget) -> tuple:
    # A catalog file deleted and created again (tests, `rm -r newsflow`) is another lake.
    if t.kind == "sqlite":
        try:
            return (t, os.stat(t.location).st_ino, os.getpid())
        except FileNotFoundError:
            return (t, None, os.getpid())
    return (t, None, os.getpid())


def _instance(
    t: LakeTarget, read_only: bool, timeout_s: float, inlining_row_limit: int, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    # `threads` (Settings.db_threads) applies when this process first opens the lake: DuckDB's thread count
    # is fixed for the life of the instance (changing it at run time with SET aborted the process once,
    # inside a maintenance call right after the change).
    with _INSTANCES_LOCK:
        ident = _identity(t)
        rw = _INSTANCES.get((ident, False))
        if rw is not None:
            return rw
        if read_only and (ident, True) in _INSTANCES:
            return _INSTANCES[(ident, True)]
        # A reader's fts is autoloaded when a query needs it: LOAD checks the extension's signature
        # (a hash of the 11 MB file), a cost `status` and `reingest --dry-run` never need to pay.
        con = open_lake(
            t, read_only=read_only, timeout_s=timeout_s, inlining_row_limit=inlining_row_limit, load_fts=not read_only,
            threads=threads,
        )
        _INSTANCES[(_identity(t), read_only)] = con
        return con


def close_for_exit() -> None:
    """Close this process's SQLite-catalog lake instances before interpreter teardown (the CLI's last step).

    Postgres-catalog instances are left to the process end: if the server went away, closing one makes
    DuckDB's postgres extension roll back on a dead connection and abort the process (see _POISONED).
    """
    with _INSTANCES_LOCK:
        if _POISONED:
            return  # the process ends with os._exit (atexit above); destroy nothing
        for key in [k for k in _INSTANCES if k[0][0].kind == "sqlite"]:
            try:
                _INSTANCES.pop(key).close()
            except duckdb.Error:
                pass


def close_all() -> None:
    """Close every cached lake instance of this process (tests, long-lived processes switching lakes)."""
    with _INSTANCES_LOCK:
        for con in _INSTANCES.values():
            try:
                con.close()
            except duckdb.Error:
                pass
        _INSTANCES.clear()


@contextmanager
def session(settings: "Settings", *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the lake (a cursor on this process's instance), closed after the block.

    A read-only session is one transaction (one snapshot); a writing one leaves transactions to the
    caller (`transaction`), one per batch.
    """
    t = target(settings)
    base = _instance(t, read_only, settings.db_lock_timeout_s, settings.data_inlining_row_limit, settings.db_threads or None)
    cur = base.cursor()
    poisoned = False
    try:
        cur.execute(f"USE {LAKE}")
        if read_only:
            # One snapshot for every query of the block: consistent answers, and the lake's catalog is
            # read once instead of once per statement (~20-50 ms each on a SQLite catalog).
            cur.execute("BEGIN TRANSACTION")
        yield cur
        if read_only:
            cur.execute("ROLLBACK")
    except duckdb.Error as exc:
        new = translate(exc, t, settings.db_lock_timeout_s)
        if new is exc:
            raise
        if isinstance(new, CatalogUnreachable):
            poisoned = True
            _poison(cur, base)
        raise new from exc
    finally:
        if not poisoned:
            cur.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, rolling back on any error so no half-written batch remains."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as exc:
            if any(m in str(exc) for m in _PG_CONNECTION_LOST) or "ROLLBACK" in str(exc):
                _poison(con)  # the catalog is gone: never destroy this connection (see _POISONED)
        raise
    else:
        con.execute("COMMIT")


def last_committed_snapshot(con: duckdb.DuckDBPyConnection) -> int | None:
    """The snapshot id of this connection's last commit (None before its first)."""
    row = con.execute(f"SELECT id FROM ducklake_last_committed_snapshot('{LAKE}')").fetchall()
    return int(row[0][0]) if row and row[0][0] is not None else None


# ---------------------------------------------------------------- schema


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
        " version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
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


def apply_comments(con: duckdb.DuckDBPyConnection) -> None:
    """Table, view and column descriptions (COMMENT ON ...) from comments.sql, if present."""
    if COMMENTS_FILE.is_file():
        con.execute(COMMENTS_FILE.read_text(encoding="utf-8"))


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Highest applied migration version (0 for an empty lake)."""
    try:
        row = con.execute("SELECT max(version) FROM schema_migrations").fetchall()[0]
    except duckdb.CatalogException:
        return 0
    return int(row[0] or 0)


def _views_current(con: duckdb.DuckDBPyConnection) -> bool:
    names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE database_name = ?", [LAKE]).fetchall()}
    return {p.stem for p in VIEWS_DIR.glob("*.sql")} <= names


def init_db(settings: "Settings") -> list[str]:
    """Create or upgrade the lake to the latest schema, views and comments; return applied migrations.

    Call with the writer lock held. A lake already up to date is left alone (no new snapshot).
    """
    with session(settings) as con:
        latest = max((v for v, _, _ in migration_files()), default=0)
        if schema_version(con) == latest and _views_current(con):
            return []
        applied = migrate(con)
        with transaction(con):
            apply_views(con)
            apply_comments(con)
        from warehouse import search  # search imports this module

        with transaction(con):
            # Articles stored before the search index existed (or imported) get indexed once.
            search.index_missing(con)
        return applied


# ---------------------------------------------------------------- one writer at a time


@contextmanager
def run_lock(settings: "Settings", *, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Let one run write at a time: a flock beside a SQLite catalog, a PostgreSQL advisory lock otherwise.

    Both are released by the kernel or the server the instant the holder dies, so a SIGKILLed run never
    leaves the lock stale. `on_wait` gets a one-line description of what we wait for.
    """
    t = target(settings)
    if t.kind == "postgres":
        with _pg_advisory_lock(t, wait=wait, on_wait=on_wait):
            yield
        return
    lock_path = Path(t.location + ".runlock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            what = f"another newsflow run is writing to {t.display} (lock {lock_path})"
            if not wait:
                raise WarehouseBusy(what) from None
            if on_wait:
                on_wait(what)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# A fixed key for pg_advisory_lock: "newsflow" as a 64-bit integer.
_PG_LOCK_KEY = int.from_bytes(b"newsflow", "big") & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def _pg_advisory_lock(t: LakeTarget, *, wait: bool, on_wait: Callable[[str], None] | None) -> Iterator[None]:
    import psycopg

    try:
        conn = psycopg.connect(t.location, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise CatalogUnreachable(f"cannot reach the PostgreSQL catalog {t.display}: {str(exc).strip().splitlines()[0][:200]}") from None
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", [_PG_LOCK_KEY]).fetchone()[0]
        if not got:
            what = f"another newsflow run is writing to {t.display} (PostgreSQL advisory lock {_PG_LOCK_KEY})"
            if not wait:
                raise WarehouseBusy(what)
            if on_wait:
                on_wait(what)
            conn.execute("SELECT pg_advisory_lock(%s)", [_PG_LOCK_KEY])
        yield
    finally:
        conn.close()  # ends the session, which releases the advisory lock
