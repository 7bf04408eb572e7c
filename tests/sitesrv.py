"""A loopback HTTP/1.1 test server for the whole test suite: static files, mutable pages and misbehaviours.

Usage::

    with SiteServer(root=tmp_path) as site:          # or the `site` fixture from conftest.py
        site.set_file("/feed.xml", xml, content_type="application/rss+xml")
        site.route("/boom", Response(status=500))
        site.fail_then_succeed("/flaky", failures=1)
        url = site.url("/feed.xml")                    # "http://127.0.0.1:PORT/feed.xml"
        ...
        assert site.hits("/flaky") == 2
        assert site.requests[-1].header("If-None-Match") == '"…"'

Lookup order for a request path (query string ignored): routes (exact path, then the longest
"/prefix/*" route) -> files set with set_file() -> files under `root` -> 404.
Static and set_file content carries a strong ETag (hash of the body) and Last-Modified, and answers
If-None-Match / If-Modified-Since with 304. Only 127.0.0.1 is ever bound; nothing is logged to stderr.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import mimetypes
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

__all__ = ["Request", "RequestRecord", "Response", "SiteServer", "gzip_bomb_body"]


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it. `headers` keys are lower-case; `time` is time.monotonic()."""

    method: str
    path: str  # path with query string, as sent
    headers: dict[str, str]
    status: int
    time: float

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header, case-insensitively."""
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class Request:
    """What a route handler receives. `count` is how many requests this route has had, including this one."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case keys
    count: int

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header, case-insensitively."""
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    """A canned or computed response.

    body: bytes/str sent with Content-Length, or an iterable of byte chunks sent with chunked encoding
    (generated lazily, so huge or endless bodies cost no memory). delay: seconds before the status line.
    chunk_delay: seconds between chunks of an iterable body. content_length: force a Content-Length header
    for an iterable body (e.g. a lazily generated huge body that announces its size).
    """

    status: int = 200
    body: bytes | str | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "text/html; charset=utf-8"
    delay: float = 0.0
    chunk_delay: float = 0.0
    content_length: int | None = None


Handler = Callable[[Request], Response]


@dataclass
class _File:
    body: bytes
    content_type: str
    last_modified: float
    etag: str


@functools.cache
def gzip_bomb_body(decoded_size: int = 128 * 1024 * 1024) -> bytes:
    """A gzip stream of `decoded_size` zero bytes (~1000:1 ratio), computed once per size and cached."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz:
        block = bytes(1024 * 1024)
        left = decoded_size
        while left > 0:
            n = min(left, len(block))
            gz.write(block[:n])
            left -= n
    return out.getvalue()


