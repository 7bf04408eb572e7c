"""The one way batches reach SQL: Arrow tables registered on a connection for the length of a block.

Batches are written with one set-based statement each (50-90k rows/s) rather than one INSERT per row
(~1k rows/s); registration is per connection, so concurrent sessions never see each other's batch.

pyarrow (with numpy, ~0.2-0.3 s to import) is imported on first use, not with this module: `status`
and `reingest --dry-run` import modules (warehouse.queries, warehouse.reingest) that need it only for
queries they never call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    import pyarrow as pa


def __getattr__(name: str) -> Any:
    """`TS`, the type of every timestamp newsflow writes (microseconds, UTC), made and kept on first access."""
    if name == "TS":
        import pyarrow as pa

        ts = pa.timestamp("us", tz="UTC")
        globals()["TS"] = ts
        return ts
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, rows: Sequence[dict[str, Any]] | pa.Table, schema: pa.Schema | None = None) -> Iterator[None]:
    """Expose `rows` (dicts with `schema`, or an Arrow table) to SQL as the relation `name` for the block."""
    import pyarrow as pa

    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=schema)
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)
