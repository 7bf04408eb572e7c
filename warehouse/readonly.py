"""Ad-hoc SQL for analysts: read-only, statement types allow-listed, no file or network access."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import duckdb

from ingest.errors import TerminalError
from warehouse import db

if TYPE_CHECKING:
    from ingest.settings import Settings

# Statement types an analyst query may have. Everything else (DELETE, DROP, ATTACH, COPY, SET, ...)
# is refused before execution, so a typo can never change the warehouse or write files.
_ALLOWED = {"SELECT", "EXPLAIN"}


class ReadOnlyViolation(TerminalError, ValueError):
    """The query would write, attach or export; it was not run (not retryable)."""

    retryable = False


def check_readonly(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise ReadOnlyViolation unless every statement in `query` is a plain read."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise ReadOnlyViolation(f"cannot parse query: {exc}") from None
    if not statements:
        raise ReadOnlyViolation("empty query")
    for st in statements:
        kind = st.type.name
        if kind not in _ALLOWED:
            raise ReadOnlyViolation(
                f"refused: `newsflow sql` is read-only and a {kind} statement was given; nothing was changed"
            )


class UnknownRun(ReadOnlyViolation):
    """--as-of-run names a run that does not exist or left no snapshot."""


def snapshot_of_run(con: duckdb.DuckDBPyConnection, run_id: int) -> int:
    """The lake snapshot recorded by run `run_id` (the warehouse as that run left it)."""
    rows = con.execute("SELECT snapshot_id, status FROM runs WHERE id = ?", [run_id]).fetchall()
    if not rows:
        raise UnknownRun(f"there is no run {run_id}; `newsflow status` lists the runs")
    if rows[0][0] is None:
        raise UnknownRun(f"run {run_id} recorded no snapshot (status {rows[0][1]}); pick a run that finished")
    return int(rows[0][0])


def run_readonly(
    settings: "Settings", query: str, *, params: dict[str, Any] | None = None, as_of_run: int | None = None
) -> list[tuple[list[str], list[tuple[Any, ...]]]]:
    """Run every statement of `query` read-only and return (column names, rows) for each.

    `params` are bound as named parameters ($name) to the statements that use them; `as_of_run`
    answers from the lake snapshot that run N recorded (time travel).
    """
    t = db.target(settings)
    snapshot = None
    if as_of_run is not None:
        with db.session(settings, read_only=True) as con:
            snapshot = snapshot_of_run(con, as_of_run)
    try:
        con = db.open_lake(t, read_only=True, timeout_s=settings.db_lock_timeout_s, snapshot=snapshot)
    except duckdb.Error as exc:
        if snapshot is not None and "snapshot" in str(exc).lower():
            raise UnknownRun(f"run {as_of_run}'s snapshot {snapshot} is no longer kept (expired by maintenance)") from None
        raise
    try:
        check_readonly(con, query)
        # No reading or writing of other local files or URLs from analyst SQL (COPY TO, read_csv('/etc/...')),
        # and the settings cannot be switched back within this connection. The lake's own data files stay
        # readable through allowed_directories.
        if "://" not in t.data_path:
            con.execute("SET allowed_directories = [?]", [t.data_path])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        results = []
        for st in con.extract_statements(query):
            wanted = _named_parameters(st.query)
            missing = [n for n in wanted if n not in (params or {})]
            if missing:
                raise ReadOnlyViolation(f"no value for parameter(s) {', '.join('$' + m for m in missing)}; pass --param name=value")
            bound = {k: v for k, v in (params or {}).items() if k in wanted}
            cur = con.execute(st.query, bound) if bound else con.execute(st.query)
            columns = [d[0] for d in cur.description] if cur.description else []
            results.append((columns, cur.fetchall() if columns else []))
        return results
    finally:
        con.close()


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _named_parameters(sql: str) -> list[str]:
    """Named parameters ($name) used in one statement, outside string literals and comments."""
    stripped = re.sub(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)
    return list(dict.fromkeys(_PARAM.findall(stripped)))
