"""`newsflow init`: create or migrate the warehouse and load the seed corpus (idempotent)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flows.cli._output import EXIT_OK, load_settings


def run(args: argparse.Namespace) -> int:
    """Create or migrate the warehouse and load the seed corpus."""
    from flows.inputs import check_models

    settings = load_settings()
    check_models(settings)
    from flows.seeds import load_seeds  # imports Prefect: only once the configuration is known to be good
    counts = load_seeds(settings)
    from warehouse import db

    where = db.target(settings).display  # never the catalog string itself (it may hold a password)
    print(
        f"warehouse {where} ready; seeds: {counts.get('new', 0)} new, {counts.get('updated', 0)} updated, "
        f"{counts.get('unchanged', 0)} unchanged, {counts.get('entities', 0)} entity mentions",
        file=sys.stderr,
    )
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow init`."""
    s = sub.add_parser("init", help="create/migrate the warehouse and load the seed articles", description=run.__doc__)
    s.set_defaults(func=run)
