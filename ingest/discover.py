"""Discovery: turn a configured source into article URLs (feeds, sitemaps, URL lists) or pages in hand (HTML dirs, WARCs)."""

from __future__ import annotations

import calendar
import email.utils
import html
import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit, urlunsplit
from xml.etree.ElementTree import Element

import feedparser
from pydantic import BaseModel, Field
from warcio.archiveiterator import ArchiveIterator

from ingest.dates import parse_datetime
from ingest.decode import is_html_type, looks_like_html
from ingest.errors import NewsflowError, TerminalError
from ingest.models import DiscoveredItem, Failure, FetchRequest, FetchResult, utcnow
from ingest.safexml import gunzip_capped, is_gzip, local_name, parse_xml, reject_entities
from ingest.settings import FetchSettings
from ingest.sources import Source, SourceKind

log = logging.getLogger(__name__)

FetchFn = Callable[[list[FetchRequest]], list[FetchResult]]
# url -> (etag, last_modified) of the last successful fetch, or None when never fetched.
ValidatorsFn = Callable[[str], "tuple[str | None, str | None] | None"]

# A lastmod this far ahead of our clock is still believed (servers' clocks drift by seconds to
# minutes); anything later is a bug (local time labelled UTC, placeholder dates) and is dropped.
FUTURE_SKEW = timedelta(minutes=5)
MAX_URL_LENGTH = 4096
# Local pages and WARC payloads get the same size cap as a fetched body, so every stage downstream
# sees bodies of the same bounded size whatever their origin.
MAX_PAGE_BYTES: int = FetchSettings.model_fields["max_body_bytes"].default
HTML_SUFFIXES = frozenset({".html", ".htm"})

# bozo flags that say nothing about well-formedness (a missing/odd Content-Type, an encoding
# override that still decoded): they must not turn an empty but valid feed into "malformed".
_BENIGN_BOZO = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)
_TAG_RE = re.compile(r"<[^>]*>")
_ALT_FEED_RE = re.compile(
    rb"<link\b[^>]*type=[\"']application/(?:rss|atom)\+xml[\"'][^>]*>", re.IGNORECASE
)


class SitemapPage(BaseModel):
    """One parsed sitemap document: article URLs (urlset) and/or child sitemaps (sitemapindex)."""

    items: list[DiscoveredItem] = Field(default_factory=list)
    # Newest first by the index's <lastmod> (undated last), so a max_documents cap keeps recent children.
    sitemaps: list[str] = Field(default_factory=list)


class DiscoveryResult(BaseModel):
    """What discovery found for one source."""

    items: list[DiscoveredItem] = Field(default_factory=list)  # article URLs, deduplicated by URL, order kept
    pages: list[FetchResult] = Field(default_factory=list)  # pages already in hand (html dir, warc)
    # Feed/sitemap fetch results (200 or 304) so the caller can store ETag/Last-Modified. A document
    # whose subtree had a retryable failure comes back with etag/last_modified cleared: storing those
    # makes the next run fetch it unconditionally, so a 304 cannot hide the children that failed.
    documents: list[FetchResult] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)


# --------------------------------------------------------------------------- small helpers


def _from_struct(st: time.struct_time | None) -> datetime | None:
    """feedparser's UTC struct_time -> aware datetime (None when absent or out of range)."""
    if not st:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(st), tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None


def _trusted_lastmod(dt: datetime | None, now: datetime) -> datetime | None:
    """Drop a lastmod in the future.

    lastmod decides re-fetches ("newer than stored"): a future value would be stored and then make
    every genuine later update look older, so the article would never be re-fetched. published_at,
    by contrast, is only metadata and is kept as given (embargoed pieces are legitimately dated ahead).
    """
    if dt is not None and dt > now + FUTURE_SKEW:
        return None
    return dt


