"""The fetcher: polite, bounded, SSRF-guarded HTTP fetching of pages, feeds and sitemaps, plus local mirrors."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import mimetypes
import os
import re
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx

from ingest import netguard
from ingest.errors import NewsflowError, TerminalError
from ingest.models import Failure, FetchRequest, FetchResult
from ingest.politeness import HostClocks
from ingest.robots import RobotsCache
from ingest.settings import FetchSettings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Failure reasons worth another attempt within the same run (after a short backoff).
_INLINE_RETRY_REASONS = frozenset({"timeout", "connect_error", "network_error", "http_408"})

_ACCEPT = {
    "article": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
    "feed": "application/rss+xml,application/atom+xml,application/xml;q=0.9,text/xml;q=0.9,*/*;q=0.1",
    "sitemap": "application/xml,text/xml;q=0.9,*/*;q=0.1",
    "robots": "text/plain,*/*;q=0.1",
}

# The SSRF policy of the connection being opened by the current task. The Fetcher sets these around each
# request; the network backend below reads them when httpcore opens a new connection (in the same task).
_allow_private: contextvars.ContextVar[bool] = contextvars.ContextVar("newsflow_allow_private", default=False)
_pinned: contextvars.ContextVar[tuple[str, tuple[str, ...]] | None] = contextvars.ContextVar(
    "newsflow_pinned_ips", default=None
)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Network backend that connects only to addresses checked by the SSRF guard (no DNS rebinding window)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the already-checked addresses of `host`, resolving and checking them if needed."""
        pinned = _pinned.get()
        if pinned is not None and pinned[0] == host:
            ips = list(pinned[1])
        else:
            ips = await asyncio.to_thread(netguard.check_host, host, port, _allow_private.get())
        # Connecting to the checked IP (TLS still uses the host name for SNI and certificate checks)
        # means a second, different DNS answer can never redirect us to an unchecked address.
        last: Exception | None = None
        for ip in ips:
            try:
                return await self._inner.connect_tcp(
                    ip, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets are never used by the fetcher."""
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        """Delegate to the wrapped backend."""
        await self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for all Fetchers (loading the CA bundle takes tens of milliseconds)."""
    return httpx.create_ssl_context(trust_env=False)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx transport whose connection pool uses the guarded network backend."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False, limits=limits)
        # httpx offers no public hook for a network backend, so the pool is rebuilt the way httpx builds it.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_GuardedBackend(httpcore.AnyIOBackend()),
        )


class FetchSession:
    """Politeness state of one run, shared by every Fetcher of the run: robots.txt per origin (kept until it
    expires) and each host's request clock (one request in flight, the delay between request starts).

    Create one per run and pass it to every `fetch_all` call: batches then continue where the previous one
    left off instead of asking for robots.txt again and sending their first request without the delay.
    Thread-safe, and usable from any number of event loops at once (fetch tasks running concurrently).

    Pickling keeps only a token: in the process that created it, unpickling returns the same session; in
    another process (a Dask worker) it returns that process's session for the same run, created on first
    use. So with NEWSFLOW_TASK_RUNNER=dask, politeness holds per worker process, not across workers.
    """

    _registry: dict[str, FetchSession] = {}
    _registry_lock = threading.Lock()
    _REGISTRY_SIZE = 16  # sessions of the most recent runs a (worker) process keeps
    _ids = itertools.count()

    def __init__(self, user_agent: str, token: str | None = None) -> None:
        self.token = token or f"{os.getpid()}-{next(self._ids)}-{time.time_ns()}"
        self.user_agent = user_agent
        self.robots = RobotsCache(user_agent)
        self.hosts = HostClocks()
        with self._registry_lock:
            self._registry[self.token] = self
            while len(self._registry) > self._REGISTRY_SIZE:
                del self._registry[next(iter(self._registry))]

    @classmethod
    def for_token(cls, token: str, user_agent: str) -> FetchSession:
        """This process's session for `token` (the unpickling side)."""
        with cls._registry_lock:
            found = cls._registry.get(token)
        return found if found is not None else cls(user_agent, token)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (FetchSession.for_token, (self.token, self.user_agent))


