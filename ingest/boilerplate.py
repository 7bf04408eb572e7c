"""Site boilerplate: lines that recur verbatim on several pages of one host are the site's template residue.

Subscription prompts, "about the author" boxes, legal notes and standing credits survive a generic extractor
because they read like prose; what gives them away is that the same line appears on many articles of the same
site. The warehouse finds those lines per host (warehouse/boilerplate.py) from stored article texts and the lines
already removed before; this module is the pure part: which host a page belongs to, which lines qualify, and
removing known lines from a new article with a reason per line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from urllib.parse import urlsplit

from ingest.residue import split_paragraphs

# Default for "recurs on several pages": a line on 3 or more distinct articles of a host.
MIN_PAGES = 3
# Longer lines are story text even when repeated (a paragraph republished in a follow-up), never template.
MAX_LINE_CHARS = 400
# Never remove more than this share of an article's characters: when most of a text is "known", the text is
# another copy of a stored story (a second URL of it on the same host), not template.
MAX_REMOVED_SHARE = 0.5


def site_of(url: str) -> str | None:
    """The host a page belongs to, lower-cased and without a leading "www." (None for URLs without a host)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or None


def candidate_lines(text: str) -> list[str]:
    """Distinct lines of a stored article text that could be template residue (normalised, not too long), in order."""
    return list(dict.fromkeys(ln for ln in split_paragraphs(text) if len(ln) <= MAX_LINE_CHARS))


def recurring_lines(texts: Iterable[tuple[str, str]], min_pages: int = MIN_PAGES) -> dict[str, frozenset[str]]:
    """Host -> lines found on at least `min_pages` distinct articles, from (page URL, text) pairs.

    The pure twin of warehouse.boilerplate.recurring_lines (which does the same over stored articles in SQL), for
    benchmarks and tests.
    """
    pages: dict[tuple[str, str], int] = defaultdict(int)
    for url, text in texts:
        site = site_of(url)
        if site:
            for ln in candidate_lines(text):
                pages[(site, ln)] += 1
    out: dict[str, set[str]] = defaultdict(set)
    for (site, ln), n in pages.items():
        if n >= min_pages:
            out[site].add(ln)
    return {site: frozenset(lines) for site, lines in out.items()}


def remove_site_boilerplate(
    text: str, known_lines: Collection[str], min_pages: int = MIN_PAGES
) -> tuple[str, list[tuple[str, str]]]:
    """Drop the lines of `text` that are known template lines of its site; returns (text, [(line, reason)]).

    Lines are compared in their normalised form (as clean_text stores them). Nothing is removed when the known lines
    would take more than MAX_REMOVED_SHARE of the text: then the article repeats a stored one rather than a template.
    """
    if not known_lines or not text:
        return text, []
    lines = split_paragraphs(text)
    drop = [ln in known_lines for ln in lines]
    removed_chars = sum(len(ln) for ln, d in zip(lines, drop) if d)
    if not removed_chars or removed_chars > MAX_REMOVED_SHARE * sum(len(ln) for ln in lines):
        return text, []
    reason = f"site_boilerplate: on >= {min_pages} other articles of this site"
    kept = [ln for ln, d in zip(lines, drop) if not d]
    return "\n\n".join(kept), [(ln, reason) for ln, d in zip(lines, drop) if d]


def known_lines_for(page_url: str, by_site: Mapping[str, Collection[str]] | None) -> Collection[str]:
    """The known template lines of the page's site in a host -> lines mapping (empty when none)."""
    if not by_site:
        return ()
    site = site_of(page_url)
    return by_site.get(site, ()) if site else ()
