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
    from flows.prefect_server import database_description, server_healthy, start_server, stop_process, wait_healthy

    api_url = f"http://{args.host}:{args.port}/api"
    if server_healthy(api_url):
        raise CliError(f"a Prefect server already answers at {api_url}; use it (export PREFECT_API_URL={api_url}) or pick --port")
    # SIGTERM (kill, systemd, a test harness) must also stop the child server, not orphan it.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    proc, api_url = start_server(args.host, args.port, ui=args.ui)
    try:
        try:
            took = wait_healthy(proc, api_url, timeout_s=args.startup_timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise CliError(f"{exc}; is port {args.port} free? pick another with --port") from None
        print(f"Prefect server ready after {took:.1f}s, database {database_description()}", file=sys.stderr)
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
    s.add_argument("--ui", action="store_true", help="also serve the Prefect web UI")
    s.add_argument("--startup-timeout", type=float, default=120.0, metavar="SECONDS", help="how long to wait for the server to become healthy (default 120)")
    s.set_defaults(func=run)
