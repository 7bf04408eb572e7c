"""The `reingest` flow: fetch again (refetch) or re-process from stored raw pages (reprocess) a selection.

Selectors (exactly one): a source, a URL or `*` pattern, a first-seen/published time window, the
failed URLs (url_retries, given-up ones included) or all articles. `refetch` requests the selected
URLs unconditionally (no If-None-Match / If-Modified-Since) and processes them like `ingest`;
`reprocess` goes nowhere near the network: it rebuilds FetchResults from `pages` and re-runs
clean -> dedup -> entities. Both are idempotent: an unchanged page with unchanged extractor and
model versions changes no row. Seed articles are re-read from their seed files in both modes.

All parameters are plain JSON types (str/bool/None), so a Prefect deployment can pass them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
# Task arguments are passed quote()d: Prefect otherwise walks every nested object of every argument
# (page bodies, articles, the run context) on each task call to find futures, which cost ~20 s of the
# flow process's CPU over a 1,000-page ingest (cProfile: visit_collection); these arguments hold none.
from prefect.utilities.annotations import quote

from flows import progress
from flows.batch import RunContext, load_prepared, process_fetched
from flows.compute import SettingsTaskRunner
# Selection, dates and mode checks live in flows/inputs.py (no Prefect), so the CLI checks them before a run.
from flows.inputs import MODES, WINDOW_ON, Selector, check_mode, check_reingest_source, parse_when, selection_counts  # noqa: F401
from flows.ingest import batches, configured_hosts, fetch_and_process, retry_if_retryable, with_source_languages
from flows.run import log_stage, warehouse_run
from ingest.errors import ConfigError, NewsflowError
from ingest.models import Failure, FetchRequest
from ingest.pipeline import Prepared, prepare_article
from ingest.seeds import load_seed
from ingest.settings import Settings
from ingest.sources import load_sources
from warehouse import db, queries
from warehouse import reingest as selection
from warehouse.reingest import SEED_PREFIX, Target

@task(name="select-reingest", cache_policy=NO_CACHE)
def select_targets(settings: Settings, selector: Selector) -> list[Target]:
    """Read the selected targets from the warehouse (read-only)."""
    with db.session(settings, read_only=True) as con:
        return selector.select(con)


@task(name="reprocess-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_retryable)
def reprocess_batch(ctx: RunContext, targets: list[Target]) -> dict[str, int]:
    """Re-run clean/dedup/NER on the stored raw pages of one batch, in one warehouse transaction."""
    s = ctx.settings
    with db.session(s, read_only=True) as con:
        pages = selection.stored_pages(con, targets)
    counts = process_fetched(ctx, pages, from_store=True) if pages else Counter()  # advances per chunk
    progress.advance("process", len(targets) - len(pages))  # targets without a stored page
    log_stage("reprocess batch", targets=len(targets), **{k: counts.get(k, 0) for k in ("new", "updated", "unchanged", "duplicates", "entities", "failed")})
    return dict(counts)


@task(name="reprocess-seeds", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_retryable)
def reprocess_seeds(ctx: RunContext, targets: list[Target]) -> dict[str, int]:
    """Re-read seed articles from their seed files and load them like `newsflow init` does."""
    prepared: list[Prepared] = []
    failures: list[Failure] = []
    # A seed re-read keeps the time it was first loaded, so re-processing an unchanged seed writes nothing.
    with db.session(ctx.settings, read_only=True) as con:
        first_seen = queries.articles_first_seen(con, [t.article_id for t in targets if t.article_id])
    for t in targets:
        path = ctx.settings.seeds_dir / t.url[len(SEED_PREFIX) :]
        try:
            if not path.is_file():
                raise ConfigError(f"seed file not found: {path}", reason="seed_missing")
            loaded_at = first_seen.get(t.article_id or "")
            number = int(path.name.split("_", 1)[0]) if path.name[:1].isdigit() else 0
            article = load_seed(path, loaded_at - timedelta(microseconds=number) if loaded_at else None)
            prepared.append(prepare_article(article, ctx.settings))
        except NewsflowError as exc:
            failures.append(Failure(url=t.url, source=t.source, stage="seed", reason=exc.reason, detail=str(exc), retryable=exc.retryable))
    counts = load_prepared(ctx, prepared, failures=failures)
    progress.advance("process", len(targets))
    return dict(counts)


def _fetch_config(ctx: RunContext) -> tuple[dict[str, str], set[str]]:
    """Mirrors from sources.toml, and the hosts the user configured (configured or ad-hoc source locations)."""
    s = ctx.settings
    mirrors: dict[str, str] = {}
    trusted: set[str] = set()
    if s.sources_path.exists():
        config = load_sources(s.sources_path)
        mirrors = config.mirrors
        trusted |= configured_hosts(config.sources)
    with db.session(s, read_only=True) as con:
        locations = selection.source_locations(con)
    trusted |= {urlsplit(loc).netloc.lower() for loc in locations if "://" in loc and not loc.startswith("file:")}
    return mirrors, trusted


def refetch(ctx: RunContext, targets: Sequence[Target]) -> None:
    """Fetch the selected page URLs again without validators and process them like `ingest` does."""
    mirrors, trusted = _fetch_config(ctx)
    requests = [
        # conditional=False: a re-fetch must get the full body even if the server says nothing changed.
        FetchRequest(url=t.url, source=t.source, conditional=False, user_configured=urlsplit(t.url).netloc.lower() in trusted)
        for t in targets
    ]
    fetch_and_process(ctx, requests, mirrors)


def reprocess(ctx: RunContext, targets: Sequence[Target]) -> None:
    """Re-process the selected stored pages batch by batch (no network)."""
    for batch in batches([t for t in targets if t.has_body], ctx.settings.batch_size):
        reprocess_batch(quote(ctx), quote(batch))


# Threads or Dask per NEWSFLOW_TASK_RUNNER, like `ingest` (see flows/compute.py).
@flow(name="reingest", log_prints=False, validate_parameters=True, task_runner=SettingsTaskRunner())
def reingest(
    source: str | None = None,
    url: str | None = None,
    since: str | None = None,
    until: str | None = None,
    window_on: str = "first_seen",
    failed: bool = False,
    all: bool = False,  # noqa: A002 - the selector's public name
    mode: str = "refetch",
    dry_run: bool = False,
    trigger: str = "manual",
) -> dict[str, Any]:
    """Re-ingest a selection of known articles/URLs: `refetch` from the network or `reprocess` stored pages."""
    check_mode(mode)
    selector = Selector.of(source=source, url=url, since=since, until=until, window_on=window_on, failed=failed, all=all)
    settings = Settings()
    if settings.sources_path.exists():
        settings = with_source_languages(settings, load_sources(settings.sources_path).sources)
    summary = {"mode": mode, "selection": selector.describe()}
    if dry_run:
        # Read-only and no run row: the warehouse stays exactly as it was.
        targets = select_targets(settings, selector)
        if selector.source:
            check_reingest_source(settings, selector.source, targets)
        return {"run_id": None, "dry_run": True, **summary, **selection_counts(targets, mode)}
    params = {
        "source": source, "url": url, "since": since, "until": until, "window_on": window_on,
        "failed": failed, "all": all, "mode": mode,
    }
    with warehouse_run(settings, flow="reingest", trigger=trigger, params=params, sources=[source] if source else None) as ctx:
        # Selected under the run lock, so no other run changes the warehouse in between.
        targets = select_targets(settings, selector)
        seeds = [t for t in targets if t.is_seed]
        pages = [t for t in targets if not t.is_seed]
        progress.expect("process", len(targets))
        for batch in batches(seeds, settings.batch_size):
            reprocess_seeds(quote(ctx), quote(batch))
        if mode == "refetch":
            refetch(ctx, pages)
        else:
            reprocess(ctx, pages)
        return {"run_id": ctx.run_id, **summary, **selection_counts(targets, mode), **dict(ctx.counts)}
