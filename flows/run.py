"""Run lifecycle shared by every flow: run lock, migrations, crash marking, the `runs` row, worker pool."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from ingest.settings import Settings
from warehouse import db, loads, maintenance, queries

from flows import progress
from flows.batch import RunContext
from flows.compute import stage_pool
# One slot: runs started on different hosts against one Prefect server queue on it (visible in the UI)
# before they reach the warehouse's own lock. Created by `newsflow server` and `newsflow serve`.
from flows.prefect_server import WRITER_LIMIT, create_writer_limit

log = logging.getLogger("newsflow")

# How long acquiring the Prefect writer slot may take before the run says it is waiting (an uncontended
# acquisition is one local API call).
_SLOT_WAIT_NOTICE_S = 1.5


def _flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:  # outside a flow run (plain library use)
        return None


# `trigger` values a deployment run may carry only because they are defaults (the served deployments pass
# "schedule", the flow defaults to "cli"): Prefect decides for these; any other label is kept as given.
_IMPLICIT_TRIGGERS = {"cli", "schedule", "manual"}


def resolve_trigger(requested: str) -> str:
    """What started this run: 'schedule' or 'manual' for deployment runs (from Prefect), else `requested`.

    The `trigger` parameter alone cannot tell: `prefect deployment run` inherits the deployment's
    parameters (trigger="schedule"). Prefect's scheduler marks the runs it creates `auto_scheduled`;
    a run created by a user (CLI, UI, API, run_deployment) is not.
    """
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        flow_run = ctx.flow_run if ctx else None
    except Exception:  # outside a flow run (plain library use)
        flow_run = None
    if flow_run is None or flow_run.deployment_id is None:
        return requested
    if flow_run.auto_scheduled:
        return "schedule"
    return "manual" if requested in _IMPLICIT_TRIGGERS else requested


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()
    except Exception:
        return log


@contextmanager
def warehouse_run(
    settings: Settings, *, flow: str, trigger: str, params: dict[str, Any], sources: list[str] | None = None
) -> Iterator[RunContext]:
    """Hold the writer lock, bring the schema up to date, open a `runs` row, and close it with a status.

    Only one run writes at a time, wherever runs start: the lock is a flock beside a SQLite catalog and a
    PostgreSQL advisory lock for a Postgres catalog (see warehouse.db.run_lock). Either is released the
    instant its holder dies, unlike a Prefect concurrency slot, which stays taken until its lease
    expires. Discovery and planning happen after the lock is taken, so a waiting run sees everything
    the first one loaded and fetches nothing twice. Readers never wait: they read lake snapshots.
    A run found still 'running' once we hold the lock died without finishing: it is marked 'crashed'.
    At the end the run records its lake snapshot (time travel) and runs maintenance.
    """
    logger = _logger()

    def waiting(what: str) -> None:
        logger.info("%s; waiting for it to finish", what)
        progress.notice(f"{what}; waiting for it to finish")

    if settings.db_threads is None and settings.workers > 1 and not settings.dask_address:
        # The worker processes keep every core of this machine busy; DuckDB's own threads here would
        # only contend with them. One thread: 27.9 -> 25.9 s wall, 47 -> 43 CPU s on a 1,000-page ingest
        # (2 cores, medians of 3 interleaved runs). It holds for the process's lake instance (see
        # warehouse.db._instance), maintenance after the run included.
        settings = settings.model_copy(update={"db_threads": 1})
    db.check_legacy(settings)
    with prefect_writer_slot(logger), db.run_lock(settings, on_wait=waiting):
        started_at = datetime.now(timezone.utc)
        db.init_db(settings)
        with db.session(settings) as con, db.transaction(con):
            crashed = loads.mark_crashed_runs(con)
            run_id = loads.start_run(
                con, flow=flow, trigger=resolve_trigger(trigger), params=params, flow_run_id=_flow_run_id(), sources=sources
            )
        if crashed:
            logger.warning("marked %d earlier run(s) as crashed", crashed)
        # Local worker processes, or the flow's Dask cluster when NEWSFLOW_TASK_RUNNER=dask.
        pool = stage_pool(settings)
        ctx = RunContext(settings=settings, run_id=run_id, pool=pool, started_at=started_at)
        try:
            yield ctx
        except BaseException as exc:
            _finish(settings, run_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000], logger=logger)
            publish_run_artifact(settings, run_id, logger)
            raise
        else:
            # Every batch is processed: the workers exit (~0.2 s each) while the run finishes and maintains.
            pool.close(wait=False)
            _finish(settings, run_id, status="completed", error=None, logger=logger)
            publish_run_artifact(settings, run_id, logger, wrote_data=_wrote_data(ctx))
            with _search_sync_beside(settings, logger, enabled=_wrote_data(ctx)):
                if _wrote_data(ctx) or run_id % IDLE_RUNS_PER_MAINTENANCE == 0:
                    try:
                        report = maintenance.after_run(settings)
                        logger.info("maintenance: %s", report.summary())
                    except Exception as exc:  # maintenance is housekeeping: the run's data is committed already
                        logger.warning("maintenance after run %d skipped: %s", run_id, str(exc).splitlines()[0][:200])
                else:
                    logger.info("maintenance: skipped, the run loaded nothing (runs every %d runs regardless)", IDLE_RUNS_PER_MAINTENANCE)
        finally:
            pool.close()


@contextmanager
def _search_sync_beside(settings: Settings, logger: Any, *, enabled: bool) -> Iterator[None]:
    """Bring the search sidecar up to date in a thread while the body (maintenance) runs; never raises.

    The workers are idle by now, so the two share the machine: the sidecar is Python and SQLite, the
    maintenance DuckDB. The sync reads one snapshot and later syncs skip maintenance-only snapshots
    (flushes, merges, rewrites), so it sees the same articles before or after the merge. After a run
    that loaded nothing there is nothing new to index.
    """
    if not enabled:
        yield
        return
    # Imported here: warehouse.search_sidecar pulls in pyarrow, which a run that loads nothing never needs.
    from warehouse import search_sidecar

    thread = threading.Thread(target=search_sidecar.sync_after_run, args=(settings, logger), name="search-sidecar-sync")
    thread.start()
    try:
        yield
    finally:
        thread.join()


# A run that loaded nothing (a scheduled tick whose feeds answered 304) leaves only its `runs` row; its
# maintenance pass (~1 s) is skipped, except on every Nth run, which folds those rows in.
IDLE_RUNS_PER_MAINTENANCE = 10
_DATA_COUNTERS = ("fetched", "new", "updated", "unchanged", "duplicates", "entities", "failed")


def _wrote_data(ctx: RunContext) -> bool:
    """Whether the run stored pages, articles, duplicates, entities or failures (not just its run row)."""
    return any(ctx.counts.get(k, 0) for k in _DATA_COUNTERS)


def _configured_api_url() -> str | None:
    try:
        from prefect.settings import get_current_settings

        return get_current_settings().api.url or None
    except Exception:  # noqa: BLE001 - no Prefect configuration: nothing to coordinate with
        return None


def ensure_writer_limit() -> None:
    """Create the one-slot global concurrency limit for warehouse writers on the configured Prefect server."""
    url = _configured_api_url()
    if url:
        create_writer_limit(url)


@contextmanager
def prefect_writer_slot(logger: Any) -> Iterator[None]:
    """Hold the Prefect writer slot when a Prefect server is configured and has the limit; else do nothing.

    The warehouse lock (flock / PostgreSQL advisory lock) stays the guarantee: a slot of a killed
    process is only freed when its lease expires, while those locks are freed at once.
    """
    if not _configured_api_url():
        yield
        return
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(WRITER_LIMIT)
    except Exception:  # noqa: BLE001 - no such limit (or no server): the warehouse lock alone serialises writers
        yield
        return
    # Said once, at INFO, when the slot is taken or the acquisition has not returned within a second (two
    # runs started together both see a free slot). No timeout-and-retry: Prefect logs each timeout as an error.
    acquired = threading.Event()
    said = threading.Event()

    def say_waiting() -> None:
        if not acquired.is_set() and not said.is_set():
            said.set()
            logger.info("another newsflow run holds the Prefect concurrency slot %r; waiting for it", WRITER_LIMIT)
            progress.notice(f"another newsflow run holds the Prefect concurrency slot {WRITER_LIMIT!r}; waiting for it")

    if limit.active_slots >= limit.limit:
        say_waiting()
    timer = threading.Timer(_SLOT_WAIT_NOTICE_S, say_waiting)
    timer.daemon = True
    timer.start()
    try:
        # A lease-renewal hiccup must not kill a long run: the warehouse lock still serialises writers.
        with concurrency(WRITER_LIMIT, occupy=1, strict=True, raise_on_lease_renewal_failure=False):
            acquired.set()
            timer.cancel()
            yield
    finally:
        timer.cancel()


def log_stage(stage: str, **counts: Any) -> None:
    """One INFO line per stage with its counts, so the run's log in the Prefect UI tells what happened."""
    _logger().info("%s: %s", stage, ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items()))


