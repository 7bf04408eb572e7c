"""Site boilerplate in the warehouse: the recurring lines of the sites in a batch, and the lines removed per article.

A line counts as a site's template when it appears on at least `min_pages` distinct stored articles of that site
(host of the page URL, without "www."), either still in their text or already removed from it (so a line stays
known after newer articles stop carrying it). Bounded per site: only its `per_site_limit` most recent articles are
read, and recorded duplicates are left out (several URLs of one story would make its own lines look recurring).
The pure part (site key, removal with reasons) is ingest.boilerplate.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import duckdb
import pyarrow as pa

from ingest.boilerplate import MAX_LINE_CHARS, MIN_PAGES
from ingest.models import Article
from warehouse.arrow import registered

# The host of a URL as ingest.boilerplate.site_of gives it: lower-cased, userinfo/port dropped, no leading "www.".
_SITE_SQL = (
    "regexp_replace(lower(regexp_extract({col}, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)', 1)), '^www\\.', '')"
)
_REMOVED = pa.schema([("article_id", pa.string()), ("line", pa.string()), ("reason", pa.string())])


def recurring_lines(
    con: duckdb.DuckDBPyConnection,
    sites: Iterable[str],
    *,
    exclude_ids: Iterable[str] = (),
    min_pages: int = MIN_PAGES,
    per_site_limit: int = 500,
) -> dict[str, frozenset[str]]:
    """Site -> its template lines (on >= min_pages distinct stored articles), for the given sites.

    `exclude_ids`: articles not to count, e.g. the batch being re-processed, so a re-processed article is judged
    against the other articles of its site exactly as when it was first ingested.
    """
    wanted = sorted({s for s in sites if s})
    if not wanted:
        return {}
    site = _SITE_SQL.format(col="a.page_url")
    rows = con.execute(
        "WITH recent AS ("
        f"  SELECT a.id, a.text, {site} AS site FROM articles a"
        f"  WHERE list_contains(?::VARCHAR[], {site}) AND NOT list_contains(?::VARCHAR[], a.id)"
        "    AND a.id NOT IN (SELECT article_id FROM duplicates)"
        f"  QUALIFY row_number() OVER (PARTITION BY {site} ORDER BY a.first_seen_at DESC, a.id) <= ?"
        "), lines AS ("
        "  SELECT r.site, r.id, trim(t.line) AS line FROM recent r, unnest(string_split(r.text, chr(10))) AS t(line)"
        "  UNION"
        "  SELECT r.site, r.id, b.line FROM recent r JOIN articles_boilerplate b ON b.article_id = r.id"
        ") "
        "SELECT site, line FROM lines WHERE length(line) BETWEEN 1 AND ? "
        "GROUP BY site, line HAVING count(DISTINCT id) >= ? ORDER BY site, line",
        [wanted, sorted(set(exclude_ids)), per_site_limit, MAX_LINE_CHARS, min_pages],
    ).fetchall()
    out: dict[str, set[str]] = {}
    for s, line in rows:
        out.setdefault(s, set()).add(line)
    return {s: frozenset(lines) for s, lines in out.items()}


def save_removed_lines(con: duckdb.DuckDBPyConnection, articles: Sequence[Article], *, new_ids: Collection[str] = ()) -> int:
    """Replace the recorded boilerplate lines of these articles with what their clean removed; returns rows written.

    Takes an open connection and leaves transaction control to the caller (one batch, one transaction).
    `new_ids`: articles this transaction inserted, which have no lines to replace (their DELETE is skipped:
    on DuckLake even a DELETE that matches nothing costs a scan and catalog reads, ~90 ms per load).
    """
    ids = list(dict.fromkeys(a.id for a in articles))
    if not ids:
        return 0
    ids_to_replace = [i for i in ids if i not in new_ids]
    rows = [
        {"article_id": a.id, "line": line, "reason": reason}
        for a in {a.id: a for a in articles}.values()
        for line, reason in dict.fromkeys(a.boilerplate_removed)
    ]
    if ids_to_replace:
        con.execute("DELETE FROM articles_boilerplate WHERE list_contains(?::VARCHAR[], article_id)", [ids_to_replace])
    if not rows:
        return 0
    with registered(con, "boilerplate_batch", rows, _REMOVED):
        con.execute(
            "INSERT INTO articles_boilerplate (article_id, line, reason, removed_at) "
            "SELECT article_id, line, reason, now() FROM boilerplate_batch"
        )
    return len(rows)
