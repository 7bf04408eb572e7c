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
from contextlib import contextmanager
from datetime import datetime, timezone
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
    if not (db_path / "catalog.sqlite").exists():  # the directory appears first (logs), the lake with the first run
        return []
    try:
        with db.session(lake_settings(db_path), read_only=True) as con:
            return con.execute("select flow, trigger, status, flow_run_id, params, new from runs order by id").fetchall()
    except (db.WarehouseBusy, duckdb.IOException, duckdb.CatalogException, duckdb.InvalidInputException):
        return []  # busy, or created but not migrated yet


def quiesce(api_url: str, timeout_s: float = 30.0) -> None:
    """Pause every deployment, cancel flow runs still pending or running, and wait until none is left.

    Prefect's runner waits for its in-flight runs when it stops, so the SIGINT stop below is tested at a
    quiet moment rather than racing a scheduled tick. (Added while chasing CI runs where `serve` and the
    server outlived the 60 s after SIGINT; that cause was SIGINT ignored by inheritance from a
    background-started pytest, fixed in conftest.pytest_configure, not in-flight runs.)
    """
    import httpx

    busy = {"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}}}}
    try:
        with httpx.Client(base_url=api_url, timeout=10) as client:
            for dep in client.post("/deployments/filter", json={}).json():
                client.patch(f"/deployments/{dep['id']}", json={"paused": True})
            for run in client.post("/flow_runs/filter", json=busy).json():
                if run["state"]["type"] != "CANCELLING":
                    client.post(f"/flow_runs/{run['id']}/set_state", json={"state": {"type": "CANCELLING"}, "force": True})
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and client.post("/flow_runs/count", json=busy).json():
                time.sleep(0.5)
    except httpx.HTTPError:
        pass  # the server is going away anyway; the SIGINT below is what the test checks


@contextmanager
def server_and_serve(tmp: Path, sources: Path, serve_args: list[str], site: SiteServer, **extra_env: str) -> Iterator[dict]:
    """`newsflow server` on a free loopback port and `newsflow serve SERVE_ARGS` for `sources`, each in its
    own session; on exit serve then server get SIGINT, and no process this started may be left."""
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
            **extra_env,
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
            serve = subprocess.Popen([*NEWSFLOW, "serve", *serve_args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(serve)
        yield {"env": env, "db": tmp / "wh", "api_url": api_url, "serve": serve, "serve_log": serve_log,
               "server_log": server_log, "healthy_after": healthy_after, "site": site}
    finally:
        if len(procs) > 1 and server.poll() is None:
            quiesce(api_url)
        for proc in reversed(procs):  # serve first (it pauses its schedules on the server), then the server
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        time.sleep(0.5)
        left = marked_pids(marker)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left running after stop: {left}"
        assert server.returncode == 0 and procs[-1].returncode == 0, (server.returncode, procs[-1].returncode, serve_log.read_text()[-3000:])


def news_site(tmp: Path) -> tuple[SiteServer, list[str]]:
    """A loopback news site with the demo articles and a feed of the first six."""
    site = SiteServer().start()
    paths = demo_articles()
    for p in paths:
        site.set_file("/" + p, (DEMO / p).read_bytes(), content_type="text/html; charset=utf-8")
    site.set_file("/feed.xml", rss(site, paths[:6]), content_type="application/rss+xml")
    return site, paths


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A loopback news site, `newsflow server` and `newsflow serve --interval 5`; all stopped afterwards."""
    tmp = tmp_path_factory.mktemp("schedule")
    site, _paths = news_site(tmp)
    sources = tmp / "sources.toml"
    sources.write_text(f'[[sources]]\nname = "fixture"\nkind = "rss"\nlocation = "{site.url("/feed.xml")}"\nschedule = {{ cron = "0 3 * * *" }}\n')
    try:
        with server_and_serve(tmp, sources, ["--interval", "5"], site) as s:
            yield s
    finally:
        site.stop()


def test_scheduled_runs_land_in_the_warehouse(served: dict) -> None:
    db_path = served["db"]

    def two_scheduled() -> list[tuple]:
        done = [r for r in runs(db_path) if r[0] == "ingest" and r[1] == "schedule" and r[2] == "completed"]
        return done if len(done) >= 2 else []

    done = wait_for(two_scheduled, 300, "two completed scheduled runs", served["serve"], served["serve_log"])
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
        [*PREFECT, "deployment", "run", name, "--params", params], env=served["env"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"UUID: ([0-9a-f-]{36})", out.stdout)
    assert m, out.stdout
    return m.group(1)


def test_manual_deployment_runs_are_recorded_as_manual(served: dict) -> None:
    db_path = served["db"]
    # Re-processing needs stored pages: wait until some ingest has loaded the site.
    wait_for(lambda: [r for r in runs(db_path) if r[0] == "ingest" and r[2] == "completed" and r[5]], 300,
             "a completed ingest", served["serve"], served["serve_log"])
    reingest_id = _deployment_run(served, "reingest/reingest", '{"source": "fixture", "mode": "reprocess"}')
    ingest_id = _deployment_run(served, "ingest/fixture", "{}")

    def finished(run_id: str) -> Callable[[], list[tuple]]:
        return lambda: [r for r in runs(db_path) if r[3] == run_id and r[2] != "running"]

    (reingest_row,) = wait_for(finished(reingest_id), 300, "the manual reingest run", served["serve"], served["serve_log"])
    assert reingest_row[:3] == ("reingest", "manual", "completed"), reingest_row
    assert '"reprocess"' in reingest_row[4] and '"fixture"' in reingest_row[4]
    (ingest_row,) = wait_for(finished(ingest_id), 300, "the manual ingest run", served["serve"], served["serve_log"])
    assert ingest_row[:3] == ("ingest", "manual", "completed"), ingest_row
    with db.session(lake_settings(db_path), read_only=True) as con:  # retries while a served run holds the file
        assert con.execute("select count(*) from articles").fetchall()[0][0] == 6  # nothing loaded twice


# -- schedules as users write them in sources.toml ---------------------------------------------------------


def api(served: dict, method: str, path: str, body: dict | None = None) -> object:
    """One call to the real Prefect server's REST API; None for 404."""
    import httpx

    for attempt in range(6):  # like Prefect's own client, retry a busy server (503 when its database is locked)
        r = httpx.request(method, served["api_url"] + path, json=body, timeout=30)
        if r.status_code not in (429, 503):
            break
        time.sleep(2 * (attempt + 1))
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json()


@pytest.fixture(scope="module")
def served_as_written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Its own server and `newsflow serve --limit 1` (no --interval) for a sources.toml with a cron source,
    an interval source and an unscheduled one."""
    tmp = tmp_path_factory.mktemp("schedule-as-written")
    site, paths = news_site(tmp)
    site.set_file("/feed2.xml", rss(site, paths[6:8]), content_type="application/rss+xml")
    sources = tmp / "sources.toml"
    sources.write_text(
        f'[[sources]]\nname = "nightly"\nkind = "rss"\nlocation = "{site.url("/feed.xml")}"\nschedule = {{ cron = "30 4 * * *" }}\n\n'
        f'[[sources]]\nname = "hourly"\nkind = "rss"\nlocation = "{site.url("/feed2.xml")}"\nschedule = {{ interval_seconds = 3600 }}\n\n'
        f'[[sources]]\nname = "unscheduled"\nkind = "rss"\nlocation = "{site.url("/feed2.xml")}"\n'
    )
    try:
        # A local time zone far from UTC: a cron evaluated in local time would plan 08:30 or 09:30 UTC.
        with server_and_serve(tmp, sources, ["--limit", "1"], site, TZ="America/New_York") as s:
            yield s
    finally:
        site.stop()


def test_cron_and_interval_from_sources_toml_are_on_the_deployments(served_as_written: dict) -> None:
    s = served_as_written
    nightly = wait_for(lambda: api(s, "GET", "/deployments/name/ingest/nightly"), 120, "the nightly deployment", s["serve"], s["serve_log"])
    hourly = wait_for(lambda: api(s, "GET", "/deployments/name/ingest/hourly"), 30, "the hourly deployment", s["serve"], s["serve_log"])
    wait_for(lambda: api(s, "GET", "/deployments/name/reingest/reingest"), 30, "the reingest deployment", s["serve"], s["serve_log"])
    assert api(s, "GET", "/deployments/name/ingest/unscheduled") is None  # no schedule: not served
    (cron,) = [x["schedule"] for x in nightly["schedules"] if x["active"]]  # type: ignore[index]
    # No timezone on the deployment means UTC to the Prefect server; the planned runs below prove it.
    assert cron["cron"] == "30 4 * * *" and cron["timezone"] in (None, "UTC")
    (every,) = [x["schedule"] for x in hourly["schedules"] if x["active"]]  # type: ignore[index]
    assert every["interval"] == 3600
    assert nightly["parameters"] == {"sources": ["nightly"], "trigger": "schedule"}  # type: ignore[index]

    # The server plans the cron source's runs at 04:30 UTC: the expression is evaluated in UTC.
    def planned() -> list[dict]:
        body = {"deployments": {"id": {"any_": [nightly["id"]]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}  # type: ignore[index]
        return api(s, "POST", "/flow_runs/filter", body) or []  # type: ignore[return-value]

    runs = wait_for(planned, 120, "scheduled runs of the cron deployment", s["serve"], s["serve_log"])
    times = [datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00")).astimezone(timezone.utc) for r in runs]
    assert {(t.hour, t.minute) for t in times} == {(4, 30)}, times
    print(f"\nnightly: cron {cron['cron']!r} (timezone {cron['timezone']}), next runs {[t.isoformat() for t in sorted(times)[:2]]}; hourly every {every['interval']} s")


def test_serve_limit_runs_one_flow_run_at_a_time(served_as_written: dict) -> None:
    s = served_as_written
    wait_for(lambda: api(s, "GET", "/deployments/name/ingest/hourly"), 120, "the deployments", s["serve"], s["serve_log"])
    # Two manual runs at once, created through the API (the CLI form is tested above).
    ids = [api(s, "POST", f"/deployments/{api(s, 'GET', f'/deployments/name/ingest/{n}')['id']}/create_flow_run", {})["id"]  # type: ignore[index]
           for n in ("nightly", "hourly")]

    def finished() -> list[dict]:
        runs = [api(s, "GET", f"/flow_runs/{i}") for i in ids]
        return runs if all(r and r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in runs) else []  # type: ignore[index]

    wait_for(finished, 240, "both manual runs", s["serve"], s["serve_log"])
    deps = [api(s, "GET", f"/deployments/name/ingest/{n}")["id"] for n in ("nightly", "hourly")]  # type: ignore[index]
    ran = [r for r in api(s, "POST", "/flow_runs/filter", {"deployments": {"id": {"any_": deps}}}) if r["start_time"]]  # type: ignore[union-attr]
    assert {r["id"] for r in ran} >= set(ids) and all(r["state_type"] == "COMPLETED" for r in ran), [(r["name"], r["state_type"]) for r in ran]
    spans = sorted((datetime.fromisoformat(r["start_time"].replace("Z", "+00:00")), datetime.fromisoformat(r["end_time"].replace("Z", "+00:00"))) for r in ran)
    # With --limit 1 the runner starts a flow run only after the previous one ended (limit 4 would start both).
    for (_s1, e1), (s2, _e2) in zip(spans, spans[1:]):
        assert s2 >= e1, spans
    assert [r[:3] for r in runs(s["db"]) if r[0] == "ingest" and r[1] == "manual"].count(("ingest", "manual", "completed")) == 2


def test_serve_without_prefect_api_url_is_a_one_line_hint(tmp_path: Path) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text('[[sources]]\nname = "x"\nkind = "rss"\nlocation = "http://127.0.0.1:9/feed.xml"\nschedule = { interval_seconds = 60 }\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSFLOW_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), NEWSFLOW_SOURCES_FILE=str(sources), **lake_env(tmp_path / "wh"))
    r = subprocess.run([*NEWSFLOW, "serve"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "PREFECT_API_URL is not set" in r.stderr and "newsflow server" in r.stderr, r.stderr
    assert not (tmp_path / "wh").exists()  # nothing was created
