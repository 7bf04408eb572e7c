"""`newsflow attach`: the SQL that attaches the warehouse read-only in any DuckDB 1.5 session (no Prefect)."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli._output import EXIT_OK, load_settings


def run(args: argparse.Namespace) -> int:
    """Print the statements that attach the warehouse read-only (paste into the DuckDB CLI or a notebook)."""
    from warehouse import db, extensions
    from warehouse.readonly import snapshot_of_run

    settings = load_settings()
    t = db.target(settings)
    snapshot = None
    if args.as_of_run is not None:
        with db.session(settings, read_only=True) as con:
            snapshot = snapshot_of_run(con, args.as_of_run)
    # The extension files are put in place now, so the printed session never downloads anything.
    ext_dir = extensions.prepare(t.extension_names)
    for statement in t.attach_statements(read_only=not args.write, extension_dir=ext_dir, snapshot=snapshot):
        print(statement + ";")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow attach`."""
    s = sub.add_parser(
        "attach",
        help="print the SQL that attaches the warehouse in a plain DuckDB session (CLI, notebook)",
        description=run.__doc__ + " Example: duckdb -cmd \"$(newsflow attach)\"",
    )
    s.add_argument("--as-of-run", type=int, metavar="N", help="attach the warehouse as run N left it (time travel)")
    s.add_argument("--write", action="store_true", help="attach read-write (for maintenance scripts; analysts never need it)")
    s.set_defaults(func=run)
