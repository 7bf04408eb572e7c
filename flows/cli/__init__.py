"""`newsflow` command line: a thin layer over the flows and the warehouse.

One module per command (`_<name>_command.py`, each with a `register(subparsers)` function that adds
its parser and sets `func`), and one shared module `_output.py` (exit codes, one-line errors, tables,
progress, summaries) that imports nothing else from the CLI. Command modules import only `_output`
and import their heavy dependencies (Prefect, DuckDB, rich) inside `run`, so `--help`, `--version`
and the commands that run no flow never import Prefect.

Exit codes: 0 done (items may have failed; they are recorded), 1 the run could not complete,
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import flows  # noqa: F401  (sets Prefect defaults before Prefect is imported)
from flows.cli import (
    _attach_command,
    _init_command,
    _ingest_command,
    _maintain_command,
    _reingest_command,
    _report_command,
    _search_command,
    _serve_command,
    _server_command,
    _sql_command,
    _status_command,
    _transfer_commands,
)
from flows.cli._output import EXIT_INTERRUPTED, EXIT_USAGE, CliError, describe_error, print_error

# Order of the commands in `newsflow --help`. A new command: add a module with `register(sub)` here.
COMMANDS = [
    _init_command,
    _ingest_command,
    _status_command,
    _sql_command,
    _search_command,
    _report_command,
    _reingest_command,
    _server_command,
    _serve_command,
    _attach_command,
    _maintain_command,
    _transfer_commands,
]

__all__ = ["COMMANDS", "CliError", "build_parser", "main", "versions"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (`newsflow: error: ...; see newsflow CMD --help`), exit 2."""

    def error(self, message: str) -> NoReturn:
        print_error(f"{message}; see `{self.prog} --help`")
        raise SystemExit(EXIT_USAGE)


def versions() -> list[tuple[str, str]]:
    """(component, version) of newsflow and what it runs on, from installed metadata (nothing is imported)."""
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    found = [(name, version(name)) for name in ("newsflow", "duckdb", "duckdb-extension-ducklake", "prefect", "trafilatura", "spacy")]
    try:
        from ingest.settings import Settings

        models = sorted(set(Settings().entities.models_by_language.values()))
    except Exception:  # noqa: BLE001 - --version must answer even with a bad environment
        models = []
    for model in models:
        found.append((f"spaCy model {model}", version(model)))
    return found


class _VersionAction(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option_string: str | None = None) -> None:
        for name, v in versions():
            print(f"{name} {v}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of the `newsflow` command (every command has --help)."""
    p = _Parser(
        prog="newsflow",
        description="Incremental news ingestion into DuckDB. Settings come from NEWSFLOW_* environment variables.",
    )
    p.add_argument("--version", action=_VersionAction, nargs=0, help="print the versions of newsflow, DuckDB, Prefect, trafilatura and the spaCy model")
    p.add_argument("--catalog", help="the warehouse catalog: sqlite:PATH or postgres:<libpq string> (default: $NEWSFLOW_CATALOG or sqlite:./newsflow/catalog.sqlite)")
    p.add_argument("--data-path", help="the warehouse's data files (default: $NEWSFLOW_DATA_PATH or ./newsflow/data/)")
    p.add_argument("--sources", help="sources.toml to use (default: $NEWSFLOW_SOURCES_FILE or the bundled seeds/sources.toml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `newsflow` console script: run one command, turn any failure into one line."""
    args = build_parser().parse_args(argv)
    # A crash in native code (a signal, an abort on heap corruption) then leaves every thread's Python
    # stack on stderr, which is the only trace such a crash can leave; normal runs print nothing.
    _dump_stacks_on_crash()
    # Settings are read from the environment once, at the edge: options override the variables.
    if args.catalog:
        os.environ["NEWSFLOW_CATALOG"] = args.catalog
    if args.data_path:
        os.environ["NEWSFLOW_DATA_PATH"] = args.data_path
    if args.sources:
        os.environ["NEWSFLOW_SOURCES_FILE"] = args.sources
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("newsflow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `newsflow sql ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # every failure ends as one line; the traceback goes to the log file
        if os.environ.get("NEWSFLOW_DEBUG"):
            raise
        line, code = describe_error(exc, argv if argv is not None else sys.argv[1:])
        print_error(line)
        return code
    finally:
        _close_lakes()


def _dump_stacks_on_crash() -> None:
    """Have Python print every thread's stack to the real stderr if native code kills the process."""
    stream = sys.__stderr__
    try:
        if stream is not None and not faulthandler.is_enabled():
            faulthandler.enable(file=stream)
    except (OSError, ValueError):  # no usable file descriptor (a host that closed stderr): nothing to report to
        pass


def _close_lakes() -> None:
    """Close this process's DuckDB lake instances now, in order, rather than in interpreter teardown.

    At teardown Python destroys objects in no set order while Prefect's threads may still run; closing
    the instances while everything is alive keeps DuckDB's destructors out of that. Postgres-catalog
    instances are not closed (warehouse.db.close_for_exit says why).
    """
    if "warehouse.db" not in sys.modules:  # `--help`, `--version`: nothing was opened
        return
    try:
        sys.modules["warehouse.db"].close_for_exit()
    except Exception:  # noqa: BLE001 - the command's own outcome stands; nothing is left to write
        pass


if __name__ == "__main__":
    sys.exit(main())
