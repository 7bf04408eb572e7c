"""Where a flow's work runs: threads in this process, or a Dask cluster (Settings.task_runner).

The choice is made when each flow run starts, not when the flow is defined, because served
deployments import the flow in a fresh process and tests change NEWSFLOW_* between runs. With
"dask", submitted tasks (fetch batches) and the CPU-heavy stages (clean+fingerprint, NER; via
StagePool's executor) run on the cluster; everything that writes DuckDB stays in the flow process,
because the warehouse file has exactly one writer.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.context import FlowRunContext
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from ingest.errors import ConfigError
from ingest.pipeline import StagePool, take_prestarted
from ingest.settings import Settings

log = logging.getLogger("newsflow")


def local_cluster_kwargs(settings: Settings) -> dict[str, Any]:
    """LocalCluster options when no dask_address is set: one single-threaded worker process per core we use."""
    # One thread per worker: trafilatura and spaCy hold the GIL, so more threads would not add speed.
    # Loopback and no dashboard: nothing listens beyond this machine and no extra port is taken.
    return {
        "n_workers": max(1, settings.workers),
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
    }


def quiet_dask_logs() -> None:
    """Keep distributed's start-up chatter (e.g. the jupyter-server-proxy hint) out of normal runs."""
    for name in ("distributed", "distributed.http.proxy", "distributed.scheduler", "distributed.nanny", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.WARNING)


def make_task_runner(settings: Settings) -> TaskRunner:
    """The concrete task runner for one flow run, per settings."""
    if settings.task_runner != "dask":
        return ThreadPoolTaskRunner()
    quiet_dask_logs()
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError(
            "NEWSFLOW_TASK_RUNNER=dask needs prefect-dask: pip install 'newsflow[dask]'", reason="missing_dask"
        ) from None
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(settings))


class SettingsTaskRunner(ThreadPoolTaskRunner):
    """Placeholder task runner for @flow: each run gets the runner Settings ask for at that moment."""

    def duplicate(self) -> TaskRunner:  # type: ignore[override]
        """Called by Prefect's flow engine at the start of every flow run."""
        return make_task_runner(Settings())


def current_dask_client() -> Any | None:
    """The Dask client of the running flow's DaskTaskRunner, or None (threads, or outside a flow)."""
    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx else None
    if runner is None or type(runner).__name__ != "DaskTaskRunner":
        return None
    # `.client` connects (or starts the local cluster) on first use; tasks may not have been submitted yet.
    return runner.client


def stage_pool(settings: Settings) -> StagePool:
    """A StagePool for the CPU stages: the flow's Dask cluster when it has one, else local worker processes."""
    client = current_dask_client()
    if client is None:
        if settings.task_runner == "dask" and FlowRunContext.get() is not None:
            log.warning("this flow does not use newsflow's task runner; CPU stages run in local processes")
        # The CLI may have started a worker before Prefect (ingest.pipeline.prestart): the run takes it over.
        return take_prestarted(settings.workers) or StagePool(settings.workers)
    # One chunk per Dask worker thread, so every worker gets a share of each batch.
    threads = sum(client.nthreads().values()) or 1
    return StagePool(threads, executor=client.get_executor(pure=False))
