"""`newsflow` command line: a thin layer over the flows and the warehouse.

Library errors become one-line messages here; exit codes: 0 done (items may have failed, they are
recorded), 1 the run could not complete, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

import flows  # noqa: F401  (sets Prefect defaults before Prefect is imported)
from flows import deploy, reingest_cli

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """An error to print as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_RUN_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _settings():  # noqa: ANN202
    from ingest.settings import Settings

    return Settings()


# ---------------------------------------------------------------- output helpers


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return str(v).replace("\n", " ")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None, max_width: int = 80) -> None:
    """Print rows as an aligned plain-text table (cells cut at max_width characters)."""
    out = out or sys.stdout
    cells = [[_cell(v)[:max_width] for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def _json_default(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


# ---------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    """Create or migrate the warehouse and load the seed corpus."""
    from flows.seeds import load_seeds

    settings = _settings()
    counts = load_seeds(settings)
    print(
        f"warehouse {settings.db} ready; seeds: {counts.get('new', 0)} new, {counts.get('updated', 0)} updated, "
        f"{counts.get('unchanged', 0)} unchanged, {counts.get('entities', 0)} entity mentions",
        file=sys.stderr,
    )
    return EXIT_OK


def _progress_reporter():  # noqa: ANN202
    """A rich progress bar on an interactive terminal; None (quiet) otherwise."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True)
    tasks: dict[str, Any] = {}

    def report(stage: str, n: int) -> None:
        if stage.startswith("total:"):
            name = stage.split(":", 1)[1]
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=0)
            bar.update(tasks[name], total=(bar.tasks[tasks[name]].total or 0) + n)
            return
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=None)
        bar.advance(tasks[stage], n)

    return bar, report


def _summarise(result: dict[str, int]) -> str:
    keys = ["discovered", "fetched", "not_modified", "new", "updated", "unchanged", "duplicates", "entities", "failed"]
    return f"run {result.get('run_id')}: " + ", ".join(f"{k} {result.get(k, 0)}" for k in keys)


def _print_failures(run_id: int) -> None:
    from warehouse import db, queries

    settings = _settings()
    with db.session(settings.db, read_only=True, timeout_s=settings.db_lock_timeout_s) as con:
        rows = queries.run_failures(con, run_id)
    if rows:
        print("failed items (recorded in table `failures`; retryable ones are retried by later runs):", file=sys.stderr)
        print_table(["stage", "reason", "retryable", "count", "example"], rows, out=sys.stderr)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Run the ingest flow over configured or ad-hoc sources."""
    from flows import progress
    from flows.ingest import ingest, select_sources

    # Validate the configuration before starting Prefect, so a bad sources.toml is one clear line.
    select_sources(_settings(), args.source or None, args.feed or None, args.urls, args.path)
    bar, reporter = _progress_reporter()
    progress.install(reporter)
    try:
        if bar is not None:
            with bar:
                result = ingest(sources=args.source or None, feeds=args.feed or None, urls_file=args.urls, path=args.path)
        else:
            result = ingest(sources=args.source or None, feeds=args.feed or None, urls_file=args.urls, path=args.path)
    finally:
        progress.install(None)
    print(_summarise(result), file=sys.stderr)
    _print_failures(result["run_id"])
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print the last runs with their counts and current failures by reason."""
    from warehouse import db, queries

    settings = _settings()
    with db.session(settings.db, read_only=True, timeout_s=settings.db_lock_timeout_s) as con:
        runs = queries.last_runs(con, args.limit)
        fails = queries.failures_by_reason(con)
        counts = queries.table_counts(con)
    print(f"warehouse {settings.db}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("\nlast runs:")
    cols = ["id", "flow", "trigger", "status", "started_at", "seconds", "discovered", "fetched", "not_modified", "new", "updated", "duplicates", "entities", "failed"]
    print_table(cols, [[r[c] for c in cols] for r in runs])
    print("\nfailures by reason (URLs still retrying / given up):")
    if fails:
        print_table(["stage", "reason", "retrying", "gave_up"], [[f["stage"], f["reason"], f["retrying"], f["gave_up"]] for f in fails])
    else:
        print("(none)")
    return EXIT_OK


def cmd_sql(args: argparse.Namespace) -> int:
    """Run one read-only query against the warehouse and print the result."""
    import duckdb

    from warehouse import db
    from warehouse.readonly import ReadOnlyViolation, run_readonly

    settings = _settings()
    try:
        columns, rows = run_readonly(settings.db, args.query, timeout_s=settings.db_lock_timeout_s)
    except ReadOnlyViolation as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except db.WarehouseBusy as exc:
        raise CliError(f"{exc} (retry later)") from None
    except FileNotFoundError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except duckdb.Error as exc:  # a bad query: DuckDB's message is already one clear line
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows([[_json_default(v) if isinstance(v, (datetime, date, Decimal, bytes)) else v for v in r] for r in rows])
    elif args.format == "json":
        json.dump([dict(zip(columns, r)) for r in rows], sys.stdout, default=_json_default, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        print_table(columns, rows, max_width=args.max_width)
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return EXIT_OK


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of the `newsflow` command (every command has --help)."""
    p = argparse.ArgumentParser(
        prog="newsflow",
        description="Incremental news ingestion into DuckDB. Settings come from NEWSFLOW_* environment variables.",
    )
    p.add_argument("--db", help="warehouse file (default: $NEWSFLOW_DB or ./newsflow.duckdb)")
    p.add_argument("--sources", help="sources.toml to use (default: $NEWSFLOW_SOURCES_FILE or the bundled seeds/sources.toml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="create/migrate the warehouse and load the seed articles", description=cmd_init.__doc__)
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("ingest", help="ingest sources (default: all enabled sources in sources.toml)", description=cmd_ingest.__doc__)
    s.add_argument("--source", action="append", metavar="NAME", help="a configured source name (repeatable)")
    s.add_argument("--feed", action="append", metavar="URL", help="an RSS/Atom feed URL to ingest ad hoc (repeatable)")
    s.add_argument("--urls", metavar="FILE", help="a text file with one article URL per line")
    s.add_argument("--path", metavar="DIR", help="a directory of saved HTML pages, or a .warc/.warc.gz file")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("status", help="last runs with counts, and failures by reason", description=cmd_status.__doc__)
    s.add_argument("--limit", type=int, default=10, help="how many runs to show (default 10)")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("sql", help="run a read-only SQL query and print the result", description=cmd_sql.__doc__)
    s.add_argument("query", help='SQL, e.g. "select count(*) from articles"')
    s.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format (default table)")
    s.add_argument("--max-width", type=int, default=80, help="cut table cells at this many characters (default 80)")
    s.set_defaults(func=cmd_sql)
    reingest_cli.register_cli(sub)  # newsflow reingest
    deploy.register_cli(sub)  # newsflow server, serve
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `newsflow` console script."""
    args = build_parser().parse_args(argv)
    # Settings are read from the environment once, at the edge: options override the variables.
    if args.db:
        os.environ["NEWSFLOW_DB"] = args.db
    if args.sources:
        os.environ["NEWSFLOW_SOURCES_FILE"] = args.sources
    from ingest.errors import NewsflowError

    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"newsflow: error: {exc}", file=sys.stderr)
        return exc.code
    except NewsflowError as exc:
        print(f"newsflow: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if type(exc).__name__ == "ConfigError" else EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("newsflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a run that could not complete: one clear line, details with NEWSFLOW_DEBUG=1
        if os.environ.get("NEWSFLOW_DEBUG"):
            raise
        print(f"newsflow: error: run could not complete: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
