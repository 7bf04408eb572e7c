"""Manual re-ingest: real `reingest` Prefect flow runs against a loopback news site and a real DuckDB file."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import duckdb
import pytest

from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer
from lake import use_lake, lake_connect

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "seeds" / "demo_site" / "harbourgazette"
EXTRA = REPO / "tests" / "data" / "site_extra"
G20 = "world/2023/03/02/g20-foreign-ministers-new-delhi.html"

# Every table a re-ingest could touch; compared in full before and after.
TABLES = [
    "articles", "article_versions", "article_urls", "duplicates", "article_fingerprints", "article_bands",
    "mentions", "article_entity_runs", "entities", "entity_aliases", "pages", "url_retries", "failures",
]


def demo_articles() -> list[str]:
    """Relative paths of the saved Harbour Gazette article pages."""
    paths = sorted(p.relative_to(DEMO).as_posix() for p in DEMO.rglob("*.html") if p.name != "index.html")
    assert len(paths) >= 8, "demo site missing"
    return paths


def rss(site: SiteServer, paths: list[str]) -> str:
    """An RSS 2.0 feed linking `paths` on `site`."""
    base = datetime(2023, 3, 1, 8, 0, tzinfo=timezone.utc)
    items = "".join(
        f"<item><title>Story {i}</title><link>{escape(site.url('/' + p))}</link><guid>{escape(site.url('/' + p))}</guid>"
        f"<pubDate>{format_datetime(base + timedelta(hours=i))}</pubDate></item>"
        for i, p in enumerate(paths)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Fixture Gazette</title><link>{site.url('/')}</link><description>d</description>{items}</channel></rss>"
    )


def q(db_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with lake_connect(db_path) as con:
        return con.execute(sql, params or []).fetchall()


def snapshot(db_path: Path) -> dict[str, list[tuple]]:
    """Full contents of every table a re-ingest may touch, in a stable order."""
    with lake_connect(db_path) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}  # test-only, fixed names


def set_feed(site: SiteServer, path: str, paths: list[str]) -> None:
    site.set_file(path, rss(site, paths), content_type="application/rss+xml")


@pytest.fixture
def news(site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Two RSS sources on 127.0.0.1 built from the demo pages (plus a syndicated and an exact copy), and NEWSFLOW_* env."""
    paths = demo_articles()
    for p in paths:
        site.set_file("/" + p, (DEMO / p).read_bytes(), content_type="text/html; charset=utf-8")
    # A near-duplicate of seed 000 and an exact copy of the G20 page under a second URL: duplicates rows.
    site.set_file("/wire/g20-copy.html", (EXTRA / "g20-syndicated-copy.html").read_bytes())
    site.set_file("/mirror/g20.html", (DEMO / G20).read_bytes())
    site.set_robots("User-agent: *\nDisallow: /private/\n")
    fixture_paths = paths[:5] + ["wire/g20-copy.html"]
    other_paths = [G20, "mirror/g20.html"]
    set_feed(site, "/feed.xml", fixture_paths)
    set_feed(site, "/other.xml", other_paths)
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[sources]]\nname = "fixture"\nkind = "rss"\nlocation = "{site.url("/feed.xml")}"\n\n'
        f'[[sources]]\nname = "other"\nkind = "rss"\nlocation = "{site.url("/other.xml")}"\n'
    )
    db_path = tmp_path / "wh"
    use_lake(monkeypatch, db_path)
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(sources))
    monkeypatch.setenv("NEWSFLOW_FETCH__PER_HOST_DELAY_S", "0")
    monkeypatch.setenv("NEWSFLOW_RETRY__BASE_DELAY_S", "0")
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")  # clean + NER in this process, so monkeypatched versions apply
    return {"site": site, "paths": paths, "fixture": fixture_paths, "other": other_paths, "db": db_path}


@pytest.fixture
def loaded(prefect_api: None, news: dict) -> dict:
    """The news warehouse after `newsflow init` (2 seeds) and one ingest of both sources."""
    from flows.cli import main
    from flows.ingest import ingest

    assert main(["init"]) == 0
    r = ingest()
    assert r["new"] == len(news["fixture"]) + len(news["other"]), r
    assert q(news["db"], "select count(*) from duplicates")[0][0] >= 2  # syndicated copy (near) + mirror (exact)
    news["site"].clear_log()
    return news


