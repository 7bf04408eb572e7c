"""SSRF guard: address classification and URL checks (no traffic: resolution is monkeypatched or blocked)."""

from __future__ import annotations

import socket

import pytest

from ingest import netguard
from ingest.errors import TerminalError, TransientError

PUBLIC = "93.184.216.34"


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolved by a dict instead of DNS; unknown names fail like NXDOMAIN."""
    table: dict[str, list[str]] = {}
    real = netguard.resolve

    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        return real(host, port)

    monkeypatch.setattr(netguard, "resolve", resolve)
    return table


@pytest.mark.parametrize(
    "ip",
    ["10.0.0.1", "172.16.5.4", "192.168.1.1", "127.0.0.1", "127.9.9.9", "169.254.169.254", "0.0.0.0",
     "100.64.0.1", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.1",
     "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
     "2002:a00:1::", "64:ff9b::a00:1", "not-an-ip"],
)
def test_non_public_addresses(ip: str) -> None:
    assert not netguard.is_public_address(ip)


@pytest.mark.parametrize("ip", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(ip: str) -> None:
    assert netguard.is_public_address(ip)


def test_check_url_public_host_passes(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["news.example"] = [PUBLIC]
    netguard.check_url("https://news.example/a", allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://[::ffff:192.168.0.1]/",
        "http://internal.example/",
        "http://mixed.example/",
    ],
)
def test_check_url_blocks_private(url: str, fake_dns: dict[str, list[str]]) -> None:
    fake_dns["internal.example"] = ["10.1.2.3"]
    # One public and one private record: every address is checked, so this is refused too.
    fake_dns["mixed.example"] = [PUBLIC, "192.168.1.10"]
    with pytest.raises(TerminalError) as ei:
        netguard.check_url(url, allow_private=False)
    assert ei.value.reason == "ssrf_blocked"
    assert not ei.value.retryable


def test_check_url_allow_private(fake_dns: dict[str, list[str]]) -> None:
    fake_dns["intranet.example"] = ["10.1.2.3"]
    netguard.check_url("http://intranet.example/feed.xml", allow_private=True)
    netguard.check_url("http://127.0.0.1:9/", allow_private=True)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x/", "javascript:alert(1)"])
def test_check_url_rejects_other_schemes(url: str) -> None:
    with pytest.raises(TerminalError) as ei:
        netguard.check_url(url, allow_private=True)
    assert ei.value.reason == "unsupported_scheme"


def test_check_url_without_host() -> None:
    with pytest.raises(TerminalError) as ei:
        netguard.check_url("http:///path", allow_private=True)
    assert ei.value.reason == "bad_url"


def test_dns_failure_is_transient(socket_guard: object) -> None:
    # The test socket guard makes every non-local lookup fail, like NXDOMAIN would.
    with pytest.raises(TransientError) as ei:
        netguard.check_url("http://no-such-host.invalid/", allow_private=False)
    assert ei.value.reason == "dns_error"
    assert ei.value.retryable


def test_ip_literal_is_not_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("getaddrinfo called for an IP literal")

    monkeypatch.setattr(socket, "getaddrinfo", boom)
    assert netguard.resolve("10.0.0.1", 80) == ["10.0.0.1"]
    assert netguard.resolve("[::1]", 80) == ["::1"]


def test_localhost_resolves_and_is_blocked() -> None:
    with pytest.raises(TerminalError) as ei:
        netguard.check_url("http://localhost:1/", allow_private=False)
    assert ei.value.reason == "ssrf_blocked"
