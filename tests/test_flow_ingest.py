"""End-to-end: real Prefect flow runs against a real loopback news site and a real DuckLake warehouse."""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer
from lake import use_lake, lake_connect

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "seeds" / "demo_site" / "harbourgazette"


def demo_articles() -> list[str]:
    """Relative paths of the saved Harbour Gazette article pages."""
    paths = sorted(p.relative_to(DEMO).as_posix() for p in DEMO.rglob("*.html") if p.name != "index.html")
    assert len(paths) >= 8, "demo site missing"
    return paths


def rss(site: SiteServer, paths: list[str], updated: dict[str, datetime] | None = None) -> str:
    """An RSS 2.0 feed linking `paths` on `site` (optionally with atom:updated per item)."""
    items = []
    base = datetime(2023, 3, 1, 8, 0, tzinfo=timezone.utc)
    for i, p in enumerate(paths):
        up = ""
        if updated and p in updated:
            up = f"<atom:updated>{updated[p].isoformat()}</atom:updated>"
        items.append(
            f"<item><title>Story {i}</title><link>{escape(site.url('/' + p))}</link><guid>{escape(site.url('/' + p))}</guid>"
            f"<pubDate>{format_datetime(base + timedelta(hours=i))}</pubDate>{up}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f"<title>Fixture Gazette</title><link>{site.url('/')}</link><description>d</description>{''.join(items)}</channel></rss>"
    )


