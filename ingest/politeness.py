"""Per-host politeness that outlives one event loop: a host's request clock and a lock usable from any thread.

`fetch_all` runs each batch in its own `asyncio.run` (one event loop per call, often in a worker thread),
so politeness state that must hold for a whole run (the per-host delay, one request in flight per host)
cannot use asyncio primitives, which belong to one loop. `SharedLock` is an asyncio-style lock that any
number of event loops in any threads can wait on; `HostClocks` keeps one `HostClock` per host with it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field


class SharedLock:
    """A FIFO mutex for coroutines running on different event loops (and threads).

    `async with lock:` waits without blocking the waiter's loop; the lock is handed to the oldest
    waiter on release, through that waiter's own loop (call_soon_threadsafe).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    async def acquire(self) -> None:
        """Wait for the lock (cancellable; a cancelled waiter never keeps the lock)."""
        loop = asyncio.get_running_loop()
        with self._mutex:
            if not self._held:
                self._held = True
                return
            fut: asyncio.Future[None] = loop.create_future()
            waiter = (loop, fut)
            self._waiters.append(waiter)
        try:
            await fut
        except asyncio.CancelledError:
            with self._mutex:
                queued = waiter in self._waiters
                if queued:
                    self._waiters.remove(waiter)
            # Handed over already: when the hand-over completed (result set) we hold the lock and give it
            # on; when it has not run yet, _grant sees the cancelled future and releases instead.
            if not queued and fut.done() and not fut.cancelled():
                self.release()
            raise

    def release(self) -> None:
        """Hand the lock to the oldest live waiter, or free it."""
        with self._mutex:
            while self._waiters:
                loop, fut = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._grant, fut)
                except RuntimeError:  # that loop is closed: its waiter is gone
                    continue
                return
            self._held = False

    def _grant(self, fut: asyncio.Future[None]) -> None:
        # Runs on the waiter's loop, so fut's state cannot change under us.
        if fut.cancelled():
            self.release()
        else:
            fut.set_result(None)

    def locked(self) -> bool:
        """True while some coroutine holds the lock."""
        with self._mutex:
            return self._held

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


@dataclass
class HostClock:
    """One host's politeness state: one request in flight (`lock`), when the last one started, and the
    earliest next start a server asked for (Retry-After). Times are time.monotonic(); read and written
    only while holding `lock`."""

    lock: SharedLock = field(default_factory=SharedLock)
    last_start: float | None = None
    not_before: float = 0.0

    def wait_s(self, delay_s: float, now: float | None = None) -> float:
        """Seconds to wait before the next request may start, `delay_s` after the last one began."""
        now = time.monotonic() if now is None else now
        due = self.not_before if self.last_start is None else max(self.not_before, self.last_start + delay_s)
        return max(0.0, due - now)


class HostClocks:
    """The HostClock of every host seen so far (thread-safe)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._clocks: dict[str, HostClock] = {}

    def get(self, host: str) -> HostClock:
        """The clock of `host` (created on first use)."""
        with self._mutex:
            clock = self._clocks.get(host)
            if clock is None:
                clock = self._clocks[host] = HostClock()
            return clock
