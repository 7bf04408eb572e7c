"""`newsflow report` on the demo warehouse: one self-contained HTML file that headless Chromium opens without
console errors, whose numbers (kept in data-* attributes) match SQL on the same warehouse."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import lxml.html
import pytest

from demo_warehouse import demo_lake
from flows.cli import main
from lake import lake_connect, use_lake
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def lake(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return demo_lake(tmp_path_factory)


@pytest.fixture(scope="module")
def report(lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    with pytest.MonkeyPatch.context() as mp:
        use_lake(mp, lake)
        assert main(["report", "--out", str(out)]) == 0
    return out


def chromium_dom(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """(DOM after load, console messages at warning level or above) from headless Chromium."""
    proc = subprocess.run(
        [
            CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--log-level=0", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Chromium logs every console message (log, warn, error, uncaught exceptions) as ":CONSOLE"; the report has no
    # script, so any such line is a fault.
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


@needs_chromium
def test_console_errors_are_detected(tmp_path: Path) -> None:
    # The check below is only worth something if a broken page fails it.
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('boom'); undefinedFn();</script></body></html>")
    _, console = chromium_dom(bad, tmp_path)
    assert any("boom" in line for line in console) and any("undefinedFn" in line for line in console)


@needs_chromium
def test_report_opens_without_console_errors_and_matches_sql(report: Path, lake: Path, tmp_path: Path) -> None:
    dom, console = chromium_dom(report, tmp_path)
    assert console == []
    doc = lxml.html.fromstring(dom)
    assert doc.xpath("//svg"), "charts are inline SVG"

    with lake_connect(lake) as con:
        def q(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        # Headline counts.
        kpi = {d.get("data-metric"): int(d.get("data-value")) for d in doc.xpath("//*[@data-metric]")}
        assert kpi["articles"] == q("SELECT count(*) FROM articles")[0][0] > 0
        assert kpi["unique_stories"] == q("SELECT count(*) FROM v_articles_unique")[0][0]
        assert kpi["duplicates"] == q("SELECT count(*) FROM duplicates")[0][0] >= 1
        assert kpi["entities"] == q("SELECT count(*) FROM entities")[0][0]

        # Articles per day and source: the bars add up to v_articles_daily.
        bars: dict[tuple[str, str], int] = defaultdict(int)
        for r in doc.xpath("//svg[@data-chart='articles-per-day']//rect"):
            bars[(r.get("data-day"), r.get("data-series"))] += int(r.get("data-value"))
        assert bars == {(str(d), s): n for d, s, n in q("SELECT day, source, articles FROM v_articles_daily")}

        # Unique stories vs duplicates per day.
        stories: dict[tuple[str, str], int] = defaultdict(int)
        for r in doc.xpath("//svg[@data-chart='stories-per-day']//rect"):
            stories[(r.get("data-day"), r.get("data-series"))] += int(r.get("data-value"))
        expected = {}
        for day, uniq, dup in q(
            "SELECT CAST(coalesce(published_at, first_seen_at) AS DATE) AS day, "
            "count(*) FILTER (WHERE id IN (SELECT id FROM v_articles_unique)), "
            "count(*) FILTER (WHERE id IN (SELECT article_id FROM duplicates)) FROM articles GROUP BY day"
        ):
            if uniq:
                expected[(str(day), "unique stories")] = uniq
            if dup:
                expected[(str(day), "duplicates")] = dup
        assert stories == expected

        # Top entities: article counts from v_article_entities; the trend sums to them (all days are shown).
        rows = doc.xpath("//tr[@data-entity]")
        assert len(rows) >= 10
        per_entity = {(n, t): c for n, t, c in q("SELECT name, type, count(DISTINCT article_id) FROM v_article_entities GROUP BY ALL")}
        for r in rows:
            assert int(r.get("data-articles")) == per_entity[(r.get("data-entity"), r.get("data-type"))]
            trend = [int(x) for x in r.xpath(".//svg/@data-trend")[0].split(",")]
            assert sum(trend) == int(r.get("data-articles"))
        assert rows[0].get("data-articles") == str(max(per_entity.values()))

        # Source health, silent sources highlighted.
        health = {r.get("data-source"): r for r in doc.xpath("//tr[@data-source and @data-silent]")}
        sql_health = {s: (silent, n) for s, silent, n in q("SELECT source, silent, articles FROM v_source_health")}
        assert set(health) == set(sql_health)
        for source, (silent, n) in sql_health.items():
            row = health[source]
            assert row.get("data-silent") == str(silent).lower() and int(row.get("data-articles")) == n
            assert ("silent" in (row.get("class") or "").split()) == silent
        assert any(s for s, _ in sql_health.values()), "the demo feeds stopped in 2023: silent"

        # Recent failures.
        failures = doc.xpath("//tr[@data-failure-reason]")
        assert len(failures) == min(20, q("SELECT count(*) FROM failures")[0][0]) >= 1
        assert failures[0].get("data-failure-reason") == q("SELECT reason FROM failures ORDER BY failed_at DESC, id DESC LIMIT 1")[0][0]


def test_report_is_self_contained(report: Path) -> None:
    doc = lxml.html.fromstring(report.read_text(encoding="utf-8"))
    # Nothing to fetch: no scripts, stylesheets, images, frames or links to load.
    assert not doc.xpath("//script | //link | //img | //iframe | //object | //embed")
    assert not doc.xpath("//@src | //@href | //@srcset")
    assert "url(" not in "".join(doc.xpath("//style/text()"))
