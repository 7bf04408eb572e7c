"""The warehouse on a PostgreSQL catalog (a real PostgreSQL 15 on 127.0.0.1): several writers from several
working directories, the one-writer lock across processes, and the catalog disappearing mid-run.

These tests stand in for several hosts: each `newsflow` process has its own working directory and
Prefect home and shares only what hosts would share, the catalog (PostgreSQL) and the data path.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile_site import NEWSFLOW, cli_env, serve_many_articles
from ingest.settings import Settings
from pgserver import PostgresServer
from warehouse import db

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.cleanup()


def pg_env(base: dict[str, str], dsn: str, data: Path) -> dict[str, str]:
    """A `newsflow` environment on the Postgres catalog `dsn` with data files in `data`."""
    env = {k: v for k, v in base.items() if k not in ("NEWSFLOW_CATALOG", "NEWSFLOW_DATA_PATH")}
    env.update(NEWSFLOW_CATALOG=f"postgres:{dsn}", NEWSFLOW_DATA_PATH=f"{data}/")
    return env


def query(dsn: str, data: Path, sql: str) -> list[tuple]:
    """A read-only query through a fresh DuckLake session (as an analyst on another host would)."""
    con = db.open_lake(db.target(Settings(catalog=f"postgres:{dsn}", data_path=f"{data}/")), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# Content that must not depend on which process loaded what, or when.
CONTENT = {
    "articles": "select id, url, source, content_hash, text from articles order by id",
    "article_urls": "select url, article_id from article_urls order by url",
    "pages": "select url, kind, body_sha256 from pages where kind = 'article' order by url",
    "duplicates": "select article_id, duplicate_of, method from duplicates order by article_id",
    "entities": "select key, type, article_count from entities order by key",
    "mentions": "select article_id, start_char, end_char, e.key from mentions m join entities e on e.id = m.entity_id order by 1, 2, 3",
    "fingerprints": "select article_id, content_hash from article_fingerprints order by article_id",
}
KEYS = {
    "articles": "id", "article_urls": "url", "pages": "url", "duplicates": "article_id", "article_fingerprints": "article_id",
    "url_retries": "url", "article_entity_runs": "article_id", "entities": "id", "runs": "id", "failures": "id",
}


def test_three_hosts_ingest_at_once_and_equal_a_sequential_run(pg: PostgresServer, site, tmp_path: Path) -> None:
    alpha_src, alpha_urls = serve_many_articles(site, tmp_path, n=20, delay_s=0.01, name="alpha")
    beta_src, beta_urls = serve_many_articles(site, tmp_path, n=12, delay_s=0.01, name="beta", first=20_000)
    sources = tmp_path / "sources.toml"
    sources.write_text(alpha_src.read_text() + "\n" + beta_src.read_text(), encoding="utf-8")

    shared_dsn, shared_data = pg.create_database("scaleout"), tmp_path / "shared-data"
    procs = []
    for i, source in enumerate(["alpha", "alpha", "beta"]):
        work = tmp_path / f"host{i}"
        work.mkdir()
        env = pg_env(cli_env(work / "unused", sources, work / "prefect", NEWSFLOW_BATCH_SIZE="10"), shared_dsn, shared_data)
        procs.append(subprocess.Popen([*NEWSFLOW, "ingest", "--source", source], cwd=work, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    waited = [err for _o, err in outs if "waiting" in err]

    # The same three runs one after the other, in the order the lock let them write (entity names
    # depend on the order articles arrive: a short form seen first names an entity until a full one comes).
    order = [json.loads(p)["sources"][0] for (p,) in query(shared_dsn, shared_data, "select params from runs where flow = 'ingest' order by id")]
    seq_dsn, seq_data = pg.create_database("sequential"), tmp_path / "seq-data"
    work = tmp_path / "seq"
    work.mkdir()
    env = pg_env(cli_env(work / "unused", sources, work / "prefect", NEWSFLOW_BATCH_SIZE="10"), seq_dsn, seq_data)
    for source in order:
        r = subprocess.run([*NEWSFLOW, "ingest", "--source", source], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]

    # Every page exactly once, nothing lost, no key duplicated in any table.
    n = query(shared_dsn, shared_data, "select count(*), count(distinct url) from articles where source <> 'seed'")[0]
    assert n == (len(alpha_urls) + len(beta_urls),) * 2
    stored = {u for (u,) in query(shared_dsn, shared_data, "select url from article_urls")}
    assert set(alpha_urls + beta_urls) <= stored
    for table, key in KEYS.items():
        dup = query(shared_dsn, shared_data, f"select count(*) - count(distinct {key}) from {table}")[0][0]
        assert dup == 0, f"{table}: {dup} duplicate {key}"
    runs = query(shared_dsn, shared_data, "select status, new from runs where flow = 'ingest' order by id")
    assert [s for s, _ in runs] == ["completed"] * 3
    # The second alpha run found everything loaded by the first: it fetched nothing new.
    assert sorted(new for _, new in runs) == [0, len(beta_urls), len(alpha_urls)]
    for name, sql in CONTENT.items():
        assert query(shared_dsn, shared_data, sql) == query(seq_dsn, seq_data, sql), name
    print(f"\nscale-out: 3 processes, {n[0]} articles, runs {runs} in order {order}, {len(waited)} waited for the writer lock")


def test_postgres_stopping_mid_run_fails_in_one_line_and_the_next_run_completes(pg: PostgresServer, site, tmp_path: Path) -> None:
    src, urls = serve_many_articles(site, tmp_path, n=60, delay_s=0.1, name="slow")
    dsn, data = pg.create_database("faults"), tmp_path / "data"
    env = pg_env(cli_env(tmp_path / "unused", src, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="5", NEWSFLOW_DB_LOCK_TIMEOUT_S="5"), dsn, data)
    proc = subprocess.Popen([*NEWSFLOW, "ingest"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if query(dsn, data, "select count(*) from articles")[0][0] >= 5:
                    break
            except Exception:  # noqa: BLE001 - the lake may not exist yet
                pass
            time.sleep(0.3)
        else:
            pytest.fail("no batch was loaded")
        pg.stop("immediate")
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        pg.restart()
    # A native abort ends with faulthandler's stacks, then a long "Extension modules:" line: show the stacks.
    assert proc.returncode == 1, err.split("\nExtension modules:")[0][-4000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("newsflow: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    r = subprocess.run([*NEWSFLOW, "ingest"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    statuses = query(dsn, data, "select status from runs order by id")
    assert statuses[-1] == ("completed",) and statuses[-2][0] in ("failed", "crashed")
    assert query(dsn, data, "select count(*), count(distinct url) from articles") == [(len(urls), len(urls))]
    print(f"\npostgres stopped mid-run: exit 1, `{lines[0][:160]}`; next run completed")


def test_the_writer_lock_is_one_advisory_lock_across_processes(pg: PostgresServer, tmp_path: Path) -> None:
    dsn = pg.create_database("locks")
    settings = Settings(catalog=f"postgres:{dsn}", data_path=f"{tmp_path}/data/")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; sys.path[:0] = [%r]; from ingest.settings import Settings; from warehouse import db\n"
         "with db.run_lock(Settings(catalog=%r, data_path=%r)):\n    print('held', flush=True); time.sleep(3)"
         % (str(Path(__file__).resolve().parent.parent), settings.catalog, settings.data_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(db.WarehouseBusy, match="another newsflow run is writing"):
            with db.run_lock(settings, wait=False):
                pass
        said: list[str] = []
        t0 = time.monotonic()
        with db.run_lock(settings, on_wait=said.append):
            waited = time.monotonic() - t0
        assert said and "advisory lock" in said[0] and waited > 0.5
    finally:
        holder.kill()
        holder.wait()
