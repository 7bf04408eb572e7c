"""A hostile loopback news site for end-to-end reliability tests and benchmarks/reliability.py.

`build_hostile_site(trusted, other, workdir)` fills SiteServer `trusted` (the host the user configured)
with feeds, sitemaps and article URLs that misbehave in every way we know of, writes a sources.toml,
and returns the expected outcome of each case. `check_cases` compares a warehouse against them.
`make_article_html(i)` generates varied English article pages (for crash and concurrency tests).

Nothing here needs pytest; only 127.0.0.1 is ever used (the "other private host" is a second
SiteServer on another port: a different host:port than the configured one, so it is not trusted).
"""

from __future__ import annotations

import gzip
import os
import random
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from html import unescape
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import duckdb

from sitesrv import Response, SiteServer
from lake import lake_connect, lake_env

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "seeds" / "demo_site"

# Caps the hostile corpus is run with (env NEWSFLOW_FETCH__*): small, so bombs and trickles end fast.
HOSTILE_ENV = {
    "NEWSFLOW_FETCH__MAX_BODY_BYTES": str(2 * 1024 * 1024),
    "NEWSFLOW_FETCH__TOTAL_TIMEOUT_S": "1.5",
    "NEWSFLOW_FETCH__READ_TIMEOUT_S": "1.0",
    "NEWSFLOW_FETCH__PER_HOST_DELAY_S": "0",
    "NEWSFLOW_FETCH__RETRY_BACKOFF_S": "0.05",
    "NEWSFLOW_RETRY__BASE_DELAY_S": "0",
    "NEWSFLOW_WORKERS": "1",
    # Every language is kept by default; the Russian and Japanese pages check the language filter's failure rows.
    "NEWSFLOW_CLEAN__LANGUAGES": '["en"]',
}


# --------------------------------------------------------------------------- article pages


def _demo_sentences() -> list[str]:
    out: list[str] = []
    for p in sorted(DEMO.rglob("*.html")):
        if p.name == "index.html":
            continue
        for para in re.findall(r"<p>(.*?)</p>", p.read_text(encoding="utf-8"), flags=re.S):
            text = unescape(re.sub(r"<[^>]+>", "", para)).strip()
            out.extend(s.strip() + "." for s in re.split(r"\.\s+", text) if len(s.split()) >= 6)
    return sorted(set(s.replace("..", ".") for s in out))


_SENTENCES: list[str] | None = None


def make_article_html(i: int, title: str | None = None) -> str:
    """An English news article page with text varied by `i` (no two pages near-duplicates)."""
    global _SENTENCES
    if _SENTENCES is None:
        _SENTENCES = _demo_sentences()
    rng = random.Random(i)
    title = title or f"Harbour council report number {i} on {rng.choice(['ferries', 'housing', 'wages', 'schools', 'ports', 'energy'])}"
    paras = []
    for k in range(6):
        sents = rng.sample(_SENTENCES, 3)
        sents.append(f"Reporter note {i}-{k}: the figure cited was {rng.randint(100, 99999)} according to records seen on day {rng.randint(1, 28)}.")
        paras.append("<p>" + escape(" ".join(sents)) + "</p>")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="author" content="Staff Writer {i % 7}"><meta property="article:published_time" content="2023-03-{1 + i % 28:02d}T08:00:00Z">'
        f"</head><body><header><nav><a href='/'>Home</a> | <a href='/world/'>World</a></nav></header>"
        f"<article><h1>{escape(title)}</h1>{''.join(paras)}</article>"
        f"<footer><p>Copyright The Fixture Gazette</p></footer></body></html>"
    )


# --------------------------------------------------------------------------- feeds and sitemaps


def rss(items: list[dict[str, str]], title: str = "Fixture Gazette") -> str:
    """RSS 2.0 with the given items: keys link, guid, title, pubDate (each optional)."""
    parts = []
    for it in items:
        inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in it.items())
        parts.append(f"<item>{inner}</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link><description>d</description>"
        f"{''.join(parts)}</channel></rss>"
    )


