"""`newsflow sql`: read-only SQL against the warehouse (no Prefect)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from flows.cli._output import EXIT_OK, CliError, csv_value, json_value, load_settings, print_table, usage_error


def run(args: argparse.Namespace) -> int:
    """Run one read-only query against the warehouse and print the result."""
    import duckdb

    from warehouse.readonly import ReadOnlyViolation, run_readonly

    settings = load_settings()
    try:
        columns, rows = run_readonly(settings.db, args.query, timeout_s=settings.db_lock_timeout_s)
    except ReadOnlyViolation as exc:
        raise usage_error(str(exc)) from None
    except FileNotFoundError as exc:
        raise usage_error(str(exc)) from None
    except duckdb.Error as exc:  # a bad query: DuckDB's message is already one clear line
        if "lock" in str(exc).lower():
            raise
        raise CliError(" ".join(str(exc).split()), 2) from None
    if args.format == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        w.writerows([[csv_value(v) for v in r] for r in rows])
    elif args.format == "json":
        json.dump([dict(zip(columns, r)) for r in rows], sys.stdout, default=json_value, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        print_table(columns, rows, max_width=args.max_width)
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow sql`."""
    s = sub.add_parser("sql", help="run a read-only SQL query and print the result", description=run.__doc__)
    s.add_argument("query", help='SQL, e.g. "select count(*) from articles"')
    s.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default table)")
    s.add_argument("--max-width", type=int, default=80, help="cut table cells at this many characters (default 80; 0: never cut)")
    s.set_defaults(func=run)
