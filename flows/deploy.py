"""Scheduled runs: the deployments `newsflow serve` registers (the command is flows/cli/_serve_command.py).

`serve` registers one `ingest` deployment per scheduled source in sources.toml (parameters
sources=[name], trigger="schedule") plus an unscheduled `reingest` deployment, and runs their flow
runs in this machine's processes until Ctrl-C. Schedules need a real Prefect server: the ephemeral
API that `newsflow ingest` starts has no scheduler.

Prefect is imported inside the functions: importing this module must stay cheap. The server process
behind `newsflow server` lives in flows/prefect_server.py.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flows  # noqa: F401  (sets Prefect defaults before Prefect is imported)
from ingest.errors import ConfigError
from ingest.settings import Settings
from ingest.sources import Source, load_sources

# ---------------------------------------------------------------- deployments


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile, if any."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def scheduled_sources(settings: Settings, names: Sequence[str] | None, interval: int | None) -> list[Source]:
    """The sources to serve: the named ones, else every enabled source that has a schedule."""
    config = load_sources(settings.sources_path)
    if not names:
        chosen = [s for s in config.sources if s.enabled and (s.schedule is not None or interval)]
        if not chosen:
            raise ConfigError(f"no enabled source in {settings.sources_path} has a schedule; add one or pass --interval", reason="no_schedule")
        return chosen
    chosen = [config.get(n) for n in names]
    for s in chosen:
        if s.schedule is None and not interval:
            raise ConfigError(f"source {s.name!r} has no schedule in {settings.sources_path}; add one or pass --interval", reason="no_schedule")
    return chosen


def reingest_flow() -> Any | None:
    """The `reingest` flow if this installation has it (flows/reingest.py), else None."""
    try:
        from flows.reingest import reingest
    except ModuleNotFoundError as exc:
        if exc.name == "flows.reingest":
            return None
        raise
    return reingest


def build_deployments(settings: Settings, names: Sequence[str] | None = None, interval: int | None = None) -> list[Any]:
    """Runner deployments: `ingest/<source>` per scheduled source, and an unscheduled `reingest/reingest`."""
    from prefect.types.entrypoint import EntrypointType

    from flows.ingest import ingest

    # Module entrypoints: flow-run processes import the installed package, wherever `serve` was started.
    common: dict[str, Any] = {"tags": ["newsflow"], "entrypoint_type": EntrypointType.MODULE_PATH}
    deployments = []
    for s in scheduled_sources(settings, names, interval):
        if interval:
            when: dict[str, Any] = {"interval": interval}
        elif s.schedule and s.schedule.cron:
            when = {"cron": s.schedule.cron}  # evaluated in UTC
        else:
            when = {"interval": s.schedule.interval_seconds}  # type: ignore[union-attr]
        deployments.append(
            ingest.to_deployment(
                name=s.name,
                parameters={"sources": [s.name], "trigger": "schedule"},
                description=f"Ingest source {s.name!r} ({s.kind.value} {s.location}).",
                **when,
                **common,
            )
        )
    flow = reingest_flow()
    if flow is not None:
        deployments.append(flow.to_deployment(name="reingest", description="Re-process stored pages; run on demand.", **common))
    return deployments


def describe(deployment: Any) -> str:
    """One line per deployment: flow/name and its schedule."""
    scheds = []
    for sched in deployment.schedules or []:
        s = sched.schedule
        if getattr(s, "cron", None):
            scheds.append(f"cron {s.cron!r} UTC")
        elif getattr(s, "interval", None):
            scheds.append(f"every {int(s.interval.total_seconds())}s")
    return f"  {deployment.flow_name}/{deployment.name}: {', '.join(scheds) or 'on demand (prefect deployment run)'}"


def pin_absolute_paths(settings: Settings) -> None:
    """Pin NEWSFLOW_* paths to absolute ones, so flow-run processes find the same files from any cwd."""
    if settings.catalog.startswith("sqlite:"):
        os.environ["NEWSFLOW_CATALOG"] = "sqlite:" + str(Path(settings.catalog.removeprefix("sqlite:")).expanduser().resolve())
    if "://" not in settings.data_path:  # a local directory (not s3:// or the like)
        os.environ["NEWSFLOW_DATA_PATH"] = str(Path(settings.data_path).expanduser().resolve()) + "/"
    os.environ["NEWSFLOW_SEEDS_DIR"] = str(settings.seeds_dir.resolve())
    os.environ["NEWSFLOW_SOURCES_FILE"] = str(settings.sources_path.resolve())
