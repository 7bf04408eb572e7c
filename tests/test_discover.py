"""Discovery: feed/sitemap parsing on real bytes, local sources, and the discover() orchestration."""

from __future__ import annotations

import gzip
import io
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ingest.discover import (
    DiscoveryResult,
    discover,
    parse_feed,
    parse_sitemap,
    read_html_dir,
    read_url_list,
    read_warc,
)
from ingest.dates import parse_datetime as parse_w3c_datetime
from ingest.errors import TerminalError
from ingest.models import Failure, FetchRequest, FetchResult
from ingest.safexml import gunzip_capped, has_entity_declarations
from ingest.sources import Source

DATA = Path(__file__).parent / "data" / "discover"
HG = "https://www.harbourgazette.example/"
NW = "https://northwire.example/"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --------------------------------------------------------------------------- feeds


def test_rss2_items_dates_titles_and_dedup() -> None:
    items = parse_feed(fixture("rss2.xml"), HG + "feed.xml", "hg", "application/rss+xml; charset=utf-8")
    urls = [i.url for i in items]
    assert urls == [
        HG + "local/ferry-terminal-approved.html",
        # whitespace around the link stripped, fragment dropped; first of two items sharing a GUID wins
        HG + "world/g20-new-delhi.html?utm_source=rss",
        HG + "politics/budget-2999.html",
        HG + "opinion/letters.html",  # the later item with the same link (other GUID) is dropped
    ]
    first, g20, embargoed, letters = items
    assert first.title == "Port authority approves & funds new ferry terminal"
    assert first.source == "hg" and first.via == HG + "feed.xml"
    assert first.published_at == utc(2025, 3, 4, 8, 15) and first.lastmod == utc(2025, 3, 4, 8, 15)
    assert g20.title == "G20 ministers meet in New Delhi"
    assert g20.published_at == utc(2025, 3, 3, 16, 0)  # +0200 converted to UTC
    assert g20.published_at.tzinfo is not None
    # future date: published_at kept as given, lastmod refused
    assert embargoed.published_at == utc(2999, 3, 1, 12, 0) and embargoed.lastmod is None
    # no dates at all
    assert letters.published_at is None and letters.lastmod is None


def test_atom_alternate_links_relative_href_updated_and_html_title() -> None:
    items = parse_feed(fixture("atom.xml"), NW + "atom.xml", "nw", "application/atom+xml")
    assert [i.url for i in items] == [
        NW + "2025/03/04/blinken-g20",  # rel=alternate, not rel=edit
        NW + "2025/03/03/fisheries-quota",  # relative href resolved against the feed URL
        NW + "2025/03/02/clock-skew",
    ]
    blinken, fisheries, skew = items
    assert blinken.title == "Blinken says no plans to meet Lavrov"  # type="html" markup stripped
    assert blinken.published_at == utc(2025, 3, 4, 7, 0)
    assert blinken.lastmod == utc(2025, 3, 4, 9, 45)  # <updated>, not <published>
    assert fisheries.published_at is None and fisheries.lastmod == utc(2025, 3, 3, 16, 20)
    assert skew.published_at == utc(2025, 3, 2, 10, 0) and skew.lastmod is None  # future <updated>


def test_rss_relative_links_and_unsafe_schemes() -> None:
    items = parse_feed(fixture("rss_relative.xml"), HG + "news/feed.xml", "hg")
    assert [i.url for i in items] == [
        HG + "world/harbour-strike.html",
        HG + "news/local/market-day.html",
        HG + "sport/regatta.html",
        HG + "culture/festival.html",  # <guid isPermaLink="true"> stands in for a missing <link>
    ]
    # javascript: and file: links are skipped: a remote feed must not point the fetcher at local files.
    assert not any(i.url.startswith(("javascript:", "file:")) for i in items)


def test_local_feed_may_link_local_files(tmp_path: Path) -> None:
    feed = tmp_path / "feed.xml"
    feed.write_bytes(fixture("rss_relative.xml"))
    items = parse_feed(feed.read_bytes(), feed.as_uri(), "local")
    assert (tmp_path / "local" / "market-day.html").as_uri() in [i.url for i in items]


def test_rss1_and_rss091_with_netscape_doctype() -> None:
    rdf = parse_feed(fixture("rss1_rdf.xml"), "https://old.example/rss", "old")
    assert [(i.url, i.title, i.lastmod) for i in rdf] == [("https://old.example/a.html", "First story", utc(2025, 2, 1, 12))]
    # A DOCTYPE without entity declarations is fine (and its DTD is not fetched).
    legacy = parse_feed(fixture("rss091_netscape.xml"), "https://legacy.example/rss", "legacy")
    assert [i.url for i in legacy] == ["https://legacy.example/story-1.html"]


