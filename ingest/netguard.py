"""Server-side request forgery guard: resolve a host and refuse non-public addresses unless allowed."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ingest.errors import TerminalError, TransientError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")

# NAT64 well-known prefix: an address in it embeds (and reaches) an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def resolve(host: str, port: int) -> list[str]:
    """All IP addresses `host` resolves to (IP literals are returned as-is, without a lookup)."""
    literal = ip_literal(host)
    if literal is not None:
        return [str(literal)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise TransientError(f"cannot resolve host {host!r}: {e}", reason="dns_error") from None
    ips: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if ip not in ips:
            ips.append(ip)
    if not ips:
        raise TransientError(f"host {host!r} resolved to no addresses", reason="dns_error")
    return ips


def is_public_address(ip: str) -> bool:
    """True when `ip` is a globally routable unicast address (not private, loopback, link-local, ...)."""
    addr = ip_literal(ip)
    if addr is None:
        return False
    # Addresses that embed an IPv4 address are judged by what they really reach.
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return is_public_address(str(addr.ipv4_mapped))
        if addr.sixtofour is not None:
            return is_public_address(str(addr.sixtofour))
        if addr in _NAT64:
            return is_public_address(str(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)))
    # is_global alone lets multicast through, so every class is refused explicitly.
    return bool(
        addr.is_global
        and not addr.is_private
        and not addr.is_loopback
        and not addr.is_link_local
        and not addr.is_multicast
        and not addr.is_reserved
        and not addr.is_unspecified
    )


def check_host(host: str, port: int, allow_private: bool) -> list[str]:
    """Resolve `host` and return its addresses; TerminalError(ssrf_blocked) if any is non-public and not allowed."""
    ips = resolve(host, port)
    if not allow_private:
        # Every address is checked: a name with one public and one private record must not slip through.
        blocked = [ip for ip in ips if not is_public_address(ip)]
        if blocked:
            raise TerminalError(
                f"refused to connect to {host!r}: it resolves to non-public address {', '.join(blocked)}",
                reason="ssrf_blocked",
            )
    return ips


def url_host_port(url: str) -> tuple[str, int]:
    """The host and port an http(s) URL connects to; TerminalError for other schemes or a missing host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise TerminalError(f"unsupported URL scheme {parts.scheme!r} in {url}", reason="unsupported_scheme")
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as e:
        raise TerminalError(f"invalid URL {url}: {e}", reason="bad_url") from None
    if not host:
        raise TerminalError(f"URL has no host: {url}", reason="bad_url")
    return host, port or (443 if scheme == "https" else 80)


def check_url(url: str, allow_private: bool) -> None:
    """Raise TerminalError(reason='ssrf_blocked') when the URL's host resolves to a non-public address."""
    host, port = url_host_port(url)
    check_host(host, port, allow_private)


def all_public(ips: list[str]) -> bool:
    """True when every address in `ips` is public (used to tell a public host from a private one)."""
    return bool(ips) and all(is_public_address(ip) for ip in ips)


def ip_literal(host: str) -> IPAddress | None:
    """The address if `host` is an IP literal (brackets and zone ids tolerated), else None."""
    h = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        return None
