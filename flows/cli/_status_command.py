"""`newsflow status`: the last runs with their counts, and failing URLs by reason (read-only, no Prefect)."""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli._output import EXIT_OK, load_settings, print_table, readonly_warehouse


def run(args: argparse.Namespace) -> int:
    """Print the last runs (sources, trigger, duration, every count), source health, failures by reason, and the warehouse's size."""
    from warehouse import db, maintenance, queries

    settings = load_settings()
    with readonly_warehouse(settings) as con:
        runs = queries.last_runs(con, args.limit)
        fails = queries.failures_by_reason(con)
        counts = queries.table_counts(con)
        health = queries.source_health(con)
        files = maintenance.live_data_files(con)
    t = db.target(settings)
    size = maintenance.warehouse_bytes(t)
    where = t.display  # never the catalog string itself (it may hold a password)
    print(f"warehouse {where}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"storage: {files} live data files" + (f", {size / 1e6:.1f} MB on disk (catalog + data)" if size >= 0 else ""))
    print("\nlast runs:")
    cols = ["id", "flow", "sources", "trigger", "status", "started_at", "seconds", "discovered", "fetched", "not_modified",
            "new", "updated", "unchanged", "duplicates", "entities", "failed"]
    print_table(cols, [[r.get(c) for c in cols] for r in runs], max_width=40)
    failed_runs = [r for r in runs if r.get("error")]
    for r in failed_runs[:3]:
        print(f"  run {r['id']} {r['status']}: {str(r['error']).splitlines()[0][:160]}")
    print("\nsource health (silent = no new item for over 3x its usual gap):")
    if health:
        hcols = ["source", "last_success_at", "runs", "articles", "items_per_run", "not_modified_share", "failure_rate", "failing_urls", "usual_gap_hours", "silent"]
        print_table(hcols, [[h.get(c) for c in hcols] for h in health])
    else:
        print("(no sources yet)")
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
