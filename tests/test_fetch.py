"""Fetcher behaviour against a real loopback server (tests/sitesrv.py); no other network is reachable."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from conftest import SocketGuard
from ingest import netguard
from ingest.fetch import Fetcher, fetch_all, parse_retry_after
from ingest.models import FetchRequest, FetchResult
from ingest.settings import FetchSettings
from sitesrv import Request, Response, SiteServer, gzip_bomb_body

PAGE = "<html><head><title>T</title></head><body><p>Hello world.</p></body></html>"
MB = 1024 * 1024


def settings(**kw: object) -> FetchSettings:
    """Small caps and no delays, so every case runs in well under a second."""
    base: dict[str, object] = dict(
        connect_timeout_s=2.0,
        read_timeout_s=2.0,
        total_timeout_s=3.0,
        max_body_bytes=MB,
        per_host_delay_s=0.0,
        retry_backoff_s=0.05,
        max_inline_wait_s=2.0,
        inline_retries=1,
    )
    base.update(kw)
    return FetchSettings(**base)  # type: ignore[arg-type]


def req(url: str, **kw: object) -> FetchRequest:
    """A request for a fixture URL; user_configured because 127.0.0.1 is private."""
    kw.setdefault("user_configured", True)
    return FetchRequest(url=url, source="test", **kw)  # type: ignore[arg-type]


def fetch1(r: FetchRequest, s: FetchSettings | None = None, mirrors: dict[str, str] | None = None) -> FetchResult:
    return fetch_all([r], s or settings(), mirrors)[0]


def reason(res: FetchResult) -> str | None:
    return res.failure.reason if res.failure else None


# -- basics ----------------------------------------------------------------------------------------


def test_page_200_with_metadata(site: SiteServer) -> None:
    site.set_file("/a.html", PAGE)
    s = settings()
    res = fetch1(req(site.url("/a.html")), s)
    assert res.ok and res.body == PAGE.encode()
    assert res.status == 200 and res.final_url == site.url("/a.html")
    assert res.etag and res.last_modified and res.content_type.startswith("text/html")
    assert res.elapsed_ms > 0 and res.fetched_at is not None
    page_req = site.requests_for("/a.html")[0]
    assert page_req.header("User-Agent") == s.user_agent
    assert "gzip" in (page_req.header("Accept-Encoding") or "")


def test_conditional_get_304_keeps_validators(site: SiteServer) -> None:
    site.set_file("/a.html", PAGE)
    first = fetch1(req(site.url("/a.html")))
    second = fetch1(req(site.url("/a.html"), etag=first.etag, last_modified=first.last_modified))
    assert second.status == 304 and second.not_modified and second.body is None and second.failure is None
    assert (second.etag, second.last_modified) == (first.etag, first.last_modified)
    assert site.requests_for("/a.html")[-1].header("If-None-Match") == first.etag
    # Last-Modified alone works too.
    third = fetch1(req(site.url("/a.html"), last_modified=first.last_modified))
    assert third.not_modified
    assert site.requests_for("/a.html")[-1].header("If-Modified-Since") == first.last_modified
    # conditional=False sends no validators and gets the page.
    fourth = fetch1(req(site.url("/a.html"), etag=first.etag, conditional=False))
    assert fourth.ok and site.requests_for("/a.html")[-1].header("If-None-Match") is None
    # A changed page is a 200 with new validators.
    site.set_file("/a.html", PAGE + "<!-- changed -->")
    fifth = fetch1(req(site.url("/a.html"), etag=first.etag))
    assert fifth.ok and fifth.etag != first.etag


def test_fetch_many_keeps_order_and_reports_progress(site: SiteServer) -> None:
    for i in range(5):
        site.set_file(f"/p{i}.html", f"<html><body>{i}</body></html>")
    seen: list[str] = []
    reqs = [req(site.url(f"/p{i}.html")) for i in range(5)] + [req(site.url("/missing"))]
    results = fetch_all(reqs, settings(), progress=lambda r: seen.append(r.url))
    assert [r.url for r in results] == [r.url for r in reqs]
    assert [r.body for r in results[:5]] == [f"<html><body>{i}</body></html>".encode() for i in range(5)]
    assert reason(results[5]) == "http_404"
    assert sorted(seen) == sorted(r.url for r in reqs)


def test_fetcher_object_api(site: SiteServer) -> None:
    site.set_file("/a.html", PAGE)

    async def main() -> FetchResult:
        f = Fetcher(settings())
        try:
            return await f.fetch(req(site.url("/a.html")))
        finally:
            await f.aclose()

    assert asyncio.run(main()).ok


# -- robots.txt ------------------------------------------------------------------------------------


def test_robots_disallow_prevents_request(site: SiteServer) -> None:
    site.set_robots("User-agent: *\nDisallow: /private/\n")
    site.set_file("/private/x.html", PAGE)
    site.set_file("/public.html", PAGE)
    res = fetch_all([req(site.url("/private/x.html")), req(site.url("/public.html"))], settings())
    assert reason(res[0]) == "robots_disallowed" and not res[0].failure.retryable
    assert res[1].ok
    assert site.hits("/private/") == 0
    assert site.hits("/robots.txt") == 1  # cached per host for the Fetcher


def test_robots_agent_specific_rule(site: SiteServer) -> None:
    site.set_robots("User-agent: newsflow\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    site.set_file("/a.html", PAGE)
    assert reason(fetch1(req(site.url("/a.html")))) == "robots_disallowed"
    assert fetch1(req(site.url("/a.html")), settings(respect_robots=False)).ok


@pytest.mark.parametrize("robots_status", [404, 500, 503])
def test_robots_missing_or_broken_allows(site: SiteServer, robots_status: int) -> None:
    site.status("/robots.txt", robots_status)
    site.set_file("/a.html", PAGE)
    assert fetch1(req(site.url("/a.html"))).ok
    assert site.hits("/robots.txt") == 1  # no inline retries for robots.txt


def test_robots_timeout_allows(site: SiteServer) -> None:
    site.slow("/robots.txt", delay=2.0, body="User-agent: *\nDisallow: /\n")
    site.set_file("/a.html", PAGE)
    assert fetch1(req(site.url("/a.html")), settings(read_timeout_s=0.3)).ok


# -- politeness ------------------------------------------------------------------------------------


def test_per_host_delay_between_request_starts(site: SiteServer) -> None:
    for i in range(3):
        site.set_file(f"/p{i}.html", PAGE)
    results = fetch_all([req(site.url(f"/p{i}.html")) for i in range(3)], settings(per_host_delay_s=0.2))
    assert all(r.ok for r in results)
    times = sorted(r.time for r in site.requests if r.path.startswith("/p"))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == 2 and min(gaps) >= 0.15, gaps  # 0.2 s apart, with slack for scheduling


def test_one_request_in_flight_per_host(site: SiteServer) -> None:
    lock = threading.Lock()
    active = [0, 0]  # current, max

    def handler(_r: Request) -> Response:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.1)
        with lock:
            active[0] -= 1
        return Response(body=PAGE)

    site.route("/s/*", handler)
    results = fetch_all([req(site.url(f"/s/{i}")) for i in range(4)], settings(max_concurrency=8))
    assert all(r.ok for r in results)
    assert active[1] == 1


def test_global_concurrency_limit(make_site) -> None:  # type: ignore[no-untyped-def]
    # Different hosts run in parallel, but never more than max_concurrency at once. Distinct hosts on
    # loopback: 127.0.0.1 and localhost (both reach the same server process is not needed: two servers).
    a, b = make_site(), make_site()
    lock = threading.Lock()
    active = [0, 0]

    def handler(_r: Request) -> Response:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        time.sleep(0.15)
        with lock:
            active[0] -= 1
        return Response(body=PAGE)

    a.route("/x", handler)
    b.route("/x", handler)
    urls = [a.url("/x"), b.url("/x").replace("127.0.0.1", "localhost")]
    results = fetch_all([req(u) for u in urls], settings(max_concurrency=1, respect_robots=False))
    assert all(r.ok for r in results)
    assert active[1] == 1


# -- status codes and retries ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410])
def test_not_found_and_gone_not_retryable(site: SiteServer, status: int) -> None:
    site.status("/x", status)
    res = fetch1(req(site.url("/x")))
    assert reason(res) == f"http_{status}" and not res.failure.retryable
    assert res.status == status and res.failure.stage == "fetch"
    assert f"HTTP {status}" in res.failure.detail and site.url("/x") in res.failure.detail
    assert site.hits("/x") == 1


@pytest.mark.parametrize("status,retryable", [(403, False), (400, False), (408, True), (451, False)])
def test_other_client_errors(site: SiteServer, status: int, retryable: bool) -> None:
    site.status("/x", status)
    res = fetch1(req(site.url("/x")), settings(inline_retries=0))
    assert reason(res) == f"http_{status}" and res.failure.retryable is retryable


def test_500_then_success_is_retried_in_run(site: SiteServer) -> None:
    site.fail_then_succeed("/flaky", failures=1, status=500, body=PAGE)
    res = fetch1(req(site.url("/flaky")))
    assert res.ok and res.body == PAGE.encode()
    assert site.hits("/flaky") == 2


def test_persistent_500_is_retryable_failure(site: SiteServer) -> None:
    site.status("/down", 500)
    res = fetch1(req(site.url("/down")), settings(inline_retries=2))
    assert reason(res) == "http_500" and res.failure.retryable and res.status == 500
    assert res.failure.detail == f"HTTP 500 from {site.url('/down')}"
    assert site.hits("/down") == 3


def test_429_retry_after_recorded_not_waited(site: SiteServer) -> None:
    site.retry_after("/rl", 120, status=429)
    t0 = time.monotonic()
    res = fetch1(req(site.url("/rl")))
    assert time.monotonic() - t0 < 2
    assert reason(res) == "http_429" and res.failure.retryable and res.failure.retry_after_s == 120
    assert site.hits("/rl") == 1  # too long to wait in-run, and no inline retry for 429


def test_503_short_retry_after_waited_then_retried(site: SiteServer) -> None:
    site.retry_after("/busy", 1, status=503, then=PAGE)
    res = fetch1(req(site.url("/busy")))
    assert res.ok
    times = [r.time for r in site.requests_for("/busy")]
    assert len(times) == 2 and times[1] - times[0] >= 0.9


def test_retry_after_http_date(site: SiteServer) -> None:
    from email.utils import formatdate

    site.retry_after("/rl", formatdate(time.time() + 3600, usegmt=True), status=503)
    res = fetch1(req(site.url("/rl")), settings(inline_retries=0))
    assert reason(res) == "http_503" and res.failure.retryable
    assert 3500 < res.failure.retry_after_s <= 3600


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_read_timeout(site: SiteServer) -> None:
    site.slow("/slow", delay=2.0)
    res = fetch1(req(site.url("/slow")), settings(read_timeout_s=0.3, inline_retries=0))
    assert reason(res) == "timeout" and res.failure.retryable


def test_slow_trickle_cut_by_total_timeout(site: SiteServer) -> None:
    site.trickle("/trickle", interval=0.05)
    t0 = time.monotonic()
    res = fetch1(req(site.url("/trickle")), settings(total_timeout_s=0.5, read_timeout_s=2.0, inline_retries=0))
    assert time.monotonic() - t0 < 2.0
    assert reason(res) == "timeout" and res.failure.retryable
    assert "0.5 s" in res.failure.detail


def test_connect_error(site: SiteServer) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    res = fetch1(req(f"http://127.0.0.1:{port}/"), settings(inline_retries=0))
    assert reason(res) == "connect_error" and res.failure.retryable and res.status == 0


def test_dns_error(socket_guard: SocketGuard) -> None:
    res = fetch1(req("http://no-such-host.invalid/"))
    assert reason(res) == "dns_error" and res.failure.retryable
    assert socket_guard.attempts == []


# -- body limits and content types -----------------------------------------------------------------


def test_huge_chunked_body_cut_at_cap(site: SiteServer) -> None:
    site.huge("/big", size=50 * MB)
    res = fetch1(req(site.url("/big")))
    assert reason(res) == "too_large" and not res.failure.retryable
    assert res.failure.detail.startswith(f"body exceeded {MB} bytes")
    assert res.status == 200 and res.body is None


def test_huge_body_with_content_length_refused_early(site: SiteServer) -> None:
    site.huge("/big", size=50 * MB, announce_length=True)
    res = fetch1(req(site.url("/big")))
    assert reason(res) == "too_large"


def test_gzip_bomb_stops_at_cap_without_memory_blowup(site: SiteServer) -> None:
    gzip_bomb_body()  # precompute outside the measurement
    site.gzip_bomb("/bomb")
    tracemalloc.start()
    try:
        res = fetch1(req(site.url("/bomb")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason(res) == "too_large" and not res.failure.retryable
    assert peak < 12 * MB, peak  # the stream decodes to 128 MB


def test_small_gzip_body_is_decoded(site: SiteServer) -> None:
    import gzip

    site.route("/gz", Response(body=gzip.compress(PAGE.encode()), headers={"Content-Encoding": "gzip"}))
    res = fetch1(req(site.url("/gz")))
    assert res.ok and res.body == PAGE.encode()


def test_unsupported_content_type_for_articles(site: SiteServer) -> None:
    site.route("/img", Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png"))
    site.route("/doc", Response(body=b"%PDF-1.4", content_type="application/pdf"))
    res = fetch_all([req(site.url("/img")), req(site.url("/doc"))], settings())
    assert [reason(r) for r in res] == ["unsupported_content_type"] * 2
    assert not res[0].failure.retryable and res[0].content_type == "image/png" and res[0].status == 200
    # Feeds and sitemaps are not checked (a gzipped sitemap is application/x-gzip).
    assert fetch1(req(site.url("/img"), kind="sitemap")).ok


def test_binary_labelled_html_returned_as_is(site: SiteServer) -> None:
    body = site.binary_html("/bin")
    res = fetch1(req(site.url("/bin")))
    assert res.ok and res.body == body


# -- redirects -------------------------------------------------------------------------------------


def test_redirect_followed_and_final_url(site: SiteServer) -> None:
    site.set_file("/new.html", PAGE)
    site.redirect("/old", "/new.html", status=301)
    res = fetch1(req(site.url("/old")))
    assert res.ok and res.final_url == site.url("/new.html") and res.url == site.url("/old")


def test_redirect_chain_limit(site: SiteServer) -> None:
    first = site.redirect_chain("/c", n=3)
    ok = fetch1(req(site.url(first)), settings(max_redirects=3))
    assert ok.ok and ok.final_url == site.url("/c/3")
    site.clear_log()
    res = fetch1(req(site.url(first)), settings(max_redirects=2))
    assert reason(res) == "too_many_redirects" and not res.failure.retryable
    assert site.hits("/c/") == 3  # 0, 1, 2 — the third redirect is not followed


def test_redirect_loop(site: SiteServer) -> None:
    site.redirect_loop("/a", "/b")
    res = fetch1(req(site.url("/a")))
    assert reason(res) == "too_many_redirects" and "loop" in res.failure.detail
    assert site.hits("/a") == 1 and site.hits("/b") == 1


def test_redirect_to_file_scheme_refused(site: SiteServer) -> None:
    site.redirect("/r", "file:///etc/passwd")
    res = fetch1(req(site.url("/r")))
    assert reason(res) == "unsupported_scheme"


# -- SSRF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://internal.example/admin"]
)
def test_redirect_from_public_host_to_private_is_blocked(
    site: SiteServer, socket_guard: SocketGuard, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    # Make the fixture server look like a public host, and internal.example resolve to a private address.
    real_public = netguard.is_public_address
    real_resolve = netguard.resolve
    monkeypatch.setattr(netguard, "is_public_address", lambda ip: ip == "127.0.0.1" or real_public(ip))
    monkeypatch.setattr(
        netguard, "resolve", lambda h, p: ["10.20.30.40"] if h == "internal.example" else real_resolve(h, p)
    )
    site.redirect("/go", target)
    res = fetch1(req(site.url("/go")), settings(respect_robots=False))
    assert reason(res) == "ssrf_blocked" and not res.failure.retryable
    assert res.final_url == target
    assert site.hits("/go") == 1
    assert socket_guard.nonlocal_attempts() == []  # refused before any connection attempt
    assert socket_guard.dns_blocked == []


def test_connection_goes_to_the_checked_address(
    site: SiteServer, socket_guard: SocketGuard, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DNS rebinding: the first answer is "public", later ones private. The fetcher must connect to the
    # address it checked instead of resolving again.
    answers = iter([["127.0.0.1"]] + [["10.0.0.1"]] * 10)
    real_public = netguard.is_public_address
    monkeypatch.setattr(netguard, "is_public_address", lambda ip: ip == "127.0.0.1" or real_public(ip))
    monkeypatch.setattr(netguard, "resolve", lambda h, p: next(answers) if h == "rebind.example" else [h])
    site.set_file("/a.html", PAGE)
    res = fetch1(req(f"http://rebind.example:{site.host.split(':')[1]}/a.html"), settings(respect_robots=False))
    assert res.ok and site.hits("/a.html") == 1
    assert socket_guard.nonlocal_attempts() == []


def test_link_to_private_address_blocked_unless_user_configured(site: SiteServer, socket_guard: SocketGuard) -> None:
    site.set_file("/a.html", PAGE)
    res = fetch1(req(site.url("/a.html"), user_configured=False))
    assert reason(res) == "ssrf_blocked" and site.hits("/") == 0  # not even robots.txt
    assert fetch1(req(site.url("/a.html"), user_configured=False), settings(allow_private_addresses=True)).ok
    assert fetch1(req(site.url("/a.html"), user_configured=True)).ok


def test_private_source_may_redirect_within_private_hosts(site: SiteServer) -> None:
    site.set_file("/final.html", PAGE)
    site.redirect("/go", site.url("/final.html").replace("127.0.0.1", "localhost"))
    res = fetch1(req(site.url("/go")))
    assert res.ok


# -- mirrors and file:// ---------------------------------------------------------------------------


@pytest.fixture
def mirror_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mirror"
    (root / "news" / "2024").mkdir(parents=True)
    (root / "index.html").write_text("<html><body>home</body></html>")
    (root / "news" / "2024" / "story.html").write_text(PAGE)
    (root / "news" / "index.html").write_text("<html><body>news</body></html>")
    (root / "news" / "2024" / "no-extension").write_text(PAGE)
    (root / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "secret.txt").write_text("top secret")
    return root


def test_mirror_serving_and_304(mirror_dir: Path, socket_guard: SocketGuard) -> None:
    mirrors = {"https://news.example/": str(mirror_dir)}
    s = settings(per_host_delay_s=5.0)  # would make this test slow if politeness applied to mirrors
    urls = [
        "https://news.example/",
        "https://news.example/news/2024/story.html?utm=x#frag",
        "https://news.example/news/",
        "https://news.example/news",
        "https://news.example/news/2024/no-extension",
        "https://news.example/nope.html",
        "https://news.example/pic.png",
    ]
    t0 = time.monotonic()
    res = fetch_all([req(u, user_configured=False) for u in urls], s, mirrors)
    assert time.monotonic() - t0 < 2
    assert res[0].body == b"<html><body>home</body></html>"
    assert res[1].ok and res[1].body == PAGE.encode() and res[1].content_type == "text/html"
    assert res[2].body == res[3].body == b"<html><body>news</body></html>"
    assert res[4].ok and res[4].content_type == "text/html"
    assert reason(res[5]) == "http_404" and not res[5].failure.retryable
    assert reason(res[6]) == "unsupported_content_type"
    st = (mirror_dir / "news" / "2024" / "story.html").stat()
    assert res[1].etag == f'"{st.st_size:x}-{st.st_mtime_ns:x}"' and res[1].last_modified
    again = fetch1(req(urls[1], etag=res[1].etag, last_modified=res[1].last_modified), s, mirrors)
    assert again.status == 304 and again.not_modified and again.body is None and again.etag == res[1].etag
    # A changed file is served again.
    p = mirror_dir / "news" / "2024" / "story.html"
    p.write_text(PAGE + "<!-- v2 -->")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    changed = fetch1(req(urls[1], etag=res[1].etag), s, mirrors)
    assert changed.ok and changed.etag != res[1].etag
    assert socket_guard.attempts == [] and socket_guard.dns_blocked == []  # never touched the network


@pytest.mark.parametrize(
    "url",
    [
        "https://news.example/../secret.txt",
        "https://news.example/%2e%2e/secret.txt",
        "https://news.example/news/..%2f..%2fsecret.txt",
        "https://news.example/escape/secret.txt",
    ],
)
def test_mirror_path_traversal_refused(mirror_dir: Path, url: str) -> None:
    (mirror_dir / "escape").symlink_to(mirror_dir.parent)  # a symlink pointing out of the mirror
    res = fetch1(req(url), mirrors={"https://news.example/": str(mirror_dir)})
    assert reason(res) == "path_traversal" and not res.failure.retryable and res.body is None


def test_file_urls(mirror_dir: Path) -> None:
    story = mirror_dir / "news" / "2024" / "story.html"
    ok = fetch1(req(story.as_uri(), user_configured=True))
    assert ok.ok and ok.body == PAGE.encode()
    assert fetch1(req((mirror_dir / "news").as_uri() + "/")).body == b"<html><body>news</body></html>"
    # A file:// link that the user did not configure may only read inside a mirror directory.
    secret = (mirror_dir.parent / "secret.txt").as_uri()
    strict = settings(allow_file_links=False)
    assert reason(fetch1(req(secret, user_configured=False), strict)) == "file_url_refused"
    assert fetch1(req(secret, user_configured=True, kind="feed"), strict).ok
    inside = fetch1(req(story.as_uri(), user_configured=False), strict, {"https://x.example/": str(mirror_dir)})
    assert inside.ok
    # By default discovery is the gate for file:// links (it only takes them from local documents).
    assert fetch1(req(secret, user_configured=False, kind="feed")).body == b"top secret"
    again = fetch1(req(story.as_uri(), etag=ok.etag))
    assert again.not_modified


# -- the socket guard itself -----------------------------------------------------------------------


def test_socket_guard_blocks_non_loopback(socket_guard: SocketGuard, site: SiteServer) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(socket_guard.Error):
            s.connect(("10.255.255.1", 80))
        with pytest.raises(socket_guard.Error):
            s.connect_ex(("10.255.255.1", 80))
    finally:
        s.close()
    with pytest.raises(socket_guard.Error):
        socket.create_connection(("10.255.255.1", 80), timeout=0.1)
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 80)
    assert len(socket_guard.take_violations()) == 3  # consumed, so this test itself passes
    # Loopback still works.
    with socket.create_connection(("127.0.0.1", int(site.base_url.rsplit(":", 1)[1])), timeout=2):
        pass
    assert socket_guard.take_violations() == []
