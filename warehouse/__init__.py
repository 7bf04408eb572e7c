"""newsflow warehouse: all DuckDB SQL (migrations, loads, views, queries)."""
