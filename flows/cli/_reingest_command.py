"""`newsflow reingest`: the command-line face of flows/reingest.py (refetch or reprocess a selection).

The selection, its dates and the source name are checked here before Prefect starts; `--dry-run`
answers from a read-only warehouse connection and never starts Prefect.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows.cli._output import (
    EXIT_OK, flow_display, imports_without_gc, load_settings, prestarted_worker, print_failures, readonly_warehouse, summarise, usage_error,
)

# The choices of flows.inputs.MODES / WINDOW_ON, spelled out so that building the parser imports
# nothing (tests/test_cli_validation.py checks they stay equal).
MODES = ("refetch", "reprocess")
WINDOW_ON = ("first_seen", "published")


def run(args: argparse.Namespace) -> int:
    """Re-ingest selected articles: fetch them again (refetch, default) or re-process their stored pages (reprocess)."""
    from flows.inputs import Selector, check_models, check_reingest_source, selection_counts

    if args.until and not args.since:
        raise usage_error("--until needs --since")
    if args.on != "first_seen" and not args.since:
        raise usage_error("--on applies to --since/--until only")
    settings = load_settings()
    selector = Selector.of(source=args.source, url=args.url, since=args.since, until=args.until, window_on=args.on, failed=args.failed, all=args.all)
    if args.dry_run or selector.source:
        # Read-only: what the selection touches (and whether an unknown --source selects nothing).
        with readonly_warehouse(settings) as con:
            targets = selector.select(con)
        if selector.source:
            check_reingest_source(settings, selector.source, targets)
        if args.dry_run:
            counts = selection_counts(targets, args.mode)
            seeds = f" + {counts['seeds']} seed files" if counts["seeds"] else ""
            skipped = f"; {counts['no_stored_page']} URLs have no stored page and would be skipped" if counts["no_stored_page"] else ""
            print(
                f"would re-ingest {counts['articles']} articles ({counts['urls']} URLs{seeds}) "
                f"from {selector.describe()} ({args.mode}){skipped}",
                file=sys.stderr,
            )
            return EXIT_OK
    check_models(settings)
    kwargs: dict[str, Any] = {
        "source": args.source, "url": args.url, "since": args.since, "until": args.until,
        "window_on": args.on, "failed": args.failed, "all": args.all, "mode": args.mode, "trigger": "cli",
    }
    with prestarted_worker(settings), flow_display("starting Prefect (reingest)"):
        with imports_without_gc():
            from flows.reingest import reingest

        result = reingest(**kwargs)
    print(f"re-ingested {result['articles']} articles ({result['urls']} URLs) from {result['selection']} ({args.mode})", file=sys.stderr)
    print(summarise(result), file=sys.stderr)
    print_failures(settings, result["run_id"])
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow reingest`."""
    s = sub.add_parser(
        "reingest",
        help="fetch again or re-process selected articles (source, URL pattern, time window, failed, all)",
        description=run.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "modes:\n"
            "  refetch    request every selected URL again WITHOUT If-None-Match/If-Modified-Since and\n"
            "             process it like `ingest` (default)\n"
            "  reprocess  no network: re-run clean, dedup and entities on the raw pages stored in the warehouse\n"
            "Both leave articles whose page, extractor version and NER model version are unchanged as they\n"
            "were. Seed articles are re-read from their seed files in both modes.\n"
            "Dates: YYYY-MM-DD, ISO datetimes (UTC when no zone is given) or a time ago (90m, 36h, 2d, 1w);\n"
            "--until with a bare date includes that whole day.\n\n"
            "examples:\n"
            "  newsflow reingest --source harbour-gazette-rss --mode reprocess\n"
            "  newsflow reingest --url 'https://example.com/2024/*'\n"
            "  newsflow reingest --since 2024-03-01 --until 2024-03-07 --on published --dry-run\n"
            "  newsflow reingest --since 36h --dry-run\n"
            "  newsflow reingest --failed"
        ),
    )
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--source", metavar="NAME", help="every article of this source")
    which.add_argument("--url", metavar="URL_OR_PATTERN", help="articles whose URL (canonical, fetched or alias) matches; * is a wildcard")
    which.add_argument("--since", metavar="DATE", help="articles first seen (or published, see --on) at or after DATE (e.g. 2024-03-01, 2d)")
    which.add_argument("--failed", action="store_true", help="failed article URLs (still retrying or given up)")
    which.add_argument("--all", action="store_true", help="every article in the warehouse")
    s.add_argument("--until", metavar="DATE", help="with --since: only before DATE (a bare date includes that day)")
    s.add_argument("--on", choices=WINDOW_ON, default="first_seen", help="the time --since/--until applies to (default first_seen)")
    s.add_argument(
        "--mode", choices=MODES, default="refetch",
        help="refetch: fetch again from the network (default); reprocess: re-run clean/dedup/NER on stored pages",
    )
    s.add_argument("--dry-run", action="store_true", help="print what would be re-ingested and change nothing")
    s.set_defaults(func=run)
