"""Hostile input end to end: every misbehaviour of tests/hostile_site.py through the real CLI and `ingest` flow.

One run over ~12 sources and ~45 hostile or good URLs: each case ends as the right article or the right
`failures` row (stage, reason, retryable), nothing reaches a host the user did not configure, and the
run as a whole completes (CLI exit 0, good articles of the same site loaded). Later runs retry what is
retryable, when it is due, and nothing else.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hostile_site import HOSTILE_ENV, HostileSite, build_hostile_site, case_summary, check_cases, duplicate_rows, hostile_inputs, make_article_html, q
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer
from lake import lake_env

pytestmark = pytest.mark.slow


def _guard():  # noqa: ANN202 - the session's socket guard (conftest is imported by pytest as `conftest`)
    return sys.modules["conftest"].GUARD


def _last_run(db: Path) -> tuple[int, str]:
    return q(db, "select id, status from runs order by id desc limit 1")[0]


@pytest.fixture(scope="module")
def hostile(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run 1 of the CLI over the hostile site; snapshots of everything the tests look at afterwards."""
    from flows.cli import main

    tmp = tmp_path_factory.mktemp("hostile")
    trusted, other = SiteServer().start(), SiteServer().start()
    site = build_hostile_site(trusted, other, tmp)
    db = tmp / "wh"
    mp = pytest.MonkeyPatch()
    for k, v in {**HOSTILE_ENV, **lake_env(db), "NEWSFLOW_SOURCES_FILE": str(site.sources_file)}.items():
        mp.setenv(k, v)
    guard = _guard()
    guard.reset()
    code = main(["ingest"])
    run_id, status = _last_run(db)
    state = {
        "site": site, "db": db, "mp": mp, "exit": code, "run_id": run_id, "status": status,
        "outcomes": check_cases(db, site, run_id),
        "attempts": list(guard.attempts), "nonlocal": guard.nonlocal_attempts(), "dns": list(guard.dns_blocked),
        "other_hits": other.hits("/"), "hits": {r.path for r in trusted.requests},
    }
    yield state
    mp.undo()
    trusted.stop()
    other.stop()


CASE_NAMES = [
    "good_0", "good_1", "good_2", "relative_link", "duplicate_guid_first", "duplicate_guid_second", "future_date", "no_date",
    "gzip_bomb", "huge_50mb", "huge_50mb_content_length", "endless_trickle", "slow_timeout", "binary_as_html",
    "windows_1251", "shift_jis", "iso_8859_1_undeclared", "redirect_loop", "redirect_chain_past_limit",
    "http_404", "http_410", "http_429_retry_after", "http_500_then_ok_in_run", "http_500_then_ok_next_run",
    "robots_disallow", "ssrf_link_other_private_host", "ssrf_link_10_0_0_1", "ssrf_redirect_metadata",
    "ssrf_redirect_10_0_0_1", "ssrf_redirect_other_private_host", "feed_malformed_xml", "feed_html_page",
    "feed_empty_body", "feed_billion_laughs", "feed_external_entity", "feed_wrong_declared_encoding",
    "sitemap_gzip-1", "sitemap_gzip-2", "sitemap_index_of_indexes-1", "sitemap_index_of_indexes-2",
    "sitemap_index_loop", "sitemap_billion_laughs", "sitemap_external_entity",
]


# Plain good articles of the same feed: they show the site works, they are not hostile inputs.
CONTROLS = ["good_0", "good_1", "good_2"]
# Hostile inputs checked on more than one URL (each URL is a case; the input counts once).
MULTI_CASE_INPUTS = {
    "duplicate_guid": ["duplicate_guid_first", "duplicate_guid_second"],
    "sitemap_gzip": ["sitemap_gzip-1", "sitemap_gzip-2"],
    "sitemap_index_of_indexes": ["sitemap_index_of_indexes-1", "sitemap_index_of_indexes-2"],
}
HOSTILE_INPUTS = 37  # 43 cases - 3 controls - 3 second URLs of multi-URL inputs


def test_case_list_is_complete(hostile: dict) -> None:
    assert sorted(CASE_NAMES) == sorted(c.name for c in hostile["site"].cases)


def test_distinct_hostile_inputs_and_controls_are_counted_apart(hostile: dict) -> None:
    cases = hostile["site"].cases
    inputs = hostile_inputs(cases)
    assert [c.name for c in cases if c.control] == CONTROLS
    assert {k: [c.name for c in v] for k, v in inputs.items() if len(v) > 1} == MULTI_CASE_INPUTS
    summary = case_summary(cases, hostile["outcomes"])
    print(f"\nhostile inputs handled {summary['hostile inputs handled']}/{summary['hostile inputs tried']}, "
          f"control articles {summary['control articles handled']}/{summary['control articles tried']} ({len(cases)} cases)")
    assert summary == {"hostile inputs tried": HOSTILE_INPUTS, "hostile inputs handled": HOSTILE_INPUTS,
                       "control articles tried": 3, "control articles handled": 3}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_case(hostile: dict, name: str) -> None:
    problem = hostile["outcomes"][name]
    assert problem is None, f"{name}: {problem}"


