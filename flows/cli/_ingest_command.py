"""`newsflow ingest`: run the ingest flow over configured or ad-hoc sources."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows.cli._output import (
    EXIT_OK, flow_display, imports_without_gc, load_settings, prestarted_worker, print_failures, summarise, use_running_prefect_server,
)


def run(args: argparse.Namespace) -> int:
    """Run the ingest flow over configured or ad-hoc sources."""
    with imports_without_gc():
        from flows.inputs import check_models, select_sources

    settings = load_settings()
    # Everything checkable offline is checked before Prefect starts: paths, URL lists, feeds, source
    # names, sources.toml (schedules included). A mistake is one line, exit 2, nothing written.
    select_sources(settings, args.source or None, args.feed or None, args.urls, args.path)
    check_models(settings)
    use_running_prefect_server()  # before Prefect loads: a running `newsflow server` spares its temporary server
    with prestarted_worker(settings), flow_display("starting Prefect (ingest)"):
        with imports_without_gc():
            from flows.ingest import ingest

        result = ingest(sources=args.source or None, feeds=args.feed or None, urls_file=args.urls, path=args.path)
    print(summarise(result), file=sys.stderr)
    if result.get("failed"):  # every failures row of the run is counted there: no query for a clean run
        print_failures(settings, result["run_id"])
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow ingest`."""
    s = sub.add_parser("ingest", help="ingest sources (default: all enabled sources in sources.toml)", description=run.__doc__)
    s.add_argument("--source", action="append", metavar="NAME", help="a configured source name (repeatable)")
    s.add_argument("--feed", action="append", metavar="URL", help="an RSS/Atom feed URL (or local feed file) to ingest ad hoc (repeatable)")
    s.add_argument("--urls", metavar="FILE", help="a text file with one article URL per line")
    s.add_argument("--path", metavar="DIR", help="a directory of saved HTML pages, or a .warc/.warc.gz file")
    s.set_defaults(func=run)
