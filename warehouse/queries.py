"""Read-side queries: incremental fetch planning, stored validators, status, re-ingest selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

# pyarrow is imported inside the functions that build Arrow batches: `newsflow status` reads
# through this module and must not pay for pyarrow (and numpy) at import.
from warehouse.arrow import registered

if TYPE_CHECKING:
    from warehouse.dedup_index import DedupIndex


def validators(con: duckdb.DuckDBPyConnection, urls: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """Stored (ETag, Last-Modified) per URL, for conditional GETs."""
    import pyarrow as pa

    if not urls:
        return {}
    schema = pa.schema([("url", pa.string())])
    with registered(con, "want_urls", [{"url": u} for u in set(urls)], schema):
        rows = con.execute(
            "SELECT p.url, p.etag, p.last_modified FROM pages p "
            "JOIN want_urls w ON p.url_key = substr(md5(w.url), 1, 16) AND p.url = w.url"
        ).fetchall()
    return {u: (e, lm) for u, e, lm in rows}


@dataclass
class FetchPlan:
    """Which discovered URLs to fetch, and why the others are skipped."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # known, but the feed/sitemap says modified since our fetch
    retries: list[str] = field(default_factory=list)  # failed before and due again
    known: int = 0
    waiting: int = 0  # failed before, retry not yet due
    gave_up: int = 0  # permanently failed


def plan_fetches(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[tuple[str, str, str, datetime | None]],
    now: datetime,
    sources: Sequence[str] | None = None,
) -> FetchPlan:
    """Decide, in one query, which (url, canonical_url, source, lastmod) items need a fetch; add due retries.

    A URL already fetched (or whose canonical form already leads to an article) is not fetched again
    unless its feed/sitemap lastmod is newer than our fetch.
    """
    import pyarrow as pa

    from warehouse.arrow import TS

    plan = FetchPlan()
    schema = pa.schema([("url", pa.string()), ("canonical", pa.string()), ("source", pa.string()), ("lastmod", TS)])
    rows = [{"url": u, "canonical": c, "source": s, "lastmod": lm} for u, c, s, lm in items]
    src_schema = pa.schema([("name", pa.string())])
    # One statement, three lake scans (pages, article_urls, url_retries): each DuckLake scan costs
    # 4-11 ms of catalog reads before any data (more when the table has inlined rows), so the aliases
    # are read once for both the URL and its canonical form, and url_retries once for both the
    # discovered URLs' state and the due retries of the planned sources. ~95 ms instead of ~140 ms at
    # 100k articles (benchmarks/lake_bench.py).
    with registered(con, "plan_items", rows, schema), registered(
        con, "plan_sources", [{"name": s} for s in (sources or [])], src_schema
    ):
        decided = con.execute(
            "WITH i AS MATERIALIZED ("
            "  SELECT *, substr(md5(url), 1, 16) AS url_key, substr(md5(canonical), 1, 16) AS canonical_key FROM ("
            "   SELECT url, any_value(canonical) AS canonical, max(lastmod) AS lastmod FROM plan_items GROUP BY url)), "
            "r AS MATERIALIZED (SELECT url, kind, source, permanent, next_attempt_at FROM url_retries), "
            "a AS MATERIALIZED ("
            "  SELECT url FROM article_urls WHERE url_key IN (SELECT url_key FROM i UNION SELECT canonical_key FROM i) "
            "   AND url IN (SELECT url FROM i UNION SELECT canonical FROM i)) "
            "SELECT i.url, CASE "
            " WHEN r.permanent THEN 'gave_up' "
            " WHEN r.url IS NOT NULL AND r.next_attempt_at > ? THEN 'waiting' "
            " WHEN r.url IS NOT NULL THEN 'retry' "
            " WHEN p.url IS NULL AND au.url IS NULL AND ac.url IS NULL THEN 'new' "
            " WHEN i.lastmod IS NOT NULL AND p.fetched_at IS NOT NULL AND i.lastmod > p.fetched_at THEN 'changed' "
            " ELSE 'known' END AS decision "
            "FROM i "
            "LEFT JOIN pages p ON p.url_key = i.url_key AND p.url = i.url AND p.kind = 'article' "
            "LEFT JOIN a au ON au.url = i.url "
            "LEFT JOIN a ac ON ac.url = i.canonical "
            "LEFT JOIN r ON r.url = i.url "
            "UNION ALL "
            # Retries due for the planned sources, whether or not discovery found their URL again.
            "SELECT r.url, 'due_retry' FROM r "
            "WHERE r.kind = 'article' AND NOT r.permanent AND r.next_attempt_at <= ? "
            "AND r.source IN (SELECT name FROM plan_sources) AND r.url NOT IN (SELECT url FROM i) "
            "ORDER BY 1",
            [now, now],
        ).fetchall()
    for url, decision in decided:
        if decision == "new":
            plan.new.append(url)
        elif decision == "changed":
            plan.changed.append(url)
        elif decision in ("retry", "due_retry"):
            plan.retries.append(url)
        elif decision == "waiting":
            plan.waiting += 1
        elif decision == "gave_up":
            plan.gave_up += 1
        else:
            plan.known += 1
    return plan