def test_cdata_mentioning_entity_is_not_an_attack() -> None:
    # rss2.xml's content:encoded CDATA contains the text "<!ENTITY": only the prolog counts.
    assert not has_entity_declarations(fixture("rss2.xml"))


def test_empty_feed_is_valid() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet day</title></channel></rss>'
    assert parse_feed(body, HG + "feed.xml", "hg") == []


@pytest.mark.parametrize("body", [b"", b"   \n\t  "])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(TerminalError) as ei:
        parse_feed(body, HG + "feed.xml", "hg")
    assert ei.value.reason == "empty_body" and not ei.value.retryable


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None, "application/rss+xml"])
def test_html_served_as_feed(content_type: str | None) -> None:
    with pytest.raises(TerminalError) as ei:
        parse_feed(fixture("html_page.html"), HG + "feed", "hg", content_type)
    assert ei.value.reason == "not_a_feed"
    assert HG + "feed.xml" in str(ei.value)  # the error points at the feed the page advertises


def test_feed_served_with_html_content_type_still_parses() -> None:
    items = parse_feed(fixture("atom.xml"), NW + "atom.xml", "nw", "text/html")
    assert len(items) == 3


def test_malformed_xml() -> None:
    with pytest.raises(TerminalError) as ei:
        parse_feed(fixture("malformed.xml"), HG + "feed.xml", "hg")
    assert ei.value.reason == "malformed_feed"


def test_well_formed_xml_that_is_not_a_feed() -> None:
    with pytest.raises(TerminalError) as ei:
        parse_feed(b'<?xml version="1.0"?><config><item>1</item></config>', HG + "feed.xml", "hg")
    assert ei.value.reason == "not_a_feed"


def test_bozo_feed_with_entries_is_kept() -> None:
    # An unescaped '&' makes the XML invalid, but the loose parser still recovers the entries.
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Fish & Chips</title>'
        b"<item><title>Cod & haddock prices</title><link>https://hg.example/cod.html</link></item>"
        b"</channel></rss>"
    )
    items = parse_feed(body, "https://hg.example/feed.xml", "hg")
    assert [i.url for i in items] == ["https://hg.example/cod.html"]


def _encoded_feed(declared: str, title_bytes: bytes) -> bytes:
    return (
        f'<?xml version="1.0" encoding="{declared}"?>\n<rss version="2.0"><channel><title>Enc</title><item><title>'.encode()
        + title_bytes
        + b"</title><link>https://hg.example/caf\xc3\xa9-menu.html</link></item></channel></rss>".replace(b"\xc3\xa9", b"e")
    )


@pytest.mark.parametrize(
    ("declared", "actual", "content_type"),
    [
        ("utf-8", "latin-1", None),  # declared utf-8, latin-1 bytes
        ("utf-8", "cp1252", "application/rss+xml; charset=utf-8"),  # HTTP agrees with the lie
        ("iso-8859-1", "utf-8", None),  # declared latin-1, utf-8 bytes
        ("utf-8", "utf-8", "text/xml"),  # text/xml without charset (RFC 3023 says us-ascii)
    ],
)
def test_wrong_declared_encoding_still_parses(declared: str, actual: str, content_type: str | None) -> None:
    title = "Café prices soar in Härnösand"
    items = parse_feed(_encoded_feed(declared, title.encode(actual)), "https://hg.example/feed.xml", "hg", content_type)
    assert [i.url for i in items] == ["https://hg.example/cafe-menu.html"]
    assert items[0].title == title


def test_billion_laughs_rejected_without_expansion() -> None:
    # Completing at all (with ordinary memory) shows nothing was expanded: 10^9 "lol"s would not fit.
    with pytest.raises(TerminalError) as ei:
        parse_feed(fixture("billion_laughs.xml"), "https://evil.example/feed", "evil")
    assert ei.value.reason == "xml_entities_forbidden" and not ei.value.retryable
    with pytest.raises(TerminalError) as ei:
        parse_sitemap(fixture("billion_laughs.xml"), "https://evil.example/sitemap.xml", "evil")
    assert ei.value.reason == "xml_entities_forbidden"


def test_external_entity_rejected() -> None:
    with pytest.raises(TerminalError) as ei:
        parse_feed(fixture("xxe.xml"), "https://evil.example/feed", "evil")
    assert ei.value.reason == "xml_entities_forbidden"
    assert "root:" not in str(ei.value)


