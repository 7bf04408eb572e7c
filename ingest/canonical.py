"""URL identity: one canonical form per article URL, so tracking, AMP and cosmetic variants collapse."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from courlan import normalize_url, scrub_url

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
