"""Per-batch lookups by hash key read only the row groups that can hold the batch's keys (migration 007).

Real lakes (SQLite catalog, Parquet files) filled with 20,000 rows of random keys: the lookup functions
the loads use are run with DuckDB's profiler on, and the rows their scan of the table emitted are counted.
A table in insertion order would be read whole (every row group's min/max spans the key space).
"""

from __future__ import annotations

import json

import duckdb
import pytest

from lake import lake_settings
from warehouse import db, queries

ROWS = 20_000
ROW_GROUP = 2048  # migration 007's parquet_row_group_size


class Profiled:
    """A lake connection that keeps DuckDB's profile of each statement it executes (helpers such as
    `registered` run statements of their own afterwards, which replace the connection's last profile)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.profiles: list[dict] = []

    def execute(self, sql: str, *args):  # noqa: ANN002, ANN201 - DuckDB's own signature
        result = self.con.execute(sql, *args)
        self.profiles.append(json.loads(self.con.get_profiling_information(format="json")))
        return result

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.con, name)

    def scanned(self, table: str) -> list[tuple[int, str]]:
        """(rows emitted, dynamic filters) of each scan of `table` in the statements executed so far."""
        out: list[tuple[int, str]] = []

        def walk(node: dict) -> None:
            info = node.get("extra_info", {})
            if node.get("operator_type") == "TABLE_SCAN" and info.get("Table") == table:
                out.append((int(node["operator_cardinality"]), str(info.get("Dynamic Filters", ""))))
            for child in node.get("children", []):
                walk(child)

        for p in self.profiles:
            walk(p)
        return out


@pytest.fixture()
def lake(tmp_path):
    """A new warehouse with ROWS synthetic articles written in one INSERT (random key order)."""
    settings = lake_settings(tmp_path / "w")
    db.init_db(settings)
    with db.session(settings) as con:
        with db.transaction(con):
            con.execute(
                "INSERT INTO articles (id, url, page_url, source, text, extractor, extractor_version, content_hash, "
                " word_count, first_seen_at, last_seen_at, updated_at) "
                "SELECT md5(i::VARCHAR), 'u' || i, 'u' || i, 's', 'text of ' || i || repeat(' words', 200), 't', '1', "
                " md5('h' || i), 201, now(), now(), now() FROM range(?) r(i)",
                [ROWS],
            )
        con.execute("PRAGMA enable_profiling = 'no_output'")
        con.execute(
            "SET custom_profiling_settings = '{\"OPERATOR_CARDINALITY\": \"true\", \"OPERATOR_TYPE\": \"true\", "
            "\"EXTRA_INFO\": \"true\"}'"
        )
        try:
            yield Profiled(con)
        finally:
            con.execute("PRAGMA disable_profiling")


def _spread(lake: Profiled, sql: str) -> list[str]:
    """The smallest, the middle and the largest value of a key column: their min/max span the whole key space."""
    keys = [k for (k,) in lake.execute(sql).fetchall()]
    return [keys[0], keys[len(keys) // 2], keys[-1]]


def test_a_few_ids_read_a_few_row_groups_of_articles(lake):
    ids = _spread(lake, "SELECT id FROM articles ORDER BY id")
    lake.profiles.clear()
    got = queries.articles_first_seen(lake, ids + ["8-absent"])
    assert sorted(got) == sorted(ids)
    ((rows, filters),) = lake.scanned("articles")
    assert "id IN (" in filters
    # In insertion order every row group's min/max spans the key space and all 20,000 rows are read.
    assert rows <= 3 * ROW_GROUP < ROWS, f"the articles scan emitted {rows} of {ROWS} rows"


def test_stored_texts_by_id_prune_row_groups_then_filter_rows_before_reading_text(lake):
    ids = _spread(lake, "SELECT id FROM articles ORDER BY id")
    lake.profiles.clear()
    got = queries.article_texts(lake, ids + ["8-absent"])
    assert sorted(got) == sorted(ids)
    assert all(t.startswith("text of ") for t in got.values())
    ((rows, filters),) = [s for s in lake.scanned("articles") if s[1]]
    assert "id IN (" in filters  # row groups skipped by their min/max
    assert rows == 3  # then the row filter inside the scan: only the matches leave it, with their text


def test_the_sort_order_survives_compaction(lake):
    with db.transaction(lake):
        lake.execute(
            "INSERT INTO articles (id, url, page_url, source, text, extractor, extractor_version, content_hash, "
            " word_count, first_seen_at, last_seen_at, updated_at) "
            "SELECT md5('late' || i), 'late' || i, 'late' || i, 's', 'late text', 't', '1', md5('hl' || i), 2, "
            " now(), now(), now() FROM range(100) r(i)"
        )
    lake.execute("CALL ducklake_merge_adjacent_files('newsflow', 'articles')")
    assert len(lake.execute("SELECT * FROM ducklake_list_files('newsflow', 'articles')").fetchall()) == 1
    ids = _spread(lake, "SELECT id FROM articles ORDER BY id")
    lake.profiles.clear()
    assert set(queries.articles_first_seen(lake, ids)) == set(ids)
    ((rows, _),) = lake.scanned("articles")
    assert rows <= 3 * ROW_GROUP < ROWS


@pytest.fixture()
def pages_lake(tmp_path):
    """A new warehouse with ROWS stored pages and as many URL aliases, keyed as migration 008 keys them."""
    settings = lake_settings(tmp_path / "w")
    db.init_db(settings)
    with db.session(settings) as con:
        with db.transaction(con):
            con.execute(
                "INSERT INTO pages (url, url_key, kind, source, status, etag, fetched_at, checked_at, body_sha256) "
                "SELECT u, substr(md5(u), 1, 16), 'article', 's', 200, 'e' || i, now(), now(), md5(u) "
                "FROM (SELECT i, 'https://news.example/2026/' || i || '/story.html' AS u FROM range(?) r(i))",
                [ROWS],
            )
            con.execute(
                "INSERT INTO article_urls (url, url_key, article_id, first_seen_at) "
                "SELECT u, substr(md5(u), 1, 16), md5(u), now() "
                "FROM (SELECT 'https://news.example/2026/' || i || '/story.html' AS u FROM range(?) r(i))",
                [ROWS],
            )
        con.execute("PRAGMA enable_profiling = 'no_output'")
        con.execute(
            "SET custom_profiling_settings = '{\"OPERATOR_CARDINALITY\": \"true\", \"OPERATOR_TYPE\": \"true\", "
            "\"EXTRA_INFO\": \"true\"}'"
        )
        try:
            yield Profiled(con)
        finally:
            con.execute("PRAGMA disable_profiling")


def _spread_urls(lake: Profiled) -> list[str]:
    """Three stored URLs whose keys are the smallest, the middle and the largest (sorting the URLs would prune nothing)."""
    return _spread(lake, "SELECT url FROM pages ORDER BY url_key")


def test_a_few_urls_read_a_few_row_groups_of_pages(pages_lake):
    urls = _spread_urls(pages_lake)
    pages_lake.profiles.clear()
    got = queries.validators(pages_lake, urls + ["https://news.example/absent.html"])
    assert sorted(got) == sorted(urls)
    ((rows, filters),) = pages_lake.scanned("pages")
    assert "url_key IN (" in filters
    assert rows <= 3 * ROW_GROUP < ROWS, f"the pages scan emitted {rows} of {ROWS} rows"


def test_planning_a_few_urls_reads_a_few_row_groups_of_pages_and_aliases(pages_lake):
    from datetime import datetime, timezone

    urls = _spread_urls(pages_lake)
    new = "https://news.example/2026/new/story.html"
    pages_lake.profiles.clear()
    plan = queries.plan_fetches(pages_lake, [(u, u, "s", None) for u in urls + [new]], datetime.now(timezone.utc))
    assert plan.new == [new] and plan.known == 3
    for table in ("pages", "article_urls"):
        scans = [rows for rows, filters in pages_lake.scanned(table) if "url_key IN (" in filters]
        assert scans and all(rows <= 3 * ROW_GROUP < ROWS for rows in scans), (table, pages_lake.scanned(table))


def test_saving_pages_and_aliases_reads_a_few_row_groups_and_keeps_one_row_per_url(pages_lake):
    from datetime import datetime, timezone

    from ingest.models import FetchResult
    from warehouse import loads

    urls = _spread_urls(pages_lake)
    now = datetime.now(timezone.utc)
    fetched = [FetchResult(url=u, source="s", status=200, body=b"<p>new</p>", etag="new", fetched_at=now) for u in urls]
    pages_lake.profiles.clear()
    with db.transaction(pages_lake.con):
        loads.save_pages(pages_lake, fetched, run_id=1)
        loads.save_article_urls(pages_lake, [(u, "moved", now) for u in urls])
    for table in ("pages", "article_urls"):
        scans = [rows for rows, filters in pages_lake.scanned(table) if "url_key IN (" in filters]
        assert scans and all(rows <= 3 * ROW_GROUP < ROWS for rows in scans), (table, pages_lake.scanned(table))
    assert pages_lake.execute("SELECT count(*), count(DISTINCT url) FROM pages").fetchall() == [(ROWS, ROWS)]
    assert pages_lake.execute("SELECT count(*) FROM pages WHERE etag = 'new'").fetchall() == [(3,)]
    assert pages_lake.execute("SELECT count(*) FROM article_urls WHERE article_id = 'moved'").fetchall() == [(3,)]
    assert pages_lake.execute("SELECT count(*) FROM article_urls").fetchall() == [(ROWS,)]
