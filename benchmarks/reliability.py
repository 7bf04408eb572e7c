"""Reliability benchmark: hostile corpus, SIGKILL mid-run, and 8 reader processes querying all through an ingest.

    .venv/bin/python benchmarks/reliability.py

Everything runs on 127.0.0.1 (fixture servers from tests/hostile_site.py; the tests' socket guard is
installed so nothing can leave loopback). Prints the figures and exits 1 if a must-hold figure fails:
every distinct hostile input and control article handled, 0 articles lost, 0 duplicate rows, 0 failed
reader queries and at least 200 that ran inside the writer's run, 0 connections outside loopback.
Takes several minutes on 2 cores (the reader stress ingests 500 pages).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="newsflow-reliability-"))
    os.environ["PREFECT_HOME"] = str(tmp / "prefect")
    from conftest import SocketGuard  # the tests' loopback-only guard (nothing here may leave 127.0.0.0/8)

    guard = SocketGuard()
    guard.install()
    import flows  # noqa: F401
    from prefect.testing.utilities import prefect_test_harness

    from hostile_site import (
        HOSTILE_ENV, NEWSFLOW, build_hostile_site, case_summary, check_cases, cli_env, duplicate_rows, integrity_report, q, serve_many_articles,
    )
    from sitesrv import SiteServer
    from lake import lake_env
    from readers import stress_readers
    from test_concurrency import MIN_OVERLAPPED, READERS, STRESS_PAGES, ingest_window

    figures: dict[str, int] = {}
    problems: list[str] = []
    t0 = time.monotonic()
    with prefect_test_harness(server_startup_timeout=120):
        # 1. hostile corpus through the CLI, in process
        from flows.cli import main as cli

        with SiteServer() as trusted, SiteServer() as other:
            site = build_hostile_site(trusted, other, tmp)
            db = tmp / "hostile-wh"
            saved = dict(os.environ)
            os.environ.update({**HOSTILE_ENV, **lake_env(db), "NEWSFLOW_SOURCES_FILE": str(site.sources_file)})
            try:
                code = cli(["ingest"])
            finally:
                os.environ.clear()
                os.environ.update(saved)
            run_id, status = q(db, "select id, status from runs order by id desc limit 1")[0]
            outcomes = check_cases(db, site, run_id)
            # Distinct hostile inputs (an input checked on two URLs counts once) and the good control
            # articles of the same feed, counted apart.
            figures.update(case_summary(site.cases, outcomes))
            problems += [f"case {k}: {v}" for k, v in outcomes.items() if v is not None]
            if code != 0 or status != "completed":
                problems.append(f"hostile run: exit {code}, status {status}")
            figures["requests to unconfigured private host"] = other.hits("/")
            hostile_dups = sum(duplicate_rows(db).values())
        figures["connections outside loopback"] = len(guard.nonlocal_attempts())
        t1 = time.monotonic()

        # 2. SIGKILL after the first batch, then a run to completion
        with SiteServer() as srv:
            sources, urls = serve_many_articles(srv, tmp, n=150, delay_s=0.03)
            kdb = tmp / "kill-wh"
            env = cli_env(kdb, sources, tmp / "prefect", NEWSFLOW_BATCH_SIZE="20")
            proc = subprocess.Popen([*NEWSFLOW, "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            from test_crash import kill_after_first_batch

            at_kill = kill_after_first_batch(proc, kdb, min_articles=20)
            done = subprocess.run([*NEWSFLOW, "ingest"], env=env, capture_output=True, text=True, timeout=600)
            rep = integrity_report(kdb, urls)
            figures["articles at kill"] = at_kill
            figures["articles lost"] = len(rep["lost"]) + (len(urls) - rep["articles"])
            figures["duplicate rows"] = sum(rep["duplicates"].values()) + (rep["articles"] - rep["distinct_urls"]) + hostile_dups
            figures["half-written articles"] = rep["half_written"]
            if done.returncode != 0 or rep["statuses"] != ["crashed", "completed"]:
                problems.append(f"kill test: exit {done.returncode}, runs {rep['statuses']}: {done.stderr[-500:]}")
        t2 = time.monotonic()

        # 3. reader processes querying without pause for the whole of an ingest of 500 pages
        with SiteServer() as srv:
            sources, urls = serve_many_articles(srv, tmp, n=STRESS_PAGES, delay_s=0, name="conc")
            cdb = tmp / "conc-wh"
            env = cli_env(cdb, sources, tmp / "prefect", NEWSFLOW_BATCH_SIZE="50")
            subprocess.run([*NEWSFLOW, "init"], env=env, capture_output=True, timeout=120)
            res = stress_readers([*NEWSFLOW, "ingest"], env, tmp / "readers", lambda: ingest_window(cdb), n_readers=READERS)
            figures["reader processes"] = res["readers"]
            figures["reader queries tried"] = res["tried"]
            figures["reader queries inside the run"] = res["overlapped"]
            figures["reader queries failed"] = res["failed"]
            latency = f"p50 {res['p50_ms']:.0f} ms, p95 {res['p95_ms']:.0f} ms over {res['run_s']:.0f} s of writing"
            problems += res["errors"][:3]
            if res["writer_exit"] != 0:
                problems.append(f"writer under read load: exit {res['writer_exit']}: {res['writer_stderr'][-500:]}")
        t3 = time.monotonic()

    must = {
        "hostile inputs handled": figures["hostile inputs handled"] == figures["hostile inputs tried"],
        "control articles handled": figures["control articles handled"] == figures["control articles tried"],
        "articles lost": figures["articles lost"] == 0,
        "duplicate rows": figures["duplicate rows"] == 0,
        "half-written articles": figures["half-written articles"] == 0,
        "reader queries failed": figures["reader queries failed"] == 0,
        "reader queries inside the run": figures["reader queries inside the run"] >= MIN_OVERLAPPED,
        "connections outside loopback": figures["connections outside loopback"] == 0,
        "requests to unconfigured private host": figures["requests to unconfigured private host"] == 0,
    }
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        flag = "" if k not in must else ("  ok" if must[k] else "  FAIL")
        print(f"{k:<{width}}  {v:>5}{flag}")
    print(f"{'reader latency inside the run':<{width}}  {latency}")
    print(f"{'seconds (hostile / kill / readers)':<{width}}  {t1 - t0:.0f} / {t2 - t1:.0f} / {t3 - t2:.0f}")
    for p in problems:
        print("problem:", p)
    guard.uninstall()
    return 0 if all(must.values()) and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
