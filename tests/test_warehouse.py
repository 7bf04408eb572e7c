"""Warehouse schema and loads on real DuckDB files: migrations, idempotent upserts, retries, locking."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from ingest.models import Article, Failure, FetchResult
from warehouse import db, loads, queries


def test_fresh_and_old_databases_end_at_the_latest_schema(tmp_path: Path) -> None:
    latest = max(v for v, _, _ in db.migration_files())
    fresh = tmp_path / "fresh.duckdb"
    db.init_db(fresh)
    # An "old" warehouse: only the first migration applied, with data in it.
    old = tmp_path / "old.duckdb"
    first = db.migration_files()[0]
    with duckdb.connect(str(old)) as con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        con.execute(first[2].read_text(encoding="utf-8"))
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [first[0], first[1]])
        con.execute("INSERT INTO sources (name, kind, location) VALUES ('s', 'rss', 'http://x')")
    applied = db.init_db(old)
    assert applied == [f"{v:03d}_{n}" for v, n, _ in db.migration_files()[1:]]
    for path in (fresh, old):
        with db.session(path, read_only=True) as con:
            assert db.schema_version(con) == latest
            tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            assert {"articles", "duplicates", "entities", "mentions", "v_story_clusters", "v_article_entities"} <= tables
    with db.session(old, read_only=True) as con:
        assert con.execute("SELECT name FROM sources").fetchall() == [("s",)]
    assert db.init_db(old) == []  # re-running is a no-op


def test_a_failing_migration_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    (mdir / "001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (mdir / "002_bad.sql").write_text("CREATE TABLE b (x INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", mdir)
    path = tmp_path / "w.duckdb"
    with db.session(path) as con:
        with pytest.raises(duckdb.CatalogException):
            db.migrate(con)
        assert db.schema_version(con) == 1
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert "a" in tables and "b" not in tables


def test_article_upserts_are_idempotent_and_keep_history(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    db.init_db(path)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    a = Article(id="a1", url="https://x.example/a", page_url="https://x.example/a", source="s", text="one two", content_hash="h1", fetched_at=t0)
    with db.session(path) as con, db.transaction(con):
        run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
        assert loads.save_articles(con, [a, a], run).new == ["a1"]  # twice in one batch: one row
    with db.session(path) as con, db.transaction(con):
        before = con.execute("SELECT * FROM articles").fetchall()
        assert loads.save_articles(con, [a], run).unchanged == ["a1"]
        assert con.execute("SELECT * FROM articles").fetchall() == before
        changed = a.model_copy(update={"text": "one two three", "content_hash": "h2", "fetched_at": t0 + timedelta(days=1)})
        assert loads.save_articles(con, [changed], run).updated == ["a1"]
        assert con.execute("SELECT content_hash, first_seen_at FROM articles").fetchall() == [("h2", t0)]
        assert con.execute("SELECT content_hash, text FROM article_versions").fetchall() == [("h1", "one two")]


def test_failures_back_off_and_give_up(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    db.init_db(path)
    now = datetime.now(timezone.utc)
    f = Failure(url="https://x.example/y", source="s", stage="fetch", reason="http_503", retryable=True, retry_after_s=3600, failed_at=now)
    gone = Failure(url="https://x.example/gone", source="s", stage="fetch", reason="http_410", retryable=False, failed_at=now)
    with db.session(path) as con, db.transaction(con):
        run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
        loads.record_failures(con, [(f, "article"), (gone, "article")], run, max_attempts=3, base_delay_s=60, max_delay_s=86400)
        state = {u: (a, p, n) for u, a, p, n in con.execute("SELECT url, attempts, permanent, next_attempt_at FROM url_retries").fetchall()}
        assert state[gone.url][:2] == (1, True) and state[gone.url][2] is None
        # Retry-After (1 h) beats the 60 s backoff: not due before then.
        assert state[f.url][:2] == (1, False) and state[f.url][2] >= now + timedelta(seconds=3599)
        plan = queries.plan_fetches(con, [(f.url, f.url, "s", None), (gone.url, gone.url, "s", None)], now, ["s"])
        assert plan.waiting == 1 and plan.gave_up == 1 and not plan.retries
        later = now + timedelta(hours=2)
        assert queries.plan_fetches(con, [(f.url, f.url, "s", None)], later, ["s"]).retries == [f.url]
        for _ in range(2):
            loads.record_failures(con, [(f, "article")], run, max_attempts=3, base_delay_s=60, max_delay_s=86400)
        assert con.execute("SELECT attempts, permanent FROM url_retries WHERE url = ?", [f.url]).fetchall() == [(3, True)]


def test_raw_pages_round_trip_compressed(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    db.init_db(path)
    body = b"<html>" + b"x" * 10_000 + b"</html>"
    r = FetchResult(url="https://x.example/a", source="s", status=200, body=body, etag='"e1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    with db.session(path) as con, db.transaction(con):
        run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
        loads.save_pages(con, [r, r], run)
        blob, size = con.execute("SELECT body_zlib, body_bytes FROM pages").fetchall()[0]
        assert loads.page_body(blob) == body and size == len(body) and len(blob) < len(body) / 10
        assert queries.validators(con, [r.url]) == {r.url: ('"e1"', "Mon, 01 Jan 2024 00:00:00 GMT")}


def test_readers_wait_for_a_short_writer_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    db.init_db(path)
    # Another process holds the file for writing for ~1.5 s; our read-only connect retries until it is free.
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(1.5); c.close()"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with db.session(path, read_only=True, timeout_s=30) as con:
        assert con.execute("SELECT count(*) FROM articles").fetchall() == [(0,)]
    holder.wait(timeout=30)
    with pytest.raises(db.WarehouseBusy):
        holder = subprocess.Popen(
            [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(5)"],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            db.connect(path, read_only=True, timeout_s=0.5)
        finally:
            holder.kill()
            holder.wait()
