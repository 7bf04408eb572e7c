"""Batch glue between the ingest stages and the warehouse (no Prefect here, so it is easy to test).

One call handles a whole batch of pages: clean + fingerprint in worker processes, exact-duplicate
shortcut, NER for the rest, then ONE write transaction for pages, articles, aliases, fingerprints,
duplicates, entities, failures, retries and run counts. A failing batch rolls back as a whole.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from functools import partial
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest import dedup
from ingest.canonical import canonicalize
from ingest.entities import expected_run
from ingest.models import Article, ArticleEntities, Failure, FetchResult
from ingest.pipeline import Pending, PrepareOutcome, Prepared, StagePool, extract_entities, prepare_pages
from ingest.settings import Settings
from flows import progress
from ingest.boilerplate import site_of
from warehouse import boilerplate, db, dedup_index, dedup_store, entities_store, loads, queries, search

log = logging.getLogger("newsflow")


@dataclass
class RunContext:
    """What every batch of one run needs: settings, the run id and the worker pool."""

    settings: Settings
    run_id: int
    pool: StagePool
    started_at: datetime
    counts: Counter = field(default_factory=Counter)
    # Site -> template lines learned from the warehouse's history, read once per site per run.
    site_lines: dict[str, frozenset[str]] = field(default_factory=dict)
    # Seconds spent per stage in this process (summed over batches; stages overlap across batches).
    timings: Counter = field(default_factory=Counter)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the seconds of the `with` body to `timings[stage]`."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - t

    def write(self):  # noqa: ANN201 - context manager from warehouse.db
        """A short write session on the warehouse (released after the batch)."""
        return db.session(self.settings)


def failure_kind(failure: Failure, kinds: dict[str, str]) -> tuple[Failure, str]:
    """Pair a failure with the kind of URL it concerns (article unless known otherwise)."""
    return failure, kinds.get(failure.url, "article")


@dataclass
class Cleaning:
    """A batch whose clean+fingerprint stage was queued in the worker pool (start_cleaning)."""

    results: list[FetchResult]
    pending: Pending[PrepareOutcome]
    _outcome: PrepareOutcome | None = None

    def outcome(self) -> PrepareOutcome:
        """The cleaned articles and clean failures, once the workers are done (waits; kept after)."""
        if self._outcome is None:
            out = PrepareOutcome()
            for part in self.pending.result():
                out = out.merge(part)
            self._outcome = out
        return self._outcome


@dataclass
class EntityPlan:
    """A batch's NER, queued in the workers: who needs the model, which exact copies reuse a canonical's entities."""

    needs_ner: list[Prepared]
    copy_of: dict[str, str]
    ner: Pending[list[ArticleEntities]]

    def will_have_entities(self) -> dict[str, Article]:
        """content_hash -> an article of this batch that has current entities once the batch is loaded (NER'd).

        Its exact copies are not needed: they copy from one of these, or from an article already stored.
        """
        return {p.article.content_hash: p.article for p in self.needs_ner}


def plan_entities(ctx: RunContext, prepared: Sequence[Prepared], in_flight: dict[str, Article] | None = None) -> EntityPlan:
    """Decide who needs NER (exact copies do not) and queue it in the workers, without waiting.

    `in_flight`: EntityPlan.will_have_entities() of the previous batch when it is not loaded yet (the
    ingest plans batch i+1 while batch i loads); its articles count as canonicals already stored.
    """
    with ctx.timed("dedup"):  # the exact-copy shortcut: which articles need NER
        needs_ner, copy_of = _entity_targets(ctx, prepared, in_flight or {})
    return EntityPlan(needs_ner, copy_of, ctx.pool.submit(extract_entities, [p.article for p in needs_ner], ctx.settings))


def merge_group(cleanings: Sequence[Cleaning], plans: Sequence[EntityPlan]) -> tuple[Cleaning, EntityPlan]:
    """One Cleaning and one EntityPlan for consecutive batches loaded in one transaction (waits for their stages).

    An article met in two batches of the group (two URLs naming one canonical) keeps the later batch's
    entity decision, as it would when the later batch loaded after the earlier one.
    """
    if len(cleanings) == 1:
        return cleanings[0], plans[0]
    outcome = PrepareOutcome()
    results: list[FetchResult] = []
    for c in cleanings:
        results.extend(c.results)
        outcome = outcome.merge(c.outcome())
    ner: dict[str, ArticleEntities] = {}
    copy_of: dict[str, str] = {}
    needs: list[Prepared] = []
    for plan in plans:
        for part in plan.ner.result():
            for ents in part:
                copy_of.pop(ents.article_id, None)
                ner[ents.article_id] = ents
        for dup, canonical in plan.copy_of.items():
            ner.pop(dup, None)
            copy_of[dup] = canonical
        needs.extend(plan.needs_ner)
    merged = Cleaning(results, Pending([outcome]))
    merged._outcome = outcome
    return merged, EntityPlan(needs, copy_of, Pending([list(ner.values())]))


def start_cleaning(ctx: RunContext, results: Sequence[FetchResult]) -> Cleaning:
    """Queue clean+fingerprint of a batch's pages in the workers, without waiting (overlaps the previous batch's load)."""
    ok = [r for r in results if r.ok]
    known = site_template_lines(ctx, ok)
    clean_fn = partial(prepare_pages, site_boilerplate=known) if known else prepare_pages
    # Progress per chunk of articles as the workers finish them; the rest (304s, failures) when processed.
    return Cleaning(list(results), ctx.pool.submit(clean_fn, ok, ctx.settings, on_done=lambda n: progress.advance("process", n)))


def process_fetched(
    ctx: RunContext, results: Sequence[FetchResult], *, from_store: bool = False,
    cleaning: Cleaning | None = None, entity_plan: EntityPlan | None = None,
) -> Counter:
    """Clean, dedup, extract entities and load one batch of fetch results (200s, 304s and failures).

    `from_store`: the results were rebuilt from stored `pages` rows (re-processing), so the raw pages
    are not written back and nothing counts as fetched. `cleaning`: this batch's clean stage, already
    queued by start_cleaning; `entity_plan`: its NER, already queued by plan_entities (the ingest
    queues batch i+1's NER and the next batches' cleaning before loading up to batch i, so the workers
    never wait for a load; see flows.ingest.fetch_and_process).
    """
    cleaning = cleaning if cleaning is not None else start_cleaning(ctx, results)
    ok = [r for r in results if r.ok]
    with ctx.timed("clean"):
        outcome = cleaning.outcome()
    progress.advance("process", len(results) - len(ok))
    fetch_failures = [r.failure for r in results if r.failure is not None]
    return load_prepared(
        ctx,
        outcome.prepared,
        pages=list(results),
        failures=fetch_failures + outcome.failures,
        extra_counts=Counter(fetched=0 if from_store else len(ok), not_modified=sum(1 for r in results if r.not_modified)),
        store_pages=not from_store,
        entity_plan=entity_plan,
    )


def site_template_lines(ctx: RunContext, pages: Sequence[FetchResult]) -> dict[str, frozenset[str]]:
    """Known template lines of the sites of these pages (ingest.boilerplate), from history before this run.

    Read once per site per run, so a batch never re-reads a site's recent articles; lines first seen
    in this run count from the next run on.
    """
    sites = {site_of(p.final_url or p.url) for p in pages} - {None}
    missing = sorted(s for s in sites if s not in ctx.site_lines)
    if missing:
        with db.session(ctx.settings, read_only=True) as con:
            found = boilerplate.recurring_lines(con, missing)
        for s in missing:
            ctx.site_lines[s] = found.get(s, frozenset())
    return {s: ctx.site_lines[s] for s in sites if ctx.site_lines.get(s)}


def _entity_targets(ctx: RunContext, prepared: Sequence[Prepared], in_flight: dict[str, Article]) -> tuple[list[Prepared], dict[str, str]]:
    """Split articles into those needing NER and exact duplicates that can reuse a canonical's entities.

    Returns (needs_ner, exact_copy_of) where exact_copy_of maps a duplicate's id to its canonical's id.
    Reuse needs byte-identical text (mention offsets index into it). Unchanged articles whose entities
    come from the current model version are skipped: re-running an ingest (or re-processing) does not
    run the model again, but a new model or normalisation version does. `in_flight` (content hash ->
    article) is the previous batch, planned but not loaded yet: its articles are canonicals too, and one
    of its ids seen again is not taken as unchanged (the stored row is about to change).
    """
    # The expected version is read from the installed model's files: no spaCy load in this process.
    current = [(p.article.id, p.article.content_hash, *expected_run(p.article, ctx.settings.entities)) for p in prepared]
    with db.session(ctx.settings, read_only=True) as con:
        unchanged = queries.unchanged_with_entities(con, current)
        # Same dedup index as the load's (warehouse.dedup_index): once the warehouse is big enough for it,
        # the exact-copy owners are seeks there instead of a scan of every article's content hash.
        with dedup_index.opened(ctx.settings, con, notice=log.warning, wanted=bool(prepared), write_through=False) as index:
            owners = queries.existing_content_hashes(
                con, [p.article.content_hash for p in prepared], index=dedup_index.still_current(index, con)
            )
        owner_texts = queries.article_texts(con, list(set(owners.values())))
        # An owner outside this batch whose entities are from an older model version must not be
        # copied (the copy would be stale too); byte-identical text gives it the same expected run.
        expected = {i: (m, v) for i, _h, m, v in current}
        owners_current = queries.unchanged_with_entities(
            con, [(owners[p.article.content_hash], p.article.content_hash, *expected[p.article.id]) for p in prepared if p.article.content_hash in owners]
        )
    in_batch = {p.article.id for p in prepared if p.article.id not in unchanged}
    needs, copy_of = [], {}
    first_in_batch: dict[str, Prepared] = {}
    # Same order as dedup's canonical choice, so a duplicate copies from the article dedup calls canonical.
    def order(p: Prepared) -> tuple:
        return dedup.canonical_order(min(ctx.started_at, p.article.fetched_at), p.article.published_at, p.article.id)

    flying_ids = {a.id for a in in_flight.values()}
    for p in sorted(prepared, key=order):
        a = p.article
        if a.id in unchanged and a.id not in flying_ids:
            continue
        owner = owners.get(a.content_hash)
        twin = first_in_batch.get(a.content_hash)
        flying = in_flight.get(a.content_hash)
        owner_usable = owner is not None and (owner in owners_current or owner in in_batch)
        if owner_usable and owner != a.id and owner_texts.get(owner) == a.text:
            copy_of[a.id] = owner
        elif flying is not None and flying.id != a.id and flying.text == a.text:
            copy_of[a.id] = flying.id
        elif twin is not None and twin.article.text == a.text:
            copy_of[a.id] = twin.article.id
        else:
            first_in_batch.setdefault(a.content_hash, p)
            needs.append(p)
    return needs, copy_of


def load_prepared(
    ctx: RunContext,
    prepared: Sequence[Prepared],
    *,
    pages: Sequence[FetchResult] = (),
    failures: Sequence[Failure] = (),
    aliases: Sequence[tuple[str, str]] = (),
    extra_counts: Counter | None = None,
    store_pages: bool = True,
    entity_plan: EntityPlan | None = None,
) -> Counter:
    """Dedup, NER and load already-prepared articles plus the batch's raw pages (unless store_pages=False) and failures.

    `entity_plan`: this batch's NER as queued earlier by plan_entities (else planned and queued here).
    """
    s = ctx.settings
    plan = entity_plan if entity_plan is not None else plan_entities(ctx, prepared)
    copy_of = plan.copy_of
    entity_results: list[ArticleEntities] = []
    with ctx.timed("entities"):
        for part in plan.ner.result():
            entity_results.extend(part)

    counts: Counter = Counter(extra_counts or {})
    kinds = {r.url: r.kind for r in pages}
    succeeded_urls = [r.url for r in pages if r.ok] + [p.article.page_url for p in prepared]
    failed_urls = {f.url for f in failures}
    t_load = time.perf_counter()
    dedup_s = 0.0
    # The dedup index is synced before the transaction: it reads the lake, and a failed read aborts a DuckDB transaction.
    with ctx.write() as con, dedup_index.opened(s, con, notice=log.warning, wanted=bool(prepared)) as index, db.transaction(con):
        if store_pages:
            loads.save_pages(con, pages, ctx.run_id)
        articles = [p.article for p in prepared]
        write = loads.save_articles(con, articles, ctx.run_id, seen_at=ctx.started_at)
        changed_articles = [a for a in articles if a.id in set(write.new) | set(write.updated)]
        new_ids = set(write.new)  # inserted by this transaction: nothing of theirs to replace or clear
        boilerplate.save_removed_lines(con, changed_articles, new_ids=new_ids)
        # The full-text index is written in the same transaction: a committed article is always searchable.
        search.index_articles(con, changed_articles, new_ids=new_ids)
        url_pairs = []
        for p in prepared:
            a = p.article
            for u in {a.url, a.page_url, canonicalize(a.page_url), *(pu for pu, aid in aliases if aid == a.id)}:
                url_pairs.append((u, a.id, a.fetched_at))
        for r in pages:
            if r.ok:
                # The requested URL (before redirects) is an alias of the article found at the final URL.
                match = next((p.article.id for p in prepared if p.article.page_url in (r.final_url, r.url)), None)
                if match:
                    url_pairs.append((r.url, match, r.fetched_at))
        loads.save_article_urls(con, url_pairs)

        # Dedup only what is new or changed; unchanged articles keep their earlier decision.
        touched = set(write.new) | set(write.updated)
        fps = [p.fingerprint for p in prepared if p.article.id in touched]
        if fps:
            t_dedup = time.perf_counter()
            dedup_store.save_fingerprints(con, fps, s.dedup)
            # Another writer may have committed between the index's sync and this transaction: then scan the lake.
            current = dedup_index.still_current(index, con)
            candidates = dedup_store.find_candidates(con, fps, current)
            if current is not None:
                current.tag(con, fps)  # its commit is then written into the index directly (see dedup_index)
            batch = [(p.article, p.fingerprint) for p in prepared if p.article.id in touched]
            first_seen = queries.articles_first_seen(con, [a.id for a, _ in batch])
            matches = dedup.decide(batch, candidates, s.dedup, first_seen=first_seen)
            # Counted as rows written: with several batches per run the canonical may be the article of
            # an earlier batch, and then the earlier article's row is what changes.
            counts["duplicates"] += dedup_store.save_duplicates(
                con, matches, ctx.run_id, checked_ids=[a.id for a, _ in batch if a.id not in new_ids]
            )
            dedup_s = time.perf_counter() - t_dedup + (index.sync.seconds if index is not None else 0.0)

        if entity_results:
            first_seen = queries.articles_first_seen(con, [e.article_id for e in entity_results])
            counts["entities"] += entities_store.save_entities(con, entity_results, first_seen, new_ids=new_ids).mentions
        # The canonicals were loaded earlier (or earlier in this transaction), so their mentions exist.
        entities_store.copy_entities_many(con, [(canonical_id, dup_id) for dup_id, canonical_id in copy_of.items()])

        loads.record_failures(
            con,
            [failure_kind(f, kinds) for f in failures],
            ctx.run_id,
            max_attempts=s.retry.max_attempts,
            base_delay_s=s.retry.base_delay_s,
            max_delay_s=s.retry.max_delay_s,
        )
        loads.clear_retries(con, [u for u in succeeded_urls if u not in failed_urls])
        counts["new"] += len(write.new)
        counts["updated"] += len(write.updated)
        counts["unchanged"] += len(write.unchanged)
        counts["failed"] += len(failures)
        loads.add_run_counts(con, ctx.run_id, counts)
    ctx.timings["dedup"] += dedup_s
    ctx.timings["load"] += time.perf_counter() - t_load - dedup_s
    ctx.counts.update(counts)
    return counts


def record_discovery(
    ctx: RunContext, documents: Sequence[FetchResult], failures: Sequence[Failure], discovered: int,
    sources: Sequence[dict[str, Any]] = (),
) -> None:
    """Store the run's sources (loads.upsert_sources rows), feed/sitemap fetches (for their validators) and discovery failures, in one transaction."""
    s = ctx.settings
    kinds = {d.url: d.kind for d in documents}
    with ctx.write() as con, db.transaction(con):
        if sources:
            loads.upsert_sources(con, sources)
        loads.save_pages(con, documents, ctx.run_id)
        loads.record_failures(
            con,
            [(f, kinds.get(f.url, "feed")) for f in failures],
            ctx.run_id,
            max_attempts=s.retry.max_attempts,
            base_delay_s=s.retry.base_delay_s,
            max_delay_s=s.retry.max_delay_s,
        )
        loads.clear_retries(con, [d.url for d in documents if d.failure is None])
        counts = Counter(
            discovered=discovered,
            not_modified=sum(1 for d in documents if d.not_modified),
            failed=len(failures),
        )
        loads.add_run_counts(con, ctx.run_id, counts)
    ctx.counts.update(counts)
