"""Every example query in warehouse/examples/ runs as documented on the populated demo warehouse and returns rows.

The files are run the way `newsflow sql --file F` runs them (their `-- param:` defaults, read-only
session), so an example that stops working after a schema change fails here. Also: the data model is
documented in the warehouse itself (COMMENT ON) and in warehouse/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from demo_warehouse import CHANGED_URL, demo_lake
from flows.cli import main
from flows.cli._sql_command import declared_params
from lake import lake_connect, lake_settings, use_lake
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from warehouse.example_queries import describe, example_files, parse_example
from warehouse.readonly import run_readonly

README = Path(__file__).resolve().parent.parent / "warehouse" / "README.md"
# The questions issue 10 asks the examples to answer, and the file that answers each.
REQUIRED = [
    "articles_today_by_source", "unique_stories_per_day", "most_syndicated_stories", "top_people_this_week",
    "entities_rising", "cooccurring_with_entity", "entity_mentions_with_snippets", "first_mention", "source_health",
    "failures_by_reason", "changed_articles", "language_mix", "phrase_search", "warehouse_as_of_snapshot",
]


@pytest.fixture(scope="module")
def lake(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return demo_lake(tmp_path_factory)


def test_at_least_fifteen_examples_covering_the_questions() -> None:
    names = {p.stem for p in example_files()}
    assert len(names) >= 15
    assert set(REQUIRED) <= names


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_example_header_and_params(path: Path) -> None:
    sql, defaults = parse_example(path)
    assert len(describe(path)) > 30, "a header comment says what the query answers"
    used = set(re.findall(r"\$([A-Za-z_]\w*)", re.sub(r"--[^\n]*", "", sql)))
    assert used == set(defaults), f"every $parameter has a default and every default is used: {used} vs {set(defaults)}"
    # The CLI reads the same defaults (`newsflow sql --file F` runs the file as is).
    assert declared_params(sql) == defaults
    assert path.stem in README.read_text(encoding="utf-8"), "listed in warehouse/README.md"


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.stem)
def test_example_returns_rows_on_the_demo_warehouse(lake: Path, path: Path) -> None:
    sql, defaults = parse_example(path)
    results = run_readonly(lake_settings(lake), sql, params=defaults)
    columns, rows = results[-1]
    assert columns and rows, f"{path.name} returned no rows"


def test_examples_answer_correctly(lake: Path) -> None:
    settings = lake_settings(lake)

    def run(name: str, **params: object) -> list[tuple]:
        sql, defaults = parse_example(next(p for p in example_files() if p.stem == name))
        return run_readonly(settings, sql, params={**defaults, **params})[-1][1]

    # The changed demo page: one earlier version, a paragraph added, nothing removed.
    changed = run("changed_articles")
    assert len(changed) == 1 and changed[0][-1].rstrip("/").endswith(CHANGED_URL.split("://")[1].split("/", 1)[1])
    assert changed[0][4] > 100 and changed[0][5] >= 10 and changed[0][6] == 0
    # Blinken co-occurs with Lavrov, from either side of the symmetric view.
    assert "Sergei Lavrov" in {r[1] for r in run("cooccurring_with_entity", entity="Blinken")}
    assert "Antony Blinken" in {r[1] for r in run("cooccurring_with_entity", entity="Lavrov")}
    # The phrase search finds the bridge-toll ruling first.
    assert "Kingsway Bridge" in run("phrase_search")[0][0]
    # One story was syndicated: the G20 meeting, on two outlets.
    top = run("most_syndicated_stories")[0]
    assert top[2] == 1 and set(top[4]) == {"harbour-gazette-rss", "northwire-atom"}
    # Time travel: before the first ingest there were only the two seeds.
    with lake_connect(lake) as con:
        init_snapshot = con.execute("SELECT snapshot_id FROM runs WHERE flow = 'init' ORDER BY id LIMIT 1").fetchone()[0]
        now = con.execute("SELECT count(*) FROM articles").fetchone()[0]
    then = {r[0]: r[1:] for r in run("warehouse_as_of_snapshot", snapshot=init_snapshot)}
    assert then["articles"] == (2, now) and now > 2


def test_newsflow_sql_runs_an_example_file_with_a_param(lake: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_lake(monkeypatch, lake)
    path = next(p for p in example_files() if p.stem == "entity_mentions_with_snippets")
    assert main(["sql", "--file", str(path), "--param", "entity=Whelan", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("title,source") and len(out) >= 2 and all("Whelan" in line for line in out[1:])


def test_every_table_and_column_is_described_in_the_warehouse(lake: Path) -> None:
    with lake_connect(lake) as con:
        tables = con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = 'newsflow' AND schema_name = 'main'"
        ).fetchall()
        columns = con.execute(
            "SELECT c.table_name, c.column_name, c.comment FROM duckdb_columns() c "
            "JOIN duckdb_tables() t ON t.database_name = c.database_name AND t.table_name = c.table_name "
            "WHERE c.database_name = 'newsflow' AND t.schema_name = 'main'"
        ).fetchall()
        views = con.execute(
            "SELECT view_name, comment FROM duckdb_views() WHERE database_name = 'newsflow' AND NOT internal"
        ).fetchall()
    assert tables and all(c for _, c in tables), [t for t, c in tables if not c]
    assert all(c for _, _, c in columns), [(t, col) for t, col, c in columns if not c]
    assert views and all(c for _, c in views), [v for v, c in views if not c]
    readme = README.read_text(encoding="utf-8")
    for name, _ in tables + views:
        assert f"`{name}`" in readme, f"{name} is not in warehouse/README.md"
