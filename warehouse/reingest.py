"""Selection queries of the `reingest` flow: which known articles/URLs to fetch again or re-process.

Every selector yields Targets, one per article (its latest stored page, else its page URL) or, for
failed URLs, one per failing URL. Seed articles (url seed://NAME, no stored page) are flagged so the
flow re-reads them from their seed file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from warehouse.arrow import registered

if TYPE_CHECKING:
    from ingest.models import FetchResult

SEED_PREFIX = "seed://"


@dataclass(frozen=True)
class Target:
    """One thing to re-ingest: a page URL (or seed://NAME) with its source and article, if any."""

    url: str
    source: str
    article_id: str | None
    has_body: bool  # a raw body is stored in `pages` (re-processing possible)

    @property
    def is_seed(self) -> bool:
        """True for a seed article, re-read from its seed file rather than fetched."""
        return self.url.startswith(SEED_PREFIX)


def like_pattern(pattern: str) -> str:
    """A URL pattern with `*` wildcards as a LIKE pattern (escape `\\`): `%`, `_` and `\\` match literally."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


# Per article: the stored article page it was last built from (any alias URL leading to it), newest
# first; articles without one (seeds) fall back to their page_url.
_ARTICLE_TARGETS = (
    "SELECT coalesce(p.url, a.page_url) AS url, a.source, a.id, p.body_zlib IS NOT NULL AS has_body "
    "FROM articles a JOIN selected s ON s.id = a.id "
    "LEFT JOIN article_urls au ON au.article_id = a.id "
    "LEFT JOIN pages p ON p.url = au.url AND p.kind = 'article' "
    "QUALIFY row_number() OVER (PARTITION BY a.id ORDER BY p.url IS NULL, p.fetched_at DESC, p.url) = 1 "
    "ORDER BY url"
)

_BY_SOURCE = "WITH selected AS (SELECT id FROM articles WHERE source = ?) " + _ARTICLE_TARGETS
_ALL = "WITH selected AS (SELECT id FROM articles) " + _ARTICLE_TARGETS
_BY_URL = (
    "WITH selected AS ("
    " SELECT id FROM articles WHERE url LIKE ? ESCAPE '\\' OR page_url LIKE ? ESCAPE '\\' "
    " UNION SELECT article_id FROM article_urls WHERE url LIKE ? ESCAPE '\\') " + _ARTICLE_TARGETS
)
# Half-open window [since, until); a missing bound is open.
_BY_FIRST_SEEN = (
    "WITH selected AS (SELECT id FROM articles WHERE (CAST(? AS TIMESTAMPTZ) IS NULL OR first_seen_at >= ?) "
    " AND (CAST(? AS TIMESTAMPTZ) IS NULL OR first_seen_at < ?)) " + _ARTICLE_TARGETS
)
_BY_PUBLISHED = (
    "WITH selected AS (SELECT id FROM articles WHERE published_at IS NOT NULL "
    " AND (CAST(? AS TIMESTAMPTZ) IS NULL OR published_at >= ?) AND (CAST(? AS TIMESTAMPTZ) IS NULL OR published_at < ?)) "
    + _ARTICLE_TARGETS
)
# Failed article URLs (still retrying or given up); feeds and sitemaps are re-read by `ingest`.
_FAILED = (
    "SELECT r.url, r.source, any_value(au.article_id), bool_or(p.body_zlib IS NOT NULL) "
    "FROM url_retries r LEFT JOIN article_urls au ON au.url = r.url "
    "LEFT JOIN pages p ON p.url = r.url AND p.kind = 'article' "
    "WHERE r.kind = 'article' GROUP BY r.url, r.source ORDER BY r.url"
)


def _targets(rows: Sequence[tuple]) -> list[Target]:
    return [Target(url=u, source=s, article_id=a, has_body=bool(b)) for u, s, a, b in rows]


def by_source(con: duckdb.DuckDBPyConnection, source: str) -> list[Target]:
    """Articles of one source."""
    return _targets(con.execute(_BY_SOURCE, [source]).fetchall())


def by_url(con: duckdb.DuckDBPyConnection, pattern: str) -> list[Target]:
    """Articles whose canonical URL, page URL or any alias URL matches `pattern` (`*` = any characters)."""
    like = like_pattern(pattern)
    return _targets(con.execute(_BY_URL, [like, like, like]).fetchall())


def by_window(
    con: duckdb.DuckDBPyConnection, since: datetime | None, until: datetime | None, on: str = "first_seen"
) -> list[Target]:
    """Articles first seen (on='first_seen') or published (on='published') in [since, until)."""
    if on not in ("first_seen", "published"):
        raise ValueError(f"window_on must be 'first_seen' or 'published', not {on!r}")
    sql = _BY_FIRST_SEEN if on == "first_seen" else _BY_PUBLISHED
    return _targets(con.execute(sql, [since, since, until, until]).fetchall())


def failed(con: duckdb.DuckDBPyConnection) -> list[Target]:
    """Article URLs in url_retries, including permanently failed ones."""
    return _targets(con.execute(_FAILED).fetchall())


def everything(con: duckdb.DuckDBPyConnection) -> list[Target]:
    """Every article."""
    return _targets(con.execute(_ALL).fetchall())


def stored_pages(con: duckdb.DuckDBPyConnection, targets: Sequence[Target]) -> list[FetchResult]:
    """Stored raw pages of `targets` as FetchResults (original fetch time, validators, body), in target order.

    The target's source (the article's) is kept, so a re-processed article keeps its source.
    """
    # Imported here, not with the module: `reingest --dry-run` only selects, and these pull in pyarrow and pydantic models.
    import pyarrow as pa

    from ingest.models import FetchResult
    from warehouse.loads import page_body

    wanted = [t for t in targets if t.has_body]
    if not wanted:
        return []
    schema = pa.schema([("url", pa.string())])
    with registered(con, "want_pages", [{"url": t.url} for t in wanted], schema):
        rows = con.execute(
            "SELECT p.url, p.kind, p.final_url, p.status, p.content_type, p.etag, p.last_modified, p.fetched_at, p.body_zlib "
            "FROM pages p JOIN want_pages w ON p.url_key = substr(md5(w.url), 1, 16) AND p.url = w.url "
            "WHERE p.body_zlib IS NOT NULL"
        ).fetchall()
    by_url = {r[0]: r for r in rows}
    out = []
    for t in wanted:
        r = by_url.get(t.url)
        if r is None:  # deleted since the selection; nothing to re-process
            continue
        url, kind, final_url, status, content_type, etag, last_modified, fetched_at, blob = r
        out.append(
            FetchResult(
                url=url, source=t.source, kind=kind, final_url=final_url, status=status, content_type=content_type,
                etag=etag, last_modified=last_modified, fetched_at=fetched_at, body=page_body(blob),
            )
        )
    return out


def source_locations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Locations of every source ever registered (configured and ad hoc), for the SSRF guard's trust."""
    return [loc for (loc,) in con.execute("SELECT location FROM sources ORDER BY name").fetchall()]
