"""Batched, idempotent writes: runs, raw pages, articles (+ history, aliases), failures and retries.

Every function takes an open connection and leaves transaction control to the caller, so that one
batch is loaded in one transaction. Batches are registered as Arrow tables and written with one
set-based statement each (50-90k rows/s) rather than one INSERT per row (~1k rows/s).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from ingest.models import Article, Failure, FetchResult
from warehouse.arrow import TS, registered


RUN_COUNTERS = ("discovered", "fetched", "not_modified", "new", "updated", "unchanged", "duplicates", "entities", "failed")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------- sources and runs


def upsert_sources(con: duckdb.DuckDBPyConnection, sources: Sequence[dict[str, Any]]) -> None:
    """Record the configured sources (name, kind, location, options)."""
    schema = pa.schema([("name", pa.string()), ("kind", pa.string()), ("location", pa.string()), ("options", pa.string())])
    rows = [{"name": s["name"], "kind": s["kind"], "location": s["location"], "options": json.dumps(s.get("options", {}), default=str)} for s in sources]
    with registered(con, "batch_sources", rows, schema):
        con.execute(
            "MERGE INTO sources t USING (SELECT * FROM batch_sources QUALIFY row_number() OVER (PARTITION BY name) = 1) b "
            "ON t.name = b.name "
            # Unchanged sources are not rewritten: a re-run leaves the table (and its snapshot) as it was.
            "WHEN MATCHED AND (t.kind <> b.kind OR t.location <> b.location OR t.options::VARCHAR IS DISTINCT FROM b.options) "
            " THEN UPDATE SET kind = b.kind, location = b.location, options = b.options::JSON, updated_at = now() "
            "WHEN NOT MATCHED THEN INSERT (name, kind, location, options, updated_at) "
            " VALUES (b.name, b.kind, b.location, b.options::JSON, now())"
        )


# Feeds and sitemaps are stored (with their ETag/Last-Modified) when discovery ends, before their
# articles are loaded batch by batch. If the run then dies or fails, the next run's conditional GET gets
# a 304 and discovers nothing, so every article of that feed not yet loaded would be lost for good.
# Forgetting the validators of documents stored by a run that did not complete makes the next run
# fetch them in full and plan their unloaded articles again (loaded ones are known and skipped).
_FORGET_DOCUMENT_VALIDATORS = (
    "UPDATE pages SET etag = NULL, last_modified = NULL WHERE kind IN ('feed', 'sitemap') AND run_id IN ({runs})"
)


def mark_crashed_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Mark runs left 'running' as 'crashed'; call only while holding the run lock (so none is alive).

    Feeds/sitemaps those runs stored lose their validators, so their unloaded articles are found again.
    """
    n = con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchall()[0][0]
    if n:
        con.execute(_FORGET_DOCUMENT_VALIDATORS.format(runs="SELECT id FROM runs WHERE status = 'running'"))
        con.execute(
            "UPDATE runs SET status = 'crashed', finished_at = now(), "
            "error = 'process died before finishing (found by a later run)' WHERE status = 'running'"
        )
    return int(n)


def start_run(
    con: duckdb.DuckDBPyConnection, *, flow: str, trigger: str, params: dict[str, Any], flow_run_id: str | None,
    sources: Sequence[str] | None = None,
) -> int:
    """Insert a 'running' row for this run and return its id (call inside a transaction, under the run lock).

    DuckLake has no sequences; the single writer assigns max(id)+1.
    """
    run_id = int(con.execute("SELECT coalesce(max(id), 0) + 1 FROM runs").fetchall()[0][0])
    con.execute(
        "INSERT INTO runs (id, flow_run_id, flow, trigger, params, sources, pid) VALUES (?, ?, ?, ?, ?::JSON, ?, ?)",
        [run_id, flow_run_id, flow, trigger, json.dumps(params, default=str), ", ".join(sources) if sources else None, os.getpid()],
    )
    return run_id


def add_run_counts(con: duckdb.DuckDBPyConnection, run_id: int, counts: dict[str, int]) -> None:
    """Add per-batch counts to the run row (inside the batch's transaction, so counts match the data)."""
    values = [int(counts.get(k, 0)) for k in RUN_COUNTERS]
    con.execute(
        "UPDATE runs SET discovered = discovered + ?, fetched = fetched + ?, not_modified = not_modified + ?, "
        "new = new + ?, updated = updated + ?, unchanged = unchanged + ?, duplicates = duplicates + ?, "
        "entities = entities + ?, failed = failed + ? WHERE id = ?",
        [*values, run_id],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: int, *, status: str, error: str | None = None) -> None:
    """Close the run row with its final status (a run that did not complete forgets its documents' validators)."""
    if status != "completed":
        con.execute(_FORGET_DOCUMENT_VALIDATORS.format(runs="?"), [run_id])
    con.execute("UPDATE runs SET status = ?, error = ?, finished_at = now() WHERE id = ?", [status, error, run_id])


