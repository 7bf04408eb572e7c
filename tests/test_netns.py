"""The network-namespace guard (tests/netns.py): subprocesses, which the in-process socket guard cannot see,
run where only loopback exists. A probe process first checks it sees nothing but `lo`, and only then tries a
non-loopback address, so a broken namespace can never send a packet off the machine."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from netns import ENV_FLAG, isolated_cmd, only_loopback

# Runs in a subprocess (no socket guard there): reports interfaces, a loopback round trip, and what a
# connect to 10.0.0.1 does, refusing to try the latter unless the namespace has nothing but loopback.
PROBE = r"""
import errno, json, socket
out = {"interfaces": sorted(n for _i, n in socket.if_nameindex())}
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname(), timeout=5); a, _ = srv.accept(); c.sendall(b"ping")
out["loopback"] = a.recv(4).decode()
if out["interfaces"] == ["lo"]:
    try:
        socket.create_connection(("10.0.0.1", 80), timeout=2)
        out["outside"] = "connected"
    except OSError as e:
        out["outside"] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
"""


def probe(cmd: list[str]) -> dict:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_isolated_cmd_has_only_loopback_and_no_route_out() -> None:
    out = probe(isolated_cmd([sys.executable, "-c", PROBE]))
    assert out == {"interfaces": ["lo"], "loopback": "ping", "outside": errno.errorcode[errno.ENETUNREACH]}


def test_isolated_cmd_sets_the_flag_and_reports_a_missing_command() -> None:
    r = subprocess.run(isolated_cmd([sys.executable, "-c", f"import os; print(os.environ[{ENV_FLAG!r}])"]), capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "1")
    r = subprocess.run(isolated_cmd(["/nonexistent/newsflow-test-binary"]), capture_output=True, text=True, timeout=60)
    assert r.returncode == 127 and "cannot run" in r.stderr


@pytest.mark.skipif(os.environ.get(ENV_FLAG) != "1", reason="session not started by tests/netns.py (`make test` does that)")
def test_session_and_its_subprocesses_are_isolated() -> None:
    # NEWSFLOW_TEST_NETNS=1 promises that this pytest process, and so every subprocess it starts, lives
    # in a namespace with only loopback: check it here and in a plain (unwrapped) child process.
    assert only_loopback()
    out = probe([sys.executable, "-c", PROBE])
    assert out == {"interfaces": ["lo"], "loopback": "ping", "outside": errno.errorcode[errno.ENETUNREACH]}