def urlset(urls: list[str]) -> str:
    locs = "".join(f"<url><loc>{escape(u)}</loc><lastmod>2023-03-01</lastmod></url>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'


def sitemapindex(urls: list[str]) -> str:
    locs = "".join(f"<sitemap><loc>{escape(u)}</loc></sitemap>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</sitemapindex>'


BILLION_LAUGHS_HEAD = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n"
)


def billion_laughs_feed() -> str:
    return BILLION_LAUGHS_HEAD + '<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title><link>http://x/</link></item></channel></rss>'


def billion_laughs_sitemap() -> str:
    return BILLION_LAUGHS_HEAD + '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>http://x/&lol9;</loc></url></urlset>'


def xxe(root: str) -> str:
    body = {
        "rss": '<rss version="2.0"><channel><title>&xxe;</title><item><title>&xxe;</title><link>http://x/</link></item></channel></rss>',
        "urlset": '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&xxe;</loc></url></urlset>',
    }[root]
    return f'<?xml version="1.0"?>\n<!DOCTYPE {root} [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n{body}'


# --------------------------------------------------------------------------- non-UTF-8 pages

RU_TEXT = (
    "Городской совет утвердил новый бюджет на следующий год после долгого обсуждения. "
    "Депутаты спорили о расходах на транспорт, школы и ремонт набережной в течение нескольких часов. "
    "Мэр заявил журналистам, что решение поможет жителям всех районов города. "
    "Оппозиция считает, что налоги вырастут, а качество услуг останется прежним. "
)
JA_TEXT = (
    "市議会は長い議論の末、来年度の新しい予算案を承認した。議員たちは交通、学校、港の修理にかかる費用について数時間にわたって議論した。"
    "市長は記者団に対し、この決定はすべての地区の住民に役立つと述べた。野党は税金が上がり、サービスの質は変わらないと批判している。"
    "港湾局によると、新しいフェリーは春から運航を開始する予定で、通勤時間は大幅に短縮される見込みだという。"
)
LATIN1_MARKERS = ("café", "£4.5m", "naïve", "Zoë Müller")


def _page(title: str, body_text: str, lang: str, charset_meta: str | None) -> str:
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    # Three different paragraphs (sentences rotated): extractors drop repeated paragraphs.
    sents = [x for x in re.split(r"(?<=\.)\s+|(?<=。)", body_text) if x.strip()]
    paras = "".join(f"<p>{escape(' '.join(sents[k:] + sents[:k]))}</p>" for k in range(3))
    return f'<!DOCTYPE html><html lang="{lang}"><head>{meta}<title>{escape(title)}</title></head><body><article><h1>{escape(title)}</h1>{paras}</article></body></html>'


def latin1_page() -> bytes:
    text = (
        "The harbour café on Quay Street will close for renovation, the owner Zoë Müller said on Monday. "
        "The council approved a £4.5m grant for the work, which critics called a naïve bet on tourism. "
        "Regular customers said they would miss the morning coffee and the view over the water, and several "
        "fishermen said the café had been a meeting place for three generations of families on the quay. "
    )
    return _page("Harbour café closes for renovation", text, "en", None).encode("iso-8859-1")


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One hostile input and what must come of it."""

    name: str
    url: str
    expect: str  # "article" | "failure" | "not_fetched"
    stage: str | None = None
    reason: str | None = None
    retryable: bool | None = None
    contains: tuple[str, ...] = ()  # article text must contain these (non-UTF-8 pages)
    detail_contains: str | None = None
    # A plain good article that shows the site works at all; not a hostile input.
    control: bool = False
    # The hostile input this case checks; several cases may check one input on several URLs.
    input: str = ""

    def __post_init__(self) -> None:
        self.input = self.input or self.name


def hostile_inputs(cases: list[Case]) -> dict[str, list[Case]]:
    """Distinct hostile inputs (controls left out), each with the cases that check it."""
    out: dict[str, list[Case]] = {}
    for c in cases:
        if not c.control:
            out.setdefault(c.input, []).append(c)
    return out


def case_summary(cases: list[Case], outcomes: dict[str, str | None]) -> dict[str, int]:
    """Distinct hostile inputs tried/handled (an input is handled when all of its cases are) and controls
    tried/handled, counted apart: the figures to report, rather than the number of cases."""
    inputs = hostile_inputs(cases)
    controls = [c for c in cases if c.control]
    return {
        "hostile inputs tried": len(inputs),
        "hostile inputs handled": sum(all(outcomes[c.name] is None for c in cs) for cs in inputs.values()),
        "control articles tried": len(controls),
        "control articles handled": sum(outcomes[c.name] is None for c in controls),
    }


@dataclass
class HostileSite:
    sources_file: Path
    cases: list[Case]
    trusted: SiteServer
    other: SiteServer
    paths: dict[str, str]  # role -> path on `trusted`

    def case(self, name: str) -> Case:
        return next(c for c in self.cases if c.name == name)


def build_hostile_site(trusted: SiteServer, other: SiteServer, workdir: Path) -> HostileSite:
    """Serve the hostile corpus on `trusted`, a private page on `other`, and write sources.toml."""
    u = trusted.url
    cases: list[Case] = []
    n = iter(range(1000))

    def good(path: str) -> str:
        trusted.set_file(path, make_article_html(next(n)), content_type="text/html; charset=utf-8")
        return path

    def art(name: str, path: str, **kw: Any) -> str:
        cases.append(Case(name, u(path), "article", **kw))
        return path

    def fail(name: str, path_or_url: str, stage: str, reason: str, retryable: bool, **kw: Any) -> str:
        url = path_or_url if "://" in path_or_url else u(path_or_url)
        cases.append(Case(name, url, "failure", stage, reason, retryable, **kw))
        return url

    trusted.set_robots("User-agent: *\nDisallow: /private/\n")

    # ---- the main feed: good articles plus hostile article URLs
    items: list[dict[str, str]] = []

    def item(link: str, **kw: str) -> None:
        items.append({"title": kw.pop("title", "Story"), "link": link, **kw})

    now = datetime.now(timezone.utc)
    for i in range(3):
        item(u(art(f"good_{i}", good(f"/news/good-{i}.html"), control=True)), guid=f"good-{i}", pubDate=format_datetime(now - timedelta(hours=i)))
    good("/news/relative.html")
    art("relative_link", "/news/relative.html")
    item("news/relative.html", guid="relative")  # resolved against the feed URL
    good("/news/dup.html")
    good("/news/dup-copy.html")
    art("duplicate_guid_first", "/news/dup.html", input="duplicate_guid")
    item(u("/news/dup.html"), guid="dup-guid")
    item(u("/news/dup-copy.html"), guid="dup-guid")  # same GUID: the same story re-posted
    cases.append(Case("duplicate_guid_second", u("/news/dup-copy.html"), "not_fetched", input="duplicate_guid"))
    item(u(art("future_date", good("/news/future.html"))), guid="future", pubDate="Fri, 01 Jan 2100 00:00:00 GMT")
    item(u(art("no_date", good("/news/undated.html"))), guid="undated")

    trusted.gzip_bomb("/h/gzip-bomb", decoded_size=64 * 1024 * 1024)
    item(fail("gzip_bomb", "/h/gzip-bomb", "fetch", "too_large", False))
    trusted.huge("/h/huge", size=50 * 1024 * 1024)
    item(fail("huge_50mb", "/h/huge", "fetch", "too_large", False))
    trusted.huge("/h/huge-announced", size=50 * 1024 * 1024, announce_length=True)
    item(fail("huge_50mb_content_length", "/h/huge-announced", "fetch", "too_large", False))
    trusted.trickle("/h/trickle", interval=0.05)
    item(fail("endless_trickle", "/h/trickle", "fetch", "timeout", True))
    trusted.slow("/h/slow", delay=30)
    item(fail("slow_timeout", "/h/slow", "fetch", "timeout", True))
    trusted.binary_html("/h/binary.html")
    item(fail("binary_as_html", "/h/binary.html", "clean", "not_html", False))

    trusted.set_file("/h/cp1251.html", _page("Совет утвердил бюджет", RU_TEXT, "ru", "windows-1251").encode("cp1251"), content_type="text/html")
    item(fail("windows_1251", "/h/cp1251.html", "clean", "unsupported_language", False, detail_contains="'ru'"))
    trusted.set_file("/h/sjis.html", _page("市議会が予算案を承認", JA_TEXT, "ja", "Shift_JIS").encode("shift_jis"), content_type="text/html; charset=Shift_JIS")
    item(fail("shift_jis", "/h/sjis.html", "clean", "unsupported_language", False, detail_contains="'ja'"))
    trusted.set_file("/h/latin1.html", latin1_page(), content_type="text/html")  # no charset anywhere
    cases.append(Case("iso_8859_1_undeclared", u("/h/latin1.html"), "article", contains=LATIN1_MARKERS))
    item(u("/h/latin1.html"))

    trusted.redirect_loop("/h/loop-a", "/h/loop-b")
    item(fail("redirect_loop", "/h/loop-a", "fetch", "too_many_redirects", False))
    trusted.redirect_chain("/h/chain", 8)
    item(fail("redirect_chain_past_limit", "/h/chain/0", "fetch", "too_many_redirects", False))
    trusted.status("/h/gone-404", 404)
    item(fail("http_404", "/h/gone-404", "fetch", "http_404", False))
    trusted.status("/h/gone-410", 410)
    item(fail("http_410", "/h/gone-410", "fetch", "http_410", False))
    trusted.retry_after("/h/rate-limited", 120, status=429, then=make_article_html(900))
    item(fail("http_429_retry_after", "/h/rate-limited", "fetch", "http_429", True))
    trusted.fail_then_succeed("/h/flaky-once", failures=1, status=500, body=make_article_html(901))
    item(u(art("http_500_then_ok_in_run", "/h/flaky-once")))
    trusted.fail_then_succeed("/h/flaky-twice", failures=2, status=500, body=make_article_html(902))
    item(fail("http_500_then_ok_next_run", "/h/flaky-twice", "fetch", "http_500", True))
    good("/private/secret.html")
    item(fail("robots_disallow", "/private/secret.html", "fetch", "robots_disallowed", False))

    # ---- SSRF: links to other private hosts, and redirects from the trusted host to private addresses
    other.set_file("/intranet.html", make_article_html(990))
    item(fail("ssrf_link_other_private_host", other.url("/intranet.html"), "fetch", "ssrf_blocked", False))
    item(fail("ssrf_link_10_0_0_1", "http://10.0.0.1/admin", "fetch", "ssrf_blocked", False))
    trusted.redirect("/h/to-metadata", "http://169.254.169.254/latest/meta-data/")
    item(fail("ssrf_redirect_metadata", "/h/to-metadata", "fetch", "ssrf_blocked", False))
    trusted.redirect("/h/to-ten", "http://10.0.0.1/")
    item(fail("ssrf_redirect_10_0_0_1", "/h/to-ten", "fetch", "ssrf_blocked", False))
    trusted.redirect("/h/to-other", other.url("/intranet.html"))
    item(fail("ssrf_redirect_other_private_host", "/h/to-other", "fetch", "ssrf_blocked", False))
    trusted.set_file("/feed.xml", rss(items), content_type="application/rss+xml")

    # ---- broken feeds
    trusted.set_file("/bad/malformed.xml", '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item><title>a</titl', content_type="application/rss+xml")
    fail("feed_malformed_xml", "/bad/malformed.xml", "discover", "malformed_feed", False)
    trusted.set_file("/bad/html-feed.xml", "<!DOCTYPE html><html><head><title>Home</title></head><body><p>Welcome</p></body></html>", content_type="text/html; charset=utf-8")
    fail("feed_html_page", "/bad/html-feed.xml", "discover", "not_a_feed", False)
    trusted.set_file("/bad/empty.xml", b"", content_type="application/rss+xml")
    fail("feed_empty_body", "/bad/empty.xml", "discover", "empty_body", False)
    trusted.set_file("/bad/laughs.xml", billion_laughs_feed(), content_type="application/rss+xml")
    fail("feed_billion_laughs", "/bad/laughs.xml", "discover", "xml_entities_forbidden", False)
    trusted.set_file("/bad/xxe.xml", xxe("rss"), content_type="application/rss+xml")
    fail("feed_external_entity", "/bad/xxe.xml", "discover", "xml_entities_forbidden", False)
    # Declared UTF-8, bytes are windows-1251 in the titles: the links are still usable.
    good("/news/enc-feed-story.html")
    wrong = rss([{"title": "Новости", "link": u("/news/enc-feed-story.html"), "guid": "enc"}]).encode("utf-8").decode("utf-8").encode("cp1251")
    trusted.set_file("/bad/wrong-encoding.xml", wrong, content_type="application/rss+xml; charset=utf-8")
    art("feed_wrong_declared_encoding", "/news/enc-feed-story.html")

    # ---- sitemaps
    gz_urls = [good("/sm/gz-1.html"), good("/sm/gz-2.html")]
    for p in gz_urls:
        art(f"sitemap_gzip{p[-7:-5]}", p, input="sitemap_gzip")
    trusted.set_file("/sitemaps/gz.xml.gz", gzip.compress(urlset([u(p) for p in gz_urls]).encode()), content_type="application/gzip")
    leaf = [good("/sm/deep-1.html"), good("/sm/deep-2.html")]
    for p in leaf:
        art(f"sitemap_index_of_indexes{p[-7:-5]}", p, input="sitemap_index_of_indexes")
    trusted.set_file("/sitemaps/index.xml", sitemapindex([u("/sitemaps/index-2.xml")]), content_type="application/xml")
    trusted.set_file("/sitemaps/index-2.xml", sitemapindex([u("/sitemaps/leaf.xml")]), content_type="application/xml")
    trusted.set_file("/sitemaps/leaf.xml", urlset([u(p) for p in leaf]), content_type="application/xml")
    art("sitemap_index_loop", good("/sm/loop-story.html"))
    trusted.set_file("/sitemaps/loop-a.xml", sitemapindex([u("/sitemaps/loop-b.xml")]), content_type="application/xml")
    trusted.set_file("/sitemaps/loop-b.xml", sitemapindex([u("/sitemaps/loop-a.xml"), u("/sitemaps/loop-leaf.xml")]), content_type="application/xml")
    trusted.set_file("/sitemaps/loop-leaf.xml", urlset([u("/sm/loop-story.html")]), content_type="application/xml")
    trusted.set_file("/sitemaps/laughs.xml", billion_laughs_sitemap(), content_type="application/xml")
    fail("sitemap_billion_laughs", "/sitemaps/laughs.xml", "discover", "xml_entities_forbidden", False)
    trusted.set_file("/sitemaps/xxe.xml", xxe("urlset"), content_type="application/xml")
    fail("sitemap_external_entity", "/sitemaps/xxe.xml", "discover", "xml_entities_forbidden", False)

    feeds = {
        "main": "/feed.xml", "malformed": "/bad/malformed.xml", "html-feed": "/bad/html-feed.xml",
        "empty": "/bad/empty.xml", "laughs": "/bad/laughs.xml", "xxe": "/bad/xxe.xml", "wrong-encoding": "/bad/wrong-encoding.xml",
    }
    sitemaps = {
        "sm-gzip": "/sitemaps/gz.xml.gz", "sm-index": "/sitemaps/index.xml", "sm-loop": "/sitemaps/loop-a.xml",
        "sm-laughs": "/sitemaps/laughs.xml", "sm-xxe": "/sitemaps/xxe.xml",
    }
    toml = [f'[[sources]]\nname = "{k}"\nkind = "rss"\nlocation = "{u(p)}"\n' for k, p in feeds.items()]
    toml += [f'[[sources]]\nname = "{k}"\nkind = "sitemap"\nlocation = "{u(p)}"\n' for k, p in sitemaps.items()]
    sources_file = workdir / "hostile-sources.toml"
    sources_file.write_text("\n".join(toml), encoding="utf-8")
    return HostileSite(sources_file, cases, trusted, other, {**feeds, **sitemaps})


# --------------------------------------------------------------------------- checking


def q(db_path: Path | str, sql: str, params: list | None = None) -> list[tuple]:
    """One read-only query (direct DuckDB; only for tests, when no writer is running)."""
    with lake_connect(db_path) as con:
        return con.execute(sql, params or []).fetchall()


def check_case(db_path: Path | str, case: Case, run_id: int, other_hits: int = 0, trusted: SiteServer | None = None) -> str | None:
    """None when the warehouse holds what `case` expects after run `run_id`, else what is wrong."""
    art_rows = q(db_path, "select a.text from article_urls u join articles a on a.id = u.article_id where u.url = ?", [case.url])
    fails = q(
        db_path,
        "select stage, reason, retryable, detail from failures where url = ? and run_id = ? order by failed_at",
        [case.url, run_id],
    )
    if case.expect == "article":
        if len(art_rows) != 1:
            return f"expected one article, found {len(art_rows)}; failures {fails}"
        text = art_rows[0][0]
        missing = [m for m in case.contains if m not in text]
        if missing or "Ã" in text or "\ufffd" in text:
            return f"article text wrong (missing {missing} or mojibake): {text[:200]!r}"
        return None
    if case.expect == "not_fetched":
        path = case.url.split("/", 3)[3]
        if art_rows or fails or (trusted is not None and trusted.hits("/" + path)):
            return "was fetched or stored"
        return None
    if art_rows:
        return f"expected failure {case.reason}, but an article was stored"
    if not fails:
        return f"expected failure {case.reason}, none recorded"
    stage, reason, retryable, detail = fails[-1]
    if (stage, reason, retryable) != (case.stage, case.reason, case.retryable):
        return f"expected ({case.stage}, {case.reason}, {case.retryable}), got ({stage}, {reason}, {retryable}): {detail}"
    if case.detail_contains and case.detail_contains not in detail:
        return f"detail {detail!r} lacks {case.detail_contains!r}"
    return None


def check_cases(db_path: Path | str, site: HostileSite, run_id: int) -> dict[str, str | None]:
    """Outcome of every case: name -> None (handled as expected) or the problem."""
    return {c.name: check_case(db_path, c, run_id, trusted=site.trusted) for c in site.cases}


# --------------------------------------------------------------------------- integrity (crash tests)


KEYED_TABLES = {
    "articles": ["id"], "pages": ["url"], "article_urls": ["url"], "url_retries": ["url"], "runs": ["id"],
    "article_fingerprints": ["article_id"], "duplicates": ["article_id"], "article_entity_runs": ["article_id"],
    "mentions": ["article_id", "start_char", "end_char"],
}


def duplicate_rows(db_path: Path | str) -> dict[str, int]:
    """Rows beyond the first per key, for every table keyed by url/article id (0 everywhere is healthy)."""
    out = {}
    with lake_connect(db_path) as con:
        for t, key in KEYED_TABLES.items():
            k = ", ".join(key)
            out[t] = con.execute(f"select coalesce(sum(c - 1), 0) from (select count(*) c from {t} group by {k})").fetchall()[0][0]
        # one article per canonical URL too
        out["articles_per_url"] = con.execute("select coalesce(sum(c - 1), 0) from (select count(*) c from articles group by url)").fetchall()[0][0]
    return {k: int(v) for k, v in out.items()}


# --------------------------------------------------------------------------- many-article site (crash/concurrency)


def serve_many_articles(
    site: SiteServer, workdir: Path, n: int = 150, delay_s: float = 0.03, name: str = "bulk", first: int = 10_000
) -> tuple[Path, list[str]]:
    """`n` distinct article pages under /bulk/ (each answered after `delay_s`), one RSS feed listing them all,
    and a sources.toml for it. Returns (sources file, article URLs)."""
    pages = {f"/{name}/{i}.html": make_article_html(first + i) for i in range(n)}

    def handler(req: Any) -> Response:
        body = pages.get(req.path)
        if body is None:
            return Response(status=404, body="not found")
        return Response(body=body, delay=delay_s)

    site.route(f"/{name}/*", handler)
    urls = [site.url(p) for p in pages]
    site.set_file(f"/{name}-feed.xml", rss([{"title": f"Story {i}", "link": u, "guid": u} for i, u in enumerate(urls)]), content_type="application/rss+xml")
    sources = workdir / f"{name}-sources.toml"
    sources.write_text(f'[[sources]]\nname = "{name}"\nkind = "rss"\nlocation = "{site.url(f"/{name}-feed.xml")}"\n', encoding="utf-8")
    return sources, urls


def cli_env(db: Path | str, sources: Path | str, prefect_home: Path | str, **extra: str) -> dict[str, str]:
    """Environment for a `newsflow` subprocess: this warehouse and sources, quiet fast settings, and the
    current Prefect API (the test harness's) when there is one, so each subprocess does not start its own."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env.update(
        **lake_env(db), NEWSFLOW_SOURCES_FILE=str(sources), PREFECT_HOME=str(prefect_home),
        NEWSFLOW_FETCH__PER_HOST_DELAY_S="0", NEWSFLOW_RETRY__BASE_DELAY_S="0", NEWSFLOW_WORKERS="1",
        PYTHONUNBUFFERED="1",
    )
    try:
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
        if url:
            env["PREFECT_API_URL"] = str(url)
    except Exception:  # noqa: BLE001 - no Prefect settings: the subprocess starts its own ephemeral API
        pass
    env.update(extra)
    return env


def newsflow_command() -> list[str]:
    """How to run the `newsflow` CLI in the environment running this code: the console script next to
    the interpreter (any venv, not only ./.venv), else the CLI module through the interpreter itself."""
    script = Path(sys.executable).parent / "newsflow"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main())"]