def _clean_url(raw: str | None, base: str, *, allow_file: bool = False) -> str | None:
    """Absolute http(s) URL resolved against `base`, fragment dropped; None when unusable.

    file:// links are accepted only from documents that are themselves local files: a remote feed
    must never be able to point the fetcher at the local disk.
    """
    if not raw:
        return None
    raw = raw.strip()
    if not raw or len(raw) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in raw):
        return None
    try:
        parts = urlsplit(urljoin(base, raw))
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            return None
    elif not (scheme == "file" and allow_file):
        return None
    # Fragments name a place inside one document; dropping them makes URL dedup see one page.
    return urlunsplit((scheme, parts.netloc, parts.path or ("/" if scheme != "file" else ""), parts.query, ""))


def location_url(source: Source) -> str:
    """The source location as a URL: http(s) as is, local paths as file:// URIs."""
    if source.is_remote:
        return source.location
    if source.location.startswith("file://"):
        return source.location
    return Path(source.location).resolve().as_uri()


def _failure(url: str, source: str, reason: str, detail: str = "", retryable: bool = False) -> Failure:
    return Failure(url=url, source=source, stage="discover", reason=reason, detail=detail, retryable=retryable)


def _failure_from_error(url: str, source: str, err: NewsflowError) -> Failure:
    return _failure(url, source, err.reason, str(err), err.retryable)


# --------------------------------------------------------------------------- feeds


def parse_feed(body: bytes, url: str, source: str, content_type: str | None = None) -> list[DiscoveredItem]:
    """Parse RSS 0.9x/1.0/2.0 or Atom bytes into discovered items (links absolute, deduplicated)."""
    if not body or not body.strip():
        raise TerminalError(f"{url}: empty body", reason="empty_body")
    # feedparser runs its own expat/sgml parsers, so entity declarations are refused up front,
    # before any parser gets a chance to expand them.
    reject_entities(body, url)
    if looks_like_html(body):
        raise _not_a_feed(body, url)

    # feedparser's own URI joining mangles file:// bases (file:///a/b -> file://a/...); for local
    # feeds we give it no base and resolve relative links ourselves in _clean_url.
    headers = {"content-location": url} if url.startswith(("http://", "https://")) else {}
    if content_type:
        headers["content-type"] = content_type
    # Always hand feedparser a stream: given bytes it first tries them as a *file path*
    # (feedparser.api._open_resource), so a body of "/etc/passwd" would read a local file.
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers, resolve_relative_uris=False)

    now = utcnow()
    allow_file = url.startswith("file:")
    items: list[DiscoveredItem] = []
    seen_ids: set[str] = set()
    seen_links: set[str] = set()
    for entry in parsed.entries:
        link = _clean_url(entry.get("link"), url, allow_file=allow_file)
        if link is None:
            continue  # nothing to fetch
        guid = (entry.get("id") or "").strip() or None
        # Same GUID = same story re-posted (often with a tracking-parameter link); same link = same page.
        if (guid is not None and guid in seen_ids) or link in seen_links:
            continue
        if guid is not None:
            seen_ids.add(guid)
        seen_links.add(link)
        published = _from_struct(entry.get("published_parsed"))
        # dict.get skips feedparser's deprecated updated->published key fallback (and its warning);
        # an RSS item without <updated> falls back to its pubDate explicitly here instead.
        updated = _from_struct(dict.get(entry, "updated_parsed")) or published
        title = _plain_title(entry)
        items.append(
            DiscoveredItem(
                url=link, source=source, via=url, title=title,
                published_at=published, lastmod=_trusted_lastmod(updated, now),
            )
        )

    if not items:
        if is_html_type(content_type) and not parsed.get("version"):
            raise _not_a_feed(body, url)
        if parsed.get("bozo") and not isinstance(parsed.get("bozo_exception"), _BENIGN_BOZO):
            raise TerminalError(
                f"{url}: malformed feed with no usable entries: {parsed.get('bozo_exception')}",
                reason="malformed_feed",
            )
        if not parsed.get("version"):
            raise TerminalError(f"{url}: well-formed XML but not an RSS or Atom feed", reason="not_a_feed")
    return items