class _BoundedDecoder:
    """Content-Encoding decoder that never produces more than the caller's room (gzip bombs stay small)."""

    def __init__(self, encodings: list[str], url: str) -> None:
        if len(encodings) > 1 or (encodings and encodings[0] not in ("gzip", "x-gzip", "deflate")):
            # We only advertise gzip and deflate, so anything else is a misbehaving server.
            raise TerminalError(
                f"unsupported Content-Encoding {', '.join(encodings)} from {url}", reason="unsupported_encoding"
            )
        self._url = url
        self._deflate = bool(encodings) and encodings[0] == "deflate"
        self._first = True
        self._z: Any = None
        if encodings:
            self._z = zlib.decompressobj(zlib.MAX_WBITS if self._deflate else 16 + zlib.MAX_WBITS)

    def decode(self, data: bytes, room: int) -> bytes:
        """Decode `data`, returning at most `room` bytes (callers pass limit+1 to detect overflow)."""
        if self._z is None:
            return data
        if self._z.eof:
            return b""  # trailing garbage after the compressed stream is ignored
        try:
            out = self._z.decompress(data, room)
        except zlib.error as e:
            # "deflate" is sent both zlib-wrapped (per the RFC) and raw (by some servers).
            if not (self._deflate and self._first):
                raise TerminalError(f"corrupt compressed body from {self._url}: {e}", reason="bad_encoding") from None
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._decode_raw(data, room)
        self._first = False
        return out

    def _decode_raw(self, data: bytes, room: int) -> bytes:
        try:
            return self._z.decompress(data, room)
        except zlib.error as e:
            raise TerminalError(f"corrupt compressed body from {self._url}: {e}", reason="bad_encoding") from None

    def flush(self, room: int) -> bytes:
        """Whatever the decompressor still buffers, at most `room` bytes."""
        if self._z is None or self._z.eof:
            return b""
        try:
            return self._z.flush(max(room, 1))
        except zlib.error:
            return b""  # a truncated stream keeps what was decoded so far


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_markup_type(content_type: str | None) -> bool:
    """True for HTML/XML media types (and for a missing Content-Type, which the clean stage sniffs)."""
    mt = _media_type(content_type)
    return mt in ("", "text/html", "application/xhtml+xml") or mt.endswith("/xml") or mt.endswith("+xml")


def _sniff_type(head: bytes) -> str:
    """Guess a content type from the first bytes of an extension-less file."""
    h = head.lstrip()[:512].lower()
    if h.startswith(b"<?xml") or h.startswith(b"<rss") or h.startswith(b"<feed") or h.startswith(b"<urlset"):
        return "application/xml"
    if h.startswith(b"<") or b"<html" in h:
        return "text/html"
    return "application/octet-stream"


