"""Moving data into and out of the lake: import a newsflow 0.1 export, export to one DuckDB file or Parquet.

newsflow 0.1 kept the warehouse in one DuckDB 2.0 file, which DuckDB 1.5 (the engine DuckLake runs on
here) cannot read. Its owners run `EXPORT DATABASE 'dir' (FORMAT parquet)` in any DuckDB 2.x client;
`import_export` loads that directory (one Parquet file per table, history tables included) into an
empty lake, column by column name, and checks every table's row count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from ingest.errors import ConfigError
from warehouse import db, search

if TYPE_CHECKING:
    from ingest.settings import Settings

# Bookkeeping of the lake itself; never copied from an export.
_SKIP = {"schema_migrations"}


@dataclass
class TableCopy:
    """One table moved: rows in the source and rows now in the target."""

    table: str
    source_rows: int
    target_rows: int

    @property
    def ok(self) -> bool:
        """Whether every row arrived."""
        return self.source_rows == self.target_rows


def lake_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Base tables of the lake, in name order."""
    return [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' ORDER BY table_name", [db.LAKE]
    ).fetchall()]


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {relation}").fetchall()]


def import_export(settings: "Settings", directory: Path) -> list[TableCopy]:
    """Load an `EXPORT DATABASE … (FORMAT parquet)` directory into the (empty) lake; verify row counts.

    Call with the writer lock held. Refuses a lake that already holds articles or runs, so an import
    can never mix two histories. Everything is one transaction: a failure leaves the lake as it was.
    """
    directory = Path(directory)
    if not (directory / "schema.sql").is_file():
        raise ConfigError(f"{directory} is not an EXPORT DATABASE directory (no schema.sql)", reason="bad_export")
    db.init_db(settings)
    copies: list[TableCopy] = []
    with db.session(settings) as con:
        busy = [t for t in ("articles", "runs", "pages") if con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]]
        if busy:
            raise ConfigError(
                f"the warehouse {db.target(settings).display} already holds data ({', '.join(busy)}); import needs a new one "
                "(set NEWSFLOW_CATALOG and NEWSFLOW_DATA_PATH to a new place)",
                reason="import_target_not_empty",
            )
        with db.transaction(con):
            for table in lake_tables(con):
                f = directory / f"{table}.parquet"
                if table in _SKIP or not f.is_file():
                    continue
                src = f"read_parquet('{_escape(f)}')"
                wanted = _columns(con, table)
                have = set(_columns(con, f"SELECT * FROM {src}"))
                cols = ", ".join(c for c in wanted if c in have)
                con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {src}")
                n_src = con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0]
                n_dst = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                copies.append(TableCopy(table, int(n_src), int(n_dst)))
            # An export made before migration 008 has no url_key: derive it as the loads do.
            for table in ("pages", "article_urls"):
                con.execute(f"UPDATE {table} SET url_key = substr(md5(url), 1, 16) WHERE url_key IS NULL")
            bad = [c for c in copies if not c.ok]
            if bad:
                raise RuntimeError("row counts differ after import: " + ", ".join(f"{c.table} {c.source_rows} vs {c.target_rows}" for c in bad))
            # The 0.1 warehouse had no search index: build it in the same transaction.
            search.index_missing(con)
    return copies


def _escape(p: Path | str) -> str:
    return str(p).replace("'", "''")


def export_duckdb(settings: "Settings", out: Path) -> list[TableCopy]:
    """Write a self-contained DuckDB file with every table, view and macro of the lake (read-only use)."""
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; choose a new file name", reason="export_exists")
    copies = []
    t = db.target(settings)
    con = db.open_lake(t, read_only=True, timeout_s=settings.db_lock_timeout_s)
    try:
        con.execute(f"ATTACH '{_escape(out)}' AS export_file")
        con.execute("BEGIN TRANSACTION")
        for table in lake_tables(con):
            con.execute(f"CREATE TABLE export_file.main.{table} AS SELECT * FROM {db.LAKE}.main.{table}")
            n = con.execute(f"SELECT count(*) FROM export_file.main.{table}").fetchall()[0][0]
            copies.append(TableCopy(table, int(con.execute(f"SELECT count(*) FROM {db.LAKE}.main.{table}").fetchall()[0][0]), int(n)))
        con.execute("COMMIT")
        # Views and macros are created from the same files as in the lake, inside the new file.
        con.execute("USE export_file")
        db.apply_views(con)
        db.apply_comments(con)
    finally:
        con.close()
    return copies


def export_parquet(settings: "Settings", directory: Path) -> list[TableCopy]:
    """Write one Parquet file per table (the same layout EXPORT DATABASE uses, so `import` can read it back)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    with db.session(settings, read_only=True) as con:  # one snapshot for every file
        tables = lake_tables(con)
        for table in tables:
            f = directory / f"{table}.parquet"
            con.execute(f"COPY (SELECT * FROM {table}) TO '{_escape(f)}' (FORMAT parquet)")
            n = con.execute(f"SELECT count(*) FROM read_parquet('{_escape(f)}')").fetchall()[0][0]
            copies.append(TableCopy(table, int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]), int(n)))
    (directory / "schema.sql").write_text(
        "-- newsflow export: one Parquet file per table; load with `newsflow import DIR`\n", encoding="utf-8"
    )
    return copies
