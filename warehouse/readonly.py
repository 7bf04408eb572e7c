"""Ad-hoc SQL for analysts: read-only, statement types allow-listed, no file or network access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from warehouse import db

# Statement types an analyst query may have. Everything else (DELETE, DROP, ATTACH, COPY, SET, ...)
# is refused before execution, so a typo can never change the warehouse or write files.
_ALLOWED = {"SELECT", "EXPLAIN"}


class ReadOnlyViolation(ValueError):
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


def run_readonly(path: Path | str, query: str, *, timeout_s: float = 60.0) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run `query` on a read-only connection and return (column names, rows)."""
    with db.session(path, read_only=True, timeout_s=timeout_s) as con:
        check_readonly(con, query)
        # No reading or writing of local files or URLs from analyst SQL (COPY TO, read_csv('/etc/...')),
        # and the setting cannot be switched back within this connection.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        statements = con.extract_statements(query)
        cur = None
        for st in statements:
            cur = con.execute(st)
        columns = [d[0] for d in cur.description] if cur is not None and cur.description else []
        rows = cur.fetchall() if columns else []
        return columns, rows
