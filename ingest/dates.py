"""Dates: the one date parser of the pipeline, and the publication time a page declares.

`parse_datetime` reads every date string newsflow meets (feed and sitemap dates, WARC-Date, htmldate
output, command-line windows) and always returns an aware UTC datetime or None.
"""

from __future__ import annotations

import email.utils
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

_YEAR_RE = re.compile(r"\d{4}")
_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def as_utc(dt: datetime) -> datetime:
    """Aware UTC datetime; a naive one is taken as UTC (feeds, sitemaps and pages without an offset mean UTC in practice)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _period(value: str) -> tuple[datetime, datetime] | None:
    """Start and end (exclusive) of a date-only value: YYYY, YYYY-MM or YYYY-MM-DD; None otherwise."""
    if _YEAR_RE.fullmatch(value):
        start = datetime(int(value), 1, 1, tzinfo=timezone.utc)
        return start, start.replace(year=start.year + 1)
    m = _MONTH_RE.fullmatch(value)
    if m:
        start = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=timezone.utc)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, end
    if _DAY_RE.fullmatch(value):
        d = date.fromisoformat(value)
        start = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        return start, start + timedelta(days=1)
    return None


def parse_datetime(value: str | None, *, end_of_period: bool = False) -> datetime | None:
    """Any date newsflow meets -> aware UTC datetime, None when empty or invalid.

    Accepts W3C/ISO 8601 (YYYY, YYYY-MM, YYYY-MM-DD, full timestamps with 'Z', '+05:30' or '+0530'
    offsets, fractions, a space instead of 'T') and RFC 822 dates (RSS, HTTP). No offset means UTC.
    A date-only value is the start of its period, or with end_of_period=True the start of the next
    one (so "--until 2024-03-05" includes the whole of 5 March).
    """
    if not value:
        return None
    s = value.strip()
    if not s:
        return None
    try:
        period = _period(s)
        if period is not None:
            return period[1] if end_of_period else period[0]
        # fromisoformat in 3.11 accepts 'Z', offsets with or without a colon, and fractions.
        return as_utc(datetime.fromisoformat(s.replace(" ", "T", 1)))
    except ValueError:
        pass
    try:
        return as_utc(email.utils.parsedate_to_datetime(s))
    except (TypeError, ValueError, IndexError):
        return None


_PUBLISHED_XPATH = (
    '//meta[@property="article:published_time" or @name="article:published_time" or @itemprop="datePublished"'
    ' or @name="pubdate" or @name="publishdate"]/@content'
    ' | //time[@itemprop="datePublished"]/@datetime'
)
_JSONLD_PUBLISHED = re.compile(r'"datePublished"\s*:\s*"([^"]{10,40})"')


def declared_published(tree: Any) -> list[datetime]:
    """Publication timestamps the page declares (meta tags, microdata, JSON-LD), with their time of day."""
    values = [str(v) for v in tree.xpath(_PUBLISHED_XPATH)]
    for script in tree.xpath('//script[@type="application/ld+json"]/text()'):
        values.extend(_JSONLD_PUBLISHED.findall(str(script)))
    return [dt for dt in map(parse_datetime, values) if dt is not None]


def precise_date(found: datetime | None, declared: list[datetime]) -> datetime | None:
    """htmldate's date, with the time of day from a declared timestamp of the same day when there is one.

    htmldate returns dates only (midnight); the time matters for ordering same-day stories, e.g. an
    original and its syndicated copy.
    """
    if found is None:
        return declared[0] if declared else None
    for dt in declared:
        if dt.date() == found.date() or abs(dt - found) <= timedelta(hours=14):
            return dt
    return found