@pytest.mark.parametrize(
    "body",
    [
        # parameter entity pulling an external DTD
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/evil.dtd"> %ext;]>'
        b'<rss version="2.0"><channel><item><link>https://e.example/a</link></item></channel></rss>',
        # a bad byte before the DOCTYPE makes expat stop early; the prolog scan still sees the entity
        b'<?xml version="1.0" encoding="utf-8"?><!-- \xff --><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">]>'
        b'<rss version="2.0"><channel><item><title>&a;</title><link>https://e.example/a</link></item></channel></rss>',
        # UTF-16 encoded attack
        '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE rss [<!ENTITY a "b">]><rss version="2.0"><channel>'
        "<item><title>&a;</title><link>https://e.example/a</link></item></channel></rss>".encode("utf-16"),
        # lower-case declaration (not valid XML, but a loose parser may still honour it)
        b'<!DOCTYPE rss [<!entity a "b">]><rss version="2.0"><channel><item><link>https://e.example/a</link></item></channel></rss>',
    ],
    ids=["parameter-entity", "bad-byte-before-doctype", "utf16", "lowercase"],
)
def test_entity_variants_rejected(body: bytes) -> None:
    with pytest.raises(TerminalError) as ei:
        parse_feed(body, "https://evil.example/feed", "evil")
    assert ei.value.reason == "xml_entities_forbidden"


def test_body_that_is_a_file_path_is_not_read(tmp_path: Path) -> None:
    # feedparser treats bytes as a file path first; a body naming a local feed must not be read.
    local = tmp_path / "secret-feed.xml"
    local.write_bytes(fixture("rss2.xml"))
    with pytest.raises(TerminalError) as ei:
        parse_feed(str(local).encode(), HG + "feed.xml", "hg")
    assert ei.value.reason in ("malformed_feed", "not_a_feed")


# --------------------------------------------------------------------------- sitemaps


def test_sitemap_urlset() -> None:
    page = parse_sitemap(fixture("sitemap_urlset.xml"), HG + "sitemap.xml", "hg")
    assert page.sitemaps == []
    assert [(i.url, i.lastmod) for i in page.items] == [
        (HG + "world/g20-new-delhi.html", utc(2025, 3, 3, 16)),
        (HG + "local/ferry-terminal-approved.html", utc(2025, 3, 4)),  # date-only lastmod = UTC midnight
        (HG + "opinion/letters.html", None),
        (HG + "future.html", None),  # future lastmod not trusted
    ]  # duplicate <loc>, mailto: and <url> without <loc> dropped
    assert all(i.via == HG + "sitemap.xml" and i.source == "hg" for i in page.items)


def test_news_sitemap() -> None:
    page = parse_sitemap(fixture("news_sitemap.xml"), HG + "news-sitemap.xml", "hg")
    strike, g20 = page.items
    assert strike.url == HG + "world/harbour-strike.html"
    assert strike.title == "Dockworkers strike over new shift rota"
    assert strike.published_at == utc(2025, 3, 5, 6, 0)
    assert strike.lastmod == strike.published_at  # no <lastmod>: the publication date stands in
    assert g20.title == "G20 ministers meet in New Delhi"
    assert g20.published_at == utc(2025, 3, 3) and g20.lastmod == utc(2025, 3, 4, 12)


def test_gzip_sitemap() -> None:
    page = parse_sitemap(gzip.compress(fixture("news_sitemap.xml")), HG + "sitemap.xml.gz", "hg")
    assert len(page.items) == 2


def test_gzip_bomb_capped() -> None:
    bomb = gzip.compress(b" " * (2 * 1024 * 1024))
    with pytest.raises(TerminalError) as ei:
        gunzip_capped(bomb, max_bytes=1024 * 1024)
    assert ei.value.reason == "too_large"


def test_corrupt_gzip_sitemap() -> None:
    with pytest.raises(TerminalError) as ei:
        parse_sitemap(gzip.compress(fixture("news_sitemap.xml"))[:40], HG + "sitemap.xml.gz", "hg")
    assert ei.value.reason == "malformed_sitemap"


def test_sitemap_index_children_newest_first_and_relative() -> None:
    page = parse_sitemap(fixture("sitemap_index.xml"), HG + "sitemap.xml", "hg")
    assert page.items == []
    assert page.sitemaps == [
        HG + "sitemaps/2025-03.xml",  # relative <loc> resolved; later duplicate dropped
        HG + "sitemaps/2024-12.xml",
        HG + "sitemaps/news.xml",  # undated last
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<urlset><url><loc>https://a.example/x</loc></url>", "malformed_sitemap"),
        (b"<?xml version='1.0'?><config/>", "not_a_sitemap"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "not_a_sitemap"),
        (b"this is not a sitemap", "malformed_sitemap"),
        (b"", "empty_body"),
    ],
)
def test_bad_sitemaps(body: bytes, reason: str) -> None:
    with pytest.raises(TerminalError) as ei:
        parse_sitemap(body, HG + "sitemap.xml", "hg")
    assert ei.value.reason == reason


