"""Crash safety: a SIGKILLed `newsflow ingest` loses nothing and leaves no half-written batch; a failing
batch rolls back as a whole and is recorded; the next run completes the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake import lake_settings
from hostile_site import NEWSFLOW, cli_env, integrity_report, q, serve_many_articles
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer

pytestmark = pytest.mark.slow


def loaded_articles(db: Path) -> int:
    """Articles committed so far, read like an analyst would (read-only, retrying while the writer holds the file)."""
    from warehouse.readonly import run_readonly

    try:
        return int(run_readonly(lake_settings(db), "select count(*) from articles")[-1][1][0][0])
    except Exception:  # noqa: BLE001 - no warehouse yet (the run is still migrating)
        return 0


def kill_after_first_batch(proc: subprocess.Popen, db: Path, min_articles: int, timeout_s: float = 120) -> int:
    """Poll the warehouse until `min_articles` are committed, then SIGKILL the run's process group."""
    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline and proc.poll() is None:
        n = loaded_articles(db)
        if n >= min_articles:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed; make it slower"
    assert n >= min_articles, f"no batch was loaded within {timeout_s}s"
    os.killpg(proc.pid, signal.SIGKILL)  # the run and anything it started (its own process group)
    proc.wait(timeout=30)
    return n


def test_sigkill_mid_run_loses_nothing(prefect_api: None, site: SiteServer, tmp_path: Path) -> None:
    # Slow enough pages, and a commit per batch of 20 (not the default ≥400-page load groups), so the poll sees
    # the first batch well before the last: at 30 ms a page one CI run committed all 150 before the kill.
    sources, urls = serve_many_articles(site, tmp_path, n=150, delay_s=0.1)
    db = tmp_path / "wh"
    env = cli_env(db, sources, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="20", NEWSFLOW_LOAD_MIN_PAGES="1")
    log1 = (tmp_path / "run1.log").open("w")
    proc = subprocess.Popen([*NEWSFLOW, "ingest"], env=env, stdout=log1, stderr=subprocess.STDOUT, start_new_session=True)
    at_kill = kill_after_first_batch(proc, db, min_articles=20)
    assert proc.returncode == -signal.SIGKILL
    assert at_kill < len(urls)

    # The killed run left whole batches only, and its row says 'running' until the next run looks.
    mid = integrity_report(db, urls)
    assert mid["half_written"] == 0 and set(mid["duplicates"].values()) == {0}
    assert mid["articles"] % 20 == 0 and mid["articles"] == mid["sum_new"]
    assert mid["statuses"] == ["running"]

    done = subprocess.run([*NEWSFLOW, "ingest"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rep = integrity_report(db, urls)
    assert rep["lost"] == []
    assert rep["articles"] == rep["distinct_urls"] == len(urls)
    assert set(rep["duplicates"].values()) == {0}, rep["duplicates"]
    assert rep["half_written"] == 0
    assert rep["sum_new"] == rep["articles"]  # run counts were committed with their batches
    assert rep["statuses"] == ["crashed", "completed"]
    assert q(db, "select error from runs where status = 'crashed'")[0][0].startswith("process died")
    # Every committed article was fetched once by the killed run and not again by the second one.
    refetched = sum(1 for r in site.requests_for("/bulk/") if r.status == 200) - len(urls)
    # At most the batches in flight when the kill came (fetched, never loaded): the ingest pipelines up to four
    # (batch i loading, NER of i+1 and cleaning of i+2 queued in the workers, i+3 being fetched).
    assert refetched <= 4 * 20


def test_failing_batch_rolls_back_and_next_run_loads_all(
    prefect_api: None, site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.ingest import ingest
    from warehouse import entities_store

    sources, urls = serve_many_articles(site, tmp_path, n=15, delay_s=0)
    db = tmp_path / "wh"
    # One load per batch of 5 (NEWSFLOW_LOAD_MIN_PAGES=1; by default batches load in groups of 400 pages).
    for k, v in cli_env(db, sources, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="5", NEWSFLOW_LOAD_MIN_PAGES="1").items():
        if k.startswith("NEWSFLOW_"):
            monkeypatch.setenv(k, v)
    real = entities_store.save_entities
    calls = {"n": 0}

    def flaky_save(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch dies after its pages, articles and fingerprints were written
            raise RuntimeError("disk on fire")
        return real(*a, **kw)

    monkeypatch.setattr(entities_store, "save_entities", flaky_save)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest()
    run = q(db, "select status, error, new from runs")
    assert len(run) == 1 and run[0][0] == "failed" and "disk on fire" in run[0][1]
    rep = integrity_report(db, urls)
    assert rep["articles"] == 5 == run[0][2]  # only the first batch; nothing of the second
    assert rep["half_written"] == 0
    assert q(db, "select count(*) from pages where kind = 'article'")[0][0] == 5
    assert q(db, "select count(*) from article_urls")[0][0] == q(db, "select count(*) from article_urls u join articles a on a.id = u.article_id")[0][0]

    monkeypatch.setattr(entities_store, "save_entities", real)
    r2 = ingest()
    assert r2["new"] == 10
    rep = integrity_report(db, urls)
    assert rep["lost"] == [] and rep["articles"] == 15 and rep["half_written"] == 0
    assert set(rep["duplicates"].values()) == {0}
    assert rep["statuses"] == ["failed", "completed"]


def test_a_native_crash_leaves_the_python_stack_on_stderr(tmp_path: Path) -> None:
    """A process killed by native code (here SIGABRT, what glibc sends itself on heap corruption) prints
    where every thread was; without it such a crash leaves one line and nothing to act on."""
    env = cli_env(tmp_path / "wh", tmp_path / "sources.toml", tmp_path / "prefect")
    proc = subprocess.Popen([*NEWSFLOW, "sql", "-"], env=env, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the command blocks reading its query from stdin (syscall 0 = read, on fd 0).
        deadline = time.monotonic() + 60
        while not Path(f"/proc/{proc.pid}/syscall").read_text().startswith("0 0x0 "):
            assert proc.poll() is None and time.monotonic() < deadline, "newsflow sql never waited for stdin"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGABRT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in err
    assert "_sql_command.py" in err, err[-2000:]  # the stack reaches the line that was reading


_POOL_THEN_WAIT = """
import time
from ingest import pipeline
pool = pipeline.StagePool(2)
pool.warm(pipeline._worker_ready)
while sum(p.is_alive() for p in pool._executor._processes.values()) < 2:
    time.sleep(0.05)
print(" ".join(map(str, pool._executor._processes)), flush=True)
time.sleep(600)
"""


def test_workers_exit_when_their_parent_is_killed() -> None:
    # A SIGKILLed run cannot shut its pool down; its workers must not wait on the task queue forever.
    proc = subprocess.Popen([sys.executable, "-c", _POOL_THEN_WAIT], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[1][:3] for p in pids):
        assert time.monotonic() < deadline, "a worker outlived its killed parent"
        time.sleep(0.1)
