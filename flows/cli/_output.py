"""What every `newsflow` command shares: exit codes, one-line errors and their log file, tables,
CSV/JSON cells, the spinner/progress display and run summaries.

This module imports nothing else from the CLI package, and nothing heavy at import time (no Prefect,
no DuckDB, no rich): commands that run no flow must answer in well under a second.

Exit codes: 0 done (items may have failed; they are recorded), 1 the run could not complete,
2 bad usage or configuration (nothing was written, Prefect was not started).

Errors: `describe_error` turns any exception into (one line, exit code). Usage and configuration
errors (`ingest.errors.UsageError`/`ConfigError`, argparse) are one line and exit 2. Everything else
is a run that could not complete: one line saying what happened and what to do, naming the log file
that holds the full traceback, exit 1. Unknown exceptions are treated the same way (and, like
everywhere in newsflow, as not retryable).
"""

from __future__ import annotations

import errno
import gc
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
LOG_NAME = "newsflow.log"


class CliError(Exception):
    """An error to print as one line, with an exit code (the line is the whole message)."""

    def __init__(self, message: str, code: int = EXIT_RUN_FAILED) -> None:
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    """A bad-usage error (exit 2)."""
    return CliError(message, EXIT_USAGE)


def load_settings():  # noqa: ANN201 - ingest.settings.Settings, imported lazily
    """The settings object, read from the environment (a bad variable is a one-line usage error)."""
    from pydantic import ValidationError

    from ingest.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise usage_error(f"bad NEWSFLOW_* setting {where}: {first['msg']}") from None


# ---------------------------------------------------------------- errors and their log


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def log_dir() -> Path:
    """Directory of the log file: <warehouse directory>/logs, or a temp directory when that is not writable."""
    try:
        settings = load_settings()
        wanted = Path(settings.warehouse_dir) / "logs"
        wanted.mkdir(parents=True, exist_ok=True)
        if os.access(wanted, os.W_OK):
            return wanted
    except Exception:  # noqa: BLE001 - a log location must never be the reason a command fails
        pass
    fallback = Path(tempfile.gettempdir()) / f"newsflow-logs-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def write_log(exc: BaseException, argv: Sequence[str] | None = None) -> Path | None:
    """Append the full traceback of `exc` to the log file; return its path (None if nothing could be written)."""
    for directory in (None, "tmp"):
        try:
            d = log_dir() if directory is None else Path(tempfile.gettempdir())
            path = d / LOG_NAME
            with path.open("a", encoding="utf-8") as f:
                f.write(f"--- {datetime.now().isoformat(timespec='seconds')} newsflow {' '.join(argv or sys.argv[1:])}\n")
                f.write("".join(traceback.format_exception(exc)))
            return path
        except OSError:
            continue
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or during (cause first, then context)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)


def _warehouse_errors() -> tuple[Any, Any]:
    """(WarehouseBusy, CatalogUnreachable), or empty tuples (matching nothing) when warehouse.db was never imported.

    When one of them was raised the module is loaded, so the import costs nothing; commands that never
    touched the warehouse do not pay for DuckDB just to classify an error.
    """
    if "warehouse.db" not in sys.modules:
        return (), ()
    from warehouse.db import CatalogUnreachable, WarehouseBusy

    return WarehouseBusy, CatalogUnreachable


def _http_connect_errors() -> Any:
    """httpx's connection errors, or () when httpx was never imported (nothing can have raised them)."""
    if "httpx" not in sys.modules:
        return ()
    import httpx

    return (httpx.ConnectError, httpx.ConnectTimeout)


