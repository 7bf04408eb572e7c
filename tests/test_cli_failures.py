"""Runs that cannot complete end as one line on the terminal (exit 1), the traceback in the log file.

Real failures, run as a user would (the `newsflow` command in a subprocess): a catalog held locked by
another process, and a Prefect API address where nothing listens. Prefect logs its own traceback of a
failed flow run; none of it may reach the terminal.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake import lake_env

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / "seeds" / "demo_site" / "northwire" / "stories"

pytestmark = pytest.mark.slow


def newsflow(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path, Path]]:
    """(environment, working directory, warehouse directory) with an initialised warehouse."""
    base = tmp_path_factory.mktemp("failures")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSFLOW_", "PREFECT_API_URL"))}
    env.update(lake_env(base / "wh"), PREFECT_HOME=str(base / "prefect-home"), NEWSFLOW_WORKERS="1")
    init = newsflow(["init"], env, base)
    assert init.returncode == 0, init.stderr
    yield env, base, base / "wh"


def one_line_failure(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, out.stderr
    # The notice that a temporary Prefect server is started (no `newsflow server` running) is not a failure line.
    lines = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith("newsflow: no Prefect server at ")]
    assert len(lines) == 1 and lines[0].startswith("newsflow: error: "), out.stderr
    assert "Traceback" not in out.stderr and "Flow run" not in out.stderr
    return lines[0]


def test_busy_catalog_is_one_line_and_the_traceback_is_logged(user: tuple[dict[str, str], Path, Path]) -> None:
    env, cwd, wh = user
    log = wh / "logs" / "newsflow.log"
    before = log.read_text(encoding="utf-8") if log.exists() else ""
    holder = sqlite3.connect(wh / "catalog.sqlite", isolation_level=None, timeout=30)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing to the catalog, for longer than we wait
    try:
        out = newsflow(["ingest", "--path", str(DEMO_DIR)], {**env, "NEWSFLOW_DB_LOCK_TIMEOUT_S": "2"}, cwd)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = one_line_failure(out)
    assert "the warehouse is busy" in line and "NEWSFLOW_DB_LOCK_TIMEOUT_S" in line and f"(details: {log})" in line
    assert f"held by pid {os.getpid()}" in line  # the process holding the lock is named (here: this test)
    added = log.read_text(encoding="utf-8")[len(before):]
    assert "Traceback (most recent call last)" in added and "WarehouseBusy" in added


def test_unreachable_prefect_api_is_one_line(user: tuple[dict[str, str], Path, Path]) -> None:
    env, cwd, _ = user
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    out = newsflow(["ingest", "--path", str(DEMO_DIR)], {**env, "PREFECT_API_URL": api}, cwd)
    line = one_line_failure(out)
    assert f"{api} is unreachable" in line and "newsflow server" in line
