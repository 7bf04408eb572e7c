"""Overlapped batches (clean of batch i+1 beside NER/load of batch i, grouped loads, mid-run compaction) load what one big batch loads.

Real Prefect flow runs, a real loopback site, real lakes and two real worker processes: 40 pages (the
demo articles, each under five URLs, so exact duplicates cross batch boundaries) in batches of 16,
with a mid-run maintenance pass after every batch, against the same pages in one batch in one process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lake import lake_connect, use_lake
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "seeds" / "demo_site" / "harbourgazette"

TABLES = {
    "articles": "select count(*) from articles",
    "duplicates": "select count(*) from duplicates",
    "mentions": "select count(*) from mentions",
    "entity runs": "select count(*) from article_entity_runs",
    "pages": "select count(*) from pages where kind = 'article'",
    "article urls": "select count(*) from article_urls",
}


def _site(site: SiteServer, tmp_path: Path) -> tuple[Path, int]:
    pages = sorted(p for p in DEMO.rglob("*.html") if p.name != "index.html")[:8]
    urls = []
    for copy in range(5):
        for p in pages:
            path = f"/c{copy}/{p.relative_to(DEMO).as_posix()}"
            site.set_file(path, p.read_bytes(), content_type="text/html; charset=utf-8")
            urls.append(site.url(path))
    site.set_robots("User-agent: *\nAllow: /\n")
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[sources]]\nname = "copies"\nkind = "urls"\nlocation = "{listing}"\n', encoding="utf-8")
    return sources, len(urls)


def _counts(wh: Path) -> dict[str, int]:
    with lake_connect(wh) as con:
        return {k: con.execute(sql).fetchall()[0][0] for k, sql in TABLES.items()}


# 1: every batch loads on its own; 32: batches load in groups of two (16 + 16, then the last 8), so
# exact copies and near-duplicates meet inside one transaction as well as across transactions.
@pytest.mark.parametrize("load_min_pages", [1, 32])
def test_overlapped_batches_load_what_one_batch_loads(
    prefect_api: None, site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, load_min_pages: int
) -> None:
    import flows.ingest
    from flows.ingest import ingest

    sources, n = _site(site, tmp_path)
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(sources))
    monkeypatch.setenv("NEWSFLOW_FETCH__PER_HOST_DELAY_S", "0")

    use_lake(monkeypatch, tmp_path / "one")
    monkeypatch.setenv("NEWSFLOW_BATCH_SIZE", "100")
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")
    one = ingest()

    site.clear_log()
    use_lake(monkeypatch, tmp_path / "overlapped")
    monkeypatch.setenv("NEWSFLOW_BATCH_SIZE", "16")  # 16 pages: two chunks, so the worker processes run them
    monkeypatch.setenv("NEWSFLOW_WORKERS", "2")
    monkeypatch.setenv("NEWSFLOW_LOAD_MIN_PAGES", str(load_min_pages))
    monkeypatch.setattr(flows.ingest, "COMPACT_EVERY_PAGES", 16)  # a maintenance pass after every load but the last
    overlapped = ingest()

    assert one["new"] == overlapped["new"] and overlapped["fetched"] == n
    assert sum(site.hits(f"/c{c}/") for c in range(5)) == n  # every page fetched exactly once
    expected = _counts(tmp_path / "one")
    assert expected["articles"] == n and expected["duplicates"] > 0 and expected["mentions"] > 0
    assert _counts(tmp_path / "overlapped") == expected
    with lake_connect(tmp_path / "overlapped") as con:
        # Entities of exact copies came from their canonical (copied, not re-run), in any batch.
        assert con.execute(
            "select count(distinct article_id) from mentions"
        ).fetchall()[0][0] == con.execute("select count(*) from article_entity_runs where mention_count > 0").fetchall()[0][0]