def run_report_markdown(settings: Settings, run_id: int, *, wrote_data: bool = True) -> str:
    """The run's counts, per source, and failures by reason, as Markdown (the Prefect artifact).

    `wrote_data=False`: the run stored no page, article, duplicate or failure, so the per-source and
    failure tables are empty without asking (their two queries are ~80 ms of a no-op run).
    """
    with db.session(settings, read_only=True) as con:
        run = queries.run_row(con, run_id)
        per_source = queries.run_source_counts(con, run_id) if wrote_data else []
        failures = queries.run_failures(con, run_id) if wrote_data else []
    counts = " · ".join(f"{k} **{run.get(k, 0)}**" for k in loads.RUN_COUNTERS)
    lines = [
        f"## newsflow {run.get('flow')} run {run_id}: {run.get('status')}",
        "",
        f"trigger `{run.get('trigger')}`; {counts}",
    ]
    if run.get("error"):
        lines += ["", f"error: `{str(run['error'])[:500]}`"]
    lines += ["", "| source | pages stored | articles written | duplicates | failures |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {s} | {p} | {a} | {d} | {f} |" for s, p, a, d, f in per_source] or ["| (none) | 0 | 0 | 0 | 0 |"]
    lines += ["", "| stage | reason | retryable | count | example |", "| --- | --- | --- | ---: | --- |"]
    lines += [f"| {st} | {r} | {rt} | {n} | {ex} |" for st, r, rt, n, ex in failures] or ["| — | no failures | | 0 | |"]
    return "\n".join(lines)