def test_text_sitemap_and_feed_as_sitemap() -> None:
    page = parse_sitemap(b"https://a.example/one.html\nhttps://a.example/two.html\n\n", "https://a.example/sitemap.txt", "a")
    assert [i.url for i in page.items] == ["https://a.example/one.html", "https://a.example/two.html"]
    page = parse_sitemap(fixture("atom.xml"), NW + "atom.xml", "nw")
    assert len(page.items) == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025", utc(2025, 1, 1)),
        ("2025-03", utc(2025, 3, 1)),
        ("2025-03-04", utc(2025, 3, 4)),
        ("2025-03-04T10:20+01:00", utc(2025, 3, 4, 9, 20)),
        ("2025-03-04T10:20:30.5Z", datetime(2025, 3, 4, 10, 20, 30, 500000, tzinfo=timezone.utc)),
        ("2025-03-04 10:20:30", utc(2025, 3, 4, 10, 20, 30)),
        ("Tue, 04 Mar 2025 10:20:30 GMT", utc(2025, 3, 4, 10, 20, 30)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_w3c_datetime(value: str, expected: datetime | None) -> None:
    assert parse_w3c_datetime(value) == expected


# --------------------------------------------------------------------------- local sources


def test_url_list_with_comments_and_invalid_lines() -> None:
    res = read_url_list(DATA / "urls.txt", "desk")
    assert isinstance(res, DiscoveryResult)
    assert [i.url for i in res.items] == [
        HG + "world/g20-new-delhi.html",
        NW + "2025/03/04/blinken-g20",
        HG + "page",
    ]
    assert all(i.source == "desk" and i.via == (DATA / "urls.txt").resolve().as_uri() for i in res.items)
    bad = {f.url: f for f in res.failures}
    assert set(bad) == {"ftp://files.example/article.txt", "www.harbourgazette.example/no-scheme.html", "not a url at all", "https://"}
    f = bad["not a url at all"]
    assert (f.stage, f.reason, f.source, f.retryable) == ("discover", "invalid_url", "desk", False)
    assert "urls.txt:9" in f.detail


def test_url_list_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TerminalError) as ei:
        read_url_list(tmp_path / "none.txt", "desk")
    assert ei.value.reason == "source_not_found"


def _make_site(root: Path) -> None:
    (root / "world").mkdir(parents=True)
    (root / "world" / "g20 new-delhi.html").write_bytes(b"<html><body><p>G20</p></body></html>")
    (root / "index.HTM").write_bytes(b"<html><body>home</body></html>")
    (root / "style.css").write_bytes(b"body{}")
    (root / ".git").mkdir()
    (root / ".git" / "hidden.html").write_bytes(b"<html></html>")
    os.utime(root / "index.HTM", (1_700_000_000, 1_700_000_000))


def test_html_dir_with_base_url(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _make_site(site)
    src = Source(name="saved", kind="html", location=str(site), base_url="https://www.harbourgazette.example")
    pages = read_html_dir(src)
    assert [p.url for p in pages] == [HG + "index.HTM", HG + "world/g20%20new-delhi.html"]
    home = pages[0]
    assert home.ok and home.status == 200 and home.kind == "article" and home.content_type == "text/html"
    assert home.body == b"<html><body>home</body></html>"
    assert home.fetched_at == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)
    assert home.etag and home.last_modified == "Tue, 14 Nov 2023 22:13:20 GMT"
    # The etag changes when the file does.
    (site / "index.HTM").write_bytes(b"<html><body>home, edited</body></html>")
    assert read_html_dir(src)[0].etag != home.etag