def _plain_title(entry: dict) -> str | None:
    """The entry title as plain text (Atom type="html"/"xhtml" titles carry markup)."""
    title = entry.get("title") or ""
    if (entry.get("title_detail") or {}).get("type") in ("text/html", "application/xhtml+xml"):
        title = html.unescape(_TAG_RE.sub("", title))
    return " ".join(title.split()) or None


def _not_a_feed(body: bytes, url: str) -> TerminalError:
    """The error for an HTML page served where a feed was expected, naming feeds it links to."""
    hints = []
    for tag in _ALT_FEED_RE.findall(body[:200_000])[:3]:
        m = re.search(rb"href=[\"']([^\"']+)[\"']", tag, re.IGNORECASE)
        if m:
            hints.append(urljoin(url, m.group(1).decode("utf-8", "replace")))
    msg = f"{url}: got an HTML page, not a feed"
    if hints:
        msg += "; the page links these feeds: " + ", ".join(hints)
    return TerminalError(msg, reason="not_a_feed")


# --------------------------------------------------------------------------- sitemaps


def _child_text(el: Element, name: str) -> str | None:
    for child in el:
        if local_name(child.tag) == name:
            return (child.text or "").strip() or None
    return None


def _child(el: Element, name: str) -> Element | None:
    for child in el:
        if local_name(child.tag) == name:
            return child
    return None


def parse_sitemap(body: bytes, url: str, source: str) -> SitemapPage:
    """Parse a sitemap (urlset, news sitemap, sitemap index, gzip or plain-text) into a SitemapPage."""
    if not body or not body.strip():
        raise TerminalError(f"{url}: empty body", reason="empty_body")
    if is_gzip(body):
        body = gunzip_capped(body, url=url, malformed_reason="malformed_sitemap")
        if not body.strip():
            raise TerminalError(f"{url}: empty body", reason="empty_body")
    allow_file = url.startswith("file:")
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"<"):
        return _parse_text_sitemap(head, url, source, allow_file)
    if looks_like_html(head):
        raise TerminalError(f"{url}: got an HTML page, not a sitemap", reason="not_a_sitemap")

    root = parse_xml(body, url=url, malformed_reason="malformed_sitemap")
    kind = local_name(root.tag)
    if kind in ("rss", "RDF", "feed"):
        # The sitemap protocol accepts RSS 2.0 and Atom feeds as sitemaps (search engines do too).
        return SitemapPage(items=parse_feed(body, url, source))
    if kind not in ("urlset", "sitemapindex"):
        raise TerminalError(f"{url}: root element <{kind}> is not a sitemap", reason="not_a_sitemap")

    now = utcnow()
    page = SitemapPage()
    seen: set[str] = set()
    children: list[tuple[str, datetime | None]] = []
    # Namespaces are matched by local name only: many generators use an outdated or wrong namespace.
    for el in root:
        name = local_name(el.tag)
        if name == "url":
            loc = _clean_url(_child_text(el, "loc"), url, allow_file=allow_file)
            if loc is None or loc in seen:
                continue
            seen.add(loc)
            news = _child(el, "news")
            pub = parse_datetime(_child_text(news, "publication_date")) if news is not None else None
            title = _child_text(news, "title") if news is not None else None
            lastmod = parse_datetime(_child_text(el, "lastmod")) or pub
            page.items.append(
                DiscoveredItem(
                    url=loc, source=source, via=url, title=title,
                    published_at=pub, lastmod=_trusted_lastmod(lastmod, now),
                )
            )
        elif name == "sitemap":
            loc = _clean_url(_child_text(el, "loc"), url, allow_file=allow_file)
            if loc is None or loc in seen:
                continue
            seen.add(loc)
            children.append((loc, _trusted_lastmod(parse_datetime(_child_text(el, "lastmod")), now)))
    # Archive indexes usually list children oldest first; newest first makes a document cap keep
    # the children that can hold new articles. sorted() is stable, so undated children keep their order.
    floor = datetime.min.replace(tzinfo=timezone.utc)
    children.sort(key=lambda c: c[1] or floor, reverse=True)
    page.sitemaps = [c[0] for c in children]
    return page


