"""The Prefect server process behind `newsflow server`: start it, wait until healthy, stop it.

No Prefect import: the server runs as a child process (`python -m prefect server start`), and its
health is an HTTP GET.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

# Variables every process we start gets: this machine has no internet, and a failed telemetry call prints errors.
QUIET_PREFECT_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def server_healthy(api_url: str, timeout_s: float = 2.0) -> bool:
    """True when a Prefect API answers its health check at `api_url` (…/api).

    Standard library only: every CLI flow run asks this before Prefect loads, and an httpx client
    builds a TLS context (~30 ms) even for the plain-HTTP loopback address it is asked about.
    """
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(api_url.rstrip("/") + "/health")
    conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    try:
        conn = conn_cls(url.hostname or "127.0.0.1", url.port, timeout=timeout_s)
        try:
            conn.request("GET", url.path or "/")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError):  # refused, timed out, not HTTP, bad port
        return False


def start_server(host: str, port: int, *, ui: bool = False, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `prefect server start` as a child process; return it and its API URL (not yet waited for)."""
    api_url = f"http://{host}:{port}/api"
    child_env = {**(env if env is not None else os.environ), **QUIET_PREFECT_ENV}
    # The server's own client calls must go to itself, whatever the user's shell points at.
    child_env["PREFECT_API_URL"] = api_url
    child_env["PREFECT_UI_ENABLED"] = "true" if ui else "false"
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    # stdout only carries Prefect's banner (we print our own); errors (port taken, bad database) go to stderr.
    proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return proc, api_url


def wait_healthy(proc: subprocess.Popen, api_url: str, timeout_s: float = 120.0) -> float:
    """Wait until the server answers /health; return the seconds it took (raise if it exits or times out)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with code {proc.returncode} before becoming healthy")
        if server_healthy(api_url, timeout_s=1.0):
            return time.monotonic() - started
        time.sleep(0.25)
    raise TimeoutError(f"prefect server not healthy at {api_url} after {timeout_s:.0f}s")


def stop_process(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL, waiting for the child each time."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


def database_description(url: str | None = None) -> str:
    """The Prefect server database in use, never with its password (imports Prefect's settings if not given)."""
    if url is None:
        from prefect.settings import get_current_settings

        secret = get_current_settings().server.database.connection_url
        url = secret.get_secret_value() if secret is not None else None
    if not url:
        return "sqlite under PREFECT_HOME"
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


# The one-slot limit warehouse writers queue on (flows.run.WRITER_LIMIT; kept equal by a test).
WRITER_LIMIT = "newsflow-warehouse-writer"


def create_writer_limit(api_url: str) -> None:
    """Create the one-slot global concurrency limit for warehouse writers (an existing one is kept)."""
    import httpx

    base = api_url.rstrip("/") + "/v2/concurrency_limits/"
    # Look first: posting a name that exists makes the server log an IntegrityError traceback (then 409).
    if httpx.get(base + WRITER_LIMIT, timeout=10).status_code == 200:
        return
    r = httpx.post(base, json={"name": WRITER_LIMIT, "limit": 1}, timeout=10)
    if r.status_code not in (200, 201, 409):
        r.raise_for_status()
