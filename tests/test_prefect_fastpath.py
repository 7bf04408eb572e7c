"""`newsflow ingest` uses a Prefect server already running at the default address when none is configured.

The "server" here is a real loopback HTTP server answering Prefect's health check (flows.prefect_server
.server_healthy asks GET <api>/health); a closed port stands for no server. The decision is made before
Prefect is imported, so it is checked in a fresh interpreter.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from sitesrv import Response, SiteServer

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import json, os, sys
from flows.cli._output import use_running_prefect_server
used = use_running_prefect_server(sys.argv[1])
print(json.dumps({"used": used, "env": os.environ.get("PREFECT_API_URL"), "prefect_loaded": "prefect" in sys.modules}))
"""


def _probe(api_url: str, env: dict[str, str]) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, api_url], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    return env


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_running_server_is_used_without_prefect_loaded(tmp_path: Path) -> None:
    with SiteServer() as srv:
        srv.route("/api/health", Response(body="true", headers={"Content-Type": "application/json"}))
        api = srv.url("/api")
        got, err = _probe(api, _env(tmp_path))
        assert srv.hits("/api/health") == 1
    assert got == {"used": api, "env": api, "prefect_loaded": False}
    assert "temporary" not in err


def test_no_server_says_once_it_starts_a_temporary_one(tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{_closed_port()}/api"
    got, err = _probe(api, _env(tmp_path))
    assert got["used"] is None and got["env"] is None
    lines = [line for line in err.splitlines() if "temporary" in line]
    assert len(lines) == 1 and "newsflow server" in lines[0], err


def test_configured_url_is_left_alone(tmp_path: Path) -> None:
    """An API URL from the environment or the active Prefect profile wins; the default address is not even asked."""
    with SiteServer() as srv:
        srv.route("/api/health", Response(body="true"))
        env = _env(tmp_path)
        env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
        got, err = _probe(srv.url("/api"), env)
        assert got == {"used": None, "env": "http://127.0.0.1:9/api", "prefect_loaded": False} and err == ""

        env = _env(tmp_path)
        home = Path(env["PREFECT_HOME"])
        home.mkdir(parents=True)
        (home / "profiles.toml").write_text('active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://127.0.0.1:9/api"\n', encoding="utf-8")
        got, err = _probe(srv.url("/api"), env)
        assert got == {"used": None, "env": None, "prefect_loaded": False} and err == ""
        assert srv.hits("/api/health") == 0
