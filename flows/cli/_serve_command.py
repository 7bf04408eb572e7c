"""`newsflow serve`: register the scheduled ingest deployments (and reingest) and run them until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows.cli._output import EXIT_OK, CliError, load_settings, usage_error

DEFAULT_SERVE_LIMIT = 4


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def run(args: argparse.Namespace) -> int:
    """Register the ingest/reingest deployments on the Prefect server and run their flow runs until Ctrl-C."""
    from flows import deploy
    from flows.prefect_server import server_healthy

    # Configuration first (sources, schedules), so a mistake is one line before Prefect is touched.
    settings = load_settings()
    deploy.scheduled_sources(settings, args.source, args.interval)
    api_url = deploy.configured_api_url()
    if not api_url:
        raise usage_error(
            "PREFECT_API_URL is not set: start a server with `newsflow server` and export the URL it prints "
            "(or point PREFECT_API_URL at an existing Prefect server, e.g. a Postgres-backed one)"
        )
    if not server_healthy(api_url, timeout_s=5.0):
        raise CliError(f"no Prefect server answers at PREFECT_API_URL={api_url}; start one with `newsflow server`")
    deploy.pin_absolute_paths(settings)
    settings = load_settings()
    deployments = deploy.build_deployments(settings, args.source, args.interval)
    from flows.run import WRITER_LIMIT, ensure_writer_limit
    from warehouse import db

    # Runs on other hosts that use this server queue on one slot before they reach the warehouse lock.
    ensure_writer_limit()

    where = db.target(settings).display  # never the catalog string itself (it may hold a password)
    print(f"serving {len(deployments)} deployment(s) from {api_url} (warehouse {where}); Ctrl-C stops:", file=sys.stderr)
    for d in deployments:
        print(deploy.describe(d), file=sys.stderr)
    print(f"  writers queue on the Prefect global concurrency limit {WRITER_LIMIT!r} (1 slot)", file=sys.stderr)
    if deploy.reingest_flow() is None:
        print("  (no reingest flow in this installation: reingest deployment skipped)", file=sys.stderr)
    sys.stderr.flush()
    from prefect import serve

    # Concurrent runs never write together (they queue on the Prefect slot WRITER_LIMIT and the warehouse
    # lock, see flows/run.py);
    # `limit` only caps how many flow-run processes may be alive at once on this machine.
    serve(*deployments, limit=args.limit, print_starting_message=False)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow serve`."""
    s = sub.add_parser(
        "serve",
        help="register scheduled ingest deployments (and reingest) and run them until Ctrl-C",
        description=run.__doc__ + " Needs PREFECT_API_URL pointing at a running server (see `newsflow server`).",
    )
    s.add_argument("--source", action="append", metavar="NAME", help="serve only this source (repeatable; default: every enabled source with a schedule)")
    s.add_argument("--interval", type=_positive_int, metavar="SECONDS", help="run every source every SECONDS instead of its own schedule")
    s.add_argument("--limit", type=int, default=DEFAULT_SERVE_LIMIT, help=f"most flow-run processes alive at once (default {DEFAULT_SERVE_LIMIT}); runs still write one at a time")
    s.set_defaults(func=run)
