"""`newsflow sql`: read-only SQL against the warehouse (no Prefect).

The query comes from the argument, `--file F`, or stdin (`-`, or piped). With none of them on an
interactive terminal, a read-only prompt with history starts. Every statement's result is shown.

Parameters: `$name` in the SQL is a DuckDB named parameter. A file (or any query text) may declare
defaults in comment lines of the form

    -- param: name = value

and `--param name=value` (repeatable) overrides them. Values that look like whole or decimal
numbers are bound as numbers, `true`/`false` as booleans, everything else as text (write
`CAST($since AS TIMESTAMP)` where a timestamp is wanted).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from flows.cli._output import EXIT_OK, EXIT_USAGE, CliError, csv_value, json_value, load_settings, print_table, usage_error

FORMATS = ("table", "csv", "json", "parquet")
_PARAM_LINE = re.compile(r"^\s*--\s*param:\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")

Result = tuple[list[str], list[tuple[Any, ...]]]


# ---------------------------------------------------------------- parameters


from warehouse.example_queries import typed  # noqa: E402 - one value rule for files and --param


def declared_params(sql: str) -> dict[str, Any]:
    """Defaults declared in the query's comment lines: `-- param: name = value`."""
    found: dict[str, Any] = {}
    for line in sql.splitlines():
        m = _PARAM_LINE.match(line)
        if m:
            found[m.group(1)] = typed(m.group(2))
    return found


def given_params(pairs: Sequence[str]) -> dict[str, Any]:
    """`--param name=value` options as a dict (a malformed one is a usage error)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise usage_error(f"--param {pair!r}: want NAME=VALUE, e.g. --param source=harbour-gazette-rss")
        out[name.strip()] = typed(value)
    return out


# ---------------------------------------------------------------- running


def run_queries(settings: Any, sql: str, params: dict[str, Any], as_of_run: int | None) -> list[Result]:
    """Every statement's (columns, rows), read-only; DuckDB and read-only refusals become one-line usage errors."""
    import duckdb

    from warehouse import readonly

    try:
        return readonly.run_readonly(settings, sql, params=params or None, as_of_run=as_of_run)
    except readonly.ReadOnlyViolation as exc:
        raise usage_error(str(exc)) from None
    except duckdb.Error as exc:
        text = " ".join(str(exc).split())
        missing = re.search(r"Values were not provided for the following prepared statement parameters: (.*)", text)
        if missing:
            names = [n.strip() for n in missing.group(1).split(",")]
            hint = " ".join(f"--param {n}=VALUE" for n in names)
            raise usage_error(f"the query uses ${', $'.join(names)} but no value was given; pass {hint} (or declare '-- param: NAME = VALUE' in the file)") from None
        if isinstance(exc, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException, duckdb.ConversionException, duckdb.InvalidInputException)):
            raise CliError(text, EXIT_USAGE) from None
        if isinstance(exc, duckdb.PermissionException):  # file or network access from analyst SQL
            raise CliError(f"refused: `newsflow sql` reads only the warehouse ({text})", EXIT_USAGE) from None
        raise