def test_html_dir_without_base_url_uses_file_uris(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _make_site(site)
    pages = read_html_dir(Source(name="saved", kind="html", location=str(site)))
    assert [p.url for p in pages] == [(site / "index.HTM").as_uri(), (site / "world" / "g20 new-delhi.html").as_uri()]


def test_html_dir_refuses_symlink_outside(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    secret = tmp_path / "secret.html"
    secret.write_bytes(b"<html>secret</html>")
    (site / "leak.html").symlink_to(secret)
    pages = read_html_dir(Source(name="saved", kind="html", location=str(site)))
    assert len(pages) == 1 and pages[0].failure is not None and pages[0].failure.reason == "outside_directory"
    assert pages[0].body is None


def test_html_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(TerminalError) as ei:
        read_html_dir(Source(name="saved", kind="html", location=str(tmp_path / "nope")))
    assert ei.value.reason == "source_not_found"


def _write_warc(path: Path, *, corrupt_tail: bool = False, gzip_records: bool = True) -> None:
    with path.open("wb") as fh:
        w = WARCWriter(fh, gzip=gzip_records)

        def response(url: str, status: str, ctype: str, body: bytes, date: str, extra: list | None = None) -> None:
            headers = [("Content-Type", ctype)] + (extra or [])
            if not any(k.lower() == "transfer-encoding" for k, _ in headers):
                headers.append(("Content-Length", str(len(body))))
            http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
            rec = w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                       warc_headers_dict={"WARC-Date": date})
            w.write_record(rec)

        w.write_record(w.create_warcinfo_record("test.warc.gz", {"software": "newsflow-tests"}))
        response(HG + "world/a.html", "200 OK", "text/html; charset=utf-8",
                 b"<html><body><p>Article A</p></body></html>", "2025-03-04T10:00:00Z",
                 [("ETag", '"abc"'), ("Last-Modified", "Tue, 04 Mar 2025 09:00:00 GMT")])
        response(HG + "style.css", "200 OK", "text/css", b"body{}", "2025-03-04T10:00:01Z")
        response(HG + "old", "301 Moved Permanently", "text/html", b"", "2025-03-04T10:00:02Z",
                 [("Location", HG + "world/a.html")])
        response(HG + "missing.html", "404 Not Found", "text/html", b"<html>nope</html>", "2025-03-04T10:00:03Z")
        gz = gzip.compress(b"<html><body><p>Article B, gzipped</p></body></html>")
        response(HG + "world/b.html", "200 OK", "text/html", gz, "2025-03-04T10:00:04Z", [("Content-Encoding", "gzip")])
        chunked = b"1c\r\n<html><body><p>Chunked C</p>\r\n0e\r\n</body></html>\r\n0\r\n\r\n"
        response(HG + "world/c.html", "200 OK", "application/xhtml+xml", chunked, "2025-03-04T10:00:05Z",
                 [("Transfer-Encoding", "chunked")])
    if corrupt_tail:
        with path.open("ab") as fh:
            fh.write(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 99999\r\n\r\ngarbage" if not gzip_records
                     else b"\x1f\x8b\x08\x00garbage-not-a-gzip-member")


def test_warc_html_responses(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    _write_warc(path)
    results = read_warc(Source(name="crawl", kind="warc", location=str(path)))
    ok = [r for r in results if r.failure is None]
    assert [r.url for r in ok] == [HG + "world/a.html", HG + "world/b.html", HG + "world/c.html"]
    a, b, c = ok
    assert a.status == 200 and a.body == b"<html><body><p>Article A</p></body></html>"
    assert a.fetched_at == utc(2025, 3, 4, 10) and a.etag == '"abc"' and a.content_type == "text/html; charset=utf-8"
    assert a.last_modified == "Tue, 04 Mar 2025 09:00:00 GMT" and a.kind == "article"
    assert b.body == b"<html><body><p>Article B, gzipped</p></body></html>"  # Content-Encoding decoded
    assert c.body == b"<html><body><p>Chunked C</p></body></html>"  # chunked decoded
    failed = [r for r in results if r.failure is not None]
    assert [(r.url, r.status, r.failure.reason) for r in failed] == [(HG + "missing.html", 404, "http_404")]


@pytest.mark.parametrize("gzip_records", [True, False])
def test_corrupt_warc_keeps_records_read_so_far(tmp_path: Path, gzip_records: bool) -> None:
    path = tmp_path / "crawl.warc"
    _write_warc(path, corrupt_tail=True, gzip_records=gzip_records)
    src = Source(name="crawl", kind="warc", location=str(path))
    results = read_warc(src)
    assert [r.url for r in results if r.failure is None] == [HG + "world/a.html", HG + "world/b.html", HG + "world/c.html"]
    assert results[-1].failure is not None and results[-1].failure.reason == "malformed_warc"
    res = discover(src, fetch=_no_fetch, validators=lambda u: None)
    assert len(res.pages) == 3 and res.items == []
    assert "malformed_warc" in [f.reason for f in res.failures]


def test_not_a_warc(tmp_path: Path) -> None:
    path = tmp_path / "junk.warc"
    path.write_bytes(b"this is not a warc file at all\n" * 10)
    res = discover(Source(name="junk", kind="warc", location=str(path)), fetch=_no_fetch, validators=lambda u: None)
    assert res.pages == [] and [f.reason for f in res.failures] == ["malformed_warc"]


# --------------------------------------------------------------------------- discover()


def _no_fetch(reqs: list[FetchRequest]) -> list[FetchResult]:
    raise AssertionError(f"local sources must not fetch: {reqs}")


class FakeFetch:
    """Serves bytes from a dict; ETag = hash of the body, so validators produce 304s like a real server."""

    def __init__(self, docs: dict[str, bytes], failing: dict[str, Failure] | None = None) -> None:
        self.docs = docs
        self.failing = failing or {}
        self.calls: list[list[FetchRequest]] = []

    @staticmethod
    def etag(body: bytes) -> str:
        return f'"{abs(hash(body)):x}"'

    def __call__(self, reqs: list[FetchRequest]) -> list[FetchResult]:
        self.calls.append(list(reqs))
        out = []
        for r in reqs:
            if r.url in self.failing:
                out.append(FetchResult(url=r.url, source=r.source, kind=r.kind, status=503, failure=self.failing[r.url]))
            elif r.url not in self.docs:
                out.append(FetchResult(url=r.url, source=r.source, kind=r.kind, status=404,
                                       failure=Failure(url=r.url, source=r.source, stage="fetch", reason="http_404")))
            else:
                body = self.docs[r.url]
                etag = self.etag(body)
                if r.conditional and r.etag == etag:
                    out.append(FetchResult(url=r.url, source=r.source, kind=r.kind, status=304, not_modified=True, etag=etag))
                else:
                    out.append(FetchResult(url=r.url, source=r.source, kind=r.kind, status=200, final_url=r.url,
                                           etag=etag, content_type="application/xml", body=body))
        return out

    @property
    def fetched(self) -> list[str]:
        return [r.url for batch in self.calls for r in batch]


def _urlset(*locs: str, lastmod: str | None = None) -> bytes:
    lm = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    urls = "".join(f"<url><loc>{u}</loc>{lm}</url>" for u in locs)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()


def _index(*locs: str) -> bytes:
    sms = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in locs)
    return f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sms}</sitemapindex>'.encode()