def url_sources(con: duckdb.DuckDBPyConnection, urls: Sequence[str]) -> dict[str, str]:
    """The source that last fetched each URL (for retries that come without a discovery item)."""
    import pyarrow as pa

    if not urls:
        return {}
    schema = pa.schema([("url", pa.string())])
    with registered(con, "want_urls", [{"url": u} for u in set(urls)], schema):
        rows = con.execute(
            "SELECT w.url, coalesce(r.source, p.source) FROM want_urls w "
            "LEFT JOIN url_retries r ON r.url = w.url "
            "LEFT JOIN pages p ON p.url_key = substr(md5(w.url), 1, 16) AND p.url = w.url"
        ).fetchall()
    return {u: s for u, s in rows if s}


def known_local_pages(con: duckdb.DuckDBPyConnection, items: Sequence[tuple[str, str]]) -> set[str]:
    """URLs of local pages (html dir, WARC) whose stored body hash equals the given one (unchanged)."""
    import pyarrow as pa

    if not items:
        return set()
    schema = pa.schema([("url", pa.string()), ("sha", pa.string())])
    with registered(con, "local_pages", [{"url": u, "sha": h} for u, h in items], schema):
        rows = con.execute(
            "SELECT l.url FROM local_pages l "
            "JOIN pages p ON p.url_key = substr(md5(l.url), 1, 16) AND p.url = l.url AND p.body_sha256 = l.sha "
            "LEFT JOIN url_retries r ON r.url = l.url WHERE r.url IS NULL"
        ).fetchall()
    return {u for (u,) in rows}


def existing_content_hashes(con: duckdb.DuckDBPyConnection, hashes: Sequence[str], index: DedupIndex | None = None) -> dict[str, str]:
    """content_hash -> id of the earliest-seen article with that hash (exact-duplicate shortcut).

    With the dedup index (synced to the snapshot `con` reads; see warehouse.dedup_index) the hashes are
    B-tree seeks there and only the few matching articles are read from the lake, by id (key-sorted row
    groups, migration 007); without it, the articles' content_hash column is scanned in full.
    """
    import pyarrow as pa

    if not hashes:
        return {}
    if index is not None:
        holders = index.by_hash(hashes)
        seen = articles_first_seen(con, [aid for ids in holders.values() for aid in ids])
        owners = {}
        for h, ids in holders.items():
            # An id the index has but this snapshot's articles do not (deleted since) is no owner.
            stored = [(seen[aid], aid) for aid in ids if aid in seen]
            if stored:
                owners[h] = min(stored)[1]
        return owners
    schema = pa.schema([("h", pa.string())])
    with registered(con, "want_hashes", [{"h": h} for h in set(hashes)], schema):
        rows = con.execute(
            "SELECT content_hash, arg_min(id, (first_seen_at, id)) FROM articles "
            "WHERE content_hash IN (SELECT h FROM want_hashes) GROUP BY content_hash"
        ).fetchall()
    return {h: a for h, a in rows}


def articles_first_seen(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, datetime]:
    """first_seen_at per article id."""
    if not ids:
        return {}
    # A semi join on the bound list, pushed into the scan as an IN filter over the id-sorted row groups
    # (see article_texts below): 59 ms for 50 ids in 1M articles, against 109 ms joined to a registered table.
    rows = con.execute(
        "SELECT id, first_seen_at FROM articles WHERE id IN (SELECT unnest(?::VARCHAR[]))", [sorted(set(ids))]
    ).fetchall()
    return {i: t for i, t in rows}


# ---------------------------------------------------------------- status


