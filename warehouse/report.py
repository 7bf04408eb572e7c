"""The numbers behind `newsflow report`: one read of the warehouse into plain Python data (no HTML here).

flows/report.py renders them; tests compare the rendered numbers with these queries.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import duckdb

# Days with articles shown in the charts (the latest ones); the report says how many there are in all.
MAX_DAYS = 60
TOP_ENTITIES = 12
RECENT_FAILURES = 20

# Publication day, else the day the article was first seen (as in v_articles_daily).
_DAY = "CAST(coalesce(a.published_at, a.first_seen_at) AS DATE)"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def totals(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Headline counts: articles, unique stories, duplicates, sources, entities, runs, open failures."""
    return _rows(
        con,
        """
        SELECT (SELECT count(*) FROM articles) AS articles,
               (SELECT count(*) FROM v_articles_unique) AS unique_stories,
               (SELECT count(*) FROM duplicates) AS duplicates,
               (SELECT count(*) FROM sources) AS sources,
               (SELECT count(*) FROM entities) AS entities,
               (SELECT count(*) FROM runs) AS runs,
               (SELECT count(*) FROM url_retries) AS failing_urls
        """,
    )[0]


def chart_days(con: duckdb.DuckDBPyConnection, max_days: int = MAX_DAYS) -> tuple[list[date], int]:
    """The latest `max_days` days that have articles (oldest first), and how many days have articles in all."""
    days = [r[0] for r in con.execute(f"SELECT DISTINCT {_DAY} AS day FROM articles a ORDER BY day").fetchall()]
    return days[-max_days:], len(days)


def articles_per_day(con: duckdb.DuckDBPyConnection, days: list[date]) -> list[dict[str, Any]]:
    """Articles per day and source, for `days`."""
    if not days:
        return []
    return _rows(
        con,
        f"SELECT {_DAY} AS day, a.source, count(*) AS articles FROM articles a "
        f"WHERE {_DAY} BETWEEN ? AND ? GROUP BY ALL ORDER BY day, a.source",
        [days[0], days[-1]],
    )


def stories_per_day(con: duckdb.DuckDBPyConnection, days: list[date]) -> list[dict[str, Any]]:
    """Per day: unique stories (not a recorded duplicate) and duplicates."""
    if not days:
        return []
    return _rows(
        con,
        f"""
        SELECT {_DAY} AS day,
               count(*) FILTER (WHERE d.article_id IS NULL) AS unique_stories,
               count(*) FILTER (WHERE d.article_id IS NOT NULL) AS duplicates
        FROM articles a LEFT JOIN duplicates d ON d.article_id = a.id
        WHERE {_DAY} BETWEEN ? AND ?
        GROUP BY ALL ORDER BY day
        """,
        [days[0], days[-1]],
    )


def top_entities(con: duckdb.DuckDBPyConnection, days: list[date], limit: int = TOP_ENTITIES) -> list[dict[str, Any]]:
    """The entities named in the most articles, with their articles per day over `days` (the trend)."""
    top = _rows(
        con,
        """
        SELECT m.entity_id, e.name, e.type, count(DISTINCT m.article_id) AS articles, count(*) AS mentions
        FROM mentions m JOIN entities e ON e.id = m.entity_id
        GROUP BY ALL ORDER BY articles DESC, mentions DESC, e.name LIMIT ?
        """,
        [limit],
    )
    if not top or not days:
        return top
    daily = con.execute(
        "SELECT entity_id, day, articles FROM v_entity_daily WHERE entity_id IN (SELECT unnest(?)) AND day BETWEEN ? AND ?",
        [[t["entity_id"] for t in top], days[0], days[-1]],
    ).fetchall()
    by = {(e, d): n for e, d, n in daily}
    for t in top:
        t["trend"] = [int(by.get((t["entity_id"], d), 0)) for d in days]
    return top


def source_health(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """v_source_health, silent sources first."""
    return _rows(con, "SELECT * FROM v_source_health ORDER BY silent DESC, source")


def recent_failures(con: duckdb.DuckDBPyConnection, limit: int = RECENT_FAILURES) -> list[dict[str, Any]]:
    """The latest failures (newest first)."""
    return _rows(
        con,
        "SELECT failed_at, source, stage, reason, retryable, url, detail, run_id FROM failures "
        "ORDER BY failed_at DESC, id DESC LIMIT ?",
        [limit],
    )


def report_data(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Everything the report shows, read in one session."""
    days, all_days = chart_days(con)
    return {
        "generated_at": datetime.now().astimezone(),
        "totals": totals(con),
        "days": days,
        "all_days": all_days,
        "articles_per_day": articles_per_day(con, days),
        "stories_per_day": stories_per_day(con, days),
        "top_entities": top_entities(con, days),
        "source_health": source_health(con),
        "failures": recent_failures(con),
    }
