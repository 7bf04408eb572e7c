"""The `ingest` flow: sources -> discover -> plan (incremental) -> fetch -> clean/dedup/NER -> DuckDB.

The flow is a short recipe; each task handles a whole batch (50-200 URLs), because thousands of tiny
task runs cost ~24 ms of CPU each and can stall the Prefect API.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
# Task arguments are passed quote()d: Prefect otherwise walks every nested object of every argument
# (page bodies, articles, the run context) on each task call to find futures, which cost ~20 s of the
# flow process's CPU over a 1,000-page ingest (cProfile: visit_collection); these arguments hold none.
# Not for fetch_batch.submit: under the Dask task runner a quote reaches the worker as a plain tuple.
from prefect.utilities.annotations import quote

from flows import progress
from flows.batch import Cleaning, EntityPlan, RunContext, merge_group, plan_entities, process_fetched, record_discovery, start_cleaning
from flows.compute import SettingsTaskRunner
# Checked without Prefect (flows/inputs.py): the CLI runs the same checks before the flow starts.
from flows.inputs import select_sources
from flows.run import log_stage, warehouse_run
from ingest.canonical import canonicalize
from ingest.discover import DiscoveryResult, discover
from ingest.errors import is_retryable
from ingest.fetch import FetchSession, fetch_all
from ingest.language import languages_by_source
from ingest.models import Article, DiscoveredItem, FetchRequest, FetchResult
from ingest.pipeline import warm_models
from ingest.settings import Settings
from ingest.sources import Source, SourceKind
from warehouse import db, maintenance, queries


def retry_if_retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry a task only on a TransientError (any other exception: no retry)."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception is re-raised here
        return is_retryable(exc)
    return False


def with_source_languages(settings: Settings, sources: Sequence[Source]) -> Settings:
    """Settings whose clean stage applies each source's `language` filter (sources.toml), if any source sets one."""
    langs = languages_by_source(sources)
    if not langs:
        return settings
    return settings.model_copy(update={"clean": settings.clean.model_copy(update={"source_languages": langs})})


def source_rows(sources: Sequence[Source]) -> list[dict[str, Any]]:
    """The `sources` table's rows for the sources of this run (stored with the discovery's results)."""
    return [
        {"name": s.name, "kind": s.kind.value, "location": s.location, "options": s.model_dump(exclude={"name", "kind", "location"}, mode="json")}
        for s in sources
    ]


@task(name="discover", cache_policy=NO_CACHE, retries=1, retry_condition_fn=retry_if_retryable)
def discover_sources(
    ctx: RunContext, sources: list[Source], mirrors: dict[str, str], conditional: bool = True, session: FetchSession | None = None
) -> DiscoveryResult:
    """Read every source's feeds/sitemaps/lists (conditional GETs) and record what was fetched or failed."""
    s = ctx.settings
    session = session if session is not None else FetchSession(s.fetch.user_agent)

    def fetch(reqs: list[FetchRequest]) -> list[FetchResult]:
        return fetch_all(reqs, s.fetch, mirrors, session=session)

    # The sources' own feeds and sitemaps in one catalog read (each read session costs ~25 ms); documents
    # found on the way (a sitemap index's children) are looked up as they come.
    roots = [src.location for src in sources if src.is_remote] if conditional else []
    known: dict[str, tuple[str | None, str | None] | None] = dict.fromkeys(roots)
    if roots:
        with db.session(s, read_only=True) as con:
            known.update(queries.validators(con, roots))

    def validators(url: str) -> tuple[str | None, str | None] | None:
        if url in known:
            return known[url]
        with db.session(s, read_only=True) as con:
            return queries.validators(con, [url]).get(url)

    total = DiscoveryResult(items=[], pages=[], documents=[], failures=[])
    for source in sources:
        found = discover(source, fetch, validators, conditional=conditional)
        total.items.extend(found.items)
        total.pages.extend(found.pages)
        total.documents.extend(found.documents)
        total.failures.extend(found.failures)
    # The sources are recorded in the same transaction: a run that finds nothing new commits once here.
    record_discovery(ctx, total.documents, total.failures, discovered=len(total.items) + len(total.pages), sources=source_rows(sources))
    log_stage(
        "discover", sources=len(sources), items=len(total.items), saved_pages=len(total.pages),
        documents=len(total.documents), not_modified=sum(1 for d in total.documents if d.not_modified), failed=len(total.failures),
    )
    return total


