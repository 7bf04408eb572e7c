"""`newsflow maintain`: flush inlined rows, merge small files, expire old snapshots, delete unneeded files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows.cli._output import EXIT_OK, load_settings


def run(args: argparse.Namespace) -> int:
    """Run lake maintenance now (every run already does this at its end), waiting for any writing run."""
    from warehouse import db, maintenance

    settings = load_settings()

    def waiting(what: str) -> None:
        print(f"newsflow: {what}; waiting", file=sys.stderr)

    with db.run_lock(settings, on_wait=waiting):
        report = maintenance.maintain(settings, retention_days=args.older_than_days, full=True)
    print(f"maintenance of {db.target(settings).display}: {report.summary()}")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow maintain`."""
    s = sub.add_parser("maintain", help="compact the warehouse's files and expire old snapshots", description=run.__doc__)
    s.add_argument(
        "--older-than-days", type=float, default=None, metavar="DAYS",
        help="expire snapshots older than this (default $NEWSFLOW_SNAPSHOT_RETENTION_DAYS, 30); time travel reaches back this far",
    )
    s.set_defaults(func=run)