def test_run_completed_despite_everything(hostile: dict) -> None:
    db = hostile["db"]
    assert hostile["exit"] == 0
    assert hostile["status"] == "completed"
    good = [c for c in hostile["site"].cases if c.expect == "article"]
    assert q(db, "select count(*) from articles")[0][0] == len(good)
    # Every article went through the whole pipeline: raw page, fingerprint and an entity run.
    assert q(db, "select count(*) from articles a where not exists (select 1 from article_fingerprints f where f.article_id = a.id)")[0][0] == 0
    assert q(db, "select count(*) from articles a where not exists (select 1 from article_entity_runs e where e.article_id = a.id)")[0][0] == 0
    assert q(db, "select count(*) from articles a where not exists (select 1 from pages p where p.url = a.page_url)")[0][0] == 0
    assert set(duplicate_rows(db).values()) == {0}


def test_nothing_reaches_unconfigured_hosts(hostile: dict) -> None:
    site: HostileSite = hostile["site"]
    other_port = int(site.other.host.rsplit(":", 1)[1])
    # No connection outside loopback (10.0.0.1, 169.254.169.254) and none to the other private server.
    assert hostile["nonlocal"] == []
    assert [a for a in hostile["attempts"] if a[1][1] == other_port] == []
    assert hostile["other_hits"] == 0
    assert hostile["dns"] == []
    # The redirecting pages were asked once each; nothing was asked for on the targets' paths.
    assert not any(p.startswith("/latest/meta-data") for p in hostile["hits"])


def test_bombs_are_refused_and_caps_hold(hostile: dict) -> None:
    # What the bombs cost in memory is measured on a real ingest process in tests/test_memory.py.
    db = hostile["db"]
    # Nothing bigger than the cap was stored, and the refused bodies are not kept at all.
    cap = int(HOSTILE_ENV["NEWSFLOW_FETCH__MAX_BODY_BYTES"])
    assert q(db, "select coalesce(max(body_bytes), 0) from pages")[0][0] <= cap
    for path in ("/h/gzip-bomb", "/h/huge", "/h/huge-announced", "/h/trickle"):
        assert q(db, "select count(*) from pages where url = ?", [hostile["site"].trusted.url(path)])[0][0] == 0


def test_retry_state_after_first_run(hostile: dict) -> None:
    db, site = hostile["db"], hostile["site"]
    state = {u.split("/", 3)[3]: (a, p, n, t) for u, a, p, n, t in q(db, "select url, attempts, permanent, next_attempt_at, updated_at from url_retries")}
    for path in ("h/gone-404", "h/gone-410", "private/secret.html", "h/loop-a", "h/gzip-bomb"):
        assert state[path][1] is True, path  # permanent: never retried
    attempts, permanent, next_at, failed_at = state["h/rate-limited"]
    assert (attempts, permanent) == (1, False)
    assert next_at - failed_at >= timedelta(seconds=119)  # Retry-After 120 s is not undercut
    assert state["h/flaky-twice"][:2] == (1, False)
    assert site.trusted.hits("/h/flaky-twice") == 2  # one in-run retry
    assert site.trusted.hits("/h/rate-limited") == 1  # Retry-After 120 s > max_inline_wait: not waited for in-run


def test_later_runs_retry_when_due_and_nothing_else(hostile: dict) -> None:
    from flows.cli import main

    db, site = hostile["db"], hostile["site"]
    t = site.trusted
    # The slow pages recover; a retry is due for them (base delay 0), but not for the 429 yet.
    t.set_file("/h/slow-ok", make_article_html(950))
    t.route("/h/trickle", lambda _r: __import__("sitesrv").Response(body=make_article_html(951)))
    t.route("/h/slow", lambda _r: __import__("sitesrv").Response(body=make_article_html(952)))
    t.clear_log()
    assert main(["ingest"]) == 0
    run2, status2 = _last_run(db)
    assert status2 == "completed"
    for path in ("/h/gone-404", "/h/gone-410", "/private/", "/h/rate-limited", "/h/loop-a", "/h/gzip-bomb", "/h/binary.html"):
        assert t.hits(path) == 0, path  # permanent failures are not retried; the 429 is not due yet
    for path in ("/h/flaky-twice", "/h/trickle", "/h/slow"):
        assert t.hits(path) == 1, path
        assert q(db, "select count(*) from article_urls where url = ?", [t.url(path)])[0][0] == 1, path
    assert q(db, "select count(*) from url_retries where url = ?", [t.url("/h/rate-limited")])[0][0] == 1

    # Time passes: the Retry-After has expired, so the next run tries it (and it now works).
    from lake import lake_settings
    from warehouse import db as warehouse_db

    with warehouse_db.session(lake_settings(db)) as con, warehouse_db.transaction(con):
        con.execute("update url_retries set next_attempt_at = ? where url = ?", [datetime.now(timezone.utc) - timedelta(seconds=1), t.url("/h/rate-limited")])
    t.clear_log()
    assert main(["ingest"]) == 0
    assert t.hits("/h/rate-limited") == 1
    assert q(db, "select count(*) from article_urls where url = ?", [t.url("/h/rate-limited")])[0][0] == 1
    assert q(db, "select count(*) from url_retries where url = ?", [t.url("/h/rate-limited")])[0][0] == 0
    assert set(duplicate_rows(db).values()) == {0}
    assert [s for (s,) in q(db, "select status from runs order by id")] == ["completed"] * 3
