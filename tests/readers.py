"""Reader stress for tests and benchmarks/reliability.py: N reader processes query the warehouse without pause
for the whole of an ingest, in plain DuckDB sessions set up from `newsflow attach` (as an analyst would).

    python tests/readers.py ATTACH_SQL_FILE STOP_FILE OUT_FILE MODE   # one reader (MODE: session | per-query)

`stress_readers()` starts the readers, runs the writer command, stops the readers when it exits, and
counts only queries that started and ended inside the writer's run (runs.started_at .. finished_at).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# What analysts run: a join over the two biggest tables, an aggregate per source, the newest rows of a view.
QUERIES = [
    "select count(*), max(p.fetched_at) from articles a join pages p on p.url = a.page_url",
    "select source, count(*), max(first_seen_at) from articles group by source order by source",
    "select id, title from v_articles_unique order by id desc limit 20",
]
# Between two queries of one reader. 8 readers at 0.02 s kept both cores busy and stretched a 500-page ingest
# to ~25 min on this 2-core machine; at 0.2 s they still overlap the run with thousands of queries.
PAUSE_S = 0.2


def _connect(attach_sql: str) -> Any:
    import duckdb

    con = duckdb.connect()
    for stmt in attach_sql.split(";\n"):
        if stmt.strip():
            con.execute(stmt)
    return con


def reader(attach_sql: str, stop: Path, out: Path, mode: str) -> None:
    """Query until `stop` exists; write [start, end, ok, error, articles_seen] per query to `out` (JSON).

    mode "session": one long-lived session; "per-query": a fresh session (attach included) per query."""
    rows: list[list[Any]] = []
    con = None
    i = 0
    while not stop.exists():
        sql = QUERIES[i % len(QUERIES)]
        t0 = time.time()
        seen, err = None, None
        try:
            if con is None or mode == "per-query":
                if con is not None:
                    con.close()
                con = _connect(attach_sql)
            res = con.execute(sql).fetchall()
            if i % len(QUERIES) == 0:
                seen = int(res[0][0])
        except Exception as e:  # noqa: BLE001 - every failure is counted and reported
            err = f"{type(e).__name__}: {e}"[:500]
            con = None  # start a fresh session after a failure
        rows.append([t0, time.time(), err is None, err, seen])
        i += 1
        time.sleep(PAUSE_S)
    out.write_text(json.dumps(rows))


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def stress_readers(
    writer_cmd: list[str], env: dict[str, str], workdir: Path, run_window: Any, n_readers: int = 8, timeout_s: float = 3600
) -> dict[str, Any]:
    """Run `n_readers` readers (three in four keep a long-lived session, every fourth opens a fresh session,
    attach included, for each query) for the whole of
    `writer_cmd`; `run_window()` gives the writer run's (start, end) epoch seconds once it has finished.

    Returns tried / overlapped / failed counts (failed: of all queries), p50/p95 latency (ms) of the
    overlapped ones, the most articles a reader saw during the run, the writer's exit code and stderr."""
    workdir.mkdir(parents=True, exist_ok=True)
    attach = subprocess.run([*_newsflow(), "attach"], env=env, capture_output=True, text=True, timeout=120)
    if attach.returncode != 0:
        raise RuntimeError(f"newsflow attach failed: {attach.stderr}")
    attach_file, stop = workdir / "attach.sql", workdir / "stop"
    attach_file.write_text(attach.stdout)
    stop.unlink(missing_ok=True)
    outs = [workdir / f"reader-{k}.json" for k in range(n_readers)]
    readers = [
        subprocess.Popen(
            [sys.executable, __file__, str(attach_file), str(stop), str(out), "per-query" if k % 4 == 3 else "session"],
            env=env, stderr=subprocess.PIPE, text=True,
        )
        for k, out in enumerate(outs)
    ]
    try:
        time.sleep(1.0)  # the readers are querying before the writer starts
        werr_file = workdir / "writer.err"
        with werr_file.open("w") as werr:
            writer = subprocess.run(writer_cmd, env=env, stdout=subprocess.DEVNULL, stderr=werr, timeout=timeout_s)
        time.sleep(1.0)  # and still after it ended
    finally:
        stop.touch()
        errs = [p.communicate(timeout=120)[1] for p in readers]
    start, end = run_window() if writer.returncode == 0 else (0.0, 0.0)
    rows = [r for out in outs if out.exists() for r in json.loads(out.read_text())]
    inside = [r for r in rows if r[0] >= start and r[1] <= end]
    lat = [(r[1] - r[0]) * 1000 for r in inside if r[2]]
    return {
        "readers": n_readers,
        "tried": len(rows),
        "overlapped": len(inside),
        "failed": sum(not r[2] for r in rows),
        "failed_overlapped": sum(not r[2] for r in inside),
        "p50_ms": _percentile(lat, 50),
        "p95_ms": _percentile(lat, 95),
        "max_articles_seen_during_run": max((r[4] for r in inside if r[4] is not None), default=0),
        "run_s": end - start,
        "errors": [r[3] for r in rows if not r[2]][:5] + [e[-1000:] for e in errs if e.strip()][:3],
        "readers_exited": [p.returncode for p in readers],
        "writer_exit": writer.returncode,
        "writer_stderr": werr_file.read_text(errors="replace")[-3000:],
    }


def _newsflow() -> list[str]:
    from hostile_site import NEWSFLOW

    return NEWSFLOW


if __name__ == "__main__":
    a = sys.argv[1:]
    reader(Path(a[0]).read_text(), Path(a[1]), Path(a[2]), a[3])
    sys.exit(0)