def _known_cause(exc: BaseException) -> tuple[str, int] | None:
    """A specific sentence ("what happened; what to do") for failures users meet, else None."""
    from ingest.errors import ConfigError, UsageError

    warehouse_busy, catalog_unreachable = _warehouse_errors()
    for e in _chain(exc):
        msg = _one_line(str(e))
        low = msg.lower()
        if isinstance(e, CliError):
            return msg, e.code
        if isinstance(e, (UsageError, ConfigError)):
            return msg, EXIT_USAGE
        if isinstance(e, catalog_unreachable):
            return f"{msg}; check NEWSFLOW_CATALOG and that its server is up, then run again", EXIT_RUN_FAILED
        if isinstance(e, warehouse_busy):
            msg = msg.removesuffix("; retry later") + lock_holders_note()
            return f"the warehouse is busy: {msg}; wait for the other process to finish (or raise NEWSFLOW_DB_LOCK_TIMEOUT_S) and run again", EXIT_RUN_FAILED
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "no space left on device" in low:
            return f"the disk is full ({msg}); free some space (or point the warehouse at another disk) and run again", EXIT_RUN_FAILED
        if (isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)) or "read-only file system" in low or "permission denied" in low:
            where = getattr(e, "filename", None)
            what = f"cannot write {where}" if where else f"cannot write to the warehouse ({msg})"
            return f"{what}: the directory is read-only or not ours; run where you can write, or set NEWSFLOW_CATALOG/NEWSFLOW_DATA_PATH to a writable place", EXIT_RUN_FAILED
        if "[e050]" in low or "can't find model" in low or (isinstance(e, ModuleNotFoundError) and _is_configured_model(e.name)):
            return f"a spaCy model is missing ({msg}); install it with pip, or choose another with NEWSFLOW_ENTITIES__MODELS_BY_LANGUAGE", EXIT_RUN_FAILED
        if "extension" in low and ("not found" in low or "failed to download" in low or "could not load" in low):
            return f"a DuckDB extension is missing ({msg}); reinstall newsflow's dependencies (pip install duckdb-extension-ducklake duckdb-extension-sqlite duckdb-extension-postgres at the pinned versions)", EXIT_RUN_FAILED
        if "unable to connect to postgres" in low or "could not connect to server" in low or "connection refused" in low and "postgres" in low:
            return f"the warehouse catalog is unreachable ({msg}); check NEWSFLOW_CATALOG and that its server is up", EXIT_RUN_FAILED
        if _is_prefect_api_unreachable(e, low):
            url = os.environ.get("PREFECT_API_URL") or "the Prefect API"
            return f"{url} is unreachable; start it with `newsflow server`, or unset PREFECT_API_URL to use an embedded one", EXIT_RUN_FAILED
    return None


