"""Concurrent access: `newsflow sql` stays read-only, readers succeed while an ingest writes, and two
ingests started together run one after the other without corrupting anything."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hostile_site import NEWSFLOW, cli_env, integrity_report, q, serve_many_articles
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
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


def _reader_script(db: Path, n: int) -> str:
    return (
        "import sys, json\n"
        "from warehouse.readonly import run_readonly\n"
        "from ingest.settings import Settings\n"
        "ok = fail = 0\n"
        f"for i in range({n}):\n"
        "    try:\n"
        f"        run_readonly(Settings(), 'select count(*), max(fetched_at) from articles join pages on pages.url = articles.page_url')\n"
        "        ok += 1\n"
        "    except Exception as e:\n"
        "        fail += 1; print('FAIL', type(e).__name__, e, file=sys.stderr)\n"
        "print(json.dumps({'ok': ok, 'fail': fail}))\n"
    )


def stress_readers(db: Path, env: dict, writer: subprocess.Popen, cli_queries: int = 20, api_queries: int = 30) -> dict:
    """`cli_queries` `newsflow sql` subprocesses (2 at a time) plus one Python process doing `api_queries`
    run_readonly calls, all while `writer` runs. Returns counts and the error output of failures."""
    import json

    results: dict = {"tried": 0, "failed": 0, "errors": [], "during_writer": 0}
    lock = threading.Lock()
    api = subprocess.Popen([sys.executable, "-c", _reader_script(db, api_queries)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli_worker(k: int) -> None:
        for i in range(k):
            alive = writer.poll() is None
            r = subprocess.run([*NEWSFLOW, "sql", "select source, count(*) from articles group by source", "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
            with lock:
                results["tried"] += 1
                results["during_writer"] += alive
                if r.returncode != 0:
                    results["failed"] += 1
                    results["errors"].append(r.stderr.strip())

    threads = [threading.Thread(target=cli_worker, args=(cli_queries // 2,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, err = api.communicate(timeout=300)
    res = json.loads(out.strip().splitlines()[-1])
    results["tried"] += res["ok"] + res["fail"]
    results["failed"] += res["fail"]
    if res["fail"]:
        results["errors"].append(err[-2000:])
    return results


def test_readers_succeed_while_ingest_writes(prefect_api: None, site: SiteServer, tmp_path: Path) -> None:
    sources, urls = serve_many_articles(site, tmp_path, n=80, delay_s=0.02)
    db = tmp_path / "wh"
    env = cli_env(db, sources, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="10")
    assert subprocess.run([*NEWSFLOW, "init"], env=env, capture_output=True, timeout=120).returncode == 0
    writer = subprocess.Popen([*NEWSFLOW, "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        res = stress_readers(db, env, writer)
        _, werr = writer.communicate(timeout=300)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert res["tried"] == 50
    assert res["failed"] == 0, res["errors"][:3]
    assert res["during_writer"] >= 5, "the writer finished before the readers got going"
    assert writer.returncode == 0, werr[-2000:]
    rep = integrity_report(db, urls)
    assert rep["lost"] == [] and set(rep["duplicates"].values()) == {0} and rep["half_written"] == 0


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