class Fetcher:
    """Fetches URLs politely (robots.txt, per-host delay, concurrency limits) with hard size and time caps.

    One Fetcher belongs to one event loop (it holds a semaphore and an httpx client): create it inside the
    loop that uses it, or use `fetch_all` from synchronous code. Politeness lives in `session`, which may be
    shared by many Fetchers (a run's batches); without one, the Fetcher has its own.
    """

    def __init__(
        self, settings: FetchSettings, mirrors: dict[str, str] | None = None, session: FetchSession | None = None
    ) -> None:
        self.settings = settings
        self.session = session if session is not None else FetchSession(settings.user_agent)
        # Longest prefix first, so a more specific mirror wins.
        self._mirrors: list[tuple[str, Path]] = sorted(
            ((prefix, Path(d).resolve()) for prefix, d in (mirrors or {}).items()),
            key=lambda m: len(m[0]),
            reverse=True,
        )
        conc = max(1, settings.max_concurrency)
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(
                httpx.Limits(max_connections=conc * 2, max_keepalive_connections=conc, keepalive_expiry=5.0)
            ),
            timeout=httpx.Timeout(
                connect=settings.connect_timeout_s,
                read=settings.read_timeout_s,
                write=settings.read_timeout_s,
                pool=settings.total_timeout_s,
            ),
            follow_redirects=False,  # each hop is checked by the SSRF guard and robots.txt
            trust_env=False,  # an environment proxy would bypass the SSRF guard
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        )
        self._sem = asyncio.Semaphore(conc)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    async def fetch(self, req: FetchRequest) -> FetchResult:
        """Fetch one URL; never raises for network or HTTP problems (they become `result.failure`)."""
        start = time.monotonic()
        try:
            result = await self._fetch_with_retries(req)
        except Exception as e:  # a bug must not take a whole batch down; it is recorded like any failure
            result = self._failed(req, req.url, "unexpected_error", f"{type(e).__name__}: {e}", retryable=True)
        result.elapsed_ms = (time.monotonic() - start) * 1000.0
        return result

    async def fetch_many(
        self, reqs: list[FetchRequest], progress: Callable[[FetchResult], None] | None = None
    ) -> list[FetchResult]:
        """Fetch all requests concurrently (within the limits); results in the same order as `reqs`."""

        async def one(r: FetchRequest) -> FetchResult:
            res = await self.fetch(r)
            if progress is not None:
                progress(res)
            return res

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(r)) for r in reqs]
        return [t.result() for t in tasks]

    # -- retries -----------------------------------------------------------------------------------

    async def _fetch_with_retries(self, req: FetchRequest) -> FetchResult:
        s = self.settings
        retries = 0
        waited = False
        while True:
            result = await self._fetch_once(req)
            f = result.failure
            if f is None or not f.retryable:
                return result
            if f.retry_after_s is not None:
                # The server said when to come back: wait once if that is soon, else leave it to a later run.
                # The host's next start was already pushed back, so the retry waits in the politeness slot.
                if not waited and f.retry_after_s <= s.max_inline_wait_s:
                    waited = True
                    continue
                return result
            if (f.reason in _INLINE_RETRY_REASONS or f.reason.startswith("http_5")) and retries < s.inline_retries:
                retries += 1
                await asyncio.sleep(s.retry_backoff_s * 2 ** (retries - 1))
                continue
            return result

    # -- one attempt: local file or redirect chain ---------------------------------------------------

    async def _fetch_once(self, req: FetchRequest, allow_private: bool | None = None) -> FetchResult:
        try:
            local = self._local_path(req)
        except NewsflowError as e:
            return self._failed(req, req.url, e.reason, str(e), retryable=e.retryable)
        if local is not None:
            return await asyncio.to_thread(self._read_local, req, local)
        return await self._fetch_http(req, allow_private)

    async def _fetch_http(self, req: FetchRequest, allow_private: bool | None) -> FetchResult:
        s = self.settings
        url = req.url
        chain: list[str] = []
        public_seen = False
        origin: tuple[int, list[str]] | None = None  # port and addresses of the first hop
        for hop in range(s.max_redirects + 1):
            chain.append(url)
            try:
                host, port = netguard.url_host_port(url)
                # Private targets are fine for a user-configured URL and for redirects that never left
                # private hosts; once a public host was involved, only allow_private_addresses permits them.
                user_ok = req.user_configured if allow_private is None else allow_private
                allow = s.allow_private_addresses or (user_ok and not public_seen)
                ips = await asyncio.to_thread(netguard.check_host, host, port, allow)
                if origin is None:
                    origin = (port, ips)
                elif allow and not s.allow_private_addresses and not _same_endpoint(origin, port, ips):
                    # The user trusted one endpoint (host:port), not every private address it may redirect
                    # to: a redirect to another private host or port (10.0.0.1, 169.254.169.254, a local
                    # admin port) is refused before any connection, like a link to it would be.
                    blocked = [ip for ip in ips if not netguard.is_public_address(ip)]
                    if blocked:
                        raise TerminalError(
                            f"refused redirect from {chain[0]} to {url}: {host!r} resolves to non-public address "
                            f"{', '.join(blocked)}, which is not the configured host",
                            reason="ssrf_blocked",
                        )
            except NewsflowError as e:
                return self._failed(req, url, e.reason, str(e), retryable=e.retryable)
            public_seen = public_seen or any(netguard.is_public_address(ip) for ip in ips)
            if s.respect_robots and req.kind != "robots" and not await self.session.robots.allowed(url, self._fetch_robots_txt, allow):
                return self._failed(req, url, "robots_disallowed", f"robots.txt disallows {url}", retryable=False)
            result, location = await self._exchange(req, url, host, ips, allow, hop)
            if location is None:
                return result
            nxt = urljoin(url, location)
            if urlsplit(nxt).scheme.lower() not in netguard.ALLOWED_SCHEMES:
                # Never let a server redirect us to file:// or other schemes.
                return self._failed(
                    req, url, "unsupported_scheme", f"redirect from {url} to unsupported URL {nxt}", status=result.status
                )
            if nxt in chain:
                return self._failed(
                    req,
                    url,
                    "too_many_redirects",
                    f"redirect loop: {' -> '.join(chain + [nxt])}",
                    status=result.status,
                )
            url = nxt
        return self._failed(
            req,
            url,
            "too_many_redirects",
            f"more than {s.max_redirects} redirects starting at {req.url}",
            status=result.status,
        )

    def _delay_s(self, url: str) -> float:
        """Seconds between request starts on the URL's host: ours, or robots.txt's Crawl-delay when longer."""
        delay = self.settings.per_host_delay_s
        if self.settings.respect_robots:
            delay = max(delay, self.session.robots.crawl_delay(url) or 0.0)
        return delay

    async def _exchange(
        self, req: FetchRequest, url: str, host: str, ips: list[str], allow: bool, hop: int
    ) -> tuple[FetchResult, str | None]:
        """One HTTP request in the host's politeness slot; returns (result, redirect location or None)."""
        s = self.settings
        clock = self.session.hosts.get(host)
        async with clock.lock:  # at most one request in flight per host, across the run's batches and threads
            wait = clock.wait_s(self._delay_s(url))
            if wait > 0:
                await asyncio.sleep(wait)
            async with self._sem:
                clock.last_start = time.monotonic()
                tok_allow = _allow_private.set(allow)
                tok_pin = _pinned.set((host, tuple(ips)))
                try:
                    async with asyncio.timeout(s.total_timeout_s):
                        result, location = await self._send(req, url, hop)
                except TimeoutError:
                    result, location = (
                        self._failed(
                            req,
                            url,
                            "timeout",
                            f"no complete response from {url} within {s.total_timeout_s:g} s",
                            retryable=True,
                        ),
                        None,
                    )
                finally:
                    _allow_private.reset(tok_allow)
                    _pinned.reset(tok_pin)
            ra = result.failure.retry_after_s if result.failure else None
            if ra is not None and ra <= s.max_inline_wait_s:
                # Honour Retry-After for every request to this host, not only the one that got it.
                clock.not_before = max(clock.not_before, time.monotonic() + ra)
        return result, location

    async def _send(self, req: FetchRequest, url: str, hop: int) -> tuple[FetchResult, str | None]:
        headers = {"Accept": _ACCEPT.get(req.kind, "*/*")}
        if req.conditional:
            if req.etag:
                headers["If-None-Match"] = req.etag
            if req.last_modified:
                headers["If-Modified-Since"] = req.last_modified
        try:
            response = await self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
        except NewsflowError as e:  # raised by the guarded backend (ssrf_blocked, dns_error)
            return self._failed(req, url, e.reason, str(e), retryable=e.retryable), None
        except httpx.TimeoutException as e:
            what = "connecting to" if isinstance(e, httpx.ConnectTimeout) else "waiting for"
            return self._failed(req, url, "timeout", f"timed out {what} {url}", retryable=True), None
        except httpx.ConnectError as e:
            return self._failed(req, url, "connect_error", f"cannot connect to {url}: {e}", retryable=True), None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            return self._failed(req, url, "bad_url", f"invalid URL {url}: {e}", retryable=False), None
        except httpx.TransportError as e:
            return self._failed(req, url, "network_error", f"{type(e).__name__} from {url}: {e}", retryable=True), None
        try:
            return await self._handle_response(req, url, response)
        finally:
            await response.aclose()

    async def _handle_response(
        self, req: FetchRequest, url: str, response: httpx.Response
    ) -> tuple[FetchResult, str | None]:
        status = response.status_code
        meta: dict[str, Any] = {
            "status": status,
            "etag": response.headers.get("etag"),
            "last_modified": response.headers.get("last-modified"),
            "content_type": response.headers.get("content-type"),
        }
        if status in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                return self._failed(req, url, "bad_redirect", f"HTTP {status} without Location from {url}", **meta), None
            return self._result(req, url, **meta), location
        if status == 304:
            # Keep the stored validators when the 304 does not repeat them.
            meta["etag"] = meta["etag"] or req.etag
            meta["last_modified"] = meta["last_modified"] or req.last_modified
            return self._result(req, url, not_modified=True, **meta), None
        if not 200 <= status < 300:
            return self._status_failure(req, url, response, meta), None
        if req.kind == "article" and not is_markup_type(meta["content_type"]):
            return (
                self._failed(
                    req,
                    url,
                    "unsupported_content_type",
                    f"content type {_media_type(meta['content_type'])} from {url} is not HTML or XML",
                    **meta,
                ),
                None,
            )
        try:
            body = await self._read_body(response, url)
        except NewsflowError as e:
            return self._failed(req, url, e.reason, str(e), retryable=e.retryable, **meta), None
        except httpx.TimeoutException:
            return self._failed(req, url, "timeout", f"timed out reading the body of {url}", retryable=True, **meta), None
        except httpx.TransportError as e:
            return (
                self._failed(req, url, "network_error", f"{type(e).__name__} reading {url}: {e}", retryable=True, **meta),
                None,
            )
        return self._result(req, url, body=body, **meta), None

    def _status_failure(self, req: FetchRequest, url: str, response: httpx.Response, meta: dict[str, Any]) -> FetchResult:
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
        if status in (404, 410):
            retryable = False
            detail = f"HTTP {status} ({'not found' if status == 404 else 'gone'}) from {url}"
        else:
            # Client errors will not change by retrying, except timeouts (408) and rate limits (429).
            retryable = status >= 500 or status in (408, 429)
            detail = f"HTTP {status} from {url}"
        if retry_after is not None:
            detail += f" (Retry-After {retry_after:g} s)"
        return self._failed(req, url, f"http_{status}", detail, retryable=retryable, retry_after_s=retry_after, **meta)

    async def _read_body(self, response: httpx.Response, url: str) -> bytes:
        """Stream the body, decoding gzip/deflate ourselves so the cap applies to the decoded bytes."""
        limit = self.settings.max_body_bytes
        encodings = [
            e.strip().lower()
            for e in response.headers.get("content-encoding", "").split(",")
            if e.strip() and e.strip().lower() != "identity"
        ]
        too_large = TerminalError(f"body exceeded {limit} bytes from {url}", reason="too_large")
        if not encodings:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise too_large  # refuse early, without downloading anything
        decoder = _BoundedDecoder(encodings, url)
        buf = bytearray()
        async for chunk in response.aiter_raw():
            buf += decoder.decode(chunk, limit - len(buf) + 1)
            if len(buf) > limit:
                raise too_large
        buf += decoder.flush(limit - len(buf) + 1)
        if len(buf) > limit:
            raise too_large
        return bytes(buf)

    # -- robots.txt ----------------------------------------------------------------------------------

    async def _fetch_robots_txt(self, url: str, allow_private: bool) -> FetchResult:
        # One attempt, no inline retries: a failing robots.txt means "allow" (see RobotsCache).
        req = FetchRequest(url=url, source="robots", kind="robots", conditional=False)
        return await self._fetch_once(req, allow_private=allow_private)

    # -- mirrors and file:// URLs --------------------------------------------------------------------

    def _local_path(self, req: FetchRequest) -> Path | None:
        """The file that serves `req.url` (mirror prefix or file:// URL), or None for a network fetch."""
        url = req.url
        for prefix, root in self._mirrors:
            if url.startswith(prefix) and (
                prefix.endswith("/") or len(url) == len(prefix) or url[len(prefix)] in "/?#"
            ):
                rest = re.split(r"[?#]", url[len(prefix) :], maxsplit=1)[0]
                return _confine(root, unquote(rest), url)
        if url[:5].lower() != "file:":
            return None
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise TerminalError(f"file URL with a remote host is not supported: {url}", reason="bad_url")
        raw = unquote(parts.path)
        if "\x00" in raw or not raw.startswith("/"):
            raise TerminalError(f"invalid file URL {url}", reason="bad_url")
        path = Path(raw).resolve()
        in_mirror = any(path.is_relative_to(root) for _, root in self._mirrors)
        # A file:// link found in a feed may read any file only when allow_file_links (discovery is then the gate).
        if not (req.user_configured or in_mirror or self.settings.allow_file_links):
            raise TerminalError(
                f"refused file URL {url}: not user-configured and not inside a mirror directory",
                reason="file_url_refused",
            )
        if raw.endswith("/") or path.is_dir():
            path = path / "index.html"
        return path

    def _read_local(self, req: FetchRequest, path: Path) -> FetchResult:
        """Serve a request from a local file with HTTP-like semantics (ETag, Last-Modified, 304, 404)."""
        url = req.url
        try:
            st = path.stat()
        except OSError:
            st = None
        if st is None or not path.is_file():
            return self._failed(req, url, "http_404", f"no file {path} for {url}", status=404)
        etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        last_modified = formatdate(st.st_mtime, usegmt=True)
        meta: dict[str, Any] = {"status": 200, "etag": etag, "last_modified": last_modified}
        if req.conditional and _unchanged(req, etag, st.st_mtime):
            return self._result(req, url, not_modified=True, **{**meta, "status": 304})
        limit = self.settings.max_body_bytes
        if st.st_size > limit:
            return self._failed(req, url, "too_large", f"body exceeded {limit} bytes ({path})", **meta)
        try:
            body = path.read_bytes()
        except OSError as e:
            return self._failed(req, url, "file_error", f"cannot read {path}: {e}", retryable=True, status=0)
        if len(body) > limit:  # the file grew since stat()
            return self._failed(req, url, "too_large", f"body exceeded {limit} bytes ({path})", **meta)
        meta["content_type"] = mimetypes.guess_type(path.name)[0] or _sniff_type(body[:1024])
        if req.kind == "article" and not is_markup_type(meta["content_type"]):
            return self._failed(
                req, url, "unsupported_content_type", f"content type {meta['content_type']} of {path} is not HTML or XML", **meta
            )
        return self._result(req, url, body=body, **meta)

    # -- result helpers ------------------------------------------------------------------------------

    def _result(self, req: FetchRequest, final_url: str, **kw: Any) -> FetchResult:
        return FetchResult(url=req.url, source=req.source, kind=req.kind, final_url=final_url, **kw)

    def _failed(
        self,
        req: FetchRequest,
        final_url: str,
        reason: str,
        detail: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        **kw: Any,
    ) -> FetchResult:
        failure = Failure(
            url=req.url,
            source=req.source,
            stage="fetch",
            reason=reason,
            detail=detail,
            retryable=retryable,
            retry_after_s=retry_after_s,
        )
        return self._result(req, final_url, failure=failure, **kw)