def set_run_snapshot(con: duckdb.DuckDBPyConnection, run_id: int, snapshot_id: int | None) -> None:
    """Record the lake snapshot that shows the warehouse as this run left it (`newsflow sql --as-of-run`)."""
    con.execute("UPDATE runs SET snapshot_id = ? WHERE id = ?", [snapshot_id, run_id])


# ---------------------------------------------------------------- raw pages

_PAGES_SCHEMA = pa.schema(
    [
        ("url", pa.string()), ("kind", pa.string()), ("source", pa.string()), ("final_url", pa.string()),
        ("status", pa.int32()), ("content_type", pa.string()), ("etag", pa.string()), ("last_modified", pa.string()),
        ("fetched_at", TS), ("body_zlib", pa.binary()), ("body_bytes", pa.int64()), ("body_sha256", pa.string()),
    ]
)


def save_pages(con: duckdb.DuckDBPyConnection, results: Sequence[FetchResult], run_id: int) -> None:
    """Store raw bodies (zlib) of successful fetches and note 304s as checks; one row per URL."""
    bodies = [r for r in results if r.body is not None and r.failure is None and not r.not_modified]
    rows = [
        {
            "url": r.url, "kind": r.kind, "source": r.source, "final_url": r.final_url or r.url, "status": r.status,
            "content_type": r.content_type, "etag": r.etag, "last_modified": r.last_modified, "fetched_at": r.fetched_at,
            "body_zlib": zlib.compress(r.body, 6), "body_bytes": len(r.body), "body_sha256": hashlib.sha256(r.body).hexdigest(),
        }
        for r in bodies
    ]
    if rows:
        with registered(con, "batch_pages", rows, _PAGES_SCHEMA):
            con.execute(
                # Matched on url_key too (migration 008): only the row groups that can hold the batch's URLs are read.
                "MERGE INTO pages t USING (SELECT *, substr(md5(url), 1, 16) AS url_key FROM batch_pages "
                " QUALIFY row_number() OVER (PARTITION BY url ORDER BY fetched_at DESC) = 1) b "
                "ON t.url_key = b.url_key AND t.url = b.url "
                "WHEN MATCHED THEN UPDATE SET kind = b.kind, source = b.source, final_url = b.final_url, "
                " status = b.status, content_type = b.content_type, etag = b.etag, last_modified = b.last_modified, "
                " fetched_at = b.fetched_at, checked_at = b.fetched_at, body_zlib = b.body_zlib, "
                " body_bytes = b.body_bytes, body_sha256 = b.body_sha256, run_id = ? "
                "WHEN NOT MATCHED THEN INSERT (url, url_key, kind, source, final_url, status, content_type, etag, "
                " last_modified, fetched_at, checked_at, body_zlib, body_bytes, body_sha256, run_id) "
                " VALUES (b.url, b.url_key, b.kind, b.source, b.final_url, b.status, b.content_type, b.etag, "
                " b.last_modified, b.fetched_at, b.fetched_at, b.body_zlib, b.body_bytes, b.body_sha256, ?)",
                [run_id, run_id],
            )
    checks = [{"url": r.url, "fetched_at": r.fetched_at} for r in results if r.not_modified]
    if checks:
        schema = pa.schema([("url", pa.string()), ("fetched_at", TS)])
        with registered(con, "batch_checks", checks, schema):
            con.execute(
                "UPDATE pages SET checked_at = c.fetched_at FROM batch_checks c "
                "WHERE pages.url_key = substr(md5(c.url), 1, 16) AND pages.url = c.url"
            )


def page_body(blob: bytes | None) -> bytes | None:
    """Decompress a stored raw body."""
    return zlib.decompress(blob) if blob is not None else None


# ---------------------------------------------------------------- articles

_ARTICLES_SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("url", pa.string()), ("page_url", pa.string()), ("source", pa.string()),
        ("title", pa.string()), ("text", pa.string()), ("authors", pa.list_(pa.string())), ("published_at", TS),
        ("language", pa.string()), ("site_name", pa.string()), ("description", pa.string()),
        ("extractor", pa.string()), ("extractor_version", pa.string()), ("content_hash", pa.string()),
        ("word_count", pa.int32()), ("fetched_at", TS),
    ]
)


@dataclass
class ArticleWrite:
    """What save_articles did: ids by outcome."""

    new: list[str]
    updated: list[str]
    unchanged: list[str]