def _parse_text_sitemap(body: bytes, url: str, source: str, allow_file: bool) -> SitemapPage:
    """A plain-text sitemap (one URL per line, allowed by the protocol); anything else is malformed."""
    text = body.decode("utf-8", "replace")
    items: list[DiscoveredItem] = []
    seen: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        loc = _clean_url(line, url, allow_file=allow_file) if "://" in line else None
        if loc is None:
            if not items:
                raise TerminalError(f"{url}: neither XML nor a text sitemap", reason="malformed_sitemap")
            continue
        if loc not in seen:
            seen.add(loc)
            items.append(DiscoveredItem(url=loc, source=source, via=url))
    return SitemapPage(items=items)


# --------------------------------------------------------------------------- local sources


def read_url_list(path: Path, source: str) -> DiscoveryResult:
    """Read a URL list file: one URL per line, '#' comment lines, blank lines; bad lines become failures."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise TerminalError(f"URL list not found: {path}", reason="source_not_found") from None
    except OSError as e:
        raise TerminalError(f"URL list unreadable: {path}: {e}", reason="source_unreadable") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # never fails; non-ASCII lines then fail URL validation visibly
    via = Path(path).resolve().as_uri()
    result = DiscoveryResult()
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        # "URL  # note" is allowed; a '#' glued to the URL is a fragment, not a comment.
        token, *rest = stripped.split(None, 1)
        url = _clean_url(token, "") if not rest or rest[0].startswith("#") else None
        if url is None:
            result.failures.append(
                _failure(stripped[:MAX_URL_LENGTH], source, "invalid_url", f"{path}:{lineno}: not an absolute http(s) URL")
            )
            continue
        if url not in seen:
            seen.add(url)
            result.items.append(DiscoveredItem(url=url, source=source, via=via))
    return result


def _http_date(dt: datetime) -> str:
    return email.utils.format_datetime(dt.astimezone(timezone.utc), usegmt=True)


def read_html_dir(source: Source) -> list[FetchResult]:
    """Saved HTML pages under a directory (recursive) as 200 FetchResults; unreadable/oversized files as failures."""
    root = Path(source.location)
    if not root.is_dir():
        raise TerminalError(f"source {source.name!r}: HTML directory not found: {root}", reason="source_not_found")
    root_real = root.resolve()
    base = source.base_url
    if base and not base.endswith("/"):
        base += "/"
    paths: list[Path] = []
    # os.walk does not follow directory symlinks, so a link cycle cannot loop us.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # .git and friends hold no pages
        for fn in sorted(filenames):
            if Path(fn).suffix.lower() in HTML_SUFFIXES and not fn.startswith("."):
                paths.append(Path(dirpath) / fn)

    results: list[FetchResult] = []
    for p in paths:
        rel = p.relative_to(root).as_posix()
        url = urljoin(base, quote(rel, safe="/")) if base else p.absolute().as_uri()
        try:
            # A symlinked file pointing outside the directory would smuggle arbitrary local files
            # (e.g. credentials) into the database.
            if not p.resolve().is_relative_to(root_real):
                results.append(_page_failure(url, source.name, "outside_directory", f"{p} links outside {root}"))
                continue
            st = p.stat()
            if st.st_size > MAX_PAGE_BYTES:
                results.append(_page_failure(url, source.name, "too_large", f"{p}: {st.st_size} bytes > {MAX_PAGE_BYTES}"))
                continue
            body = p.read_bytes()
        except OSError as e:
            results.append(_page_failure(url, source.name, "unreadable", f"{p}: {e}"))
            continue
        mtime = datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)
        results.append(
            FetchResult(
                url=url, source=source.name, kind="article", final_url=url, status=200,
                fetched_at=mtime,
                # Size + mtime changes whenever the file is re-saved: a cheap, stable validator.
                etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
                last_modified=_http_date(mtime),
                content_type="text/html", body=body,
            )
        )
    return results


def _page_failure(url: str, source: str, reason: str, detail: str, status: int = 0, retryable: bool = False) -> FetchResult:
    return FetchResult(url=url, source=source, kind="article", status=status, failure=_failure(url, source, reason, detail, retryable))


def read_warc(source: Source) -> list[FetchResult]:
    """HTML response records of a WARC (gzip or plain) as FetchResults.

    Non-HTML, request, revisit and redirect records are skipped; 4xx/5xx captures become failed
    results (an archive will never change, so not retryable). Corruption does not lose what was
    read: the records before it are returned, followed by one failed result with reason
    "malformed_warc" (the fetcher's convention: failures travel as FetchResult.failure).
    """
    path = Path(source.location)
    if not path.is_file():
        raise TerminalError(f"source {source.name!r}: WARC file not found: {path}", reason="source_not_found")
    results: list[FetchResult] = []
    n_records = 0
    try:
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.format != "warc":
                    # warcio falls back to the legacy ARC format for anything it does not recognise,
                    # turning random bytes into bogus "records"; this kind accepts WARC only.
                    raise ValueError(f"record in {rec.format!r} format, not WARC")
                n_records += 1
                page = _warc_record_to_result(rec, source.name)
                if page is not None:
                    results.append(page)
    except Exception as e:  # noqa: BLE001 - warcio surfaces corruption as ArchiveLoadFailed, zlib, EOF or ValueError
        url = path.resolve().as_uri()
        results.append(
            _page_failure(url, source.name, "malformed_warc", f"{path}: corrupt after {n_records} records: {type(e).__name__}: {e}")
        )
    return results


def _warc_record_to_result(rec, source: str) -> FetchResult | None:
    """One WARC record -> FetchResult, or None when it is not an HTML page capture."""
    if rec.rec_type not in ("response", "resource"):
        return None
    url = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")
    if not url.lower().startswith(("http://", "https://")):
        return None
    date_s = rec.rec_headers.get_header("WARC-Date")
    fetched_at = parse_datetime(date_s) or utcnow()
    if rec.rec_type == "resource" or rec.http_headers is None:
        # resource records (e.g. warcit) store the document itself: no HTTP status or headers.
        status, headers_ct, etag, last_mod = 200, rec.rec_headers.get_header("Content-Type"), None, None
    else:
        try:
            status = int(rec.http_headers.get_statuscode())
        except (TypeError, ValueError):
            return _page_failure(url, source, "malformed_warc_record", "unparseable HTTP status line")
        headers_ct = rec.http_headers.get_header("Content-Type")
        etag = rec.http_headers.get_header("ETag")
        last_mod = rec.http_headers.get_header("Last-Modified")
    if not is_html_type(headers_ct):
        return None
    if 300 <= status < 400:
        return None  # a redirect capture has no page; crawlers record the target as its own record
    if not 200 <= status < 300:
        return _page_failure(url, source, f"http_{status}", "captured in WARC with this status", status=status)
    body = rec.content_stream().read(MAX_PAGE_BYTES + 1)  # chunked/gzip payload decoded by warcio
    if len(body) > MAX_PAGE_BYTES:
        return _page_failure(url, source, "too_large", f"payload exceeds {MAX_PAGE_BYTES} bytes", status=status)
    return FetchResult(
        url=url, source=source, kind="article", final_url=url, status=status, fetched_at=fetched_at,
        etag=etag, last_modified=last_mod, content_type=headers_ct, body=body,
    )


# --------------------------------------------------------------------------- orchestration


def _same_netloc(a: str, b: str) -> bool:
    """Same scheme and host:port (both http(s))."""
    pa, pb = urlsplit(a), urlsplit(b)
    return pa.scheme.lower() in ("http", "https") and (pa.scheme.lower(), pa.netloc.lower()) == (pb.scheme.lower(), pb.netloc.lower())


def _dedup_items(items: Iterable[DiscoveredItem]) -> list[DiscoveredItem]:
    """First occurrence wins (order kept); a later, newer lastmod for the same URL is merged in."""
    out: dict[str, DiscoveredItem] = {}
    for it in items:
        prev = out.get(it.url)
        if prev is None:
            out[it.url] = it
            continue
        if it.lastmod and (prev.lastmod is None or it.lastmod > prev.lastmod):
            prev.lastmod = it.lastmod
        prev.title = prev.title or it.title
        prev.published_at = prev.published_at or it.published_at
    return list(out.values())


def _cap_newest(entries: list, limit: int | None, when: Callable[[object], datetime | None]) -> list:
    """Keep the `limit` newest entries (undated count as oldest), preserving the original order."""
    if limit is None or len(entries) <= limit:
        return entries
    floor = datetime.min.replace(tzinfo=timezone.utc)
    ranked = sorted(range(len(entries)), key=lambda i: when(entries[i]) or floor, reverse=True)
    keep = set(ranked[:limit])
    return [e for i, e in enumerate(entries) if i in keep]


def _call_fetch(fetch: FetchFn, reqs: list[FetchRequest]) -> dict[str, FetchResult]:
    """Run the fetch callable; map results to request URLs (by URL, else by position)."""
    try:
        results = list(fetch(reqs))
    except Exception as e:  # noqa: BLE001 - a fetcher crash must not lose the source's other work
        log.exception("fetch callable failed for %d discovery documents", len(reqs))
        return {
            r.url: FetchResult(
                url=r.url, source=r.source, kind=r.kind,
                failure=_failure(r.url, r.source, "fetch_error", f"{type(e).__name__}: {e}", retryable=True),
            )
            for r in reqs
        }
    by_url = {res.url: res for res in results}
    if len(results) == len(reqs) and not all(r.url in by_url for r in reqs):
        by_url = {r.url: res for r, res in zip(reqs, results)}  # fetcher normalised the URLs
    return by_url


def discover(
    source: Source,
    fetch: FetchFn,
    validators: ValidatorsFn,
    *,
    max_sitemap_depth: int = 3,
    max_documents: int = 50,
    conditional: bool = True,
) -> DiscoveryResult:
    """Discover one source: fetch and parse its feed/sitemaps, or read its local list, directory or WARC.

    Never raises for problems with the source itself: they come back as `failures`, so one broken
    source (or one broken document of it) does not stop the others. `enabled` is the caller's business.
    """
    name = source.name
    loc = location_url(source) if source.kind in (SourceKind.rss, SourceKind.atom, SourceKind.sitemap) else source.location
    try:
        if source.kind in (SourceKind.rss, SourceKind.atom, SourceKind.sitemap):
            result = _discover_documents(source, loc, fetch, validators, max_sitemap_depth, max_documents, conditional)
        elif source.kind in (SourceKind.urls, SourceKind.html, SourceKind.warc) and source.is_remote:
            raise TerminalError(f"source {name!r}: kind {source.kind.value!r} needs a local path", reason="unsupported_location")
        elif source.kind == SourceKind.urls:
            result = read_url_list(Path(source.location), name)
        else:
            pages = read_html_dir(source) if source.kind == SourceKind.html else read_warc(source)
            result = DiscoveryResult(
                pages=[p for p in pages if p.failure is None],
                failures=[p.failure for p in pages if p.failure is not None],
            )
    except NewsflowError as e:
        return DiscoveryResult(failures=[_failure_from_error(loc, name, e)])

    result.items = _cap_newest(_dedup_items(result.items), source.max_items, lambda i: i.lastmod or i.published_at)
    # max_items also bounds pages in hand: a user trying a big WARC with max_items=10 means 10 pages.
    result.pages = _cap_newest(result.pages, source.max_items, lambda p: p.fetched_at)
    return result


def _discover_documents(
    source: Source,
    root_url: str,
    fetch: FetchFn,
    validators: ValidatorsFn,
    max_depth: int,
    max_documents: int,
    conditional: bool,
) -> DiscoveryResult:
    """Fetch the feed or sitemap tree breadth-first and parse each document."""
    name = source.name
    is_sitemap = source.kind == SourceKind.sitemap
    doc_kind = "sitemap" if is_sitemap else "feed"
    out = DiscoveryResult()
    parent: dict[str, str | None] = {root_url: None}
    tainted: set[str] = set()
    # Every URL is fetched at most once: index loops (A -> B -> A) and diamonds (two indexes listing
    # one child) end here silently. They are harmless once deduplicated, and a failure row would be
    # noise the site owner, not us, must fix - and would be re-reported on every run.
    seen: set[str] = {root_url}
    scheduled = 1  # documents fetched or queued, for the max_documents cap
    too_deep: list[str] = []
    over_cap: list[str] = []

    def taint(url: str | None) -> None:
        while url is not None and url not in tainted:
            tainted.add(url)
            url = parent.get(url)

    level = [root_url]
    depth = 0
    while level:
        reqs = []
        for url in level:
            v = validators(url) if conditional else None
            etag, last_modified = v if v else (None, None)
            reqs.append(
                FetchRequest(
                    url=url, source=name, kind=doc_kind, etag=etag, last_modified=last_modified,
                    # Child sitemaps on the configured host:port are as trusted as the configured URL
                    # (an intranet sitemap index lists its own intranet children; the SSRF guard would
                    # refuse them otherwise); children on any other host are links like any other.
                    conditional=conditional, user_configured=url == root_url or _same_netloc(url, root_url),
                )
            )
        by_url = _call_fetch(fetch, reqs)
        next_level: list[str] = []
        for req in reqs:
            url = req.url
            res = by_url.get(url)
            if res is None:
                out.failures.append(_failure(url, name, "no_fetch_result", "fetcher returned no result", retryable=True))
                taint(parent[url])
                continue
            if res.final_url:
                seen.add(res.final_url)
            if res.failure is not None:
                out.failures.append(res.failure.model_copy(update={"stage": "discover", "source": name}))
                if res.failure.retryable:
                    taint(parent[url])
                continue
            if res.not_modified:
                # Nothing changed, so no items. For an index this also skips its children: the
                # protocol's per-child <lastmod> means a changed child changes the index too.
                out.documents.append(res)
                continue
            if not res.ok:
                out.failures.append(_failure(url, name, "empty_body", f"status {res.status} without a body", retryable=True))
                taint(parent[url])
                continue
            out.documents.append(res)
            base = res.final_url or url
            try:
                if is_sitemap:
                    page = parse_sitemap(res.body, base, name)
                else:
                    page = SitemapPage(items=parse_feed(res.body, base, name, res.content_type))
            except NewsflowError as e:
                out.failures.append(_failure_from_error(url, name, e))
                continue
            except Exception as e:  # noqa: BLE001 - a parser bug on one document must not lose the others
                log.exception("parsing %s failed", url)
                out.failures.append(_failure(url, name, "parse_error", f"{type(e).__name__}: {e}"))
                continue
            for it in page.items:
                it.via = url
            out.items.extend(page.items)
            for child in page.sitemaps:
                if child in seen:
                    continue
                seen.add(child)  # also for skipped children, so each is reported once
                if depth + 1 > max_depth:
                    too_deep.append(child)
                    continue
                if scheduled >= max_documents:
                    over_cap.append(child)
                    continue
                scheduled += 1
                parent[child] = url
                next_level.append(child)
        level = next_level
        depth += 1

    if too_deep:
        out.failures.append(
            _failure(too_deep[0], name, "sitemap_too_deep", f"{len(too_deep)} child sitemap(s) beyond max_sitemap_depth={max_depth} not fetched")
        )
    if over_cap:
        out.failures.append(
            _failure(over_cap[0], name, "too_many_sitemaps", f"{len(over_cap)} child sitemap(s) beyond max_documents={max_documents} not fetched")
        )
    out.documents = [
        d.model_copy(update={"etag": None, "last_modified": None}) if d.url in tainted else d for d in out.documents
    ]
    return out
