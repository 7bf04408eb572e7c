"""`newsflow status`: the last runs with their counts, and failing URLs by reason (read-only, no Prefect)."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli._output import EXIT_OK, load_settings, print_table, readonly_warehouse


def run(args: argparse.Namespace) -> int:
    """Print the last runs with their counts and current failures by reason."""
    from warehouse import queries

    settings = load_settings()
    with readonly_warehouse(settings) as con:
        runs = queries.last_runs(con, args.limit)
        fails = queries.failures_by_reason(con)
        counts = queries.table_counts(con)
    from warehouse import db

    where = db.target(settings).display  # never the catalog string itself (it may hold a password)
    print(f"warehouse {where}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("\nlast runs:")
    cols = ["id", "flow", "trigger", "status", "started_at", "seconds", "discovered", "fetched", "not_modified", "new", "updated", "duplicates", "entities", "failed"]
    print_table(cols, [[r.get(c) for c in cols] for r in runs])
    print("\nfailures by reason (URLs still retrying / given up):")
    if fails:
        print_table(["stage", "reason", "retrying", "gave_up"], [[f["stage"], f["reason"], f["retrying"], f["gave_up"]] for f in fails])
    else:
        print("(none)")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow status`."""
    s = sub.add_parser("status", help="last runs with counts, and failures by reason", description=run.__doc__)
    s.add_argument("--limit", type=int, default=10, help="how many runs to show (default 10)")
    s.set_defaults(func=run)
