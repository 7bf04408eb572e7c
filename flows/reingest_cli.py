"""`newsflow reingest`: the command-line face of flows/reingest.py.

Kept apart from the flow module so that building the parser (every `newsflow` command) does not
import Prefect; the flow is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

MODES = ("refetch", "reprocess")
WINDOW_ON = ("first_seen", "published")


def cmd_reingest(args: argparse.Namespace) -> int:
    """Re-ingest selected articles: fetch them again (refetch, default) or re-process their stored pages (reprocess)."""
    from flows import progress
    from flows.cli import EXIT_OK, EXIT_USAGE, CliError, _print_failures, _progress_reporter, _summarise
    from flows.reingest import reingest

    if args.until and not args.since:
        raise CliError("--until needs --since", EXIT_USAGE)
    if args.on != "first_seen" and not args.since:
        raise CliError("--on applies to --since/--until only", EXIT_USAGE)
    kwargs: dict[str, Any] = {
        "source": args.source, "url": args.url, "since": args.since, "until": args.until,
        "window_on": args.on, "failed": args.failed, "all": args.all, "mode": args.mode, "trigger": "cli",
    }
    if args.dry_run:
        result = reingest(**kwargs, dry_run=True)
        seeds = f" + {result['seeds']} seed files" if result["seeds"] else ""
        skipped = f"; {result['no_stored_page']} URLs have no stored page and would be skipped" if result["no_stored_page"] else ""
        print(
            f"would re-ingest {result['articles']} articles ({result['urls']} URLs{seeds}) "
            f"from {result['selection']} ({args.mode}){skipped}",
            file=sys.stderr,
        )
        return EXIT_OK
    bar, reporter = _progress_reporter()
    progress.install(reporter)
    try:
        if bar is not None:
            with bar:
                result = reingest(**kwargs)
        else:
            result = reingest(**kwargs)
    finally:
        progress.install(None)
    print(f"re-ingested {result['articles']} articles ({result['urls']} URLs) from {result['selection']} ({args.mode})", file=sys.stderr)
    print(_summarise(result), file=sys.stderr)
    _print_failures(result["run_id"])
    return EXIT_OK


def register_cli(sub: Any) -> None:
    """Add the `reingest` subcommand to the `newsflow` argparse subparsers."""
    s = sub.add_parser(
        "reingest",
        help="fetch again or re-process selected articles (source, URL pattern, time window, failed, all)",
        description=cmd_reingest.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "modes:\n"
            "  refetch    request every selected URL again WITHOUT If-None-Match/If-Modified-Since and\n"
            "             process it like `ingest` (default)\n"
            "  reprocess  no network: re-run clean, dedup and entities on the raw pages stored in the warehouse\n"
            "Both leave articles whose page, extractor version and NER model version are unchanged as they\n"
            "were. Seed articles are re-read from their seed files in both modes.\n"
            "Dates are YYYY-MM-DD or ISO datetimes (UTC when no zone is given); --until with a bare date\n"
            "includes that whole day.\n\n"
            "examples:\n"
            "  newsflow reingest --source harbour-gazette-rss --mode reprocess\n"
            "  newsflow reingest --url 'https://example.com/2024/*'\n"
            "  newsflow reingest --since 2024-03-01 --until 2024-03-07 --on published --dry-run\n"
            "  newsflow reingest --failed"
        ),
    )
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--source", metavar="NAME", help="every article of this source")
    which.add_argument("--url", metavar="URL_OR_PATTERN", help="articles whose URL (canonical, fetched or alias) matches; * is a wildcard")
    which.add_argument("--since", metavar="DATE", help="articles first seen (or published, see --on) at or after DATE")
    which.add_argument("--failed", action="store_true", help="failed article URLs (still retrying or given up)")
    which.add_argument("--all", action="store_true", help="every article in the warehouse")
    s.add_argument("--until", metavar="DATE", help="with --since: only before DATE (a bare date includes that day)")
    s.add_argument("--on", choices=WINDOW_ON, default="first_seen", help="the time --since/--until applies to (default first_seen)")
    s.add_argument(
        "--mode", choices=MODES, default="refetch",
        help="refetch: fetch again from the network (default); reprocess: re-run clean/dedup/NER on stored pages",
    )
    s.add_argument("--dry-run", action="store_true", help="print what would be re-ingested and change nothing")
    s.set_defaults(func=cmd_reingest)