def test_reprocess_all_is_offline_idempotent_and_recorded(loaded: dict) -> None:
    from flows.reingest import reingest

    site, db_path = loaded["site"], loaded["db"]
    before = snapshot(db_path)
    n_articles = len(before["articles"])

    r = reingest(all=True, mode="reprocess")
    assert site.requests == []  # no network at all
    assert r["articles"] == n_articles and r["seeds"] == 2 and r["urls"] == n_articles - 2
    assert r["unchanged"] == n_articles and r.get("new", 0) == r.get("updated", 0) == r.get("fetched", 0) == 0
    assert snapshot(db_path) == before  # same rows, same updated_at, no versions, duplicates or entity changes

    run = q(db_path, "select flow, trigger, status, params, unchanged from runs where id = ?", [r["run_id"]])[0]
    assert run[:3] == ("reingest", "manual", "completed") and run[4] == n_articles
    assert json.loads(run[3])["all"] is True and json.loads(run[3])["mode"] == "reprocess"

    # Twice: still nothing new anywhere.
    reingest(all=True, mode="reprocess")
    assert site.requests == []
    assert snapshot(db_path) == before


def test_reprocess_after_extractor_bump_updates_versions_only(loaded: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.clean
    import ingest.seeds
    from flows.reingest import reingest

    db_path = loaded["db"]
    before = snapshot(db_path)
    new_version = ingest.clean.EXTRACTOR_VERSION + ".bumped"
    monkeypatch.setattr(ingest.clean, "EXTRACTOR_VERSION", new_version)
    monkeypatch.setattr(ingest.seeds, "EXTRACTOR_VERSION", new_version)

    r = reingest(all=True, mode="reprocess")
    assert loaded["site"].requests == []
    after = snapshot(db_path)
    assert r["updated"] == len(before["articles"]) and r.get("new", 0) == 0
    assert {v for (v,) in q(db_path, "select distinct extractor_version from articles")} == {new_version}
    assert q(db_path, "select id, text, content_hash, title from articles order by id") == [
        (row[0], row[5], row[13], row[4]) for row in before["articles"]
    ]
    assert after["article_versions"] == []  # same text: no history row
    # Same text and model: duplicates and entities stay exactly as they were.
    for table in ("duplicates", "mentions", "article_entity_runs", "entities", "entity_aliases", "pages"):
        assert after[table] == before[table], table

    # Re-processing again with the same (new) version changes nothing.
    reingest(all=True, mode="reprocess")
    assert snapshot(db_path) == after


def test_new_ner_model_version_reruns_entities(loaded: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.entities
    from flows.reingest import reingest

    db_path = loaded["db"]
    before = snapshot(db_path)
    old_versions = {v for (v,) in q(db_path, "select distinct model_version from article_entity_runs where model <> ''")}
    assert len(old_versions) == 1
    monkeypatch.setattr(ingest.entities, "NORM_VERSION", "99")

    r = reingest(all=True, mode="reprocess")
    assert r["unchanged"] == len(before["articles"]) and r["entities"] > 0
    runs = q(db_path, "select model_version, copied_from is not null from article_entity_runs where model <> ''")
    assert runs and {v for v, _ in runs} == {old_versions.pop().rsplit("+norm", 1)[0] + "+norm99"}
    assert any(copied for _, copied in runs)  # the exact copy reuses its canonical's fresh entities
    assert {v for (v,) in q(db_path, "select distinct model_version from mentions")} == {runs[0][0]}
    # Same model, same text: the same mentions, only the version moved; articles untouched.
    assert q(db_path, "select article_id, entity_id, start_char, end_char from mentions order by all") == sorted(
        (m[0], m[1], m[4], m[5]) for m in before["mentions"]
    )
    assert snapshot(db_path)["articles"] == before["articles"]

    # The next re-process finds every entity run current and leaves them alone.
    current = snapshot(db_path)
    reingest(all=True, mode="reprocess")
    assert snapshot(db_path) == current


def test_refetch_by_source_is_unconditional(loaded: dict) -> None:
    from flows.reingest import reingest

    site, db_path = loaded["site"], loaded["db"]
    before = snapshot(db_path)
    r = reingest(source="fixture")  # refetch is the default mode
    assert r["articles"] == r["urls"] == r["fetched"] == len(loaded["fixture"])
    for p in loaded["fixture"]:
        reqs = site.requests_for("/" + p)
        assert len(reqs) == 1, p
        assert reqs[0].status == 200 and reqs[0].header("If-None-Match") is None and reqs[0].header("If-Modified-Since") is None
    # Nothing of the other source, and no feed: re-ingest does not discover.
    assert all(site.hits("/" + p) == 0 for p in loaded["other"])
    assert site.hits("/feed.xml") == site.hits("/other.xml") == 0
    # Unchanged pages: same articles (seen again: only last_seen_at moves), duplicates and entities.
    after = snapshot(db_path)
    assert [a[:16] + a[17:] for a in after["articles"]] == [a[:16] + a[17:] for a in before["articles"]]
    moved = {a[0] for a, b in zip(after["articles"], before["articles"]) if a[16] > b[16]}
    assert len(moved) == len(loaded["fixture"])
    for table in ("article_versions", "duplicates", "mentions", "entities"):
        assert after[table] == before[table], table
    assert q(db_path, "select count(*) from pages where run_id = ?", [r["run_id"]])[0][0] == len(loaded["fixture"])


def test_refetch_by_url_pattern_and_like_escaping(loaded: dict) -> None:
    from flows.reingest import reingest
    from warehouse.reingest import like_pattern

    assert like_pattern("http://x/a_b%c*") == "http://x/a\\_b\\%c%"
    site = loaded["site"]
    politics = [p for p in loaded["paths"] if p.startswith("politics/")]
    fetched_politics = [p for p in politics if p in loaded["fixture"]]
    assert fetched_politics
    r = reingest(url=site.url("/politics/") + "*")
    assert r["articles"] == len(fetched_politics)
    hit = {rec.path.lstrip("/") for rec in site.requests if rec.path != "/robots.txt"}
    assert hit == set(fetched_politics)

    # A pattern with `_` must not match `-` (LIKE's single-character wildcard is escaped).
    site.clear_log()
    r = reingest(url="*storm_ilse*", dry_run=True)
    assert r["articles"] == 0
    # Without wildcards the pattern is an exact URL; the canonical URL matches as well as the fetched one.
    page_url, canonical = q(loaded["db"], "select page_url, url from articles where page_url like '%storm-ilse%'")[0]
    assert reingest(url=page_url, dry_run=True)["articles"] == 1
    assert reingest(url=canonical, dry_run=True)["articles"] == 1


def test_window_selection_first_seen_and_published(prefect_api: None, news: dict) -> None:
    from flows.cli import main
    from flows.ingest import ingest
    from flows.reingest import reingest

    site, db_path = news["site"], news["db"]
    first, later = news["fixture"][:3], news["fixture"][3:5]
    set_feed(site, "/feed.xml", first)
    set_feed(site, "/other.xml", [])
    ingest(sources=["fixture"])
    time.sleep(0.05)
    mid = datetime.now(timezone.utc)
    set_feed(site, "/feed.xml", first + later)
    ingest(sources=["fixture"])
    assert q(db_path, "select count(*) from articles")[0][0] == 5

    assert reingest(since=mid.isoformat(), dry_run=True)["articles"] == len(later)
    assert reingest(since="2000-01-01", until=mid.isoformat(), dry_run=True)["articles"] == len(first)
    # A zone-less datetime is UTC.
    naive = mid.replace(tzinfo=None).isoformat()
    assert reingest(since=naive, dry_run=True)["articles"] == len(later)

    # Published window (a bare --until date includes that day).
    expected = q(db_path, "select count(*) from articles where published_at >= '2023-03-01' and published_at < '2023-03-04'")[0][0]
    assert 0 < expected < 5
    r = reingest(since="2023-03-01", until="2023-03-03", window_on="published", mode="reprocess")
    assert r["articles"] == expected and r["unchanged"] == expected
    run = q(db_path, "select params from runs where id = ?", [r["run_id"]])[0][0]
    assert json.loads(run)["window_on"] == "published"

    # The same through the CLI; --until without --since is bad usage.
    site.clear_log()
    assert main(["reingest", "--since", "2023-03-01", "--until", "2023-03-03", "--on", "published", "--mode", "reprocess"]) == 0
    assert site.requests == []
    assert main(["reingest", "--all", "--until", "2023-03-03"]) == 2


def test_failed_url_refetched_after_permanent_failure(prefect_api: None, news: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.ingest import ingest
    from flows.reingest import reingest

    monkeypatch.setenv("NEWSFLOW_RETRY__MAX_ATTEMPTS", "1")  # the first failure is final
    monkeypatch.setenv("NEWSFLOW_FETCH__INLINE_RETRIES", "0")
    site, db_path = news["site"], news["db"]
    broken, fine = news["paths"][0], news["paths"][1]
    site.status("/" + broken, 500)
    set_feed(site, "/feed.xml", [broken, fine])
    set_feed(site, "/other.xml", [])
    r1 = ingest()
    assert r1["new"] == 1 and r1["failed"] == 1
    assert q(db_path, "select attempts, permanent from url_retries") == [(1, True)]
    # A later ingest leaves a given-up URL alone ...
    site.clear_log()
    ingest()
    assert site.hits("/" + broken) == 0

    # ... a re-process cannot help (no stored page), and a dry run says so.
    d = reingest(failed=True, mode="reprocess", dry_run=True)
    assert (d["articles"], d["urls"], d["no_stored_page"]) == (0, 1, 1)

    # The page works again: `--failed` fetches it, it becomes an article and its retry state is cleared.
    site.unroute("/" + broken)
    site.clear_log()
    r = reingest(failed=True)
    assert site.hits("/" + broken) == 1 and site.hits("/" + fine) == 0
    assert r["new"] == 1
    assert q(db_path, "select count(*) from url_retries")[0][0] == 0
    assert q(db_path, "select count(*) from articles")[0][0] == 2
    assert reingest(failed=True, dry_run=True)["urls"] == 0


def test_dry_run_counts_and_changes_nothing(loaded: dict) -> None:
    from flows.reingest import reingest

    db_path, site = loaded["db"], loaded["site"]
    before = snapshot(db_path)
    runs = q(db_path, "select count(*) from runs")[0][0]
    r = reingest(source="other", mode="refetch", dry_run=True)
    assert r["dry_run"] is True and r["run_id"] is None
    assert (r["articles"], r["urls"], r["seeds"]) == (2, 2, 0)
    r = reingest(all=True, dry_run=True)
    assert (r["articles"], r["urls"], r["seeds"]) == (len(before["articles"]), len(before["articles"]) - 2, 2)
    assert site.requests == []
    assert snapshot(db_path) == before
    assert q(db_path, "select count(*) from runs")[0][0] == runs  # no run row either


def test_cli_reingest(loaded: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main
    from flows.reingest import reingest
    from ingest.errors import ConfigError

    db_path = loaded["db"]
    n = q(db_path, "select count(*) from articles")[0][0]
    with pytest.raises(SystemExit) as exc:
        main(["reingest", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--mode {refetch,reprocess}" in out and "--failed" in out and "--dry-run" in out

    assert main(["reingest", "--all", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"would re-ingest {n} articles ({n - 2} URLs + 2 seed files) from all articles" in err

    assert main(["reingest", "--source", "other", "--mode", "reprocess"]) == 0
    err = capsys.readouterr().err
    assert "unchanged 2" in err
    row = q(db_path, "select flow, trigger, status from runs order by id desc limit 1")[0]
    assert row == ("reingest", "cli", "completed")

    # Usage errors: no selector / two selectors (argparse), bad date and bad selection (exit 2).
    with pytest.raises(SystemExit):
        main(["reingest"])
    with pytest.raises(SystemExit):
        main(["reingest", "--all", "--failed"])
    assert main(["reingest", "--since", "last tuesday"]) == 2
    with pytest.raises(ConfigError):
        reingest(source="other", all=True)
    with pytest.raises(ConfigError):
        reingest(all=True, mode="sideways")
