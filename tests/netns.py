"""Run a command in a network namespace whose only interface is loopback: nothing in it can leave the machine.

    python tests/netns.py [--] COMMAND [ARG]...      # e.g. `make test` runs: tests/netns.py .venv/bin/pytest -q

The in-process socket guard (tests/conftest.py) only patches the pytest process; the crash, concurrency,
schedule and CLI tests start `newsflow` subprocesses it cannot see. Run inside a fresh network namespace,
the whole test session and every process it starts share one network stack that has nothing but `lo`:
a connect() to any other address fails in the kernel with ENETUNREACH before a packet exists, while
servers on 127.0.0.1 (fixture sites, the Prefect test API, Dask) work as usual because they are inside too.

How: unshare(CLONE_NEWNET) through libc (as root; otherwise together with CLONE_NEWUSER, mapping the
user to root inside, like `unshare -rn`), then loopback is brought up with the SIOCSIFFLAGS ioctl (no
dependency on `ip`), NEWSFLOW_TEST_NETNS=1 is set and COMMAND is exec'd. Unix-domain sockets are not
network-namespaced, so a server outside (e.g. PostgreSQL) stays reachable through its socket file only.

`isolated_cmd(argv)` wraps one command the same way (a subprocess in its own, separate namespace: it
cannot reach servers on the parent's 127.0.0.1). `only_loopback()` tells whether this process is isolated.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import sys
from pathlib import Path

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
ENV_FLAG = "NEWSFLOW_TEST_NETNS"


def interfaces() -> list[str]:
    """Names of this network namespace's interfaces."""
    return sorted(name for _i, name in socket.if_nameindex())


def only_loopback() -> bool:
    """True when this process's network namespace has no interface but `lo`."""
    return interfaces() == ["lo"]


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"unshare: {os.strerror(e)}")


def _map_to_root(uid: int, gid: int) -> None:
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")


def loopback_up() -> None:
    """Bring `lo` up in the current namespace (what `ip link set lo up` does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req + b"\0" * 22)[:18])[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)


def enter_isolated_namespace() -> None:
    """Move this (single-threaded) process into a new network namespace with only loopback, up."""
    if os.geteuid() == 0:
        _unshare(CLONE_NEWNET)
    else:
        uid, gid = os.geteuid(), os.getegid()
        _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        _map_to_root(uid, gid)
    loopback_up()
    if not only_loopback():  # cannot happen after a successful unshare; never run the command unisolated
        raise OSError(errno.EPERM, f"new network namespace has interfaces {interfaces()}")


def isolated_cmd(argv: list[str]) -> list[str]:
    """`argv` run in a fresh network namespace of its own with only loopback (via this file)."""
    return [sys.executable, str(Path(__file__).resolve()), "--", *argv]


def main(args: list[str]) -> int:
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        enter_isolated_namespace()
    except OSError as e:
        print(f"netns: cannot create an isolated network namespace ({e}); needs root or unprivileged user namespaces", file=sys.stderr)
        return 2
    os.environ[ENV_FLAG] = "1"
    try:
        os.execvp(args[0], args)
    except OSError as e:
        print(f"netns: cannot run {args[0]}: {e}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
