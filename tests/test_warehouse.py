"""Warehouse schema and loads on a real DuckLake (SQLite catalog + Parquet files): migrations, idempotent loads, retries, readers beside a writer."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from ingest.models import Article, Failure, FetchResult
from lake import lake_settings
from warehouse import db, loads, queries


def test_fresh_and_old_databases_end_at_the_latest_schema(tmp_path: Path) -> None:
    latest = max(v for v, _, _ in db.migration_files())
    fresh = lake_settings(tmp_path / "fresh")
    db.init_db(fresh)
    # An "old" lake: only the first migration applied, with data in it.
    old = lake_settings(tmp_path / "old")
    first = db.migration_files()[0]
    with db.session(old) as con:
        con.execute("CREATE TABLE schema_migrations (version INTEGER NOT NULL, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        con.execute(first[2].read_text(encoding="utf-8"))
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [first[0], first[1]])
        con.execute("INSERT INTO sources (name, kind, location) VALUES ('s', 'rss', 'http://x')")
        con.execute("INSERT INTO pages (url, kind, source, status, fetched_at, checked_at) VALUES ('https://x/a', 'article', 's', 200, now(), now())")
        con.execute("INSERT INTO article_urls (url, article_id, first_seen_at) VALUES ('https://x/a', 'a1', now())")
    applied = db.init_db(old)
    assert applied == [f"{v:03d}_{n}" for v, n, _ in db.migration_files()[1:]]
    for path in (fresh, old):
        with db.session(path, read_only=True) as con:
            assert db.schema_version(con) == latest
            tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'newsflow'").fetchall()}
            assert {"articles", "duplicates", "entities", "mentions", "v_story_clusters", "v_article_entities"} <= tables
    with db.session(old, read_only=True) as con:
        assert con.execute("SELECT name FROM sources").fetchall() == [("s",)]
        # Migration 008 backfills the URL lookup key of rows stored before it.
        want = con.execute("SELECT substr(md5('https://x/a'), 1, 16)").fetchone()[0]
        for table in ("pages", "article_urls"):
            assert con.execute(f"SELECT url, url_key FROM {table}").fetchall() == [("https://x/a", want)]
    assert db.init_db(old) == []  # re-running is a no-op


def test_a_failing_migration_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mdir = tmp_path / "migrations"
    mdir.mkdir()
    (mdir / "001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (mdir / "002_bad.sql").write_text("CREATE TABLE b (x INTEGER); SELECT * FROM no_such_table;")
    monkeypatch.setattr(db, "MIGRATIONS_DIR", mdir)
    path = lake_settings(tmp_path / "wh")
    with db.session(path) as con:
        with pytest.raises(duckdb.CatalogException):
            db.migrate(con)
        assert db.schema_version(con) == 1
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'newsflow'").fetchall()}
        assert "a" in tables and "b" not in tables


def test_article_upserts_are_idempotent_and_keep_history(tmp_path: Path) -> None:
    path = lake_settings(tmp_path / "wh")
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
    path = lake_settings(tmp_path / "wh")
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
    path = lake_settings(tmp_path / "wh")
    db.init_db(path)
    body = b"<html>" + b"x" * 10_000 + b"</html>"
    r = FetchResult(url="https://x.example/a", source="s", status=200, body=body, etag='"e1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    with db.session(path) as con, db.transaction(con):
        run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
        loads.save_pages(con, [r, r], run)
        blob, size = con.execute("SELECT body_zlib, body_bytes FROM pages").fetchall()[0]
        assert loads.page_body(blob) == body and size == len(body) and len(blob) < len(body) / 10
        assert queries.validators(con, [r.url]) == {r.url: ('"e1"', "Mon, 01 Jan 2024 00:00:00 GMT")}


def test_a_reader_session_kept_open_never_blocks_the_writer(tmp_path: Path) -> None:
    """An analyst's read-only session attached for a whole load neither fails nor delays the writer, and
    sees the new rows on its next query (the old DuckDB file refused every other process)."""
    settings = lake_settings(tmp_path / "wh")
    db.init_db(settings)
    reader = db.open_lake(db.target(settings), read_only=True)
    try:
        assert reader.execute("SELECT count(*) FROM articles").fetchall() == [(0,)]
        reader.execute("BEGIN TRANSACTION")  # a long-lived snapshot, as a notebook cell in progress holds one
        assert reader.execute("SELECT count(*) FROM articles").fetchall() == [(0,)]
        t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        arts = [Article(id=f"a{i}", url=f"https://x.example/{i}", page_url=f"https://x.example/{i}", source="s",
                        text=f"text {i}", content_hash=f"h{i}", fetched_at=t0) for i in range(50)]
        with db.session(settings) as con, db.transaction(con):
            run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
            assert len(loads.save_articles(con, arts, run).new) == 50
        # Snapshot isolation: the open transaction still sees the lake as it began ...
        assert reader.execute("SELECT count(*) FROM articles").fetchall() == [(0,)]
        reader.execute("COMMIT")
        # ... and the next one sees the committed rows.
        assert reader.execute("SELECT count(*) FROM articles").fetchall() == [(50,)]
    finally:
        reader.close()


def test_db_threads_fixes_duckdbs_threads_when_the_process_opens_the_lake(tmp_path: Path) -> None:
    """Settings.db_threads: ingest runs use 1 DuckDB thread while their worker processes hold the cores."""
    import os

    one = lake_settings(tmp_path / "one").model_copy(update={"db_threads": 1})
    db.init_db(one)
    with db.session(one) as con:
        assert con.execute("SELECT current_setting('threads')").fetchall() == [(1,)]
    # The instance keeps it: a later session of this process that asks for nothing else reads with 1 thread too.
    with db.session(one.model_copy(update={"db_threads": None}), read_only=True) as con:
        assert con.execute("SELECT current_setting('threads')").fetchall() == [(1,)]
    # 0 (or unset) is DuckDB's default, one per core.
    every = lake_settings(tmp_path / "every").model_copy(update={"db_threads": 0})
    db.init_db(every)
    with db.session(every, read_only=True) as con:
        assert con.execute("SELECT current_setting('threads')").fetchall() == [(os.cpu_count() or 1,)]


def test_a_missing_lake_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(db.NoWarehouse, match="newsflow init"):
        with db.session(lake_settings(tmp_path / "none"), read_only=True):
            pass
    assert not (tmp_path / "none").exists()


def test_a_bad_catalog_setting_is_a_config_error(tmp_path: Path) -> None:
    from ingest.errors import ConfigError
    from ingest.settings import Settings

    with pytest.raises(ConfigError, match="sqlite:PATH or postgres:"):
        db.target(Settings(catalog="mysql://x"))


def test_extensions_come_from_the_pinned_wheels_not_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from warehouse import extensions

    monkeypatch.setenv("NEWSFLOW_EXTENSION_DIR", str(tmp_path / "ext"))
    folder = extensions.prepare(("ducklake", "sqlite", "postgres", "fts"), directory=tmp_path / "ext")
    names = sorted(p.name for p in folder.rglob("*.duckdb_extension"))
    assert names == ["ducklake.duckdb_extension", "fts.duckdb_extension", "postgres_scanner.duckdb_extension", "sqlite_scanner.duckdb_extension"]
    # A wheel that is missing is named in one line with the package to install.
    monkeypatch.setitem(extensions.WHEELS, "ducklake", extensions.ExtensionWheel("no_such_pkg_xyz", "duckdb-extension-ducklake", "ducklake", "ducklake"))
    with pytest.raises(extensions.MissingExtension, match="pip install duckdb-extension-ducklake=="):
        extensions.prepare(("ducklake",), directory=tmp_path / "ext2")


def test_extension_signatures_are_checked_when_asked(tmp_path: Path) -> None:
    """Off by default (files copied from the pinned wheels; the check hashes ~80 MB per start); on, the signed files load."""
    settings = lake_settings(tmp_path / "wh")
    db.init_db(settings)
    assert db.target(settings).verify_signatures is False
    checked = settings.model_copy(update={"verify_extension_signatures": True})
    t = db.target(checked)
    assert t.verify_signatures is True
    con = db.open_lake(t, read_only=True)
    try:
        assert con.execute("SELECT current_setting('allow_unsigned_extensions')").fetchone()[0] is False
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] >= 0
    finally:
        con.close()


def test_time_travel_to_a_run(tmp_path: Path) -> None:
    from warehouse.readonly import run_readonly

    settings = lake_settings(tmp_path / "wh")
    db.init_db(settings)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    for n in (1, 2):
        with db.session(settings) as con:
            with db.transaction(con):
                run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
                loads.save_articles(con, [Article(id=f"a{n}", url=f"https://x.example/{n}", page_url=f"https://x.example/{n}",
                                                  source="s", text="t", content_hash=f"h{n}", fetched_at=t0)], run)
                loads.finish_run(con, run, status="completed")
            snap = db.last_committed_snapshot(con)
            with db.transaction(con):
                loads.set_run_snapshot(con, run, snap)
    assert run_readonly(settings, "select count(*) from articles", as_of_run=1)[-1][1] == [(1,)]
    assert run_readonly(settings, "select count(*) from articles", as_of_run=2)[-1][1] == [(2,)]
    assert run_readonly(settings, "select count(*) from articles")[-1][1] == [(2,)]


def test_maintenance_keeps_the_number_of_data_files_bounded(tmp_path: Path) -> None:
    from warehouse import maintenance

    settings = lake_settings(tmp_path / "wh", data_inlining_row_limit=10)
    db.init_db(settings)
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    with db.session(settings) as con:
        with db.transaction(con):
            run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
        for b in range(25):  # 25 batches of 40 articles: above the inlining limit, so files are written
            arts = [Article(id=f"a{b}-{i}", url=f"https://x.example/{b}/{i}", page_url=f"https://x.example/{b}/{i}", source="s",
                            text=f"text {b} {i}", content_hash=f"h{b}-{i}", fetched_at=t0) for i in range(40)]
            with db.transaction(con):
                loads.save_articles(con, arts, run)
                loads.save_article_urls(con, [(a.url, a.id, t0) for a in arts])
    with db.session(settings, read_only=True) as con:
        before = maintenance.live_data_files(con)
    report = maintenance.maintain(settings)
    assert before >= 50 and report.live_files_before == before
    assert report.live_files_after <= 4, report.summary()  # a file or two per table, whatever the batch count
    # Nothing lost or doubled by flushing and merging; time travel before maintenance still works.
    with db.session(settings, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM articles").fetchall() == [(1000, 1000)]
    # Without retention, the merged-away files leave the disk too.
    gone = maintenance.maintain(settings, retention_days=0)
    assert gone.disk_files_after == gone.live_files_after


def test_maintenance_flushes_the_inlined_rows_of_every_table(tmp_path: Path) -> None:
    """Rows inlined in the catalog (small inserts: `runs`, `schema_migrations`) all go to Parquet in one pass."""
    from warehouse import maintenance

    settings = lake_settings(tmp_path / "wh", data_inlining_row_limit=100)
    db.init_db(settings)
    with db.session(settings) as con:
        for _ in range(3):
            with db.transaction(con):
                run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
            with db.transaction(con):
                loads.finish_run(con, run, status="completed")

    def inlined(con) -> dict[str, int]:  # noqa: ANN001
        meta = maintenance._META
        names = con.execute(
            f"SELECT t.table_name, i.table_name FROM {meta}.ducklake_inlined_data_tables i "
            f"JOIN {meta}.ducklake_table t USING (table_id) WHERE t.end_snapshot IS NULL"
        ).fetchall()
        counts: dict[str, int] = {}
        for table, data in names:  # the inlined tables' names come from the catalog itself
            live = con.execute(f"SELECT count(*) FROM {meta}.{data} WHERE end_snapshot IS NULL").fetchall()[0][0]
            counts[table] = counts.get(table, 0) + live
        return {t: n for t, n in counts.items() if n}

    with db.session(settings, read_only=True) as con:
        before = inlined(con)
        rows = con.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM schema_migrations)").fetchall()
    assert before.get("runs") == 3 and before.get("schema_migrations", 0) > 0, before
    report = maintenance.maintain(settings)
    assert report.flushed == 2  # tables flushed: `runs` and `schema_migrations`
    with db.session(settings, read_only=True) as con:
        assert inlined(con) == {}
        assert con.execute("SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM schema_migrations)").fetchall() == rows


def test_many_runs_do_not_pile_up_files_of_updated_tables(tmp_path: Path) -> None:
    """`runs` is updated by every batch of every run: maintenance folds its rewritten rows back into one file."""
    from warehouse import maintenance

    settings = lake_settings(tmp_path / "wh", data_inlining_row_limit=0)  # every insert makes a file
    db.init_db(settings)
    counts = []
    for _ in range(8):
        with db.session(settings) as con:
            with db.transaction(con):
                run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
            for _b in range(3):
                with db.transaction(con):
                    loads.add_run_counts(con, run, {"fetched": 1})
            with db.transaction(con):
                loads.finish_run(con, run, status="completed")
        counts.append(maintenance.maintain(settings).live_files_after)
    assert max(counts) <= 2 and counts[-1] == counts[1], counts
    with db.session(settings, read_only=True) as con:
        assert con.execute("SELECT count(*), sum(fetched) FROM runs").fetchall() == [(8, 24)]


def test_pandas_import_fails_fast_only_when_pandas_is_absent() -> None:
    """warehouse's import finder answers DuckDB's repeated `import pandas` at once; nothing else changes."""
    probe = (
        "import importlib.util, sys\n"
        "absent = importlib.util.find_spec('pandas') is None\n"
        "import warehouse, duckdb\n"
        "try:\n"
        "    import pandas\n"
        "    outcome = 'imported'\n"
        "except ModuleNotFoundError as exc:\n"
        "    outcome = 'missing:' + str(exc.name)\n"
        "assert importlib.util.find_spec('json') is not None\n"
        "assert duckdb.connect().execute('select ?::int + 1', [41]).fetchone() == (42,)\n"
        "finder = any(type(f).__name__ == '_PandasAbsent' for f in sys.meta_path)\n"
        "print(absent, outcome, finder)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == (["True", "missing:pandas", "True"] if out[0] == "True" else ["False", "imported", "False"])
