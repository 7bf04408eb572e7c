"""The worker the CLI starts before Prefect (ingest.pipeline.prestart): adopted by the run, stopped when unused.

Real worker processes; the CLI tests run `newsflow ingest` against a loopback site in its own process
group, so a worker left behind would still be found in that group after the command returned.
"""

from __future__ import annotations

import os
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest

from hostile_site import NEWSFLOW, cli_env, q, serve_many_articles
from ingest import pipeline
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer


def _alive(pool: pipeline.StagePool) -> list[int]:
    procs = getattr(pool._executor, "_processes", None) or {}
    return [pid for pid, p in procs.items() if p.is_alive()]


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (it may exit between any two reads of /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone (ProcessLookupError / FileNotFoundError)
        return False
    return "Z" not in stat.split(")")[1][:3]


def test_a_prestarted_worker_is_adopted_once_and_an_unused_one_stops_without_waiting() -> None:
    pipeline.prestart(2, partial(time.sleep, 60))  # a warm-up still running when the run ends
    pool = pipeline.take_prestarted(2)
    assert pool is not None and pipeline.take_prestarted(2) is None  # handed over once
    deadline = time.monotonic() + 60
    while not _alive(pool):
        assert time.monotonic() < deadline, "the prestarted worker never started"
        time.sleep(0.05)
    assert len(_alive(pool)) == 1  # one worker only: the other core stays with the CLI
    pids = _alive(pool)
    t0 = time.monotonic()
    pool.close()  # nothing was submitted by a run: the worker is stopped, not waited for
    assert time.monotonic() - t0 < 30
    for pid in pids:
        assert not _running(pid)


def test_a_prestarted_pool_of_another_size_is_stopped_not_adopted() -> None:
    pipeline.prestart(2, partial(time.sleep, 60))
    assert pipeline.take_prestarted(3) is None
    pipeline.release_prestarted()  # nothing left to release: no error


def test_the_run_takes_the_prestarted_pool_as_its_stage_pool() -> None:
    from flows.compute import stage_pool
    from ingest.settings import Settings

    pipeline.prestart(2, pipeline._worker_ready)
    expected = pipeline._prestarted
    pool = stage_pool(Settings(workers=2))
    try:
        assert pool is expected and pipeline._prestarted is None
    finally:
        pool.close()


def _run_in_own_group(env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([*NEWSFLOW, "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out, err = proc.communicate(timeout=600)
    # Every process the command started (its workers) shares its process group; none may outlive it.
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a process of `newsflow ingest` outlived it"
        time.sleep(0.1)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_cli_runs_with_two_workers_use_the_prestarted_one_and_leave_nothing_behind(
    prefect_api: None, site: SiteServer, tmp_path: Path
) -> None:
    sources, urls = serve_many_articles(site, tmp_path, n=40, delay_s=0)
    env = cli_env(tmp_path / "wh", sources, tmp_path / "prefect", NEWSFLOW_WORKERS="2")
    first = _run_in_own_group(env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert q(tmp_path / "wh", "select count(*) from articles")[0][0] == len(urls)
    assert q(tmp_path / "wh", "select count(*) from article_entity_runs")[0][0] == len(urls)
    again = _run_in_own_group(env)  # no-op: the prestarted worker is never used and is stopped
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in first.stderr + again.stderr
    assert q(tmp_path / "wh", "select count(*) from articles")[0][0] == len(urls)



def _nap(items: list[int], settings: object) -> list[int]:
    time.sleep(3)
    return items


def test_a_pool_closed_without_waiting_returns_while_its_workers_finish_then_they_exit() -> None:
    from ingest.settings import Settings

    pool = pipeline.StagePool(2, min_chunk=1)
    pending = pool.submit(_nap, [1, 2], Settings())  # one 3 s chunk per worker
    deadline = time.monotonic() + 60
    while len(_alive(pool)) < 2:
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.05)
    while not all(f.running() for f in pending._futures):  # handed to the workers: shutdown cannot cancel them
        assert time.monotonic() < deadline, "the chunks never started"
        time.sleep(0.05)
    pids = _alive(pool)
    pool.close(wait=False)  # the run's end: maintenance goes on while the workers exit
    assert all(Path(f"/proc/{pid}").exists() for pid in pids)  # it did not wait for them
    pool.close()  # the run's finally: nothing left to do, no error
    assert sorted(x for chunk in pending.result() for x in chunk) == [1, 2]  # running chunks finish
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in pids):
        assert time.monotonic() < deadline, "a worker did not exit after close(wait=False)"
        time.sleep(0.05)