def save_articles(
    con: duckdb.DuckDBPyConnection, articles: Sequence[Article], run_id: int, seen_at: datetime | None = None
) -> ArticleWrite:
    """Upsert articles by id; a changed content hash moves the old version to article_versions.

    A new article's first_seen_at is min(seen_at, fetched_at): every article first seen by one run
    gets the run's start time, so "earliest seen" never depends on fetch order within a run (seeds,
    which carry fixed early times, stay earliest).
    """
    # Last one wins within a batch, so the same canonical URL twice in one batch is one row.
    by_id = {a.id: a for a in articles}
    if not by_id:
        return ArticleWrite([], [], [])
    rows = [
        {
            "id": a.id, "url": a.url, "page_url": a.page_url, "source": a.source, "title": a.title, "text": a.text,
            "authors": a.authors, "published_at": a.published_at, "language": a.language, "site_name": a.site_name,
            "description": a.description, "extractor": a.extractor, "extractor_version": a.extractor_version,
            "content_hash": a.content_hash, "word_count": len(a.text.split()), "fetched_at": a.fetched_at,
        }
        for a in by_id.values()
    ]
    with registered(con, "batch_articles", rows, _ARTICLES_SCHEMA):
        status = con.execute(
            "SELECT b.id, CASE WHEN a.id IS NULL THEN 'new' "
            " WHEN a.content_hash <> b.content_hash THEN 'updated' "
            " WHEN a.extractor_version <> b.extractor_version OR a.title IS DISTINCT FROM b.title THEN 'reprocessed' "
            " ELSE 'unchanged' END, coalesce(b.fetched_at > a.last_seen_at, false) "
            "FROM batch_articles b LEFT JOIN articles a ON a.id = b.id"
        ).fetchall()
        changed = [aid for aid, st, _later in status if st == "updated"]
        if changed:
            # Old text is read only for the changed ids (the form of warehouse.queries.article_texts): a join
            # on the whole table would read every article's text from the data files (~0.5 s at 100k articles).
            con.execute(
                "INSERT INTO article_versions (article_id, content_hash, title, text, valid_from, replaced_at, run_id) "
                "SELECT a.id, a.content_hash, a.title, a.text, a.updated_at, now(), ? FROM articles a "
                "WHERE a.id IN (SELECT unnest(?::VARCHAR[])) AND list_contains(?::VARCHAR[], a.id) "
                "AND NOT EXISTS (SELECT 1 FROM article_versions v "
                " WHERE v.article_id = a.id AND v.content_hash = a.content_hash AND v.valid_from = a.updated_at)",
                [run_id, changed, changed],
            )
        # An unchanged article (same hash, title, extractor version) is not rewritten, so re-running or
        # re-processing writes nothing; a page fetched again moves only its last_seen_at.
        con.execute(
            "MERGE INTO articles t USING batch_articles b ON t.id = b.id "
            "WHEN MATCHED AND (t.content_hash <> b.content_hash OR t.title IS DISTINCT FROM b.title "
            "   OR t.extractor_version <> b.extractor_version) THEN UPDATE SET page_url = b.page_url, title = b.title, "
            " text = b.text, authors = b.authors, published_at = b.published_at, language = b.language, "
            " site_name = b.site_name, description = b.description, extractor = b.extractor, "
            " extractor_version = b.extractor_version, content_hash = b.content_hash, word_count = b.word_count, "
            " last_seen_at = greatest(t.last_seen_at, b.fetched_at), updated_at = b.fetched_at, run_id = ? "
            "WHEN NOT MATCHED THEN INSERT (id, url, page_url, source, title, text, authors, published_at, language, "
            " site_name, description, extractor, extractor_version, content_hash, word_count, first_seen_at, last_seen_at, "
            " updated_at, run_id) VALUES (b.id, b.url, b.page_url, b.source, b.title, b.text, b.authors, b.published_at, "
            " b.language, b.site_name, b.description, b.extractor, b.extractor_version, b.content_hash, b.word_count, "
            " least(b.fetched_at, coalesce(?, b.fetched_at)), b.fetched_at, b.fetched_at, ?)",
            [run_id, seen_at, run_id],
        )
        # Fetched again, unchanged: only last_seen_at moves (a re-processed stored page keeps its fetch
        # time, so re-processing writes nothing). A separate statement: DuckLake's MERGE allows one UPDATE.
        seen_again = [aid for aid, st, later in status if st == "unchanged" and later]
        if seen_again:
            con.execute(
                "UPDATE articles SET last_seen_at = b.fetched_at FROM batch_articles b "
                "WHERE articles.id = b.id AND list_contains(?::VARCHAR[], b.id)",
                [seen_again],
            )
    out = ArticleWrite([], [], [])
    for aid, st, _later in status:
        {"new": out.new, "updated": out.updated, "reprocessed": out.updated, "unchanged": out.unchanged}[st].append(aid)
    return out


