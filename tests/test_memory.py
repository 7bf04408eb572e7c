"""Bombs cost no memory: the peak RSS of a real `newsflow ingest` process (and every process it started)
on a gzip bomb that decodes to 1 GiB and on 50 MB pages, next to the same run over good articles only.

Measured with os.wait4() in a small launcher process, which returns the rusage of exactly that child: ru_maxrss is the largest
resident set of the ingest process or of any worker it started and waited for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_site import HOSTILE_ENV, NEWSFLOW, cli_env, make_article_html, q, rss
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer

pytestmark = pytest.mark.slow

MB = 1024 * 1024
BOMB_DECODED = 1024 * MB  # far above the bound: a decoder without a cap could not stay under it
PEAK_RSS_BOUND = 600 * MB
RESULTS: dict[str, int] = {}


def peak_rss_of_ingest(site: SiteServer, tmp: Path, name: str, hostile_paths: list[str]) -> tuple[int, str]:
    """Run `newsflow ingest` over a feed of two good articles plus `hostile_paths`; (peak RSS bytes, stderr)."""
    good = [f"/{name}/good-{i}.html" for i in range(2)]
    for i, p in enumerate(good):
        site.set_file(p, make_article_html(500 + i), content_type="text/html; charset=utf-8")
    links = [site.url(p) for p in good + hostile_paths]
    site.set_file(f"/{name}.xml", rss([{"title": f"S{i}", "link": u, "guid": u} for i, u in enumerate(links)]), content_type="application/rss+xml")
    sources = tmp / f"{name}.toml"
    sources.write_text(f'[[sources]]\nname = "{name}"\nkind = "rss"\nlocation = "{site.url(f"/{name}.xml")}"\n', encoding="utf-8")
    env = cli_env(tmp / f"{name}-wh", sources, tmp / "prefect", **HOSTILE_ENV)
    err = tmp / f"{name}.err"
    with err.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *NEWSFLOW, "ingest"], env=env, stdout=subprocess.PIPE, stderr=out, text=True
        )
    code, maxrss_kib = (int(x) for x in proc.stdout.split())
    assert proc.returncode == 0 and code == 0, err.read_text()[-3000:]
    return maxrss_kib * 1024, str(tmp / f"{name}-wh")  # ru_maxrss is in KiB on Linux


# Linux carries a process's peak RSS across fork+exec (exec records the old address space's high-water
# mark), so a child forked straight from a big pytest process reports pytest's RSS as its own peak. A
# small launcher process forks the ingest instead and reports what os.wait4() says about exactly it.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_pid, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


@pytest.mark.parametrize(
    "case, paths",
    [
        ("baseline", []),
        ("gzip_bomb_1gib", ["/h/gzip-bomb"]),
        ("pages_50mb", ["/h/huge", "/h/huge-announced"]),
    ],
)
def test_peak_rss_of_ingest_is_bounded(prefect_api: None, site: SiteServer, tmp_path: Path, case: str, paths: list[str]) -> None:
    site.set_robots("User-agent: *\nAllow: /\n")
    site.gzip_bomb("/h/gzip-bomb", decoded_size=BOMB_DECODED)
    site.huge("/h/huge", size=50 * MB)
    site.huge("/h/huge-announced", size=50 * MB, announce_length=True)
    peak, wh = peak_rss_of_ingest(site, tmp_path, case, paths)
    RESULTS[case] = peak
    base = RESULTS.get("baseline")
    print(f"\npeak RSS of `newsflow ingest` ({case}): {peak / MB:.0f} MB" + (f" (baseline {base / MB:.0f} MB)" if base and case != "baseline" else ""))
    # The good articles were loaded and every hostile URL was refused as too large, with nothing stored.
    assert q(wh, "select count(*) from articles")[0][0] == 2
    for p in paths:
        assert q(wh, "select reason from failures where url = ?", [site.url(p)]) == [("too_large",)]
        assert q(wh, "select count(*) from pages where url = ?", [site.url(p)])[0][0] == 0
    assert peak < PEAK_RSS_BOUND, f"{case}: peak RSS {peak / MB:.0f} MB"