def query_text(args: argparse.Namespace) -> str | None:
    """The SQL from the argument, --file or stdin; None when an interactive prompt should start."""
    if args.file and args.query is not None:
        raise usage_error("give the query either as an argument or with --file, not both")
    if args.file:
        if args.file == "-":
            return sys.stdin.read()
        path = Path(args.file).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise usage_error(f"--file {args.file!r}: no such file") from None
        except (IsADirectoryError, UnicodeDecodeError) as exc:
            raise usage_error(f"--file {args.file!r}: not a text file ({exc})") from None
    if args.query == "-" or (args.query is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    return args.query


# ---------------------------------------------------------------- output


def write_results(results: Sequence[Result], fmt: str, out: TextIO, max_width: int) -> None:
    """Print every result in `fmt` (table, csv or json)."""
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        for i, (columns, rows) in enumerate(results):
            if i:
                out.write("\n")
            w.writerow(columns)
            w.writerows([[csv_value(v) for v in r] for r in rows])
    elif fmt == "json":
        docs = [[dict(zip(columns, r)) for r in rows] for columns, rows in results]
        json.dump(docs[0] if len(docs) == 1 else docs, out, default=json_value, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        for i, (columns, rows) in enumerate(results):
            if i:
                out.write("\n")
            print_table(columns, rows, out=out, max_width=max_width)
            out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def write_parquet(results: Sequence[Result], path: Path) -> None:
    """One result as a Parquet file (written with pyarrow from the result's columns and rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(results) != 1:
        raise usage_error(f"--format parquet writes one result, and the query has {len(results)} statements; run them one at a time")
    columns, rows = results[0]
    arrays = [pa.array([r[i] for r in rows]) for i in range(len(columns))]
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), path)


def emit(results: Sequence[Result], args: argparse.Namespace) -> None:
    """Results to stdout or --out, in --format."""
    if args.format == "parquet":
        write_parquet(results, Path(args.out))
        print(f"wrote {sum(len(r[1]) for r in results)} rows to {args.out}", file=sys.stderr)
        return
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            write_results(results, args.format, f, args.max_width)
        return
    write_results(results, args.format, sys.stdout, args.max_width)


# ---------------------------------------------------------------- interactive prompt


def history_file() -> Path:
    """Where the prompt keeps its history: $XDG_STATE_HOME/newsflow/sql_history (~/.local/state/...)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "newsflow" / "sql_history"


def interactive(settings: Any, params: dict[str, Any], args: argparse.Namespace) -> int:
    """A read-only prompt: statements end with `;`, `.quit` or Ctrl-D leaves; every input runs like `newsflow sql`."""
    from flows.cli._output import describe_error, print_error

    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        readline = None  # type: ignore[assignment]
    hist = history_file()
    if readline is not None:
        try:
            readline.read_history_file(hist)
        except OSError:
            pass
    print("newsflow sql (read-only): end statements with ';', '.quit' or Ctrl-D to leave", file=sys.stderr)
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input("sql> " if not buffer else " ..> ")
            except EOFError:
                print(file=sys.stderr)
                break
            except KeyboardInterrupt:
                print(file=sys.stderr)
                buffer = []
                continue
            if not buffer and line.strip() in (".quit", ".exit", "\\q", "quit", "exit"):
                break
            if not line.strip() and not buffer:
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            if not text.rstrip().endswith(";"):
                continue
            buffer = []
            try:
                results = run_queries(settings, text, {**params, **declared_params(text)}, args.as_of_run)
                write_results(results, "table", sys.stdout, args.max_width)
            except CliError as exc:
                print_error(str(exc))
            except Exception as exc:  # noqa: BLE001 - the prompt survives a failing statement
                print_error(describe_error(exc)[0])
    finally:
        if readline is not None:
            try:
                hist.parent.mkdir(parents=True, exist_ok=True)
                readline.set_history_length(1000)
                readline.write_history_file(hist)
            except OSError:
                pass
    return EXIT_OK


# ---------------------------------------------------------------- command


def run(args: argparse.Namespace) -> int:
    """Run read-only SQL against the warehouse and print every statement's result."""
    if args.format == "parquet" and not args.out:
        raise usage_error("--format parquet needs --out FILE (Parquet is not written to a terminal)")
    if args.max_width < 0:
        raise usage_error("--max-width must be 0 (never cut) or a positive number of characters")
    cli_params = given_params(args.param or [])
    sql = query_text(args)
    settings = load_settings()
    if sql is None:
        if args.out or args.format != "table":
            raise usage_error("give a query (argument, --file or stdin) to write --out/--format output")
        return interactive(settings, cli_params, args)
    if not sql.strip():
        raise usage_error("empty query")
    params = {**declared_params(sql), **cli_params}
    emit(run_queries(settings, sql, params, args.as_of_run), args)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow sql`."""
    s = sub.add_parser(
        "sql",
        help="run read-only SQL (argument, --file, stdin, or an interactive prompt) and print the results",
        description=run.__doc__ + " Writes, ATTACH, COPY and file access are refused.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "parameters: $name in the SQL; defaults from '-- param: name = value' comment lines, overridden\n"
            "by --param name=value. Numbers and true/false are bound as such, anything else as text.\n\n"
            "examples:\n"
            '  newsflow sql "select count(*) from articles"\n'
            "  newsflow sql --file warehouse/examples/top_people_this_week.sql --param limit=5\n"
            '  echo "select * from v_runs" | newsflow sql --format csv\n'
            "  newsflow sql --file q.sql --format parquet --out result.parquet\n"
            "  newsflow sql            (on a terminal: an interactive read-only prompt)"
        ),
    )
    s.add_argument("query", nargs="?", help='SQL (several statements allowed), or "-" for stdin')
    s.add_argument("--file", "-f", metavar="FILE", help="read the SQL from FILE ('-' for stdin)")
    s.add_argument("--param", "-p", action="append", metavar="NAME=VALUE", help="bind $NAME (repeatable; overrides the file's defaults)")
    s.add_argument("--format", choices=FORMATS, default="table", help="output format (default table; parquet needs --out)")
    s.add_argument("--out", "-o", metavar="FILE", help="write the result to FILE instead of stdout")
    s.add_argument("--as-of-run", type=int, metavar="N", help="query the warehouse as it was after run N (time travel)")
    s.add_argument("--max-width", type=int, default=80, help="cut table cells at this many characters (default 80; 0: never cut)")
    s.set_defaults(func=run)