def _sitemap_source(url: str = HG + "sitemap.xml", **kw) -> Source:
    return Source(name="hg-sitemap", kind="sitemap", location=url, **kw)


def test_discover_rss_builds_conditional_request_and_returns_document() -> None:
    fetch = FakeFetch({HG + "feed.xml": fixture("rss2.xml")})
    seen_validators: list[str] = []

    def validators(url: str) -> tuple[str | None, str | None] | None:
        seen_validators.append(url)
        return ('"old"', "Mon, 03 Mar 2025 00:00:00 GMT")

    src = Source(name="hg-rss", kind="rss", location=HG + "feed.xml")
    res = discover(src, fetch, validators)
    (req,) = fetch.calls[0]
    assert (req.url, req.kind, req.source, req.user_configured, req.conditional) == (HG + "feed.xml", "feed", "hg-rss", True, True)
    assert (req.etag, req.last_modified) == ('"old"', "Mon, 03 Mar 2025 00:00:00 GMT")
    assert seen_validators == [HG + "feed.xml"]
    assert len(res.items) == 4 and res.failures == [] and res.pages == []
    assert [d.status for d in res.documents] == [200] and res.documents[0].etag == FakeFetch.etag(fixture("rss2.xml"))


def test_discover_not_modified_gives_no_items() -> None:
    body = fixture("atom.xml")
    fetch = FakeFetch({NW + "atom.xml": body})
    src = Source(name="nw", kind="atom", location=NW + "atom.xml")
    res = discover(src, fetch, lambda u: (FakeFetch.etag(body), None))
    assert res.items == [] and res.failures == []
    assert [(d.status, d.not_modified) for d in res.documents] == [(304, True)]


def test_discover_unconditional_sends_no_validators() -> None:
    body = fixture("atom.xml")
    fetch = FakeFetch({NW + "atom.xml": body})
    src = Source(name="nw", kind="atom", location=NW + "atom.xml")
    res = discover(src, fetch, lambda u: (FakeFetch.etag(body), None), conditional=False)
    (req,) = fetch.calls[0]
    assert req.conditional is False and req.etag is None and req.last_modified is None
    assert len(res.items) == 3


def test_discover_local_feed_path_becomes_file_uri(tmp_path: Path) -> None:
    feed = tmp_path / "atom.xml"
    feed.write_bytes(fixture("atom.xml"))
    fetch = FakeFetch({feed.as_uri(): feed.read_bytes()})
    res = discover(Source(name="nw", kind="atom", location=str(feed)), fetch, lambda u: None)
    assert fetch.fetched == [feed.as_uri()] and len(res.items) == 3
    assert all(i.via == feed.as_uri() for i in res.items)


def test_discover_feed_failures_become_discover_failures() -> None:
    failure = Failure(url=HG + "feed.xml", source="hg-rss", stage="fetch", reason="http_503", retryable=True, retry_after_s=120)
    fetch = FakeFetch({}, failing={HG + "feed.xml": failure})
    res = discover(Source(name="hg-rss", kind="rss", location=HG + "feed.xml"), fetch, lambda u: None)
    (f,) = res.failures
    assert (f.stage, f.reason, f.retryable, f.retry_after_s) == ("discover", "http_503", True, 120)
    assert res.items == [] and res.documents == []


