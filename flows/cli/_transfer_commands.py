"""`newsflow import DIR` and `newsflow export --duckdb FILE | --parquet DIR`: data in and out of the lake."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flows.cli._output import EXIT_OK, EXIT_RUN_FAILED, load_settings, print_table, usage_error


def run_import(args: argparse.Namespace) -> int:
    """Load an `EXPORT DATABASE 'dir' (FORMAT parquet)` of a newsflow 0.1 warehouse into a new lake; check row counts."""
    from warehouse import db, transfer

    src = Path(args.directory)
    if not (src / "schema.sql").is_file():
        raise usage_error(f"{src} is not an EXPORT DATABASE directory (no schema.sql in it)")
    settings = load_settings()
    with db.run_lock(settings, on_wait=lambda what: print(f"newsflow: {what}; waiting", file=sys.stderr)):
        copies = transfer.import_export(settings, src)
    print_table(["table", "rows in export", "rows imported"], [[c.table, c.source_rows, c.target_rows] for c in copies])
    print(f"imported {sum(c.target_rows for c in copies)} rows into {db.target(settings).display}; every count matches")
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    """Write the warehouse as one self-contained DuckDB file (tables and views) or as Parquet files."""
    from warehouse import transfer

    settings = load_settings()
    if args.duckdb:
        if Path(args.duckdb).exists():
            raise usage_error(f"{args.duckdb} exists; choose a new file name")
        copies = transfer.export_duckdb(settings, Path(args.duckdb))
        where = args.duckdb
    else:
        copies = transfer.export_parquet(settings, Path(args.parquet))
        where = args.parquet
    bad = [c for c in copies if not c.ok]
    print_table(["table", "rows"], [[c.table, c.target_rows] for c in copies])
    print(f"exported {len(copies)} tables to {where}")
    return EXIT_RUN_FAILED if bad else EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow import` and `newsflow export`."""
    s = sub.add_parser("import", help="load a newsflow 0.1 warehouse export (EXPORT DATABASE … FORMAT parquet)", description=run_import.__doc__)
    s.add_argument("directory", help="the directory written by EXPORT DATABASE 'dir' (FORMAT parquet)")
    s.set_defaults(func=run_import)
    s = sub.add_parser("export", help="write the warehouse to one DuckDB file or to Parquet files", description=run_export.__doc__)
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--duckdb", metavar="FILE", help="a new self-contained DuckDB file with every table and view")
    which.add_argument("--parquet", metavar="DIR", help="one Parquet file per table (readable back with `newsflow import`)")
    s.set_defaults(func=run_export)
