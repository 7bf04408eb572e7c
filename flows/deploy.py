"""Scheduled runs: `newsflow server` (a Prefect server on loopback) and `newsflow serve` (deployments).

`serve` registers one `ingest` deployment per scheduled source in sources.toml (parameters
sources=[name], trigger="schedule") plus an unscheduled `reingest` deployment, and runs their flow
runs in this machine's processes until Ctrl-C. Schedules need a real Prefect server: the ephemeral
API that `newsflow ingest` starts has no scheduler.

Prefect is imported inside the commands: building the CLI parser must stay cheap for every command.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import flows  # noqa: F401  (sets Prefect defaults before Prefect is imported)
from ingest.errors import ConfigError
from ingest.settings import Settings
from ingest.sources import Source, load_sources

# Variables every process we start gets: this machine has no internet, and a failed telemetry call prints errors.
QUIET_PREFECT_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
DEFAULT_SERVE_LIMIT = 4


def _cli_error(message: str, usage: bool = False) -> Exception:
    from flows.cli import EXIT_RUN_FAILED, EXIT_USAGE, CliError

    return CliError(message, EXIT_USAGE if usage else EXIT_RUN_FAILED)


# ---------------------------------------------------------------- server


def server_healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when a Prefect API answers its health check at `api_url` (…/api)."""
    import httpx

    try:
        return httpx.get(api_url.rstrip("/") + "/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(host: str, port: int, *, ui: bool = False, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `prefect server start` as a child process; return it and its API URL (not yet waited for)."""
    api_url = f"http://{host}:{port}/api"
    child_env = {**(env if env is not None else os.environ), **QUIET_PREFECT_ENV}
    # The server's own client calls must go to itself, whatever the user's shell points at.
    child_env["PREFECT_API_URL"] = api_url
    child_env["PREFECT_UI_ENABLED"] = "true" if ui else "false"
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    # stdout only carries Prefect's banner (we print our own); errors (port taken, bad database) go to stderr.
    proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return proc, api_url


def wait_healthy(proc: subprocess.Popen, api_url: str, timeout_s: float = 120.0) -> float:
    """Wait until the server answers /health; return the seconds it took (raise if it exits or times out)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode} before becoming healthy")
        if server_healthy(api_url, timeout_s=1.0):
            return time.monotonic() - started
        time.sleep(0.25)
    raise TimeoutError(f"prefect server not healthy at {api_url} after {timeout_s:.0f}s")


def stop_process(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL, waiting for the child each time."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def cmd_server(args: argparse.Namespace) -> int:
    """Run a Prefect server (default SQLite database under PREFECT_HOME) on loopback until Ctrl-C."""
    api_url = f"http://{args.host}:{args.port}/api"
    if server_healthy(api_url):
        raise _cli_error(f"a Prefect server already answers at {api_url}; use it (export PREFECT_API_URL={api_url}) or pick --port")
    # SIGTERM (kill, systemd, a test harness) must also stop the child server, not orphan it.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    proc, api_url = start_server(args.host, args.port, ui=args.ui)
    try:
        try:
            took = wait_healthy(proc, api_url, timeout_s=args.startup_timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise _cli_error(f"{exc} (is port {args.port} free?)") from None
        from prefect.settings import get_current_settings

        db_url = get_current_settings().server.database.connection_url
        db_shown = db_url.get_secret_value() if db_url is not None else "sqlite under PREFECT_HOME"
        print(f"Prefect server ready after {took:.1f}s, database {db_shown}", file=sys.stderr)
        print(f"PREFECT_API_URL={api_url}")
        print(f"in another shell:  export PREFECT_API_URL={api_url}; newsflow serve   (Ctrl-C here stops the server)", file=sys.stderr)
        sys.stdout.flush()
        proc.wait()
        raise _cli_error(f"prefect server exited with code {proc.returncode}")
    except KeyboardInterrupt:
        print("newsflow: stopping the Prefect server", file=sys.stderr)
        return 0
    finally:
        stop_process(proc)
        signal.signal(signal.SIGTERM, previous)


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


def _absolute_paths(settings: Settings) -> None:
    """Pin NEWSFLOW_* paths to absolute ones, so flow-run processes find the same files from any cwd."""
    os.environ["NEWSFLOW_DB"] = str(settings.db.resolve())
    os.environ["NEWSFLOW_SEEDS_DIR"] = str(settings.seeds_dir.resolve())
    os.environ["NEWSFLOW_SOURCES_FILE"] = str(settings.sources_path.resolve())


def cmd_serve(args: argparse.Namespace) -> int:
    """Register the ingest/reingest deployments on the Prefect server and run their flow runs until Ctrl-C."""
    api_url = configured_api_url()
    if not api_url:
        raise _cli_error(
            "PREFECT_API_URL is not set: start a server with `newsflow server` and export the URL it prints "
            "(or point PREFECT_API_URL at an existing Prefect server, e.g. a Postgres-backed one)",
            usage=True,
        )
    if not server_healthy(api_url, timeout_s=5.0):
        raise _cli_error(f"no Prefect server answers at PREFECT_API_URL={api_url}; start one with `newsflow server`")
    settings = Settings()
    _absolute_paths(settings)
    settings = Settings()
    deployments = build_deployments(settings, args.source, args.interval)
    print(f"serving {len(deployments)} deployment(s) from {api_url} (warehouse {settings.db}); Ctrl-C stops:", file=sys.stderr)
    for d in deployments:
        print(describe(d), file=sys.stderr)
    if reingest_flow() is None:
        print("  (no reingest flow in this installation: reingest deployment skipped)", file=sys.stderr)
    sys.stderr.flush()
    from prefect import serve

    # Concurrent runs never write together (they queue on the warehouse run lock, see flows/run.py);
    # `limit` only caps how many flow-run processes may be alive at once on this machine.
    serve(*deployments, limit=args.limit, print_starting_message=False)
    return 0


# ---------------------------------------------------------------- CLI


def register_cli(sub: Any) -> None:
    """Add the `server` and `serve` subcommands to the `newsflow` parser."""
    s = sub.add_parser("server", help="run a Prefect server on loopback for scheduled runs", description=cmd_server.__doc__)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=4200, help="port (default 4200)")
    s.add_argument("--ui", action="store_true", help="also serve the Prefect web UI")
    s.add_argument("--startup-timeout", type=float, default=120.0, metavar="SECONDS", help="how long to wait for the server to become healthy (default 120)")
    s.set_defaults(func=cmd_server)

    s = sub.add_parser(
        "serve",
        help="register scheduled ingest deployments (and reingest) and run them until Ctrl-C",
        description=cmd_serve.__doc__ + " Needs PREFECT_API_URL pointing at a running server (see `newsflow server`).",
    )
    s.add_argument("--source", action="append", metavar="NAME", help="serve only this source (repeatable; default: every enabled source with a schedule)")
    s.add_argument("--interval", type=_positive_int, metavar="SECONDS", help="run every source every SECONDS instead of its own schedule")
    s.add_argument("--limit", type=int, default=DEFAULT_SERVE_LIMIT, help=f"most flow-run processes alive at once (default {DEFAULT_SERVE_LIMIT}); runs still write one at a time")
    s.set_defaults(func=cmd_serve)

