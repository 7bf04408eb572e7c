"""URL identity: one canonical form per article URL, so tracking, AMP and cosmetic variants collapse;
and which URL a fetched page declares as its canonical."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from courlan import normalize_url, scrub_url
from tld import get_fld

# courlan already drops most trackers (utm_*, fbclid, gclid, mc_*, ref, ...); these are the ones it keeps
# but that never change which article a URL shows. Matched on the lower-cased parameter name.
_EXTRA_TRACKERS = re.compile(
    r"^(?:utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_ga|_gl|igshid|yclid|cmpid|icid|ito|"
    r"smid|smtyp|ncid|ocid|taid|outputtype|amp|__twitter_impression)$"
)
# AMP renders of an article: a whole `amp` path segment, an `.amp.html`/`.amp` suffix, an `amp.` host label.
_AMP_SEGMENT = re.compile(r"/amp(?=/|$)")
_AMP_SUFFIX = re.compile(r"\.amp(\.html?)?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _clean_host(netloc: str, scheme: str) -> str:
    # Why: userinfo never identifies an article and ports equal to the scheme default are noise.
    host = netloc.rsplit("@", 1)[-1].lower()
    if ":" in host and not host.endswith("]"):
        name, _, port = host.rpartition(":")
        if port.isdigit() and int(port) == _DEFAULT_PORTS.get(scheme):
            host = name
        elif port == "":
            host = name
    for prefix in ("www.", "amp."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix):]
    return host.rstrip(".")


def _clean_path(path: str) -> str:
    path = _AMP_SEGMENT.sub("", path)
    path = _AMP_SUFFIX.sub(lambda m: m.group(1) or "", path)
    path = re.sub(r"/{2,}", "/", path)
    # Trailing slashes are cosmetic on news sites; the bare root stays "/".
    path = path.rstrip("/")
    return path or "/"


def _clean_query(query: str) -> str:
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not _EXTRA_TRACKERS.match(k.lower())]
    # Parameters that remain are meaningful (?id=, ?p=), kept in a stable sorted order.
    return urlencode(sorted(pairs))


def canonicalize(url: str) -> str:
    """Canonical form of an http(s) URL (tracking, AMP, www, ports, fragments removed); other schemes unchanged."""
    raw = url.strip()
    scheme = raw.split(":", 1)[0].lower() if ":" in raw else ""
    if scheme not in ("http", "https"):
        # seed://, file://, mailto: etc. are identities of their own, not web pages to normalise.
        return url
    try:
        normalized = normalize_url(scrub_url(raw), strict=False, trailing_slash=True)
        parts = urlsplit(normalized)
    except (ValueError, AttributeError):
        # A URL courlan cannot parse is still a usable (if not merged) identity.
        return raw
    host = _clean_host(parts.netloc, parts.scheme)
    if not host:
        return raw
    return urlunsplit((parts.scheme, host, _clean_path(parts.path), _clean_query(parts.query), ""))


def registered_domain(url: str) -> str | None:
    """Registered domain (public-suffix aware: news.bbc.co.uk -> bbc.co.uk); the bare host for IPs/localhost."""
    fld = get_fld(url, fail_silently=True)
    if fld:
        return fld.lower()
    host = urlsplit(url).hostname
    return host.lower() if host else None


def html_canonical(links: Iterable[object]) -> str | None:
    """href of the first <link rel="canonical"> among lxml <link> elements (rel may hold several tokens)."""
    for link in links:
        rel = (link.get("rel") or "").lower().split()  # type: ignore[attr-defined]
        if "canonical" in rel and link.get("href"):  # type: ignore[attr-defined]
            return link.get("href")  # type: ignore[attr-defined]
    return None


def canonical_url_of(page_url: str, declared_canonical: str | None) -> str:
    """An article's canonical URL: the page's rel=canonical if on the same registered domain, else the fetched URL; normalised."""
    url = page_url
    if declared_canonical and declared_canonical.strip():
        candidate = urljoin(page_url, declared_canonical.strip())
        # A canonical on another site (syndicated copy -> original) is ignored: the copy keeps its own
        # URL so dedup can link it to the original instead of silently merging two sources.
        if urlsplit(candidate).scheme in ("http", "https") and registered_domain(candidate) == registered_domain(page_url):
            url = candidate
    return canonicalize(url)