def _same_endpoint(origin: tuple[int, list[str]], port: int, ips: list[str]) -> bool:
    """True when (port, ips) reaches the same server as the first hop: same port, and the same addresses
    (any loopback address counts as the same machine, so 127.0.0.1 -> localhost stays allowed)."""
    o_port, o_ips = origin
    if port != o_port or not ips:
        return False
    if set(ips) <= set(o_ips):
        return True
    def loopback(x: str) -> bool:
        a = netguard.ip_literal(x)
        return a is not None and (a.is_loopback or (getattr(a, "ipv4_mapped", None) is not None and a.ipv4_mapped.is_loopback))
    return all(loopback(i) for i in ips) and all(loopback(i) for i in o_ips)


def _confine(root: Path, rel: str, url: str) -> Path:
    """root/rel (index.html for directories), refusing any path that escapes root."""
    rel = rel.lstrip("/")
    if rel == "" or rel.endswith("/"):
        rel += "index.html"
    try:
        if "\x00" in rel:
            raise ValueError("NUL byte in path")
        target = (root / rel).resolve()
    except (OSError, ValueError) as e:
        raise TerminalError(f"invalid mirror path for {url}: {e}", reason="path_traversal") from None
    # resolve() also follows symlinks, so a link pointing out of the mirror is refused as well.
    if not target.is_relative_to(root):
        raise TerminalError(f"{url} maps outside the mirror directory {root}", reason="path_traversal")
    if target.is_dir():
        target = target / "index.html"
    return target


def _unchanged(req: FetchRequest, etag: str, mtime: float) -> bool:
    """Conditional-GET check for local files: If-None-Match wins over If-Modified-Since (RFC 9110)."""
    if req.etag:
        tags = {t.strip().removeprefix("W/") for t in req.etag.split(",")}
        return etag in tags or "*" in tags
    if req.last_modified:
        try:
            since = parsedate_to_datetime(req.last_modified)
        except (TypeError, ValueError, IndexError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        return int(mtime) <= since.timestamp()
    return False


def fetch_all(
    reqs: list[FetchRequest],
    settings: FetchSettings,
    mirrors: dict[str, str] | None = None,
    progress: Callable[[FetchResult], None] | None = None,
    session: FetchSession | None = None,
) -> list[FetchResult]:
    """Synchronous wrapper: fetch all requests with a fresh Fetcher (not callable from a running event loop).

    Pass the run's `session` so robots.txt and per-host delays carry over from earlier calls (and hold
    against calls running at the same time in other threads); without one, politeness starts afresh.
    """

    async def run() -> list[FetchResult]:
        async with Fetcher(settings, mirrors, session) as fetcher:
            return await fetcher.fetch_many(reqs, progress)

    return asyncio.run(run())
