"""An analyst's DuckDB session, attached with `newsflow attach`'s output and kept open (as a notebook keeps
it), queries throughout an ingest and a re-process: no query fails, it sees the new rows, and neither
run waits for it or fails (the DuckDB-file warehouse made every run fail after 60 s)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile_site import NEWSFLOW, cli_env, serve_many_articles

pytestmark = pytest.mark.slow

# One connection for the whole test; a query every 50 ms until the stop file appears.
READER = r"""
import duckdb, json, sys, time, os
statements, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute(open(statements).read())
ok = failed = 0
seen = []
errors = []
lat = []
while not os.path.exists(stop):
    t = time.perf_counter()
    try:
        n, snap = con.execute("select (select count(*) from articles), (select max(snapshot_id) from newsflow.snapshots())").fetchall()[0]
        con.execute("select source, count(*) from v_articles_unique group by source").fetchall()
        ok += 1
        if not seen or seen[-1][0] != n:
            seen.append((n, snap))
    except Exception as e:
        failed += 1
        errors.append(f"{type(e).__name__}: {e}"[:300])
    lat.append(time.perf_counter() - t)
    time.sleep(0.05)
lat.sort()
json.dump({"ok": ok, "failed": failed, "seen": seen, "errors": errors[:5],
           "p50_ms": 1000 * lat[len(lat) // 2] if lat else None, "p95_ms": 1000 * lat[int(len(lat) * 0.95)] if lat else None},
          open(out, "w"))
"""


def test_an_open_attached_session_reads_through_ingest_and_reprocess(site, tmp_path: Path) -> None:
    sources, urls = serve_many_articles(site, tmp_path, n=40, delay_s=0.02, name="live")
    env = cli_env(tmp_path / "wh", sources, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="5")
    r = subprocess.run([*NEWSFLOW, "init"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    attach = subprocess.run([*NEWSFLOW, "attach"], env=env, capture_output=True, text=True, timeout=60)
    assert attach.returncode == 0, attach.stderr
    (tmp_path / "attach.sql").write_text(attach.stdout, encoding="utf-8")
    stop, out = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(tmp_path / "attach.sql"), str(stop), str(out)], env=env)
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        ingest = subprocess.run([*NEWSFLOW, "ingest"], env=env, capture_output=True, text=True, timeout=600)
        ingest_s = time.monotonic() - t0
        reprocess = subprocess.run([*NEWSFLOW, "reingest", "--all", "--mode", "reprocess"], env=env, capture_output=True, text=True, timeout=600)
        time.sleep(0.5)
    finally:
        stop.touch()
        reader.wait(timeout=60)
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    assert reprocess.returncode == 0, reprocess.stderr[-2000:]
    assert "waiting" not in ingest.stderr  # the writer never waited for the reader
    res = json.loads(out.read_text())
    assert res["failed"] == 0, res["errors"]
    # The session saw the seeds first and every article after the ingest, on its next query.
    counts = [n for n, _snap in res["seen"]]
    assert counts[0] == 2 and counts[-1] == 2 + len(urls), res["seen"]
    # Known DuckLake 1.5.5 anomaly (README, Known limits): once in CI a single count(*) read 0 rows while
    # the end-of-run file merge committed, and the next query read all rows again; time travel to that
    # snapshot reads them all. At most one such empty read is tolerated and reported; any other
    # decrease (a half-loaded run, a lost batch) still fails.
    empty_reads = [i for i, n in enumerate(counts) if n == 0 and 0 < i < len(counts) - 1 and counts[i + 1] >= counts[i - 1]]
    if empty_reads:
        print(f"\nDuckLake empty read during maintenance (tolerated once): {res['seen']}")
    assert len(empty_reads) <= 1, res["seen"]
    rest = [n for i, n in enumerate(counts) if i not in empty_reads]
    assert rest == sorted(rest), f"a snapshot showed fewer articles than an earlier one: {res['seen']}"
    assert res["ok"] > 50
    print(f"\nopen reader: {res['ok']} queries, {res['failed']} failed, counts seen {counts}, "
          f"p50 {res['p50_ms']:.0f} ms, p95 {res['p95_ms']:.0f} ms; ingest {ingest_s:.1f}s")
