"""robots.txt cache: one fetch per origin per Fetcher, parsed by urllib.robotparser."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from ingest.models import FetchResult


def origin_of(url: str) -> str:
    """scheme://host[:port] of an http(s) URL: robots.txt applies per origin (RFC 9309)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower().rsplit('@', 1)[-1]}"


class RobotsCache:
    """Fetches robots.txt once per origin (through the caller's own fetch function) and answers can_fetch."""

    def __init__(self, fetch_robots: Callable[[str, bool], Awaitable[FetchResult]], user_agent: str) -> None:
        # fetch_robots(url, allow_private) must use the same client, SSRF guard and politeness as page fetches.
        self._fetch_robots = fetch_robots
        self._user_agent = user_agent
        self._parsers: dict[str, RobotFileParser | None] = {}  # None = allow everything
        self._locks: dict[str, asyncio.Lock] = {}

    async def allowed(self, url: str, allow_private: bool = False) -> bool:
        """True when robots.txt of the URL's origin lets our user agent fetch it (SSRF policy of the page)."""
        origin = origin_of(url)
        lock = self._locks.setdefault(origin, asyncio.Lock())
        # The lock makes concurrent requests to one origin share a single robots.txt fetch.
        async with lock:
            if origin not in self._parsers:
                self._parsers[origin] = await self._load(origin, allow_private)
        parser = self._parsers[origin]
        return True if parser is None else parser.can_fetch(self._user_agent, url)

    async def _load(self, origin: str, allow_private: bool) -> RobotFileParser | None:
        result = await self._fetch_robots(origin + "/robots.txt", allow_private)
        if result.failure is not None or result.body is None:
            # 4xx (no robots.txt) means no restrictions (RFC 9309 2.3.1.3). For 5xx, timeouts and
            # connection errors RFC 9309 suggests assuming "disallow all"; we deliberately allow instead:
            # the page request that follows goes to the same broken server and fails (and is retried on a
            # later run, when robots.txt is fetched afresh) rather than being recorded as a permanent
            # robots_disallowed, and a flaky robots.txt must not silently stop a whole source.
            return None
        parser = RobotFileParser()
        parser.parse(result.body.decode("utf-8", errors="replace").splitlines())
        # can_fetch() answers False until the parser is marked as read; parse() alone does not do that.
        parser.modified()
        return parser
