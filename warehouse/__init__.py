"""newsflow warehouse: all DuckDB SQL (migrations, loads, views, queries)."""

import importlib.abc
import importlib.util
import sys


class _PandasAbsent(importlib.abc.MetaPathFinder):
    """Fails `import pandas` at once when pandas is not installed (see below); other names pass through."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        """Raise for pandas (not installed), return None (not ours) for everything else."""
        if name == "pandas":
            raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
        return None


# DuckDB's Python client tries `import pandas` four times on every execute() that binds parameters or
# registers a table. Without pandas installed (newsflow does not need it), each try walks sys.path
# again: 10,884 failed imports, ~2 s of the flow process, in a 3,000-page ingest (cProfile). This
# finder makes the same import fail at once, as it would anyway; if pandas is installed it is not added.
if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
    if not any(isinstance(f, _PandasAbsent) for f in sys.meta_path):
        sys.meta_path.insert(0, _PandasAbsent())