def last_runs(con: duckdb.DuckDBPyConnection, limit: int = 10) -> list[dict[str, Any]]:
    """The most recent runs with their counts."""
    cur = con.execute(
        "SELECT id, flow, coalesce(sources, CASE WHEN flow = 'reingest' THEN 'selection' ELSE 'all' END) AS sources, "
        " trigger, status, started_at, finished_at, round(epoch(coalesce(finished_at, now()) - started_at), 1) AS seconds, "
        " discovered, fetched, not_modified, new, updated, unchanged, duplicates, entities, failed, error "
        "FROM runs ORDER BY id DESC LIMIT ?",
        [limit],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def failures_by_reason(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Current failure state per stage and reason: URLs waiting for retry and URLs given up."""
    cur = con.execute(
        "SELECT stage, last_reason AS reason, count(*) FILTER (WHERE NOT permanent) AS retrying, "
        " count(*) FILTER (WHERE permanent) AS gave_up FROM url_retries GROUP BY ALL ORDER BY count(*) DESC, reason"
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of the main tables."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM pages WHERE kind = 'article'), "
        "(SELECT count(*) FROM failures), (SELECT count(*) FROM runs)"
    ).fetchall()[0]
    return {"articles": row[0], "article_pages": row[1], "failure_events": row[2], "runs": row[3]}


def run_failures(con: duckdb.DuckDBPyConnection, run_id: int) -> list[tuple[Any, ...]]:
    """Failures of one run grouped by stage and reason: (stage, reason, retryable, count, example url)."""
    return con.execute(
        "SELECT stage, reason, retryable, count(*) AS n, min(url) AS example FROM failures "
        "WHERE run_id = ? GROUP BY ALL ORDER BY n DESC, reason",
        [run_id],
    ).fetchall()


def unchanged_with_entities(con: duckdb.DuckDBPyConnection, items: Sequence[tuple[str, str, str, str]]) -> set[str]:
    """Ids of (id, content_hash, model, model_version) items whose stored article has that hash and entities from that model version.

    Comparing the model version too means a new spaCy model or normalisation re-runs NER on unchanged text.
    """
    import pyarrow as pa

    if not items:
        return set()
    schema = pa.schema([("id", pa.string()), ("h", pa.string()), ("model", pa.string()), ("version", pa.string())])
    rows_in = [{"id": i, "h": h, "model": m, "version": v} for i, h, m, v in items]
    with registered(con, "want_items", rows_in, schema):
        rows = con.execute(
            "SELECT w.id FROM want_items w JOIN articles a ON a.id = w.id AND a.content_hash = w.h "
            "JOIN article_entity_runs r ON r.article_id = a.id AND r.model = w.model AND r.model_version = w.version"
        ).fetchall()
    return {i for (i,) in rows}


# Rows of a key-sorted table (migration 007) whose wide columns (text, signature) are needed, for a bound
# list of ids, are selected with both `id IN (SELECT unnest(?))` and `list_contains(?, id)`, the list bound
# twice: the first is a semi join that DuckDB pushes into the scan as an IN filter, skipping the row groups
# whose min/max hold none of the ids; the second filters rows inside the row groups read before their
# wide columns are fetched (joined to a registered table instead, DuckDB reads the text of every row it
# scans). Alone, list_contains is checked on every row of the table (0.98 s vs 0.17 s for 300 ids in 5M
# rows); alone, the semi join reads the text of every row in a row group it keeps.
def article_texts(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, str]:
    """Stored text per article id."""
    if not ids:
        return {}
    wanted = sorted(set(ids))
    rows = con.execute(
        "SELECT id, text FROM articles WHERE id IN (SELECT unnest(?::VARCHAR[])) AND list_contains(?::VARCHAR[], id)",
        [wanted, wanted],
    ).fetchall()
    return dict(rows)


def run_source_counts(con: duckdb.DuckDBPyConnection, run_id: int) -> list[tuple[Any, ...]]:
    """Per source, what one run wrote: (source, pages stored, articles written, duplicates found, failures)."""
    return con.execute(
        "WITH p AS (SELECT source, count(*) AS n FROM pages WHERE run_id = ? AND kind = 'article' GROUP BY source), "
        "a AS (SELECT source, count(*) AS n FROM articles WHERE run_id = ? GROUP BY source), "
        "d AS (SELECT a.source, count(*) AS n FROM duplicates d JOIN articles a ON a.id = d.article_id WHERE d.run_id = ? GROUP BY a.source), "
        "f AS (SELECT source, count(*) AS n FROM failures WHERE run_id = ? GROUP BY source) "
        "SELECT s.source, coalesce(p.n, 0), coalesce(a.n, 0), coalesce(d.n, 0), coalesce(f.n, 0) "
        "FROM (SELECT source FROM p UNION SELECT source FROM a UNION SELECT source FROM d UNION SELECT source FROM f) s "
        "LEFT JOIN p USING (source) LEFT JOIN a USING (source) LEFT JOIN d USING (source) LEFT JOIN f USING (source) "
        "ORDER BY s.source",
        [run_id, run_id, run_id, run_id],
    ).fetchall()


def run_row(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, Any]:
    """One `runs` row as a dict."""
    cur = con.execute("SELECT * FROM runs WHERE id = ?", [run_id])
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall()
    return dict(zip(cols, rows[0])) if rows else {}


def source_health(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """v_source_health, silent sources first."""
    cur = con.execute("SELECT * FROM v_source_health ORDER BY silent DESC, source")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