def configured_hosts(sources: Sequence[Source]) -> set[str]:
    """host:port of every remote source location the user configured."""
    return {urlsplit(s.location).netloc.lower() for s in sources if s.is_remote}


@task(name="plan-fetches", cache_policy=NO_CACHE)
def plan_fetches(ctx: RunContext, items: list[DiscoveredItem], sources: list[Source]) -> list[FetchRequest]:
    """Incremental plan: new URLs, URLs whose feed says they changed, and failed URLs whose retry is due.

    Articles on the same host as a source the user configured, and URLs from the user's own URL lists,
    count as user-configured for the SSRF guard (an intranet feed may link its own intranet articles);
    links to any other private address are still refused.
    """
    source_names = [s.name for s in sources]
    trusted = configured_hosts(sources)
    # URLs the user listed themselves (a `urls` file) are user-configured, wherever they point.
    listed = {s.name for s in sources if s.kind == SourceKind.urls}
    s = ctx.settings
    # One item per article identity: alias URLs (tracking parameters, www., AMP) collapse to one fetch,
    # but we fetch the URL as discovered, since the canonical form need not be served (or mirrored).
    by_url: dict[str, DiscoveredItem] = {}
    seen_canonical: set[str] = set()
    for item in items:
        canonical = canonicalize(item.url)
        if canonical not in seen_canonical and item.url not in by_url:
            seen_canonical.add(canonical)
            by_url[item.url] = item
    with db.session(s, read_only=True) as con:
        plan = queries.plan_fetches(
            con,
            [(u, canonicalize(u), i.source, i.lastmod) for u, i in by_url.items()],
            datetime.now(timezone.utc),
            source_names,
        )
        retry_sources = queries.url_sources(con, [u for u in plan.retries if u not in by_url])
        stored = queries.validators(con, plan.changed + plan.retries)
    log_stage(
        "plan", new=len(plan.new), changed=len(plan.changed), retries=len(plan.retries), known=plan.known,
        waiting=plan.waiting, gave_up=plan.gave_up,
    )
    reqs = []
    for url in plan.new + plan.changed + plan.retries:
        source = by_url[url].source if url in by_url else retry_sources.get(url, "unknown")
        etag, last_modified = stored.get(url, (None, None))
        reqs.append(
            FetchRequest(
                url=url, source=source, etag=etag, last_modified=last_modified,
                user_configured=urlsplit(url).netloc.lower() in trusted or source in listed,
            )
        )
    return reqs


