"""`newsflow report`: write one self-contained HTML report of the warehouse (read-only, no Prefect)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flows.cli._output import EXIT_OK, load_settings


def run(args: argparse.Namespace) -> int:
    """Write an HTML report: articles per day per source, unique stories vs duplicates, top entities and
    their trend, source health (silent sources highlighted) and recent failures. One file, charts
    inline, nothing fetched when it is opened."""
    from flows.report import write_report

    data = write_report(load_settings(), Path(args.out))
    t = data["totals"]
    silent = sum(1 for h in data["source_health"] if h["silent"])
    print(
        f"wrote {args.out}: {t['articles']} articles ({t['unique_stories']} unique stories), {t['sources']} sources "
        f"({silent} silent), {len(data['failures'])} recent failures",
        file=sys.stderr,
    )
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow report`."""
    s = sub.add_parser("report", help="write a self-contained HTML report (charts, source health, failures)", description=run.__doc__)
    s.add_argument("--out", default="report.html", metavar="FILE", help="where to write it (default report.html)")
    s.set_defaults(func=run)
