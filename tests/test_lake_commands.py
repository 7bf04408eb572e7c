"""`newsflow import / export / attach / maintain` and the newsflow 0.1 warehouse file, on real lakes.

tests/data/export_v01 is what `EXPORT DATABASE 'dir' (FORMAT parquet)` writes for a newsflow 0.1
warehouse (the 0.1 schema, with rows in every table, history tables included).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from lake import lake_connect, use_lake

EXPORT_V01 = Path(__file__).resolve().parent / "data" / "export_v01"


def export_counts() -> dict[str, int]:
    con = duckdb.connect()
    return {
        p.stem: con.execute(f"select count(*) from read_parquet('{p}')").fetchall()[0][0]
        for p in sorted(EXPORT_V01.glob("*.parquet")) if p.stem != "schema_migrations"
    }


def test_import_loads_a_v01_export_with_history_and_checks_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    use_lake(monkeypatch, tmp_path / "wh")
    assert main(["import", str(EXPORT_V01)]) == 0
    out = capsys.readouterr().out
    assert "every count matches" in out
    with lake_connect(tmp_path / "wh") as con:
        for table, n in export_counts().items():
            assert con.execute(f"select count(*) from {table}").fetchall()[0][0] == n, table
        # History came along, and the lake's own bookkeeping is its own.
        assert con.execute("select title from article_versions").fetchall() == [("Old title",)]
        assert con.execute("select count(*) from schema_migrations").fetchall()[0][0] >= 3
        # 0.1 had no url_key (migration 008): the import derives it as the loads do, so lookups by URL find the rows.
        for table in ("pages", "article_urls"):
            assert con.execute(f"select count(*) from {table}").fetchall()[0][0] > 0
            assert con.execute(f"select count(*) from {table} where url_key is distinct from substr(md5(url), 1, 16)").fetchall() == [(0,)]
    # A second import into a lake that holds data is refused, and changes nothing.
    assert main(["import", str(EXPORT_V01)]) == 2
    assert "already holds data" in capsys.readouterr().err
    with lake_connect(tmp_path / "wh") as con:
        assert con.execute("select count(*) from articles").fetchall() == [(3,)]


def test_import_refuses_a_directory_that_is_not_an_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    use_lake(monkeypatch, tmp_path / "wh")
    assert main(["import", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an EXPORT DATABASE directory" in err[0]
    assert not (tmp_path / "wh").exists()


def test_a_v01_warehouse_file_is_recognised_with_one_line_on_how_to_move_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for k in ("NEWSFLOW_CATALOG", "NEWSFLOW_DATA_PATH"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "newsflow.duckdb").write_bytes(b"DUCK" + b"\0" * 4092)  # a DuckDB 2.0 file DuckDB 1.5 cannot open
    assert main(["init"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "EXPORT DATABASE" in err[0] and "newsflow import" in err[0]
    assert not (tmp_path / "newsflow").exists()


def test_export_to_one_duckdb_file_and_to_parquet_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_lake(monkeypatch, tmp_path / "wh")
    assert main(["import", str(EXPORT_V01)]) == 0
    assert main(["export", "--duckdb", str(tmp_path / "share.duckdb")]) == 0
    with duckdb.connect(str(tmp_path / "share.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from articles").fetchall() == [(3,)]
        assert con.execute("select count(*) from v_articles_unique").fetchall() == [(2,)]  # id2 duplicates id1
    assert main(["export", "--duckdb", str(tmp_path / "share.duckdb")]) == 2  # never overwrites
    assert main(["export", "--parquet", str(tmp_path / "pq")]) == 0
    use_lake(monkeypatch, tmp_path / "wh2")
    assert main(["import", str(tmp_path / "pq")]) == 0
    with lake_connect(tmp_path / "wh") as a, lake_connect(tmp_path / "wh2") as b:
        q = "select id, url, content_hash, text from articles order by id"
        assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_attach_output_opens_the_lake_in_a_plain_duckdb_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    use_lake(monkeypatch, tmp_path / "wh")
    assert main(["import", str(EXPORT_V01)]) == 0
    capsys.readouterr()
    assert main(["attach"]) == 0
    statements = capsys.readouterr().out
    lines = statements.strip().splitlines()
    assert lines[-1] == "USE newsflow;" and all(ln.endswith(";") for ln in lines) and "READ_ONLY" in statements
    # A separate Python process with nothing but duckdb: the printed SQL is all it needs.
    script = (
        "import duckdb, sys\n"
        "con = duckdb.connect()\n"
        "con.execute(sys.stdin.read())\n"
        "print(con.execute('select count(*) from articles').fetchall()[0][0])\n"
        "try:\n    con.execute('delete from articles')\nexcept duckdb.Error as e:\n    print('refused')\n"
    )
    r = subprocess.run([sys.executable, "-c", script], input=statements, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "refused"]


def test_maintain_reports_file_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    use_lake(monkeypatch, tmp_path / "wh")
    assert main(["import", str(EXPORT_V01)]) == 0
    capsys.readouterr()
    assert main(["maintain"]) == 0
    out = capsys.readouterr().out
    assert "live data files" in out and "files on disk" in out
