"""Concurrent access: `newsflow sql` stays read-only, 8 reader processes querying without pause all through
an ingest of 500 pages never fail, and two ingests started together run one after the other without
corrupting anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hostile_site import NEWSFLOW, cli_env, integrity_report, q, serve_many_articles
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from readers import stress_readers
from sitesrv import SiteServer

pytestmark = pytest.mark.slow

COUNT_TABLES = ["articles", "pages", "runs", "failures", "url_retries", "article_urls", "sources"]

REFUSED = [
    "DELETE FROM articles",
    "DROP TABLE articles",
    "ATTACH '{tmp}/other.duckdb' AS other",
    "COPY articles TO '{tmp}/dump.csv'",
    "COPY (SELECT * FROM articles) TO '{tmp}/dump2.csv'",
    "INSERT INTO runs (flow, trigger, params, pid) VALUES ('x', 'x', '{{}}', 1)",
    "UPDATE articles SET title = 'pwned'",
    "CREATE TABLE t AS SELECT 1 AS a",
    "SET threads = 1",
    "PRAGMA enable_profiling",
    "SELECT 1; DELETE FROM articles",
    "CHECKPOINT",
]


def counts(db: Path) -> dict[str, int]:
    return {t: q(db, f"select count(*) from {t}")[0][0] for t in COUNT_TABLES}


@pytest.fixture(scope="module")
def loaded(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A warehouse with 30 articles loaded through the CLI."""
    tmp = tmp_path_factory.mktemp("conc")
    with SiteServer() as site:
        sources, urls = serve_many_articles(site, tmp, n=30, delay_s=0)
        env = cli_env(tmp / "wh", sources, tmp / "prefect", NEWSFLOW_BATCH_SIZE="10")
        r = subprocess.run([*NEWSFLOW, "ingest"], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    return {"db": tmp / "wh", "env": env, "tmp": tmp}


@pytest.mark.parametrize("query", REFUSED)
def test_sql_refuses_writes_and_changes_nothing(loaded: dict, query: str) -> None:
    db, tmp = loaded["db"], loaded["tmp"]
    before = counts(db)
    r = subprocess.run([*NEWSFLOW, "sql", query.format(tmp=tmp)], env=loaded["env"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "refused" in r.stderr and "read-only" in r.stderr and "nothing was changed" in r.stderr
    assert r.stderr.count("\n") == 1  # one clear line, no traceback
    assert counts(db) == before
    assert not list(tmp.glob("dump*")) and not (tmp / "other.duckdb").exists()


def test_sql_cannot_read_files(loaded: dict) -> None:
    r = subprocess.run([*NEWSFLOW, "sql", "select * from read_csv('/etc/passwd')"], env=loaded["env"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "passwd" not in r.stdout and "root:" not in r.stdout


# The reader stress: N reader processes (default 8) for the whole of an ingest of 500 pages.
READERS = int(os.environ.get("NEWSFLOW_TEST_READERS", "8"))
STRESS_PAGES = 500
MIN_OVERLAPPED = 200


def ingest_window(wh: Path) -> tuple[float, float]:
    """(started_at, finished_at) of the last ingest run, in epoch seconds."""
    start, end = q(wh, "select epoch(started_at), epoch(finished_at) from runs where flow = 'ingest' order by id desc limit 1")[0]
    return float(start), float(end)


def test_readers_succeed_while_ingest_writes(prefect_api: None, site: SiteServer, tmp_path: Path) -> None:
    sources, urls = serve_many_articles(site, tmp_path, n=STRESS_PAGES, delay_s=0)
    wh = tmp_path / "wh"
    env = cli_env(wh, sources, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="50")
    assert subprocess.run([*NEWSFLOW, "init"], env=env, capture_output=True, timeout=120).returncode == 0
    res = stress_readers([*NEWSFLOW, "ingest"], env, tmp_path / "readers", lambda: ingest_window(wh), n_readers=READERS)
    print(
        f"\n{res['readers']} readers during an ingest of {STRESS_PAGES} pages ({res['run_s']:.0f} s): "
        f"{res['tried']} queries tried, {res['overlapped']} inside the run, {res['failed']} failed; "
        f"latency p50 {res['p50_ms']:.0f} ms, p95 {res['p95_ms']:.0f} ms; "
        f"most articles a reader saw during the run: {res['max_articles_seen_during_run']}"
    )
    assert res["writer_exit"] == 0, res["writer_stderr"]
    assert res["readers_exited"] == [0] * READERS, res["errors"]
    assert res["failed"] == 0, res["errors"]
    assert res["overlapped"] >= MIN_OVERLAPPED, res
    # The readers saw the writer's batches land (not one stale snapshot), and never a half-loaded run.
    assert 0 < res["max_articles_seen_during_run"] <= STRESS_PAGES
    rep = integrity_report(wh, urls)
    assert rep["lost"] == [] and rep["articles"] == STRESS_PAGES
    assert set(rep["duplicates"].values()) == {0} and rep["half_written"] == 0


def test_two_ingests_at_once_take_turns(prefect_api: None, site: SiteServer, tmp_path: Path) -> None:
    sources, urls = serve_many_articles(site, tmp_path, n=40, delay_s=0.02)
    db = tmp_path / "wh"
    env = cli_env(db, sources, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="10")
    assert subprocess.run([*NEWSFLOW, "init"], env=env, capture_output=True, timeout=120).returncode == 0
    a = subprocess.Popen([*NEWSFLOW, "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen([*NEWSFLOW, "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=300) for p in (a, b)]
    assert [a.returncode, b.returncode] == [0, 0], [o[1][-2000:] for o in outs]
    assert sum("waiting" in err for _, err in outs) == 1, [o[1][-1500:] for o in outs]
    rep = integrity_report(db, urls)
    assert rep["lost"] == [] and rep["articles"] == len(urls) == rep["distinct_urls"]
    assert set(rep["duplicates"].values()) == {0} and rep["half_written"] == 0
    assert set(rep["statuses"]) == {"completed"} and len(rep["statuses"]) >= 3  # init (seeds) + both ingests
    # The second run found everything loaded: each article page was fetched exactly once.
    assert sum(1 for r in site.requests_for("/bulk/") if r.status == 200) == len(urls)
