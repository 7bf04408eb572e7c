"""newsflow as a user installs it: build the wheel (no warnings), install it apart from the checkout,
and from an empty directory run `newsflow init` and `newsflow ingest`, which load the bundled demo.

The wheel is built from a copy of the project's files with the build backend itself (setuptools, no
build isolation, so nothing is downloaded), installed with `pip install --no-deps --target` and run
with that directory on PYTHONPATH: the dependencies come from this environment, newsflow's own code
only from the wheel (checked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["pyproject.toml", "README.md", "flows", "ingest", "warehouse", "seeds"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the built wheel, the build's output)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in PROJECT_FILES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(p, src / name)
    out = base / "dist"
    build = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))", str(out)],
        cwd=src, capture_output=True, text=True, timeout=300,
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, log
    return out / build.stdout.strip().splitlines()[-1], log


def test_wheel_builds_without_warnings_and_ships_the_data(wheel: tuple[Path, str]) -> None:
    path, log = wheel
    # setuptools' warnings: deprecations (`project.license` as a table), data directories missing
    # from `packages`, ... ("byte-compiling is disabled" only echoes PYTHONDONTWRITEBYTECODE).
    warnings = [line for line in log.splitlines() if "Warning" in line or "is absent from the `packages`" in line or line.startswith("!!")]
    assert not warnings, "\n".join(warnings)
    names = set(zipfile.ZipFile(path).namelist())
    seeds = [p.relative_to(REPO / "seeds").as_posix() for p in (REPO / "seeds").rglob("*") if p.is_file()]
    missing = [s for s in seeds if f"newsflow_seeds/{s}" not in names]
    assert not missing, f"seeds/ files not in the wheel: {missing}"
    for sub in ("migrations", "views", "examples"):
        for p in (REPO / "warehouse" / sub).glob("*.sql"):
            assert f"warehouse/{sub}/{p.name}" in names
    assert "warehouse/comments.sql" in names and "flows/cli/_sql_command.py" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(path).read(metadata).decode()
    assert "License-Expression: MIT" in text


def test_installed_wheel_loads_the_demo_from_an_empty_directory(wheel: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = wheel
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--root-user-action=ignore", "--target", str(target), str(path)],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_") and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), PREFECT_HOME=str(tmp_path / "prefect-home"), NEWSFLOW_WORKERS="1")

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)

    where = run("-c", "import flows.cli, ingest.settings as s; print(flows.cli.__file__); print(s.BUNDLED_SEEDS_DIR)")
    assert where.returncode == 0, where.stderr
    module_file, seeds_dir = where.stdout.split()
    assert module_file.startswith(str(target)) and seeds_dir.startswith(str(target)), where.stdout
    assert (Path(seeds_dir) / "sources.toml").is_file() and (Path(seeds_dir) / "demo_site").is_dir()

    newsflow = [str(target / "bin" / "newsflow")]
    assert Path(newsflow[0]).is_file(), "console script not installed"
    init = run(*newsflow, "init")
    assert init.returncode == 0, init.stderr
    assert "seeds: 2 new" in init.stderr, init.stderr
    ingest = run(*newsflow, "ingest", timeout=900)
    assert ingest.returncode == 0, ingest.stderr
    print(ingest.stderr)
    counts = run(*newsflow, "sql", "select source, count(*) as n from articles group by source order by source", "--format", "csv")
    assert counts.returncode == 0, counts.stderr
    print(counts.stdout)
    by_source = dict(line.split(",") for line in counts.stdout.splitlines()[1:])
    assert by_source.pop("seed") == "2"
    assert by_source and all(int(n) > 0 for n in by_source.values()), counts.stdout
    # Everything the run wrote is under the empty directory's default warehouse.
    assert (cwd / "newsflow" / "catalog.sqlite").is_file()