@task(name="fetch-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_retryable)
def fetch_batch(
    settings: Settings, reqs: list[FetchRequest], mirrors: dict[str, str], session: FetchSession | None = None
) -> list[FetchResult]:
    """Fetch a batch of URLs politely (robots, per-host delay, global concurrency, size/time caps).

    `session` carries robots.txt and the per-host clocks from batch to batch (one per run; on a Dask
    worker, one per worker process, see FetchSession).
    """
    results = fetch_all(reqs, settings.fetch, mirrors, progress=lambda _r: progress.advance("fetch"), session=session)
    return results


def log_timings(ctx: RunContext, started: float) -> None:
    """One INFO line with the seconds per stage (summed over batches; they overlap) and the flow's own wall time."""
    t = dict(ctx.timings, flow=time.perf_counter() - started)
    log_stage("timings", **{f"{k}_s": round(v, 2) for k, v in t.items()})


@task(name="process-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_retryable)
def process_batch(
    ctx: RunContext, results: list[FetchResult], cleaning: Cleaning | None = None, entity_plan: EntityPlan | None = None
) -> dict[str, int]:
    """Clean, dedup, extract entities and load one batch in one warehouse transaction (see flows.batch.process_fetched)."""
    counts = process_fetched(ctx, results, cleaning=cleaning, entity_plan=entity_plan)  # advances the progress bar per chunk
    log_stage("batch", pages=len(results), **{k: counts.get(k, 0) for k in ("fetched", "not_modified", "new", "updated", "unchanged", "duplicates", "entities", "failed")})
    return dict(counts)


@task(name="filter-local-pages", cache_policy=NO_CACHE)
def new_local_pages(ctx: RunContext, pages: list[FetchResult]) -> list[FetchResult]:
    """Drop saved pages (html dir, WARC) whose body is already stored unchanged."""
    s = ctx.settings
    keyed = [(p.url, hashlib.sha256(p.body or b"").hexdigest()) for p in pages]
    with db.session(s, read_only=True) as con:
        known = queries.known_local_pages(con, keyed)
    return [p for p in pages if p.url not in known]


def batches(items: Sequence[Any], size: int) -> list[list[Any]]:
    """Consecutive slices of at most `size` items: one task per slice."""
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# Batches whose cleaning is queued beyond the one being planned: while this process plans batch i+1's
# NER (it needs that batch's cleaned articles), the workers still have batch i+2 and i+3 to clean.
CLEAN_AHEAD = 2
# Pages between two mid-run maintenance passes (merge adjacent files, flush inlined rows).
COMPACT_EVERY_PAGES = 2000


def fetch_and_process(
    ctx: RunContext, requests: list[FetchRequest], mirrors: dict[str, str], session: FetchSession | None = None
) -> None:
    """Fetch, clean, NER and load batches so that both cores stay busy; loads stay sequential (one writer).

    Fetches run one at a time in a thread, ahead of the workers. Before a load, batch i+1's NER and
    the cleaning of the CLEAN_AHEAD batches after it are queued in the workers, so both cores work
    while this process loads.
    Loads are grouped: consecutive batches are written in one transaction once they hold at least
    `load_min_pages` pages (a DuckLake transaction costs ~1.5 s of fixed catalog work whatever its
    size), so the writer takes far less CPU from the workers; exact copies of articles planned but not
    loaded yet are found in memory (flows.batch.plan_entities). All batches share one FetchSession
    (the run's, or a new one), so politeness holds across them.
    """
    slices = batches(requests, ctx.settings.batch_size)
    if not slices:
        return
    session = session if session is not None else FetchSession(ctx.settings.fetch.user_agent)
    fetches = [fetch_batch.submit(ctx.settings, slices[0], mirrors, session)]

    def fetched(i: int) -> list[FetchResult]:
        """Batch i's fetch results; then batch i+1's fetch starts (one fetch at a time: politeness)."""
        with ctx.timed("fetch wait"):
            results = fetches[i].result()
        # The future keeps its result (the batch's page bodies) as long as it is referenced: a 20,000-page
        # run held every body it had fetched until the end (peak RSS grew with the run).
        fetches[i] = None  # type: ignore[call-overload]
        if i + 1 < len(slices):
            fetches.append(fetch_batch.submit(ctx.settings, slices[i + 1], mirrors, session))
        return results

    cleanings: list[Cleaning] = []
    plans: list[EntityPlan] = []
    loaded = 0  # batches [0, loaded) are in the warehouse

    def clean_next() -> None:
        """Queue the next batch's cleaning in the workers."""
        cleanings.append(start_cleaning(ctx, fetched(len(cleanings))))

    def plan_next() -> None:
        """Queue the next batch's NER; batches planned but not loaded yet count as canonicals (in memory)."""
        i = len(plans)
        with ctx.timed("clean"):
            prepared = cleanings[i].outcome().prepared
        in_flight: dict[str, Article] = {}
        for plan in plans[loaded:]:
            in_flight.update(plan.will_have_entities())
        plans.append(plan_entities(ctx, prepared, in_flight))

    # Workers' queue: NER(i+1) and the cleaning of the CLEAN_AHEAD batches after it are queued before
    # batches up to i load, so neither planning nor loads idle them.
    clean_next()
    plan_next()
    while len(cleanings) < min(len(slices), 1 + CLEAN_AHEAD):
        clean_next()
    min_pages = max(1, ctx.settings.load_min_pages)
    pages_since_compact = 0
    for i in range(len(slices)):
        if i + 1 < len(slices) and len(plans) == i + 1:
            plan_next()
        while len(cleanings) < min(len(slices), i + 2 + CLEAN_AHEAD):
            clean_next()
        group = range(loaded, i + 1)
        pages = sum(len(cleanings[j].results) for j in group)
        # Load when the group is big enough, and at the second-to-last batch too, so the load after the
        # workers have finished (nothing left to overlap it with) is one batch, not a whole group.
        if pages < min_pages and i < len(slices) - 2:
            continue
        with ctx.timed("entities"):  # waits for the group's NER in the workers
            cleaning, plan = merge_group([cleanings[j] for j in group], [plans[j] for j in group])
        process_batch(quote(ctx), quote(cleaning.results), quote(cleaning), quote(plan))
        for j in group:  # loaded: drop the pages and articles (a long run keeps memory flat)
            cleanings[j] = plans[j] = None  # type: ignore[call-overload]
        loaded = i + 1
        pages_since_compact += pages
        if pages_since_compact >= COMPACT_EVERY_PAGES and i + 1 < len(slices):
            # A long run (a backfill) merges the small files its loads wrote, so later lookups do not
            # open ever more files (maintenance runs again at the end); the workers go on meanwhile.
            pages_since_compact = 0
            with ctx.timed("compact"):
                report = maintenance.maintain(ctx.settings)
            log_stage("compact", live_data_files=f"{report.live_files_before} -> {report.live_files_after}", seconds=round(report.seconds, 2))


# Threads or Dask, chosen per run from NEWSFLOW_TASK_RUNNER (see flows/compute.py).
@flow(name="ingest", log_prints=False, validate_parameters=True, task_runner=SettingsTaskRunner())
def ingest(
    sources: list[str] | None = None,
    feeds: list[str] | None = None,
    urls_file: str | None = None,
    path: str | None = None,
    trigger: str = "cli",
) -> dict[str, int]:
    """Ingest the given sources (default: every enabled source in sources.toml) into the warehouse.

    `trigger` labels the run for `cli` callers; deployment runs are labelled from Prefect's own
    record instead ('schedule' or 'manual', see flows.run.resolve_trigger).
    """
    settings = Settings()
    selected, mirrors = select_sources(settings, sources, feeds, urls_file, path)
    settings = with_source_languages(settings, selected)
    params = {"sources": sources, "feeds": feeds, "urls_file": urls_file, "path": path}
    started = time.perf_counter()
    with warehouse_run(settings, flow="ingest", trigger=trigger, params=params, sources=[x.name for x in selected]) as ctx:
        # One politeness state for the whole run: discovery and every fetch batch share robots.txt and host clocks.
        session = FetchSession(settings.fetch.user_agent)
        progress.status(f"discovering articles in {len(selected)} source(s)")
        with ctx.timed("discover"):
            found = discover_sources(quote(ctx), quote(selected), quote(mirrors), session=quote(session))
        progress.status("planning what to fetch")
        with ctx.timed("plan"):
            local = new_local_pages(quote(ctx), quote(found.pages))
            requests = plan_fetches(quote(ctx), quote(found.items), quote(selected))
        progress.expect("fetch", len(requests))
        progress.expect("process", len(local) + len(requests))
        progress.status(f"fetching {len(requests)} and processing {len(local) + len(requests)} pages")
        if requests or local:
            # Workers start and load the spaCy model while the first batch is fetched and cleaned.
            ctx.pool.warm(partial(warm_models, settings))
        for batch in batches(local, settings.batch_size):
            process_batch(quote(ctx), quote(batch))
        fetch_and_process(ctx, requests, mirrors, session)
        log_timings(ctx, started)
        return {"run_id": ctx.run_id, **dict(ctx.counts)}
