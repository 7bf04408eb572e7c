"""Scheduled and manually triggered runs on a real Prefect server (`newsflow server` + `newsflow serve`).

Everything runs in subprocesses (the test's socket guard does not reach them), so their environment
keeps them on loopback: PREFECT_API_URL on 127.0.0.1, analytics and telemetry off, sources on the
loopback fixture site.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from hostile_site import NEWSFLOW
from sitesrv import SiteServer
from warehouse import db
from test_flow_ingest import DEMO, demo_articles, rss
from lake import lake_env, lake_settings

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# The prefect CLI of the environment running the tests (console script, else the module).
PREFECT = [str(BIN / "prefect")] if (BIN / "prefect").is_file() else [sys.executable, "-m", "prefect"]
MARKER = "NEWSFLOW_TEST_SCHEDULE_MARKER"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def marked_pids(marker: str) -> list[int]:
    """Processes still alive whose environment carries our marker (i.e. started by this test)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            env = (d / "environ").read_bytes()
            state = (d / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if f"{MARKER}={marker}".encode() in env.split(b"\0") and state != "Z":
            pids.append(int(d.name))
    return pids


def wait_for(check: Callable[[], object], timeout_s: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> object:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    detail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


def runs(db_path: Path) -> list[tuple]:
    """(flow, trigger, status, flow_run_id, params, new) of every run, or [] while the DB is busy/missing."""
    if not db_path.exists():
        return []
    try:
        with db.session(lake_settings(db_path), read_only=True) as con:
            return con.execute("select flow, trigger, status, flow_run_id, params, new from runs order by id").fetchall()
    except (db.WarehouseBusy, duckdb.IOException, duckdb.CatalogException):
        return []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A loopback news site, `newsflow server` and `newsflow serve --interval 5`; all stopped afterwards."""
    tmp = tmp_path_factory.mktemp("schedule")
    site = SiteServer().start()
    paths = demo_articles()
    for p in paths:
        site.set_file("/" + p, (DEMO / p).read_bytes(), content_type="text/html; charset=utf-8")
    site.set_file("/feed.xml", rss(site, paths[:6]), content_type="application/rss+xml")
    sources = tmp / "sources.toml"
    sources.write_text(f'[[sources]]\nname = "fixture"\nkind = "rss"\nlocation = "{site.url("/feed.xml")}"\nschedule = {{ cron = "0 3 * * *" }}\n')
    port, marker = free_port(), uuid.uuid4().hex
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSFLOW_", "PREFECT_"))}
    env.update(
        {
            MARKER: marker,
            "PREFECT_HOME": str(tmp / "prefect-home"),
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            # Poll for due runs every 2 s instead of 10 s: keeps the test short.
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",
            **lake_env(tmp / "wh"),
            "NEWSFLOW_SOURCES_FILE": str(sources),
            "NEWSFLOW_FETCH__PER_HOST_DELAY_S": "0",
            "NEWSFLOW_WORKERS": "1",
        }
    )
    server_log, serve_log = tmp / "server.log", tmp / "serve.log"
    started = time.monotonic()
    with server_log.open("w") as out:
        server = subprocess.Popen(
            [*NEWSFLOW, "server", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=out, text=True, start_new_session=True
        )
    procs = [server]
    try:
        line = server.stdout.readline()  # type: ignore[union-attr]  # printed once the server is healthy
        assert line.strip() == f"PREFECT_API_URL={api_url}", (line, server_log.read_text())
        healthy_after = time.monotonic() - started
        with serve_log.open("w") as out:
            serve = subprocess.Popen(
                [*NEWSFLOW, "serve", "--interval", "5"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        procs.append(serve)
        yield {"env": env, "db": tmp / "wh", "api_url": api_url, "serve": serve, "serve_log": serve_log,
               "server_log": server_log, "healthy_after": healthy_after, "site": site}
    finally:
        for proc in reversed(procs):  # serve first (it pauses its schedules on the server), then the server
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        site.stop()
        time.sleep(0.5)
        left = marked_pids(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left running after stop: {left}"
        assert server.returncode == 0 and procs[-1].returncode == 0, (server.returncode, procs[-1].returncode, serve_log.read_text()[-3000:])


def test_scheduled_runs_land_in_the_warehouse(served: dict) -> None:
    db_path = served["db"]

    def two_scheduled() -> list[tuple]:
        done = [r for r in runs(db_path) if r[0] == "ingest" and r[1] == "schedule" and r[2] == "completed"]
        return done if len(done) >= 2 else []

    done = wait_for(two_scheduled, 110, "two completed scheduled runs", served["serve"], served["serve_log"])
    assert all(r[3] for r in done)  # Prefect flow run ids
    assert len({r[3] for r in done}) == len(done)
    assert all('"fixture"' in r[4] for r in done)  # params: sources=["fixture"]
    assert sum(r[5] for r in done) == 6  # the six feed articles, loaded once in all
    with db.session(lake_settings(db_path), read_only=True) as con:  # retries while a served run holds the file
        assert con.execute("select count(*) from articles").fetchall()[0][0] == 6
    status = subprocess.run([*NEWSFLOW, "status"], env=served["env"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    print(f"\nserver healthy after {served['healthy_after']:.1f}s\n{status.stdout}")
    log = served["serve_log"].read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]


def _deployment_run(served: dict, name: str, params: str) -> str:
    """`prefect deployment run NAME --params JSON`, as a user types it; returns the flow run id."""
    out = subprocess.run(
        [*PREFECT, "deployment", "run", name, "--params", params], env=served["env"], capture_output=True, text=True, timeout=90
    )
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"UUID: ([0-9a-f-]{36})", out.stdout)
    assert m, out.stdout
    return m.group(1)


def test_manual_deployment_runs_are_recorded_as_manual(served: dict) -> None:
    db_path = served["db"]
    # Re-processing needs stored pages: wait until some ingest has loaded the site.
    wait_for(lambda: [r for r in runs(db_path) if r[0] == "ingest" and r[2] == "completed" and r[5]], 110,
             "a completed ingest", served["serve"], served["serve_log"])
    reingest_id = _deployment_run(served, "reingest/reingest", '{"source": "fixture", "mode": "reprocess"}')
    ingest_id = _deployment_run(served, "ingest/fixture", "{}")

    def finished(run_id: str) -> Callable[[], list[tuple]]:
        return lambda: [r for r in runs(db_path) if r[3] == run_id and r[2] != "running"]

    (reingest_row,) = wait_for(finished(reingest_id), 110, "the manual reingest run", served["serve"], served["serve_log"])
    assert reingest_row[:3] == ("reingest", "manual", "completed"), reingest_row
    assert '"reprocess"' in reingest_row[4] and '"fixture"' in reingest_row[4]
    (ingest_row,) = wait_for(finished(ingest_id), 110, "the manual ingest run", served["serve"], served["serve_log"])
    assert ingest_row[:3] == ("ingest", "manual", "completed"), ingest_row
    with db.session(lake_settings(db_path), read_only=True) as con:  # retries while a served run holds the file
        assert con.execute("select count(*) from articles").fetchall()[0][0] == 6  # nothing loaded twice