def lock_holders(paths: Sequence[Path]) -> list[tuple[int, str]]:
    """(pid, command line) of other processes holding a lock on any of `paths` (Linux /proc/locks; [] elsewhere)."""
    inodes = set()
    for p in paths:
        try:
            inodes.add(os.stat(p).st_ino)
        except OSError:
            continue
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids: set[int] = set()
    for line in lines:
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 12345 fe:00:2188596 0 EOF" (blocked waiters are marked "->")
        if len(fields) >= 6 and fields[1] != "->":
            try:
                pid, inode = int(fields[4]), int(fields[5].rsplit(":", 1)[1])
            except (ValueError, IndexError):
                continue
            if inode in inodes and pid != os.getpid():
                pids.add(pid)
    holders = []
    for pid in sorted(pids):
        try:
            cmd = _one_line(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            cmd = ""
        holders.append((pid, cmd))
    return holders


def lock_holders_note() -> str:
    """" (held by pid N: COMMAND)" for the processes locking the SQLite catalog or the run lock, else ""."""
    try:
        settings = load_settings()
        if not settings.catalog.startswith("sqlite:"):
            return ""
        catalog = Path(settings.catalog.removeprefix("sqlite:")).expanduser().resolve()
        found = lock_holders([catalog, Path(f"{catalog}-shm"), Path(f"{catalog}-wal"), Path(f"{catalog}.runlock")])
    except Exception:  # noqa: BLE001 - only a hint
        return ""
    if not found:
        return ""
    return " (held by " + ", ".join(f"pid {pid}" + (f": {cmd[:120]}" if cmd else "") for pid, cmd in found) + ")"


def _is_configured_model(name: str | None) -> bool:
    try:
        return bool(name) and name in load_settings().entities.models_by_language.values()
    except Exception:  # noqa: BLE001
        return False


def _is_prefect_api_unreachable(e: BaseException, low: str) -> bool:
    if "failed to reach api" in low or "cannot connect to the prefect api" in low:
        return True
    if isinstance(e, _http_connect_errors()):
        return bool(os.environ.get("PREFECT_API_URL")) and "prefect" in sys.modules
    return False


def describe_error(exc: BaseException, argv: Sequence[str] | None = None) -> tuple[str, int]:
    """One line for `exc` ("what happened; what to do (details: LOG)") and its exit code; logs the traceback.

    Usage/configuration errors are the user's input: one line, exit 2, no log. Every other failure
    (known or unexpected) is a run that could not complete: exit 1 and the traceback in the log file.
    """
    known = _known_cause(exc)
    if known is not None and known[1] == EXIT_USAGE:
        return known[0], EXIT_USAGE
    log = write_log(exc, argv)
    details = f" (details: {log})" if log is not None else ""
    if known is not None:
        return known[0] + details, known[1]
    what = _one_line(f"{type(exc).__name__}: {exc}")
    return f"the run could not complete: {what}; this was not expected, please report it with the log{details}", EXIT_RUN_FAILED


def print_error(line: str) -> None:
    """The one line on stderr every failure ends as."""
    print(f"newsflow: error: {line}", file=sys.stderr)


# ---------------------------------------------------------------- tables and cells


def cell(v: Any, max_width: int = 0) -> str:
    """A value as one table cell (no newlines); cut to `max_width` characters when max_width > 0."""
    if v is None:
        text = ""
    elif isinstance(v, datetime):
        text = v.strftime("%Y-%m-%d %H:%M:%S%z")
    elif isinstance(v, float):
        text = f"{v:g}"
    elif isinstance(v, (list, tuple)):
        text = ", ".join(cell(x) for x in v)
    else:
        text = str(v).replace("\r", " ").replace("\n", " ")
    if max_width > 0 and len(text) > max_width:
        return text[: max(1, max_width - 1)] + "…"
    return text


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None, max_width: int = 80) -> None:
    """Print rows as an aligned plain-text table; cells are cut at max_width characters (0: never cut)."""
    out = out or sys.stdout
    cells = [[cell(v, max_width) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def json_value(v: Any) -> Any:
    """A JSON/CSV-friendly form of DuckDB values (dates ISO, decimals as numbers, bytes as hex)."""
    if isinstance(v, (datetime, date, time)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return str(v)


def csv_value(v: Any) -> Any:
    """A CSV cell: plain values as they are, others as in JSON."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return json_value(v)


# ---------------------------------------------------------------- progress


class ProgressDisplay:
    """A spinner saying what the run is doing, plus one bar per stage; on an interactive stderr only.

    `reporter` is installed with flows.progress.install: stages named "total:X" add to X's total,
    "status:TEXT" replaces the spinner's text, "notice:TEXT" prints a line (even when piped), anything else advances that stage's bar.
    """

    def __init__(self, first_status: str) -> None:
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._status_task: Any = None
        self._first = first_status

    @property
    def active(self) -> bool:
        return self._bar is not None

    def __enter__(self) -> "ProgressDisplay":
        if not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.text import Text

        class StageOnly:
            """A column shown for stage bars only, blank on the status line."""

            def __init__(self, column: Any) -> None:
                self.column = column

            def __call__(self, task: Any) -> Any:
                return Text("") if task.fields.get("status") else self.column(task)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.column, name)

        self._bar = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), StageOnly(BarColumn()), StageOnly(MofNCompleteColumn()), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._bar.start()
        self._status_task = self._bar.add_task(self._first, total=None, status=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def status(self, text: str) -> None:
        """Say what the run is doing now (next to the spinner)."""
        if self._bar is not None:
            self._bar.update(self._status_task, description=text)

    def report(self, stage: str, n: int) -> None:
        """The flows.progress reporter."""
        bar = self._bar
        if stage.startswith("notice:"):
            line = "newsflow: " + stage.split(":", 1)[1]
            if bar is not None:
                bar.console.print(line, markup=False, highlight=False)
            else:
                print(line, file=sys.stderr, flush=True)
            return
        if bar is None:
            return
        if stage.startswith("status:"):
            self.status(stage.split(":", 1)[1])
            return
        if stage.startswith("total:"):
            name = stage.split(":", 1)[1]
            if name not in self._tasks:
                self._tasks[name] = bar.add_task(name, total=0)
            task = self._tasks[name]
            bar.update(task, total=(bar.tasks[task].total or 0) + n)
            return
        if stage not in self._tasks:
            self._tasks[stage] = bar.add_task(stage, total=None)
        bar.advance(self._tasks[stage], n)


class _HideRunFailures:
    """A logging filter for the console: drops Prefect's ERROR records about failed flow and task runs.

    A failed run ends as our own one line (with its traceback in the log file); Prefect would print
    the same traceback two or three times on the terminal first. Warnings and info still show.
    """

    def filter(self, record: Any) -> bool:
        import logging

        return not (record.levelno >= logging.ERROR and record.name.startswith(("prefect.flow_runs", "prefect.task_runs")))


@contextmanager
def prestarted_worker(settings: Any) -> Iterator[None]:
    """Around a flow run with CPU stages: one worker starts loading the spaCy model now, on the core Prefect's
    start-up leaves idle (ingest.pipeline.prestart); the run adopts it, and one never adopted is stopped."""
    from functools import partial

    with imports_without_gc():
        from ingest.pipeline import prestart, release_prestarted, warm_models
    if settings.task_runner != "dask":
        prestart(settings.workers, partial(warm_models, settings))
    try:
        yield
    finally:
        release_prestarted()


@contextmanager
def imports_without_gc() -> Iterator[None]:
    """Heavy imports (Prefect, the flow modules) with the cyclic GC paused, then frozen out of later collections.

    Importing Prefect and the flows creates ~1M objects that live as long as the process. The collector,
    triggered by allocation counts, scans them again and again while they are created, and once more
    at interpreter exit: ~0.5 s of a no-op `newsflow ingest` (2.2 -> 1.7 s for `import flows.ingest`
    here). gc.freeze() moves what exists after the imports out of every later collection; those
    objects are never garbage, so nothing is kept that would have been freed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def flow_display(first_status: str) -> Iterator[ProgressDisplay]:
    """Around a flow run from the CLI: spinner/progress from the first second, Prefect's failure tracebacks off the terminal."""
    import logging

    from flows import progress

    with ProgressDisplay(first_status) as display, ExitStack() as stack:
        progress.install(display.report)
        hide = _HideRunFailures()
        handlers: list[Any] = []
        to_log: Any = None
        try:
            with imports_without_gc():
                import prefect.main  # noqa: F401 - configures Prefect's logging (its console handler on the root logger)
                from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

                # Prefect imports this when it creates the flow run (Flow.serialize_parameters): FastAPI's whole
                # package, ~0.2 s, cheaper here with the collector paused than in the middle of the run.
                import fastapi.encoders  # noqa: F401

            # No flow-run heartbeats for a run in the user's terminal: Prefect stops its heartbeat thread
            # by joining it, which waits out the thread's current 1 s sleep (~0.5 s of every run's exit,
            # a sixth of a no-op ingest). A run the terminal holds is watched by its user, and newsflow
            # marks a run whose process died as crashed itself (warehouse runs table, by pid); served
            # deployment runs keep Prefect's heartbeats.
            stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))

            display.status(first_status.replace("starting Prefect", "starting Prefect's local API and the run"))
            handlers = list(logging.getLogger().handlers)
            for h in handlers:
                h.addFilter(hide)
            # What the terminal does not show goes to the log file (created only if something is logged).
            to_log = logging.FileHandler(log_dir() / LOG_NAME, delay=True, encoding="utf-8")
            to_log.setLevel(logging.ERROR)
            to_log.setFormatter(logging.Formatter("--- %(asctime)s %(name)s %(levelname)s\n%(message)s"))
            for name in ("prefect.flow_runs", "prefect.task_runs"):
                logging.getLogger(name).addHandler(to_log)
            yield display
        finally:
            for h in handlers:
                h.removeFilter(hide)
            if to_log is not None:
                for name in ("prefect.flow_runs", "prefect.task_runs"):
                    logging.getLogger(name).removeHandler(to_log)
                to_log.close()
            progress.install(None)


# The address `newsflow server` listens on by default (flows/cli/_server_command.py).
DEFAULT_PREFECT_API_URL = "http://127.0.0.1:4200/api"


def _prefect_api_url_configured() -> bool:
    """True when the user set a Prefect API URL: PREFECT_API_URL, the active Prefect profile, or ./prefect.toml.

    Read without importing Prefect, so the answer can still change what Prefect reads when it loads.
    """
    import tomllib

    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        data = tomllib.loads(profiles.read_text(encoding="utf-8")) if profiles.is_file() else {}
        active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
        if data.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"):
            return True
        local = Path("prefect.toml")
        if local.is_file() and tomllib.loads(local.read_text(encoding="utf-8")).get("api", {}).get("url"):
            return True
    except (OSError, ValueError):  # an unreadable profile: Prefect will report it itself
        return False
    return False


def use_running_prefect_server(api_url: str = DEFAULT_PREFECT_API_URL) -> str | None:
    """Before Prefect is imported: point this process at a Prefect server already running at the default address.

    With no API URL configured, every flow run starts and stops Prefect's temporary server, ~10 s on a
    2-core machine: most of a run with nothing to do. A server started once with `newsflow server`
    answers at `api_url` (default DEFAULT_PREFECT_API_URL); when it does, PREFECT_API_URL is set to it for this process
    (runs, logs and the writer slot go there, as with an explicit PREFECT_API_URL). Otherwise the user
    is told once, on stderr, why the run is slow to start and how to avoid it. Returns the URL used, or
    None (configured by the user, or the temporary server).
    """
    if _prefect_api_url_configured():
        return None
    from flows.prefect_server import server_healthy

    if server_healthy(api_url, timeout_s=1.0):
        os.environ["PREFECT_API_URL"] = api_url
        return api_url
    print(
        f"newsflow: no Prefect server at {api_url}; starting a temporary one for this run (~10 s). "
        "Start one once with `newsflow server` and runs skip that.",
        file=sys.stderr,
    )
    return None


# ---------------------------------------------------------------- run summaries

SUMMARY_KEYS = ["discovered", "fetched", "not_modified", "new", "updated", "unchanged", "duplicates", "entities", "failed"]


def summarise(result: dict[str, Any]) -> str:
    """One line of a run's counts."""
    return f"run {result.get('run_id')}: " + ", ".join(f"{k} {result.get(k, 0)}" for k in SUMMARY_KEYS)


@contextmanager
def readonly_warehouse(settings: Any) -> Iterator[Any]:
    """A read-only warehouse connection (warehouse.db.session)."""
    from warehouse import db

    with db.session(settings, read_only=True) as con:
        yield con


def print_failures(settings: Any, run_id: int) -> None:
    """The failed items of a run, grouped by stage and reason, on stderr."""
    from warehouse import queries

    with readonly_warehouse(settings) as con:
        rows = queries.run_failures(con, run_id)
    if rows:
        print("failed items (recorded in table `failures`; retryable ones are retried by later runs):", file=sys.stderr)
        print_table(["stage", "reason", "retryable", "count", "example"], rows, out=sys.stderr)