def publish_run_artifact(settings: Settings, run_id: int, logger: Any, *, wrote_data: bool = True) -> None:
    """Attach the run report to the Prefect flow run (when inside one), so its page in the UI says what was loaded."""
    try:
        from prefect.artifacts import create_markdown_artifact
        from prefect.context import FlowRunContext

        if FlowRunContext.get() is None:
            return
        markdown = run_report_markdown(settings, run_id, wrote_data=wrote_data)
        create_markdown_artifact(markdown=markdown, key="newsflow-run-report", description=f"newsflow run {run_id}")
    except Exception as exc:  # noqa: BLE001 - a report must never fail the run it reports on
        logger.info("run report artifact skipped: %s", str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)


def _finish(settings: Settings, run_id: int, *, status: str, error: str | None, logger: Any) -> None:
    """Close the run row and record the snapshot that shows the lake as the run left it."""
    try:
        with db.session(settings) as con:
            with db.transaction(con):
                loads.finish_run(con, run_id, status=status, error=error)
            snapshot = db.last_committed_snapshot(con)
            with db.transaction(con):
                loads.set_run_snapshot(con, run_id, snapshot)
    except Exception as exc:
        if status == "completed":
            raise
        # The catalog may be what failed (e.g. PostgreSQL stopped): the next run marks this one crashed.
        logger.warning("could not record run %d as %s: %s", run_id, status, str(exc).splitlines()[0][:200])
