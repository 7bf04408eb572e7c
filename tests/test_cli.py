"""The `newsflow` CLI as a user runs it: help on every command, init, sql formats, status, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows.cli import build_parser, main
from lake import use_lake, lake_connect

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_every_command_has_help_and_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    cmds = subcommands()
    assert {"init", "ingest", "status", "sql"} <= set(cmds)
    for cmd in cmds:
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert f"usage: newsflow {cmd}" in out
        assert f"newsflow {cmd}" in readme, f"`newsflow {cmd}` is not documented in README.md"


def test_console_script_help_runs() -> None:
    exe = Path(sys.executable).parent / "newsflow"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "init" in out.stdout and out.stderr == ""


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A warehouse initialised from a private copy of the seeds directory."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for f in SEEDS.glob("*.txt"):
        shutil.copy(f, seeds / f.name)
    db_path = tmp_path / "wh"
    use_lake(monkeypatch, db_path)
    monkeypatch.setenv("NEWSFLOW_SEEDS_DIR", str(seeds))
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")
    assert main(["init"]) == 0
    return db_path


def rows(db_path: Path, sql: str) -> list[tuple]:
    with lake_connect(db_path) as con:
        return con.execute(sql).fetchall()


def test_init_is_idempotent_and_adds_exactly_a_new_seed(warehouse: Path, tmp_path: Path) -> None:
    before = rows(warehouse, "select id, content_hash, updated_at from articles order by id")
    assert len(before) == 2
    mentions = rows(warehouse, "select count(*) from mentions")[0][0]
    assert main(["init"]) == 0
    assert rows(warehouse, "select id, content_hash, updated_at from articles order by id") == before
    assert rows(warehouse, "select count(*) from mentions")[0][0] == mentions
    (tmp_path / "seeds" / "004_0123456789abcdef.txt").write_text(
        "Harbour council approves storm fund\n\nThe Wexmouth harbour council approved an emergency fund on Monday "
        "after Storm Ilse flooded the quays, the mayor, Clara Hughes, told reporters. "
        "The fund will pay for pumps, sandbags and repairs to the old sea wall before the spring tides arrive.\n",
        encoding="utf-8",
    )
    assert main(["init"]) == 0
    after = {r[0] for r in rows(warehouse, "select id from articles")}
    assert len(after) == 3 and {r[0] for r in before} <= after
    # The two original seeds were not touched by the second and third init.
    assert rows(warehouse, "select id, content_hash, updated_at from articles where id in (select id from articles order by first_seen_at limit 2) order by id") == before


def test_sql_formats(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select count(*) as n from articles"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].strip() == "n" and "2" in out and "(1 row)" in out
    assert main(["sql", "select source, count(*) as n from articles group by source", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["source,n", "seed,2"]
    assert main(["sql", "select id, published_at, authors from articles order by id", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 2 and set(data[0]) == {"id", "published_at", "authors"}


def test_sql_refuses_writes_with_a_clear_error(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for q in ["delete from articles", "drop table articles", "attach 'x.duckdb' as x", "copy articles to 'a.csv'"]:
        assert main(["sql", q]) == 2
        err = capsys.readouterr().err
        assert err.startswith("newsflow: error: refused") and "Traceback" not in err
    assert rows(warehouse, "select count(*) from articles")[0][0] == 2
    assert main(["sql", "select * from no_such_table"]) == 2
    assert "no_such_table" in capsys.readouterr().err


def test_status_shows_runs_and_failures(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "last runs:" in out and "init" in out and "completed" in out and "failures by reason" in out


def test_missing_warehouse_and_bad_sources_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_lake(monkeypatch, tmp_path / "none.duckdb")
    assert main(["sql", "select 1"]) == 2
    assert "run `newsflow init` first" in capsys.readouterr().err
    bad = tmp_path / "sources.toml"
    bad.write_text('[[sources]]\nname = "x"\nkind = "carrier-pigeon"\nlocation = "here"\n')
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(bad))
    assert main(["ingest"]) == 2
    err = capsys.readouterr().err
    assert "sources['x'].kind" in err and "Traceback" not in err
    # A configuration error stops before anything is written.
    assert not (tmp_path / "none.duckdb").exists()