def save_article_urls(con: duckdb.DuckDBPyConnection, pairs: Sequence[tuple[str, str, datetime]]) -> None:
    """Record alias URLs (url, article_id, seen_at); the first mapping of a URL is kept."""
    if not pairs:
        return
    schema = pa.schema([("url", pa.string()), ("article_id", pa.string()), ("seen_at", TS)])
    rows = [{"url": u, "article_id": a, "seen_at": t} for u, a, t in pairs]
    with registered(con, "batch_urls", rows, schema):
        con.execute(
            "MERGE INTO article_urls t USING (SELECT url, substr(md5(url), 1, 16) AS url_key, any_value(article_id) AS article_id, "
            " min(seen_at) AS seen_at FROM batch_urls GROUP BY url) b ON t.url_key = b.url_key AND t.url = b.url "
            "WHEN MATCHED AND t.article_id <> b.article_id THEN UPDATE SET article_id = b.article_id "
            "WHEN NOT MATCHED THEN INSERT (url, url_key, article_id, first_seen_at) VALUES (b.url, b.url_key, b.article_id, b.seen_at)"
        )


# ---------------------------------------------------------------- failures and retries

_FAIL_SCHEMA = pa.schema(
    [
        ("url", pa.string()), ("source", pa.string()), ("stage", pa.string()), ("reason", pa.string()),
        ("detail", pa.string()), ("retryable", pa.bool_()), ("retry_after_s", pa.float64()), ("failed_at", TS),
        ("kind", pa.string()),
    ]
)


def record_failures(
    con: duckdb.DuckDBPyConnection,
    failures: Sequence[tuple[Failure, str]],
    run_id: int,
    *,
    max_attempts: int,
    base_delay_s: float,
    max_delay_s: float,
) -> None:
    """Log failures and schedule retries with exponential backoff; give up after max_attempts.

    `failures` pairs each Failure with the kind of URL (article, feed, sitemap) it concerns.
    """
    if not failures:
        return
    rows = [
        {**f.model_dump(include={"url", "source", "stage", "reason", "detail", "retryable", "retry_after_s", "failed_at"}), "kind": kind}
        for f, kind in failures
    ]
    with registered(con, "batch_failures", rows, _FAIL_SCHEMA):
        con.execute(
            "INSERT INTO failures (id, url, source, stage, reason, detail, retryable, run_id, failed_at) "
            "SELECT (SELECT coalesce(max(id), 0) FROM failures) + row_number() OVER (ORDER BY failed_at, url), "
            " url, source, stage, reason, detail, retryable, ?, failed_at FROM batch_failures",
            [run_id],
        )
        # One row per URL: the last failure of the batch decides the retry state. Backoff doubles per
        # attempt from base_delay_s (capped), and a server's Retry-After is never undercut.
        con.execute(
            "MERGE INTO url_retries t USING ("
            " SELECT b.url, b.source, b.kind, b.stage, coalesce(r.attempts, 0) + 1 AS attempts, b.reason, b.retryable, "
            "  CASE WHEN b.retryable AND coalesce(r.attempts, 0) + 1 < ? THEN b.failed_at + to_seconds(CAST(least(?, "
            "    greatest(coalesce(b.retry_after_s, 0), ? * pow(2, coalesce(r.attempts, 0)))) AS DOUBLE)) END AS next_at, "
            "  NOT b.retryable OR coalesce(r.attempts, 0) + 1 >= ? AS permanent, b.failed_at "
            " FROM (SELECT * FROM batch_failures QUALIFY row_number() OVER (PARTITION BY url ORDER BY failed_at DESC) = 1) b "
            " LEFT JOIN url_retries r ON r.url = b.url) s ON t.url = s.url "
            "WHEN MATCHED THEN UPDATE SET source = s.source, kind = s.kind, stage = s.stage, attempts = s.attempts, "
            " last_reason = s.reason, retryable = s.retryable, next_attempt_at = s.next_at, permanent = s.permanent, "
            " updated_at = s.failed_at "
            "WHEN NOT MATCHED THEN INSERT (url, source, kind, stage, attempts, last_reason, retryable, next_attempt_at, "
            " permanent, updated_at) VALUES (s.url, s.source, s.kind, s.stage, s.attempts, s.reason, s.retryable, "
            " s.next_at, s.permanent, s.failed_at)",
            [max_attempts, max_delay_s, base_delay_s, max_attempts],
        )


def clear_retries(con: duckdb.DuckDBPyConnection, urls: Sequence[str]) -> None:
    """Forget retry state of URLs that have now succeeded."""
    if not urls:
        return
    schema = pa.schema([("url", pa.string())])
    with registered(con, "batch_ok", [{"url": u} for u in urls], schema):
        # Only when one of them is in the table: a DELETE that removes nothing still costs a catalog write.
        if con.execute("SELECT count(*) FROM url_retries r JOIN batch_ok b ON r.url = b.url").fetchall()[0][0]:
            con.execute("DELETE FROM url_retries WHERE url IN (SELECT url FROM batch_ok)")