@pytest.fixture
def news(site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A news site on 127.0.0.1 built from the demo pages, a sources.toml for it, and NEWSFLOW_* env."""
    paths = demo_articles()
    for p in paths:
        site.set_file("/" + p, (DEMO / p).read_bytes(), content_type="text/html; charset=utf-8")
    site.set_robots("User-agent: *\nDisallow: /private/\n")
    feed_paths = paths[:6]
    site.set_file("/feed.xml", rss(site, feed_paths), content_type="application/rss+xml")
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[sources]]\nname = "fixture"\nkind = "rss"\nlocation = "{site.url("/feed.xml")}"\n')
    db_path = tmp_path / "wh"
    use_lake(monkeypatch, db_path)
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(sources))
    monkeypatch.setenv("NEWSFLOW_FETCH__PER_HOST_DELAY_S", "0")
    monkeypatch.setenv("NEWSFLOW_RETRY__BASE_DELAY_S", "0")
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")
    return {"site": site, "paths": paths, "feed_paths": feed_paths, "db": db_path, "sources": sources}


def q(db_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with lake_connect(db_path) as con:
        return con.execute(sql, params or []).fetchall()


def article_hits(site: SiteServer, paths: list[str]) -> int:
    return sum(site.hits("/" + p) for p in paths)


def test_first_noop_new_item_and_changed_page(prefect_api: None, news: dict) -> None:
    from flows.ingest import ingest

    site: SiteServer = news["site"]
    paths, feed_paths, db_path = news["paths"], news["feed_paths"], news["db"]

    # 1. First ingest: every feed item fetched once and stored as an article with its raw page.
    r1 = ingest()
    assert r1["new"] == len(feed_paths), r1
    assert article_hits(site, paths) == len(feed_paths)
    assert q(db_path, "select count(*) from articles")[0][0] == len(feed_paths)
    assert q(db_path, "select count(*) from pages where kind = 'article' and body_zlib is not null")[0][0] == len(feed_paths)
    run = q(db_path, "select status, new, fetched, flow_run_id from runs where id = ?", [r1["run_id"]])[0]
    assert run[0] == "completed" and run[1] == len(feed_paths) and run[3]
    # The run's log in Prefect (what the UI shows) has its stage lines at INFO, and the run report artifact.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs reach the API in batches
    with get_client(sync_client=True) as client:
        logs = [lg.message for lg in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run[3]])))]
    assert any(m.startswith("batch: pages ") for m in logs), logs[:20]
    # The text is clean: no page residue from the template.
    texts = [t for (t,) in q(db_path, "select text from articles")]
    assert all("Leave a Reply" not in t and "Advertisement" not in t for t in texts)

    # 2. Second ingest over unchanged sources: the feed answers 304 and no article page is fetched.
    site.clear_log()
    r2 = ingest()
    assert article_hits(site, paths) == 0
    feed_reqs = site.requests_for("/feed.xml")
    assert len(feed_reqs) == 1 and feed_reqs[0].header("If-None-Match") and feed_reqs[0].status == 304
    assert r2.get("new", 0) == 0 and r2.get("not_modified", 0) >= 1
    # A run that loaded nothing skips the end-of-run maintenance pass (and says so in its log).
    fr2 = q(db_path, "select flow_run_id from runs where id = ?", [r2["run_id"]])[0][0]
    APILogHandler().flush()  # logs reach the API in batches
    with get_client(sync_client=True) as client:
        logs2 = [lg.message for lg in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[fr2])))]
    assert any(m.startswith("maintenance: skipped") for m in logs2), logs2[-10:]
    assert q(db_path, "select count(*) from articles")[0][0] == len(feed_paths)
    # Its run report skipped the per-source and failure queries: the report is the one they would give.
    from flows.run import run_report_markdown
    from lake import lake_settings

    report = run_report_markdown(lake_settings(db_path), r2["run_id"])
    assert run_report_markdown(lake_settings(db_path), r2["run_id"], wrote_data=False) == report
    assert "| (none) | 0 | 0 | 0 | 0 |" in report and "no failures" in report
    assert "| (none) |" not in run_report_markdown(lake_settings(db_path), r1["run_id"])  # the first run wrote pages

    # 3. A new feed item: it is the only article fetched.
    site.clear_log()
    site.set_file("/feed.xml", rss(site, feed_paths + [paths[6]]), content_type="application/rss+xml")
    r3 = ingest()
    assert article_hits(site, paths) == 1 and site.hits("/" + paths[6]) == 1
    assert r3["new"] == 1
    assert q(db_path, "select count(*) from articles")[0][0] == len(feed_paths) + 1

    # 4. A changed page (the feed says updated): re-fetched, row updated, old hash kept in history.
    target = feed_paths[0]
    old = q(db_path, "select id, content_hash, text from articles where page_url = ?", [site.url("/" + target)])[0]
    html = (DEMO / target).read_text(encoding="utf-8")
    first_para_end = html.index("</p>")
    changed = html[:first_para_end] + " Update: officials confirmed the figures on Thursday evening after a review." + html[first_para_end:]
    site.set_file("/" + target, changed)
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    site.set_file("/feed.xml", rss(site, feed_paths + [paths[6]], updated={target: later}), content_type="application/rss+xml")
    site.clear_log()
    r4 = ingest()
    assert site.hits("/" + target) == 1 and article_hits(site, paths) == 1
    assert r4["updated"] == 1 and r4.get("new", 0) == 0
    new = q(db_path, "select content_hash, text from articles where id = ?", [old[0]])[0]
    assert new[0] != old[1] and "officials confirmed the figures" in new[1]
    assert q(db_path, "select content_hash from article_versions where article_id = ?", [old[0]]) == [(old[1],)]
    assert q(db_path, "select count(*) from articles")[0][0] == len(feed_paths) + 1

    # 5. Re-running over the same input changes nothing (idempotent).
    before = q(db_path, "select id, content_hash, updated_at from articles order by id")
    ingest()
    assert q(db_path, "select id, content_hash, updated_at from articles order by id") == before
    assert q(db_path, "select count(*) from article_versions")[0][0] == 1
    # Every load wrote the lookup key of migration 008 as the lookups compute it, one row per URL.
    for table in ("pages", "article_urls"):
        assert q(db_path, f"select count(*) from {table} where url_key is distinct from substr(md5(url), 1, 16)") == [(0,)]
        assert q(db_path, f"select count(*) - count(distinct url) from {table}") == [(0,)]


def test_failing_pages_recorded_and_retried(prefect_api: None, news: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.ingest import ingest

    site: SiteServer = news["site"]
    paths, db_path = news["paths"], news["db"]
    flaky, gone, empty = paths[0], paths[1], "empty.html"
    # The flaky page fails for the whole first run (2 attempts with one in-run retry), then works.
    ok_body = (DEMO / flaky).read_bytes()
    site.fail_then_succeed("/" + flaky, failures=2, status=500, body=ok_body)
    site.status("/" + gone, 404)
    site.set_file("/" + empty, "<html><head><title>Gallery</title></head><body><nav>Home</nav></body></html>")
    site.set_file("/feed.xml", rss(site, [flaky, gone, empty, paths[2]]), content_type="application/rss+xml")

    r1 = ingest()
    assert r1["new"] == 1 and r1["failed"] == 3
    fails = dict(q(db_path, "select reason, retryable from failures where run_id = ? order by reason", [r1["run_id"]]))
    assert fails == {"http_500": True, "http_404": False, "no_text": False}
    state = {u.rsplit("/", 1)[-1]: (a, p) for u, a, p in q(db_path, "select url, attempts, permanent from url_retries")}
    assert state[flaky.rsplit("/", 1)[-1]] == (1, False)
    assert state[gone.rsplit("/", 1)[-1]] == (1, True)

    # Next run: only the retryable failure is tried again, and now it succeeds.
    site.clear_log()
    r2 = ingest()
    assert site.hits("/" + flaky) == 1 and site.hits("/" + gone) == 0 and site.hits("/" + empty) == 0
    assert r2["new"] == 1
    assert q(db_path, "select count(*) from url_retries where url like ?", ["%" + flaky])[0][0] == 0
    assert q(db_path, "select count(*) from articles")[0][0] == 2


def test_retries_give_up_after_limit(prefect_api: None, news: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.ingest import ingest

    monkeypatch.setenv("NEWSFLOW_RETRY__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("NEWSFLOW_FETCH__INLINE_RETRIES", "0")
    site: SiteServer = news["site"]
    broken = news["paths"][0]
    site.status("/" + broken, 503)
    site.set_file("/feed.xml", rss(site, [broken]), content_type="application/rss+xml")
    for _ in range(3):
        ingest()
    assert site.hits("/" + broken) == 2  # two attempts, then permanently failed
    assert q(db_path := news["db"], "select attempts, permanent from url_retries")[0] == (2, True)
    assert q(db_path, "select count(*) from failures")[0][0] == 2