def test_discover_parse_error_is_a_failure_not_an_exception() -> None:
    fetch = FakeFetch({HG + "feed.xml": fixture("html_page.html")})
    res = discover(Source(name="hg-rss", kind="rss", location=HG + "feed.xml"), fetch, lambda u: None)
    assert [(f.reason, f.stage, f.url) for f in res.failures] == [("not_a_feed", "discover", HG + "feed.xml")]


def test_discover_fetch_callable_crash() -> None:
    def boom(reqs: list[FetchRequest]) -> list[FetchResult]:
        raise RuntimeError("connection pool exploded")

    res = discover(Source(name="hg-rss", kind="rss", location=HG + "feed.xml"), boom, lambda u: None)
    (f,) = res.failures
    assert f.reason == "fetch_error" and f.retryable and "exploded" in f.detail


def test_discover_index_of_indexes_breadth_first() -> None:
    root, idx2 = HG + "sitemap.xml", HG + "sitemaps/archive-index.xml"
    a, b = HG + "sitemaps/a.xml", HG + "sitemaps/b.xml"
    fetch = FakeFetch({
        root: _index(idx2, a),
        idx2: _index(b),
        a: _urlset(HG + "a1.html", HG + "shared.html"),
        b: gzip.compress(_urlset(HG + "b1.html", HG + "shared.html")),
    })
    res = discover(_sitemap_source(), fetch, lambda u: None)
    assert [[r.url for r in batch] for batch in fetch.calls] == [[root], [idx2, a], [b]]
    # Children on the configured host:port are as trusted as the configured sitemap (issue 6).
    assert [r.user_configured for batch in fetch.calls for r in batch] == [True, True, True, True]
    assert all(r.kind == "sitemap" for batch in fetch.calls for r in batch)
    assert [i.url for i in res.items] == [HG + "a1.html", HG + "shared.html", HG + "b1.html"]  # deduplicated across documents
    assert [i.via for i in res.items] == [a, a, b]
    assert res.failures == []
    assert [d.url for d in res.documents] == [root, idx2, a, b]


def test_discover_sitemap_loop_terminates() -> None:
    x, y = HG + "sitemap.xml", HG + "sitemaps/y.xml"
    fetch = FakeFetch({x: _index(y, HG + "sitemaps/z.xml"), y: _index(x, y), HG + "sitemaps/z.xml": _urlset(HG + "z1.html")})
    res = discover(_sitemap_source(), fetch, lambda u: None)
    assert sorted(fetch.fetched) == sorted([x, y, HG + "sitemaps/z.xml"])  # each at most once
    assert [i.url for i in res.items] == [HG + "z1.html"] and res.failures == []


def test_discover_depth_limit() -> None:
    root, lvl1, lvl2 = HG + "sitemap.xml", HG + "i1.xml", HG + "i2.xml"
    fetch = FakeFetch({root: _index(lvl1, HG + "s0.xml"), lvl1: _index(lvl2), lvl2: _urlset(HG + "deep.html"),
                       HG + "s0.xml": _urlset(HG + "shallow.html")})
    res = discover(_sitemap_source(), fetch, lambda u: None, max_sitemap_depth=1)
    assert lvl2 not in fetch.fetched
    assert [i.url for i in res.items] == [HG + "shallow.html"]
    assert [(f.reason, f.url) for f in res.failures] == [("sitemap_too_deep", lvl2)]


def test_discover_document_cap() -> None:
    root = HG + "sitemap.xml"
    children = [HG + f"s{i}.xml" for i in range(5)]
    fetch = FakeFetch({root: _index(*children), **{c: _urlset(c.replace(".xml", ".html")) for c in children}})
    res = discover(_sitemap_source(), fetch, lambda u: None, max_documents=3)
    assert len(fetch.fetched) == 3
    assert len(res.items) == 2
    (f,) = res.failures
    assert f.reason == "too_many_sitemaps" and "3 child sitemap(s)" in f.detail


def test_discover_one_bad_child_keeps_the_others_and_clears_parent_validators() -> None:
    root, good, bad, broken = HG + "sitemap.xml", HG + "good.xml", HG + "bad.xml", HG + "broken.xml"
    fetch = FakeFetch(
        {root: _index(good, bad, broken), good: _urlset(HG + "ok.html"), broken: b"<urlset><url><loc>"},
        failing={bad: Failure(url=bad, source="hg-sitemap", stage="fetch", reason="timeout", retryable=True)},
    )
    res = discover(_sitemap_source(), fetch, lambda u: None)
    assert [i.url for i in res.items] == [HG + "ok.html"]
    assert sorted((f.url, f.reason) for f in res.failures) == [(bad, "timeout"), (broken, "malformed_sitemap")]
    docs = {d.url: d for d in res.documents}
    # The transient child failure clears the index's validators, so the next run refetches the
    # index in full instead of getting a 304 that would hide the failed child.
    assert docs[root].status == 200 and docs[root].etag is None
    assert docs[good].etag is not None and docs[broken].etag is not None


