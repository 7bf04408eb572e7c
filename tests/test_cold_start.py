"""Commands that run no flow start cold without the heavy libraries: no Prefect, spaCy or trafilatura, and
no pyarrow (nor numpy) except in `search`, whose warehouse.search builds Arrow schemas at import.

Each command runs in a fresh interpreter, as a user's shell starts it, against a small warehouse (the two
seed articles); a probe records which modules were imported by the time main() returned. What they cost
(the reason for this test) is measured by hand with `time` and `python -X importtime`, never asserted here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake import lake_env

REPO = Path(__file__).resolve().parent.parent

# Never imported by a command that runs no flow.
NEVER = ("prefect", "spacy", "trafilatura", "pandas")
# Also not imported, except by `search` (warehouse.search needs pyarrow at import).
ARROW = ("pyarrow", "numpy")

# newsflow's main() in a fresh interpreter; exit code and the heavy modules loaded go to $COLD_PROBE_OUT.
_PROBE = (
    "import json, os, sys\n"
    "from flows.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "heavy = sorted({m.split('.')[0] for m in sys.modules} & set(os.environ['COLD_PROBE_WATCH'].split(',')))\n"
    "with open(os.environ['COLD_PROBE_OUT'], 'w', encoding='utf-8') as f:\n"
    "    json.dump({'code': code, 'heavy': heavy}, f)\n"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a user whose warehouse holds the two seed articles (built once, by `newsflow init`)."""
    base = tmp_path_factory.mktemp("cold")
    seeds = base / "seeds"
    seeds.mkdir()
    for f in (REPO / "seeds").glob("*.txt"):
        shutil.copy(f, seeds / f.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env.update(lake_env(base / "wh"), NEWSFLOW_SEEDS_DIR=str(seeds), NEWSFLOW_WORKERS="1", PREFECT_HOME=str(base / "ph"))
    init = subprocess.run(
        [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main(['init']))"],
        env=env, cwd=base, capture_output=True, text=True, timeout=300,
    )
    assert init.returncode == 0, init.stderr
    yield env


def probe(env: dict[str, str], args: list[str], tmp_path: Path) -> tuple[int, list[str], str]:
    """(exit code, heavy modules imported, stdout + stderr) of `newsflow ARGS` in a new process."""
    out_file = tmp_path / "probe.json"
    watch = ",".join(NEVER + ARROW)
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env={**env, "COLD_PROBE_OUT": str(out_file), "COLD_PROBE_WATCH": watch},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert out_file.is_file(), (args, run.stderr)
    result = json.loads(out_file.read_text(encoding="utf-8"))
    return result["code"], result["heavy"], run.stdout + run.stderr


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--help"], "COMMAND"),
        (["--version"], "duckdb-extension-ducklake "),
        (["status"], "articles 2"),
        (["sql", "select 1 as one"], "one"),
        (["sql", "select count(*) as n from search_articles('Blinken')", "--format", "csv"], "n\n2\n"),
        (["attach"], "ATTACH"),
        (["reingest", "--all", "--dry-run"], "would re-ingest 2 articles (0 URLs + 2 seed files) from all articles"),
        (["reingest", "--since", "2d", "--mode", "reprocess", "--dry-run"], "would re-ingest 2 articles"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_read_only_commands_import_no_flow_library_nor_pyarrow(env: dict[str, str], tmp_path: Path, args: list[str], expect: str) -> None:
    code, heavy, out = probe(env, args, tmp_path)
    assert code == 0, (args, out)
    assert expect in out
    assert heavy == [], f"`newsflow {' '.join(args)}` imported {heavy}"


@pytest.mark.parametrize("phrase", ["Blinken", "x"])
def test_search_imports_no_flow_library(env: dict[str, str], tmp_path: Path, phrase: str) -> None:
    code, heavy, out = probe(env, ["search", phrase], tmp_path)
    assert code == 0
    assert ("Blinken" in out) == (phrase == "Blinken")
    assert not set(heavy) & set(NEVER), f"`newsflow search {phrase}` imported {heavy}"


def test_a_read_only_session_loads_fts_when_a_query_needs_it(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers open the lake without LOAD fts (its signature check is costly); stem() still works, autoloaded."""
    from ingest.settings import Settings
    from warehouse import db

    for k in ("NEWSFLOW_CATALOG", "NEWSFLOW_DATA_PATH"):
        monkeypatch.setenv(k, env[k])
    db.close_all()
    try:
        with db.session(Settings(), read_only=True) as con:
            loaded = "SELECT count(*) FROM duckdb_extensions() WHERE loaded AND extension_name = 'fts'"
            assert con.execute(loaded).fetchall() == [(0,)]
            assert con.execute("SELECT count(*) FROM search_articles('Blinken')").fetchall() == [(2,)]
            assert con.execute("SELECT count(*) > 0 FROM v_article_terms").fetchall() == [(True,)]
            assert con.execute(loaded).fetchall() == [(1,)]
    finally:
        db.close_all()