NEWSFLOW: list[str] = newsflow_command()  # use as [*NEWSFLOW, "ingest", ...]


def integrity_report(db: Path | str, feed_urls: list[str]) -> dict[str, Any]:
    """After runs over `feed_urls`: lost URLs (neither article nor recorded failure), duplicate rows,
    half-written articles (no page, fingerprint or entity run) and whether run counts match the data."""
    with lake_connect(db) as con:
        known = {u for (u,) in con.execute("select url from article_urls").fetchall()}
        failed = {u for (u,) in con.execute("select url from failures").fetchall()}
        lost = [u for u in feed_urls if u not in known and u not in failed]
        half = con.execute(
            "select count(*) from articles a where a.source <> 'seed' and (not exists (select 1 from pages p where p.url = a.page_url) "
            " or not exists (select 1 from article_fingerprints f where f.article_id = a.id) "
            " or not exists (select 1 from article_entity_runs e where e.article_id = a.id))"
        ).fetchall()[0][0]
        n_articles = con.execute("select count(*) from articles where source <> 'seed'").fetchall()[0][0]
        n_distinct = con.execute("select count(distinct url) from articles where source <> 'seed'").fetchall()[0][0]
        sum_new = con.execute("select coalesce(sum(new), 0) from runs").fetchall()[0][0]
        statuses = [s for (s,) in con.execute("select status from runs order by id").fetchall()]
    return {
        "lost": lost, "duplicates": duplicate_rows(db), "half_written": int(half), "articles": int(n_articles),
        "distinct_urls": int(n_distinct), "sum_new": int(sum_new), "statuses": statuses,
    }
