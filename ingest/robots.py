"""robots.txt cache for a whole run: one fetch per origin until it expires, parsed by urllib.robotparser.

The cache is shared by every Fetcher of a run (one per batch, each on its own event loop and maybe its
own thread), so a run of 1,000 URLs on one host asks for robots.txt once, not once per batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from ingest.models import FetchResult
from ingest.politeness import SharedLock

# RFC 9309 2.4: a cached robots.txt should not be used for more than 24 hours.
MAX_AGE_S = 24 * 3600.0
# A robots.txt that could not be read (5xx, timeout, connection error) is asked for again after this long;
# until then the origin counts as "allow" (see RobotsCache._load).
UNREACHABLE_RETRY_S = 300.0

FetchRobots = Callable[[str, bool], Awaitable[FetchResult]]


def origin_of(url: str) -> str:
    """scheme://host[:port] of an http(s) URL: robots.txt applies per origin (RFC 9309)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower().rsplit('@', 1)[-1]}"


@dataclass
class _Entry:
    parser: RobotFileParser | None  # None = allow everything
    expires: float  # time.monotonic()


class RobotsCache:
    """robots.txt per origin, fetched through the caller's fetch function, with expiry; thread-safe."""

    def __init__(self, user_agent: str, max_age_s: float = MAX_AGE_S, unreachable_retry_s: float = UNREACHABLE_RETRY_S) -> None:
        self._user_agent = user_agent
        self._max_age_s = max_age_s
        self._unreachable_retry_s = unreachable_retry_s
        self._mutex = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, SharedLock] = {}
        self.fetches = 0  # robots.txt requests made through this cache

    async def allowed(self, url: str, fetch_robots: FetchRobots, allow_private: bool = False) -> bool:
        """True when robots.txt of the URL's origin lets our user agent fetch it.

        `fetch_robots(url, allow_private)` must use the same client, SSRF guard and politeness as page
        fetches (the Fetcher's own); `allow_private` is the SSRF policy of the page.
        """
        origin = origin_of(url)
        with self._mutex:
            lock = self._locks.setdefault(origin, SharedLock())
        # The lock makes concurrent requests to one origin (from any batch or thread) share one fetch.
        async with lock:
            entry = self._fresh(origin)
            if entry is None:
                entry = await self._load(origin, fetch_robots, allow_private)
                with self._mutex:
                    self._entries[origin] = entry
        return True if entry.parser is None else entry.parser.can_fetch(self._user_agent, url)

    def crawl_delay(self, url: str) -> float | None:
        """The Crawl-delay (seconds) robots.txt of the URL's origin asks of our user agent, if known."""
        entry = self._fresh(origin_of(url))
        if entry is None or entry.parser is None:
            return None
        delay = entry.parser.crawl_delay(self._user_agent)
        try:
            return float(delay) if delay is not None else None
        except (TypeError, ValueError):
            return None

    def _fresh(self, origin: str) -> _Entry | None:
        with self._mutex:
            entry = self._entries.get(origin)
        return entry if entry is not None and entry.expires > time.monotonic() else None

    async def _load(self, origin: str, fetch_robots: FetchRobots, allow_private: bool) -> _Entry:
        with self._mutex:
            self.fetches += 1
        result = await fetch_robots(origin + "/robots.txt", allow_private)
        now = time.monotonic()
        if result.failure is not None or result.body is None:
            # 4xx (no robots.txt) means no restrictions (RFC 9309 2.3.1.3). For 5xx, timeouts and
            # connection errors RFC 9309 suggests assuming "disallow all"; we deliberately allow instead:
            # the page request that follows goes to the same broken server and fails (and is retried on a
            # later run) rather than being recorded as a permanent robots_disallowed, and a flaky
            # robots.txt must not silently stop a whole source. An unreachable one is asked for again soon.
            status = result.status or 0
            unreachable = not 400 <= status < 500
            return _Entry(None, now + (self._unreachable_retry_s if unreachable else self._max_age_s))
        parser = RobotFileParser()
        parser.parse(result.body.decode("utf-8", errors="replace").splitlines())
        # can_fetch() answers False until the parser is marked as read; parse() alone does not do that.
        parser.modified()
        return _Entry(parser, now + self._max_age_s)
