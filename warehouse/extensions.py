"""DuckDB extensions from pinned wheels, laid out in a folder newsflow manages (nothing is downloaded).

DuckDB loads extensions from `<extension_directory>/v<version>/<platform>/<name>.duckdb_extension`.
The wheels `duckdb-extension-ducklake`, `-sqlite` and `-postgres` ship the files under other names
and paths, so they are copied (once, and again whenever a wheel changes) into that layout. The sqlite
and postgres files must be named after DuckDB's internal extension names `sqlite_scanner` and
`postgres_scanner`, or `ATTACH 'ducklake:sqlite:…'` would try to auto-install them from the network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingest.errors import ConfigError


@dataclass(frozen=True)
class ExtensionWheel:
    """One extension: the Python package shipping it, its file name there, its name for DuckDB."""

    package: str
    pip_name: str
    file_stem: str
    duckdb_name: str


WHEELS = {
    "ducklake": ExtensionWheel("duckdb_extension_ducklake", "duckdb-extension-ducklake", "ducklake", "ducklake"),
    "sqlite": ExtensionWheel("duckdb_extension_sqlite", "duckdb-extension-sqlite", "sqlite", "sqlite_scanner"),
    "postgres": ExtensionWheel("duckdb_extension_postgres", "duckdb-extension-postgres", "postgres", "postgres_scanner"),
    "fts": ExtensionWheel("duckdb_extension_fts", "duckdb-extension-fts", "fts", "fts"),
}


class MissingExtension(ConfigError):
    """A DuckDB extension newsflow needs is not installed (not retryable: install the named package)."""


def _platform() -> str:
    return duckdb.connect().execute("PRAGMA platform").fetchall()[0][0]


def default_extension_dir() -> Path:
    """The managed folder: $NEWSFLOW_EXTENSION_DIR, else the user cache (~/.cache/newsflow/duckdb-extensions)."""
    if os.environ.get("NEWSFLOW_EXTENSION_DIR"):
        return Path(os.environ["NEWSFLOW_EXTENSION_DIR"]).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (cache / "newsflow" / "duckdb-extensions").resolve()


def _wheel_file(wheel: ExtensionWheel, version: str) -> Path:
    spec = importlib.util.find_spec(wheel.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtension(
            f"DuckDB extension '{wheel.file_stem}' is not installed; run `pip install {wheel.pip_name}=={version}`",
            reason="missing_extension",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "extensions" / f"v{version}" / f"{wheel.file_stem}.duckdb_extension"
    if not path.is_file():
        raise MissingExtension(
            f"{wheel.pip_name} does not match DuckDB {version} (no {path.name} for v{version}); "
            f"run `pip install {wheel.pip_name}=={version}`",
            reason="missing_extension",
        )
    return path


_PREPARED: dict[tuple[Path, tuple[str, ...]], Path] = {}


def prepare(names: tuple[str, ...] = ("ducklake", "sqlite"), directory: Path | None = None) -> Path:
    """Make sure the named extensions are in the managed folder; return the folder (the extension_directory)."""
    directory = directory or default_extension_dir()
    key = (directory, names)
    if key in _PREPARED:
        return _PREPARED[key]
    version = duckdb.__version__
    target = directory / f"v{version}" / _platform()
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        wheel = WHEELS[name]
        src = _wheel_file(wheel, version)
        dst = target / f"{wheel.duckdb_name}.duckdb_extension"
        st = src.stat()
        if dst.is_file() and dst.stat().st_size == st.st_size and dst.stat().st_mtime >= st.st_mtime:
            continue
        # Copy to a temporary name and rename, so a concurrent process never loads a half-written file.
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{wheel.duckdb_name}.")
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    _PREPARED[key] = directory
    return directory