def test_discover_news_sitemap_from_local_path(tmp_path: Path) -> None:
    sm = tmp_path / "sitemap.xml.gz"
    sm.write_bytes(gzip.compress(fixture("news_sitemap.xml")))
    fetch = FakeFetch({sm.as_uri(): sm.read_bytes()})
    res = discover(Source(name="hg", kind="sitemap", location=str(sm)), fetch, lambda u: None)
    assert [i.title for i in res.items] == ["Dockworkers strike over new shift rota", "G20 ministers meet in New Delhi"]


def test_discover_max_items_keeps_newest_in_order() -> None:
    root = HG + "sitemap.xml"
    body = (
        b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc>https://h.example/old</loc><lastmod>2025-01-01</lastmod></url>"
        b"<url><loc>https://h.example/undated</loc></url>"
        b"<url><loc>https://h.example/newest</loc><lastmod>2025-03-01</lastmod></url>"
        b"<url><loc>https://h.example/newer</loc><lastmod>2025-02-01</lastmod></url>"
        b"</urlset>"
    )
    fetch = FakeFetch({root: body})
    res = discover(_sitemap_source(max_items=2), fetch, lambda u: None)
    assert [i.url for i in res.items] == ["https://h.example/newest", "https://h.example/newer"]


def test_discover_urls_kind() -> None:
    res = discover(Source(name="desk", kind="urls", location=str(DATA / "urls.txt"), max_items=2), _no_fetch, lambda u: None)
    assert [i.url for i in res.items] == [HG + "world/g20-new-delhi.html", NW + "2025/03/04/blinken-g20"]
    assert len(res.failures) == 4 and {f.reason for f in res.failures} == {"invalid_url"}


def test_discover_html_kind_splits_pages_and_failures(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _make_site(site)
    (tmp_path / "outside.html").write_bytes(b"<html>private</html>")
    (site / "leak.html").symlink_to(tmp_path / "outside.html")
    res = discover(Source(name="saved", kind="html", location=str(site), base_url=HG), _no_fetch, lambda u: None)
    assert [p.url for p in res.pages] == [HG + "index.HTM", HG + "world/g20%20new-delhi.html"]
    assert all(p.ok for p in res.pages)
    assert [f.reason for f in res.failures] == ["outside_directory"]


def test_discover_missing_local_source_is_a_failure(tmp_path: Path) -> None:
    for kind in ("urls", "html", "warc"):
        res = discover(Source(name="gone", kind=kind, location=str(tmp_path / "gone")), _no_fetch, lambda u: None)
        assert [(f.reason, f.stage, f.source) for f in res.failures] == [("source_not_found", "discover", "gone")]


def test_discover_remote_location_for_local_kind() -> None:
    res = discover(Source(name="w", kind="warc", location="https://x.example/a.warc"), _no_fetch, lambda u: None)
    assert [f.reason for f in res.failures] == ["unsupported_location"]


def test_discover_warc_kind(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    _write_warc(path)
    res = discover(Source(name="crawl", kind="warc", location=str(path), max_items=2), _no_fetch, lambda u: None)
    # max_items keeps the newest captures (by WARC-Date)
    assert [p.url for p in res.pages] == [HG + "world/b.html", HG + "world/c.html"]
    assert [f.reason for f in res.failures] == ["http_404"]


def test_bundled_demo_sources_discover_offline() -> None:
    """The default sources.toml discovers the demo site through its mirrors (skipped until the demo exists)."""
    from ingest.settings import BUNDLED_SEEDS_DIR
    from ingest.sources import load_sources

    cfg = load_sources(BUNDLED_SEEDS_DIR / "sources.toml")
    if not all(Path(d).is_dir() for d in cfg.mirrors.values()):
        pytest.skip("seeds/demo_site not present")

    def mirror_path(url: str) -> Path | None:
        for prefix, directory in cfg.mirrors.items():
            if url.startswith(prefix):
                return Path(directory) / url[len(prefix):]
        return None

    def mirror_fetch(reqs: list[FetchRequest]) -> list[FetchResult]:
        out = []
        for r in reqs:
            p = mirror_path(r.url)
            assert p is not None, f"demo source fetched outside the mirrors: {r.url}"
            out.append(FetchResult(url=r.url, source=r.source, kind=r.kind, status=200, body=p.read_bytes()))
        return out

    for source in cfg.sources:
        res = discover(source, mirror_fetch, lambda u: None)
        assert res.failures == [], (source.name, res.failures)
        assert res.items, source.name
        for item in res.items:  # every discovered article is a saved page of the demo site
            p = mirror_path(item.url)
            assert p is not None and p.is_file(), item.url
