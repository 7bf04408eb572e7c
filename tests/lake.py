"""Test helpers for the DuckLake warehouse: one directory per test warehouse (SQLite catalog + data files).

Tests name a warehouse by a directory path (`tmp_path / "w"`); these helpers turn it into the settings,
environment variables and read-only connections that newsflow uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ingest.settings import Settings
from warehouse import db


def lake_env(path: Path | str) -> dict[str, str]:
    """NEWSFLOW_CATALOG and NEWSFLOW_DATA_PATH for a warehouse kept in directory `path`."""
    path = Path(path)
    return {"NEWSFLOW_CATALOG": f"sqlite:{path / 'catalog.sqlite'}", "NEWSFLOW_DATA_PATH": f"{path / 'data'}/"}


def use_lake(monkeypatch, path: Path | str) -> Path:  # noqa: ANN001 - pytest's MonkeyPatch
    """Point this test's settings (environment) at the warehouse in `path`."""
    for k, v in lake_env(path).items():
        monkeypatch.setenv(k, v)
    return Path(path)


def lake_settings(path: Path | str, **overrides) -> Settings:  # noqa: ANN003
    """Settings for the warehouse in `path` (other settings from the environment)."""
    env = lake_env(path)
    return Settings(catalog=env["NEWSFLOW_CATALOG"], data_path=env["NEWSFLOW_DATA_PATH"], **overrides)


def lake_connect(path: Path | str) -> duckdb.DuckDBPyConnection:
    """A fresh read-only connection to the warehouse in `path`, like an analyst's own DuckDB session."""
    return db.open_lake(db.target(lake_settings(path)), read_only=True)


def exists(path: Path | str) -> bool:
    """Whether a warehouse was created in `path`."""
    return (Path(path) / "catalog.sqlite").is_file()


def environ_with_lake(path: Path | str, **extra: str) -> dict[str, str]:
    """os.environ plus the warehouse variables (for subprocesses)."""
    return {**os.environ, **lake_env(path), **extra}
