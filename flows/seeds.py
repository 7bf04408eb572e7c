"""Loading the seed corpus (`newsflow init`): seed files become articles of source `seed`."""

from __future__ import annotations

from collections import Counter

from flows.batch import load_prepared
from flows.run import warehouse_run
from ingest.errors import NewsflowError
from ingest.models import Failure
from ingest.pipeline import Prepared, prepare_article
from ingest.seeds import load_seed, seed_files
from ingest.settings import Settings
from warehouse import db, loads


def load_seeds(settings: Settings) -> Counter:
    """Create/migrate the warehouse and load every seed file (idempotent: unchanged seeds are no-ops)."""
    with warehouse_run(settings, flow="init", trigger="cli", params={"seeds_dir": str(settings.seeds_dir)}, sources=["seed"]) as ctx:
        with ctx.write() as con, db.transaction(con):
            loads.upsert_sources(con, [{"name": "seed", "kind": "seed", "location": str(settings.seeds_dir), "options": {}}])
        prepared: list[Prepared] = []
        failures: list[Failure] = []
        for path in seed_files(settings.seeds_dir):
            try:
                prepared.append(prepare_article(load_seed(path, loaded_at=ctx.started_at), settings))
            except NewsflowError as exc:
                failures.append(
                    Failure(url=f"seed://{path.name}", source="seed", stage="seed", reason=exc.reason, detail=str(exc), retryable=exc.retryable)
                )
        return load_prepared(ctx, prepared, failures=failures)
