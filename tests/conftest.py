"""Shared fixtures (`site`, `make_site`, `socket_guard`) and a process-wide guard that keeps tests off the network.

The socket guard is installed when pytest starts and stays on for the whole session: a connect() to
anything but 127.0.0.0/8 or ::1 (or a Unix socket) raises SocketGuardError *before* any packet is sent,
and the test that tried fails even if the code under test swallowed the error. DNS lookups of names
other than localhost fail with socket.gaierror (EAI_NONAME), so code paths for DNS errors are testable
and no query ever leaves the machine.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sitesrv import SiteServer


class SocketGuardError(OSError):
    """Raised instead of connecting anywhere outside loopback."""


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _is_local_name(host: str) -> bool:
    h = host.rstrip(".").lower()
    return h == "localhost" or h.endswith(".localhost")


def _is_loopback(host: str) -> bool:
    ip = _ip(host)
    if ip is None:
        return _is_local_name(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class SocketGuard:
    """Patches socket connect/connect_ex/sendto/create_connection and name lookups; records what it saw."""

    Error = SocketGuardError

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts: list[tuple[str, Any]] = []  # every connect target, allowed or not
        self.violations: list[str] = []  # blocked connects since the last take_violations()
        self.dns_blocked: list[str] = []  # names whose lookup was refused
        self._saved: list[tuple[Any, str, Any]] = []

    # -- checks --------------------------------------------------------------------------------------

    def check_address(self, family: int, address: Any, op: str) -> None:
        """Record `address`; raise SocketGuardError unless it is loopback or a Unix socket."""
        if family == getattr(socket, "AF_UNIX", object()) or isinstance(address, (str, bytes)):
            return
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        with self._lock:
            self.attempts.append((op, address))
        if not _is_loopback(host):
            msg = f"test socket guard: {op} to {address!r} blocked (tests may only reach 127.0.0.0/8 and ::1)"
            with self._lock:
                self.violations.append(msg)
            raise SocketGuardError(msg)

    def check_name(self, host: Any) -> None:
        """Raise socket.gaierror for lookups of names that are not IP literals or localhost."""
        if host is None:
            return
        h = host.decode() if isinstance(host, bytes) else str(host)
        if h == "" or _ip(h) is not None or _is_local_name(h):
            return
        with self._lock:
            self.dns_blocked.append(h)
        raise socket.gaierror(socket.EAI_NONAME, f"test socket guard: DNS lookup of {h!r} blocked")

    def nonlocal_attempts(self) -> list[tuple[str, Any]]:
        """Connect attempts to anything but loopback (all of them were blocked)."""
        with self._lock:
            return [a for a in self.attempts if not isinstance(a[1], (str, bytes)) and not _is_loopback(str(a[1][0]))]

    def take_violations(self) -> list[str]:
        """Return and forget the recorded violations (for tests that trigger the guard on purpose)."""
        with self._lock:
            v, self.violations = self.violations, []
            return v

    def reset(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self.attempts.clear()
            self.violations.clear()
            self.dns_blocked.clear()

    # -- install -------------------------------------------------------------------------------------

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def install(self) -> None:
        """Patch the socket module (idempotent)."""
        if self._saved:
            return
        guard = self
        orig_connect = socket.socket.connect
        orig_connect_ex = socket.socket.connect_ex
        orig_sendto = socket.socket.sendto
        orig_create_connection = socket.create_connection
        orig_getaddrinfo = socket.getaddrinfo
        orig_gethostbyname = socket.gethostbyname
        orig_gethostbyname_ex = socket.gethostbyname_ex
        orig_gethostbyaddr = socket.gethostbyaddr

        def connect(self: socket.socket, address: Any) -> None:
            guard.check_address(self.family, address, "connect")
            return orig_connect(self, address)

        def connect_ex(self: socket.socket, address: Any) -> int:
            guard.check_address(self.family, address, "connect_ex")
            return orig_connect_ex(self, address)

        def sendto(self: socket.socket, data: Any, *args: Any) -> int:
            guard.check_address(self.family, args[-1], "sendto")
            return orig_sendto(self, data, *args)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
            guard.check_name(address[0])
            if _ip(str(address[0])) is not None:
                guard.check_address(socket.AF_INET, address, "create_connection")
            return orig_create_connection(address, *args, **kwargs)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            guard.check_name(host)
            return orig_getaddrinfo(host, *args, **kwargs)

        def gethostbyname(host: str) -> str:
            guard.check_name(host)
            return orig_gethostbyname(host)

        def gethostbyname_ex(host: str) -> Any:
            guard.check_name(host)
            return orig_gethostbyname_ex(host)

        def gethostbyaddr(host: str) -> Any:
            # A reverse lookup of a non-loopback address would be a DNS query too.
            if not _is_loopback(host):
                guard.check_name(host if _ip(host) is None else f"reverse:{host}")
            return orig_gethostbyaddr(host)

        self._patch(socket.socket, "connect", connect)
        self._patch(socket.socket, "connect_ex", connect_ex)
        self._patch(socket.socket, "sendto", sendto)
        self._patch(socket, "create_connection", create_connection)
        self._patch(socket, "getaddrinfo", getaddrinfo)
        self._patch(socket, "gethostbyname", gethostbyname)
        self._patch(socket, "gethostbyname_ex", gethostbyname_ex)
        self._patch(socket, "gethostbyaddr", gethostbyaddr)

    def uninstall(self) -> None:
        """Undo the patches."""
        while self._saved:
            owner, name, orig = self._saved.pop()
            setattr(owner, name, orig)


GUARD = SocketGuard()


def pytest_configure(config: pytest.Config) -> None:
    # Installed before collection, so module-level code of test files is covered too.
    GUARD.install()
    # A shell that starts pytest in the background (`nohup ... &`, a CI runner's non-interactive job)
    # starts it with SIGINT ignored, and every process a test spawns inherits that: `newsflow serve` and
    # `newsflow server` then never see the SIGINT (Ctrl-C) the schedule tests stop them with. Tests run
    # as if from a terminal: SIGINT interrupts, here and in the children (exec resets a handler, not SIG_IGN).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    GUARD.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # Fail the test when it (or its fixtures' setup) tried to leave loopback, even if the error was caught.
    try:
        return (yield)
    finally:
        violations = GUARD.take_violations()
        if violations:
            pytest.fail("network access outside loopback:\n  " + "\n  ".join(violations), pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    GUARD.reset()


@pytest.fixture
def socket_guard() -> SocketGuard:
    """The session's socket guard (its attempts/violations were reset for this test)."""
    return GUARD


@pytest.fixture
def site() -> Iterator[SiteServer]:
    """A fresh SiteServer on 127.0.0.1 (no static root; use set_file/route), stopped after the test."""
    with SiteServer() as srv:
        yield srv


@pytest.fixture
def make_site() -> Iterator[Callable[..., SiteServer]]:
    """Factory for extra SiteServers (e.g. with a static `root`); all are stopped after the test."""
    servers: list[SiteServer] = []

    def make(root: Path | None = None) -> SiteServer:
        srv = SiteServer(root).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
