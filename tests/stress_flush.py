"""Stress the end-of-run maintenance pass, to compare DuckLake's two ways of flushing inlined rows.

    .venv/bin/python tests/stress_flush.py [--passes 300] [--form table|lake|both]

Each pass makes a small lake (tests' search corpus: articles and index rows inlined in the catalog,
some removed again), brings the search sidecar up to date, then runs `maintenance.maintain(full=True)`.
`--form lake` swaps in the all-tables call `ducklake_flush_inlined_data(lake)` for newsflow's
table-by-table flush. Passes run in a child process, restarted after a native crash; with `both`, one
child per form runs at the same time (one per core). Prints passes, crashes and how each crash ended.
Not part of the test suite (a crash in ~1 of 180 passes is a stress result, not a unit test).
"""

from __future__ import annotations

import argparse
import faulthandler
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(form: str, passes: int) -> None:
    """Run passes until done (exit 0) or the process dies; print one line per pass done."""
    faulthandler.enable()
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    from lake import lake_settings
    from test_search_sidecar import corpus, load, load_then_remove
    from warehouse import db, maintenance, search_sidecar

    if form == "lake":
        def whole_lake(con) -> int:  # noqa: ANN001
            return len(con.execute("CALL ducklake_flush_inlined_data(?)", [db.LAKE]).fetchall())

        maintenance.flush_inlined = whole_lake
    for _ in range(passes):
        with tempfile.TemporaryDirectory() as d:
            s = lake_settings(Path(d) / "lake")
            db.init_db(s)
            with db.session(s) as con:
                load(con, corpus(1, 40))
            load_then_remove(s, (81, 91, 101), range(81, 86))
            search_sidecar.sync(s)
            maintenance.maintain(s, full=True)
            db.close_all()
        print("pass", flush=True)


def run(form: str, passes: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", form, "--passes", str(passes)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=300)
    ap.add_argument("--form", choices=("table", "lake", "both"), default="both")
    ap.add_argument("--child", choices=("table", "lake"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.passes)
        return
    forms = ["table", "lake"] if a.form == "both" else [a.form]
    done = {f: 0 for f in forms}
    crashes: dict[str, list[str]] = {f: [] for f in forms}
    t0 = time.time()
    procs = {f: run(f, a.passes) for f in forms}
    while procs:
        for f, p in list(procs.items()):
            if p.poll() is None:
                continue
            out, err = p.communicate()
            done[f] += out.count("pass\n")
            if p.returncode != 0:
                first = next((ln for ln in err.splitlines() if ln.startswith(("Fatal Python error", "malloc", "free", "_duckdb."))), "")
                crashes[f].append(f"pass {done[f] + 1}: exit {p.returncode} {first}".strip())
            if p.returncode != 0 and done[f] < a.passes:
                procs[f] = run(f, a.passes - done[f])
            else:
                del procs[f]
        time.sleep(0.5)
    print(f"{time.time() - t0:.0f} s")
    for f in forms:
        print(f"flush {'table by table' if f == 'table' else 'all tables in one call'}: {done[f]} passes, {len(crashes[f])} crashes")
        for c in crashes[f]:
            print("  ", c)


if __name__ == "__main__":
    main()
