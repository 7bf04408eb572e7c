"""The one way batches reach SQL: Arrow tables registered on a connection for the length of a block.

Batches are written with one set-based statement each (50-90k rows/s) rather than one INSERT per row
(~1k rows/s); registration is per connection, so concurrent sessions never see each other's batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

# Every timestamp newsflow writes: microseconds, UTC.
TS = pa.timestamp("us", tz="UTC")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, rows: Sequence[dict[str, Any]] | pa.Table, schema: pa.Schema | None = None) -> Iterator[None]:
    """Expose `rows` (dicts with `schema`, or an Arrow table) to SQL as the relation `name` for the block."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=schema)
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)
