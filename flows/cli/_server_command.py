"""`newsflow server`: a Prefect server on loopback for scheduled runs, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from flows.cli._output import EXIT_OK, CliError


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Run a Prefect server (default SQLite database under PREFECT_HOME) on loopback until Ctrl-C."""
    import os

    from flows.prefect_server import (
        create_writer_limit,
        database_description,
        server_healthy,
        start_server,
        stop_process,
        wait_healthy,
    )

    api_url = f"http://{args.host}:{args.port}/api"
    if server_healthy(api_url):
        raise CliError(f"a Prefect server already answers at {api_url}; use it (export PREFECT_API_URL={api_url}) or pick --port")
    # SIGTERM (kill, systemd, a test harness) must also stop the child server, not orphan it.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    env = dict(os.environ)
    if args.database:
        # The same PostgreSQL as the lake's catalog can hold Prefect's own database (another database in it).
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = args.database
    proc, api_url = start_server(args.host, args.port, ui=args.ui, env=env)
    try:
        try:
            took = wait_healthy(proc, api_url, timeout_s=args.startup_timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise CliError(f"{exc}; is port {args.port} free? pick another with --port") from None
        create_writer_limit(api_url)
        print(f"Prefect server ready after {took:.1f}s, database {database_description(args.database)}", file=sys.stderr)
        if args.ui:
            print(f"Prefect UI: http://{args.host}:{args.port}/", file=sys.stderr)
        print(f"PREFECT_API_URL={api_url}")
        print(f"in another shell:  export PREFECT_API_URL={api_url}; newsflow serve   (Ctrl-C here stops the server)", file=sys.stderr)
        sys.stdout.flush()
        proc.wait()
        raise CliError(f"prefect server exited with code {proc.returncode}; run `newsflow server` again")
    except KeyboardInterrupt:
        print("newsflow: stopping the Prefect server", file=sys.stderr)
        return EXIT_OK
    finally:
        stop_process(proc)
        signal.signal(signal.SIGTERM, previous)


def register(sub: Any) -> None:
    """Add `newsflow server`."""
    s = sub.add_parser("server", help="run a Prefect server on loopback for scheduled runs", description=run.__doc__)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=4200, help="port (default 4200)")
    s.add_argument("--no-ui", dest="ui", action="store_false", help="do not serve the Prefect web UI (served by default)")
    s.add_argument(
        "--database", metavar="URL",
        help="Prefect's database, e.g. postgresql+asyncpg://user:pw@host/prefect (default: SQLite under PREFECT_HOME)",
    )
    s.add_argument("--startup-timeout", type=float, default=120.0, metavar="SECONDS", help="how long to wait for the server to become healthy (default 120)")
    s.set_defaults(func=run)
