"""With a Prefect server, writers from any host queue on one global concurrency slot (a real server on loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hostile_site import NEWSFLOW

pytestmark = pytest.mark.slow

HOLDER = r"""
import logging, sys, time
from flows.run import prefect_writer_slot
log = logging.getLogger("writer-slot-test")
log.addHandler(logging.StreamHandler(sys.stdout))
log.setLevel(logging.INFO)
log.propagate = False
with prefect_writer_slot(log):
    print("acquired", time.time(), flush=True)
    time.sleep(float(sys.argv[1]))
print("released", time.time(), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_newsflow_server_creates_the_writer_slot_and_writers_queue_on_it(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([*NEWSFLOW, "server", "--port", str(port), "--no-ui", "--startup-timeout", "300"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line == f"PREFECT_API_URL=http://127.0.0.1:{port}/api", server.stderr.read() if server.poll() is not None else line
        api = line.split("=", 1)[1]
        limit = httpx.get(f"{api}/v2/concurrency_limits/newsflow-warehouse-writer", timeout=10).json()
        assert limit["limit"] == 1 and limit["name"] == "newsflow-warehouse-writer"
        # A second `newsflow server` on the same PREFECT_HOME finds the limit and keeps it, quietly.
        from flows.prefect_server import create_writer_limit

        create_writer_limit(api)
        assert httpx.get(f"{api}/v2/concurrency_limits/newsflow-warehouse-writer", timeout=10).json()["id"] == limit["id"]

        client_env = {**env, "PREFECT_API_URL": api}
        first = subprocess.Popen([sys.executable, "-c", HOLDER, "20"], env=client_env, stdout=subprocess.PIPE, text=True)
        assert first.stdout is not None and first.stdout.readline().startswith("acquired")
        second = subprocess.run([sys.executable, "-c", HOLDER, "0"], env=client_env, capture_output=True, text=True, timeout=300)
        out_first, _ = first.communicate(timeout=120)
        released_first = float(out_first.split()[-1])
        acquired_second = float(next(ln for ln in second.stdout.splitlines() if ln.startswith("acquired")).split()[1])
        assert "holds the Prefect concurrency slot" in second.stdout  # said once, at INFO
        assert acquired_second >= released_first - 0.5  # queued behind the first writer
        server.terminate()
        _, err = server.communicate(timeout=60)
        assert "Traceback" not in err and "ERROR" not in err, err[-3000:]  # the server logged no failure
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    time.sleep(0.1)
