"""`newsflow sql` on a real warehouse: files, stdin, parameters, every statement, formats, time travel."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.cli import main
from lake import use_lake

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One warehouse with the two seed articles (built once for the module)."""
    base = tmp_path_factory.mktemp("sqlcli")
    seeds = base / "seeds"
    seeds.mkdir()
    for f in (REPO / "seeds").glob("*.txt"):
        shutil.copy(f, seeds / f.name)
    with pytest.MonkeyPatch.context() as mp:
        use_lake(mp, base / "wh")
        mp.setenv("NEWSFLOW_SEEDS_DIR", str(seeds))
        mp.setenv("NEWSFLOW_WORKERS", "1")
        assert main(["init"]) == 0
    yield base / "wh"


@pytest.fixture
def wh(lake: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_lake(monkeypatch, lake)
    return lake


def test_file_with_declared_defaults_and_overrides(wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = tmp_path / "q.sql"
    q.write_text(
        "-- Articles with a title longer than $min characters.\n-- param: min = 1000\n-- param: label = 'long'\n"
        "select $label as label, count(*) as n from articles where length(title) > $min;\n",
        encoding="utf-8",
    )
    assert main(["sql", "--file", str(q), "--format", "csv"]) == 0
    assert capsys.readouterr().out == "label,n\nlong,0\n"
    assert main(["sql", "--file", str(q), "--param", "min=0", "--param", "label=any", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "label,n\nany,2\n"


def test_missing_parameter_is_one_line_usage_error(wh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select count(*) from articles where length(title) > $min"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--param" in err and "$min" in err
    assert main(["sql", "select 1", "--param", "novalue"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["sql", "--file", "/no/such.sql"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_stdin_and_every_statement_shown(wh: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("select count(*) as articles from articles;\nselect 'two' as second, 2 as n;\n"))
    assert main(["sql"]) == 0
    out = capsys.readouterr().out
    assert "articles" in out and "second" in out and "two" in out and out.count("(1 row)") == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("select 1 as a; select 2 as b, 3 as c"))
    assert main(["sql", "-", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [[{"a": 1}], [{"b": 2, "c": 3}]]


def test_csv_uses_unix_line_endings(wh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select id, title from articles order by id", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and len(out.splitlines()) == 3


def test_parquet_needs_out_and_round_trips(wh: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select id from articles", "--format", "parquet"]) == 2
    assert "--out" in capsys.readouterr().err
    out = tmp_path / "a.parquet"
    assert main(["sql", "select id, title, published_at, authors from articles order by id", "--format", "parquet", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.column_names == ["id", "title", "published_at", "authors"] and table.num_rows == 2
    assert main(["sql", "select id, title from articles order by id", "--format", "json"]) == 0
    assert [r["title"] for r in json.loads(capsys.readouterr().out)] == table.column("title").to_pylist()


def test_max_width_zero_shows_whole_cells(wh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select repeat('x', 200) as long", "--max-width", "0"]) == 0
    assert "x" * 200 in capsys.readouterr().out
    assert main(["sql", "select repeat('x', 200) as long", "--max-width", "20"]) == 0
    out = capsys.readouterr().out
    assert "x" * 19 + "…" in out and "x" * 21 not in out


def test_as_of_run_reads_an_earlier_snapshot(wh: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select min(id) as first_run from runs", "--format", "csv"]) == 0
    first = int(capsys.readouterr().out.splitlines()[1])
    assert main(["sql", "select count(*) as n from articles", "--as-of-run", str(first), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "2"


def test_writes_are_refused_in_every_input_form(wh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    q = tmp_path / "w.sql"
    q.write_text("select 1; delete from articles;", encoding="utf-8")
    assert main(["sql", "--file", str(q)]) == 2
    assert "refused" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("drop table articles"))
    assert main(["sql"]) == 2
    assert "refused" in capsys.readouterr().err
    assert main(["sql", "select count(*) from articles", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "2"


def test_read_only_commands_never_import_prefect_and_unknown_reingest_source_is_refused(lake: Path, tmp_path: Path) -> None:
    import os
    import subprocess

    from lake import lake_env

    probe = (
        "import json, sys\n"
        "from flows.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(json.dumps({'code': code, 'prefect': any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env.update(lake_env(lake), PREFECT_HOME=str(tmp_path / "ph"))
    cases = [
        (["status"], 0),
        (["sql", "select count(*) from articles"], 0),
        (["reingest", "--all", "--dry-run"], 0),
        (["reingest", "--since", "2d", "--dry-run"], 0),
        (["reingest", "--source", "nope", "--dry-run"], 2),
        (["reingest", "--source", "nope", "--mode", "reprocess"], 2),
    ]
    for args, want in cases:
        out = subprocess.run([sys.executable, "-c", probe, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result == {"code": want, "prefect": False}, (args, out.stderr)
        if want == 2:
            assert out.stderr.strip().count("\n") == 0 and "unknown source 'nope'" in out.stderr, out.stderr


def test_interactive_prompt_on_a_terminal(lake: Path, tmp_path: Path) -> None:
    """`newsflow sql` with no query on a terminal: a read-only prompt, with history kept between sessions."""
    import os
    import select
    import subprocess
    import time

    from lake import lake_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env.update(lake_env(lake), PREFECT_HOME=str(tmp_path / "ph"), XDG_STATE_HOME=str(tmp_path / "state"), TERM="dumb")
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from flows.cli import main; sys.exit(main(['sql']))"],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, cwd=tmp_path, close_fds=True,
    )
    os.close(secondary)
    out = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while marker not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    out += os.read(primary, 4096)
                except OSError:
                    break
        assert marker in out, out.decode(errors="replace")

    read_until(b"sql> ")
    os.write(primary, b"select 40 +\n")
    read_until(b"..> ")
    os.write(primary, b"2 as answer;\n")
    read_until(b"(1 row)")
    os.write(primary, b"delete from articles;\n")
    read_until(b"refused")
    os.write(primary, b".quit\n")
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    text = out.decode(errors="replace")
    assert "answer" in text and "42" in text
    history = (tmp_path / "state" / "newsflow" / "sql_history").read_text(encoding="utf-8")
    assert "2 as answer;" in history