def _etag_for(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    site: SiteServer

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hang up on trickles and huge bodies on purpose; those tracebacks are noise.
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body waits for the
    # client's delayed ACK (~40 ms per response on loopback), as no production web server would.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet server
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.server.site._handle(self, head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self.server.site._handle(self, head=True)


class SiteServer:
    """Threaded HTTP/1.1 server on 127.0.0.1 (ephemeral port); use as a context manager or start()/stop()."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root.resolve() if root is not None else None
        self._lock = threading.Lock()
        self._log: list[RequestRecord] = []
        self._routes: dict[str, Handler] = {}
        self._route_counts: dict[str, int] = {}
        self._files: dict[str, _File] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> SiteServer:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        server = _Server(("127.0.0.1", 0), _RequestHandler)
        server.site = self
        self._server = server
        host, port = server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; endless responses notice within one chunk interval."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """host:port, e.g. for building URLs by hand."""
        return self.base_url.removeprefix("http://")

    def url(self, path: str = "/") -> str:
        """Absolute URL of `path` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def route(self, path: str, handler_or_response: Handler | Response) -> None:
        """Serve `path` dynamically; a path ending in "*" is a prefix route. Replaces an earlier route."""
        handler = handler_or_response
        if isinstance(handler_or_response, Response):
            resp = handler_or_response
            handler = lambda _req: resp  # noqa: E731
        with self._lock:
            self._routes[path] = handler  # type: ignore[assignment]
            self._route_counts[path] = 0

    def unroute(self, path: str) -> None:
        """Remove a dynamic route."""
        with self._lock:
            self._routes.pop(path, None)

    def set_file(
        self,
        path: str,
        body: bytes | str,
        content_type: str | None = None,
        last_modified: float | None = None,
    ) -> None:
        """Set (or replace) the content at `path`; ETag/Last-Modified change with it. last_modified: epoch secs."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        ctype = content_type or mimetypes.guess_type(path)[0] or "text/html; charset=utf-8"
        with self._lock:
            self._files[path] = _File(data, ctype, time.time() if last_modified is None else last_modified, _etag_for(data))

    def remove_file(self, path: str) -> None:
        """Forget content set with set_file (the path then falls through to root or 404)."""
        with self._lock:
            self._files.pop(path, None)

    # -- built-in behaviours -------------------------------------------------------------------------

    def set_robots(self, text: str) -> None:
        """Serve `text` as /robots.txt."""
        self.set_file("/robots.txt", text, content_type="text/plain; charset=utf-8")

    def status(self, path: str, status: int, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        """Answer `path` with a fixed status (e.g. 404, 410, 500, 503)."""
        self.route(path, Response(status=status, body=body or f"status {status}", headers=dict(headers or {})))

    def fail_then_succeed(
        self, path: str, failures: int = 1, status: int = 500, body: bytes | str = "<html><body>ok</body></html>"
    ) -> None:
        """Answer the first `failures` requests with `status`, later ones with 200 and `body`."""

        def handler(req: Request) -> Response:
            if req.count <= failures:
                return Response(status=status, body=f"failure {req.count}")
            return Response(body=body)

        self.route(path, handler)

    def retry_after(self, path: str, retry_after: str | int | float, status: int = 429, then: bytes | str | None = None) -> None:
        """Answer with `status` and Retry-After; with `then`, only the first request fails and later ones get 200."""

        def handler(req: Request) -> Response:
            if then is not None and req.count > 1:
                return Response(body=then)
            return Response(status=status, body="slow down", headers={"Retry-After": str(retry_after)})

        self.route(path, handler)

    def trickle(self, path: str, interval: float = 0.05, chunk: bytes = b"<p>.</p>\n") -> None:
        """An endless 200 response sending `chunk` every `interval` seconds (until the client hangs up)."""

        def body() -> Iterator[bytes]:
            while not self._stopping.is_set():
                yield chunk

        self.route(path, lambda _req: Response(body=body(), chunk_delay=interval))

    def slow(self, path: str, delay: float, body: bytes | str = "<html><body>late</body></html>") -> None:
        """Wait `delay` seconds before sending the status line (for read timeouts)."""
        self.route(path, Response(body=body, delay=delay))

    def huge(self, path: str, size: int = 50 * 1024 * 1024, announce_length: bool = False) -> None:
        """A `size`-byte body generated lazily (chunked, or with Content-Length when announce_length)."""

        def body() -> Iterator[bytes]:
            block = b"<p>" + b"x" * (64 * 1024 - 8) + b"</p>\n\n"
            left = size
            while left > 0 and not self._stopping.is_set():
                piece = block[: min(left, len(block))]
                left -= len(piece)
                yield piece

        self.route(path, lambda _req: Response(body=body(), content_length=size if announce_length else None))

    def gzip_bomb(self, path: str, decoded_size: int = 128 * 1024 * 1024) -> None:
        """A few hundred KB labelled Content-Encoding: gzip that decompress to `decoded_size` bytes."""
        bomb = gzip_bomb_body(decoded_size)
        self.route(path, Response(body=bomb, headers={"Content-Encoding": "gzip"}))

    def redirect(self, path: str, to: str, status: int = 302) -> None:
        """Redirect `path` to `to` (absolute URL or path)."""
        self.route(path, Response(status=status, body=b"", headers={"Location": to}))

    def redirect_loop(self, a: str, b: str) -> None:
        """`a` redirects to `b` and `b` back to `a`."""
        self.redirect(a, b)
        self.redirect(b, a)

    def redirect_chain(self, prefix: str, n: int, final_body: bytes | str = "<html><body>end</body></html>") -> str:
        """prefix/0 -> prefix/1 -> ... -> prefix/n (200). Returns the first path; n redirects in total."""
        prefix = prefix.rstrip("/")

        def handler(req: Request) -> Response:
            i = int(req.path.rsplit("/", 1)[1])
            if i >= n:
                return Response(body=final_body)
            return Response(status=302, headers={"Location": f"{prefix}/{i + 1}"})

        self.route(prefix + "/*", handler)
        return f"{prefix}/0"

    def binary_html(self, path: str, size: int = 4096) -> bytes:
        """Random-looking binary bytes labelled text/html; returns the body."""
        data = hashlib.sha256(path.encode()).digest()
        body = (data * (size // len(data) + 1))[:size]
        body = b"\x00\xff" + body[2:]
        self.route(path, Response(body=body, content_type="text/html"))
        return body

    # -- log -----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def requests_for(self, path_prefix: str) -> list[RequestRecord]:
        """Logged requests whose path starts with `path_prefix`."""
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    def hits(self, path_prefix: str) -> int:
        """Number of requests whose path starts with `path_prefix`."""
        return len(self.requests_for(path_prefix))

    def clear_log(self) -> None:
        """Forget logged requests."""
        with self._lock:
            self._log.clear()

    # -- request handling (server threads) ------------------------------------------------------------

    def _handle(self, h: _RequestHandler, head: bool) -> None:
        arrived = time.monotonic()
        parts = urlsplit(h.path)
        path = unquote(parts.path) or "/"
        headers = {k.lower(): v for k, v in h.headers.items()}
        resp = self._dispatch(h.command, path, parts.query, headers)
        with self._lock:
            self._log.append(RequestRecord(h.command, h.path, headers, resp.status, arrived))
        try:
            self._send(h, resp, head)
        except (ConnectionError, TimeoutError, OSError):
            h.close_connection = True

    def _dispatch(self, method: str, path: str, query: str, headers: dict[str, str]) -> Response:
        with self._lock:
            key = path if path in self._routes else None
            if key is None:
                prefixes = [p for p in self._routes if p.endswith("*") and path.startswith(p[:-1])]
                key = max(prefixes, key=len) if prefixes else None
            handler = self._routes.get(key) if key else None
            if key is not None:
                self._route_counts[key] = self._route_counts.get(key, 0) + 1
                count = self._route_counts[key]
            f = self._files.get(path)
        if handler is not None:
            try:
                return handler(Request(method, path, query, headers, count))
            except Exception:  # a broken handler should show up in the test, not as a hung-up connection
                return Response(status=500, body=traceback.format_exc(), content_type="text/plain")
        if f is None:
            f = self._static(path)
        if f is None:
            return Response(status=404, body="not found")
        return self._serve_file(f, headers)

    def _static(self, path: str) -> _File | None:
        if self.root is None:
            return None
        rel = path.lstrip("/")
        if rel == "" or rel.endswith("/"):
            rel += "index.html"
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root):
            return None
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return None
        data = target.read_bytes()
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("xml"):
            ctype += "; charset=utf-8"
        return _File(data, ctype, target.stat().st_mtime, _etag_for(data))

    @staticmethod
    def _serve_file(f: _File, headers: dict[str, str]) -> Response:
        validators = {"ETag": f.etag, "Last-Modified": formatdate(f.last_modified, usegmt=True)}
        inm = headers.get("if-none-match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            if f.etag in tags or "*" in tags:
                return Response(status=304, body=b"", headers=validators, content_type=None)
        elif (ims := headers.get("if-modified-since")) is not None:
            try:
                if int(f.last_modified) <= parsedate_to_datetime(ims).timestamp():
                    return Response(status=304, body=b"", headers=validators, content_type=None)
            except (TypeError, ValueError):
                pass
        return Response(body=f.body, headers=validators, content_type=f.content_type)

    def _send(self, h: _RequestHandler, resp: Response, head: bool) -> None:
        if resp.delay:
            self._stopping.wait(resp.delay)
        h.send_response(resp.status)
        sent = {k.lower() for k in resp.headers}
        if resp.content_type and "content-type" not in sent:
            h.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            h.send_header(k, v)
        body = resp.body
        no_body = head or resp.status in (204, 304) or 100 <= resp.status < 200
        if isinstance(body, (bytes, str)):
            data = body.encode("utf-8") if isinstance(body, str) else body
            if resp.status not in (204, 304):
                h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if not no_body:
                h.wfile.write(data)
            return
        chunked = resp.content_length is None
        h.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(resp.content_length))))
        h.end_headers()
        if no_body:
            return
        for chunk in body:
            if not chunk:
                continue
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            h.wfile.flush()
            if resp.chunk_delay and self._stopping.wait(resp.chunk_delay):
                break
        if chunked:
            h.wfile.write(b"0\r\n\r\n")
        else:
            h.close_connection = True  # a body cut short cannot keep the connection usable
