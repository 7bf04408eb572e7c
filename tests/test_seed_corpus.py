"""Seeds, dedup and entities end to end: `newsflow init`, then real flow runs against a loopback site."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from flows.cli import main
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer
from lake import use_lake, lake_connect

REPO = Path(__file__).resolve().parent.parent
EXTRA = REPO / "tests" / "data" / "site_extra"
DEMO = REPO / "seeds" / "demo_site" / "harbourgazette"
SEED_000 = "seed://000_7f41d666b0ea1f1a.txt"
SEED_003 = "seed://003_a6cc57f649ce1f43.txt"


def rows(db_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with lake_connect(db_path) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: SiteServer) -> dict:
    db_path = tmp_path / "wh"
    use_lake(monkeypatch, db_path)
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")
    monkeypatch.setenv("NEWSFLOW_FETCH__PER_HOST_DELAY_S", "0")
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(tmp_path / "none.toml"))
    return {"db": db_path, "site": site, "tmp": tmp_path}


def test_seeds_are_distinct_clean_articles_with_shared_entities(env: dict) -> None:
    db_path = env["db"]
    assert main(["init"]) == 0
    seeds = dict(rows(db_path, "select url, id from articles where source = 'seed'"))
    assert set(seeds) == {SEED_000, SEED_003}
    # Same G20 event, different stories: not duplicates of each other.
    assert rows(db_path, "select count(*) from duplicates")[0][0] == 0
    for (text,) in rows(db_path, "select text from articles"):
        for residue in ("#Antony", "Leave a Reply", "Your email address", "Required fields"):
            assert residue not in text
        assert not text.rstrip().endswith("comments")

    def entity(url: str, name: str) -> set[tuple]:
        return set(
            rows(
                db_path,
                "select e.id, e.type from mentions m join entities e on e.id = m.entity_id "
                "join articles a on a.id = m.article_id where a.url = ? and lower(m.surface) = lower(?)",
                [url, name],
            )
        )

    for name, etype in [("Blinken", "PERSON"), ("Lavrov", "PERSON"), ("Russia", "GPE"), ("Ukraine", "GPE")]:
        in_000, in_003 = entity(SEED_000, name), entity(SEED_003, name)
        assert in_000 and in_000 == in_003, name  # one shared entity id across the two seeds
        assert {t for _, t in in_000} == {etype}, name
    # "Antony Blinken" and "Blinken" are one entity in 003; Paul Whelan is a person.
    assert entity(SEED_003, "Antony Blinken") | entity(SEED_003, "Antony blinken") == entity(SEED_003, "Blinken")
    assert {t for _, t in entity(SEED_003, "Paul Whelan")} == {"PERSON"}
    people_000 = {n for (n,) in rows(db_path, "select name from v_article_entities v join articles a on a.id = v.article_id "
                                             "where a.url = ? and v.type = 'PERSON'", [SEED_000])}
    assert {"Antony Blinken", "Wang Yi", "Vladimir Putin"} <= people_000


def test_syndicated_copy_of_a_seed_is_a_near_duplicate_and_reruns_add_nothing(prefect_api: None, env: dict) -> None:
    from flows.ingest import ingest

    db_path, site, tmp = env["db"], env["site"], env["tmp"]
    assert main(["init"]) == 0
    copy_html = (EXTRA / "g20-syndicated-copy.html").read_bytes()
    original = (DEMO / "world/2023/03/02/g20-foreign-ministers-new-delhi.html").read_bytes()
    site.set_file("/wire/g20-copy.html", copy_html)
    site.set_file("/news/g20.html", original)
    # The same page under a second URL is an exact duplicate: it reuses the first one's entities.
    site.set_file("/mirror/g20.html", original)
    urls = tmp / "urls.txt"
    urls.write_text("\n".join(site.url(p) for p in ["/wire/g20-copy.html", "/news/g20.html", "/mirror/g20.html"]) + "\n")

    r1 = ingest(urls_file=str(urls))
    assert r1["new"] == 3
    dups = {
        (a_url.rsplit("/", 2)[-2], canon_url, method)
        for a_url, canon_url, method in rows(
            db_path,
            "select a.url, c.url, d.method from duplicates d join articles a on a.id = d.article_id "
            "join articles c on c.id = d.duplicate_of",
        )
    }
    copy_of_seed = [d for d in dups if d[0] == "wire"]
    assert copy_of_seed and copy_of_seed[0][1:] == (SEED_000, "near")
    # Both identical pages were first seen by the same run with the same date: either may be canonical.
    exact = [d for d in dups if d[2] == "exact"]
    assert len(exact) == 1 and {exact[0][0], exact[0][1].rsplit("/", 2)[-2]} == {"news", "mirror"}
    copied = rows(
        db_path,
        "select r.copied_from, (select count(*) from mentions m where m.article_id = r.article_id) "
        "from article_entity_runs r join duplicates d on d.article_id = r.article_id where d.method = 'exact'",
    )
    assert len(copied) == 1 and copied[0][0] is not None and copied[0][1] > 0

    # Views: duplicates are excluded from v_articles_unique; the seed's cluster counts its copy.
    unique_urls = {u for (u,) in rows(db_path, "select url from v_articles_unique")}
    assert SEED_000 in unique_urls and not any(u.endswith("/wire/g20-copy.html") for u in unique_urls)
    cluster = rows(db_path, "select duplicate_count from v_story_clusters c join articles a on a.id = c.article_id where a.url = ?", [SEED_000])
    assert cluster == [(1,)]

    # Re-running the same ingest (and re-fetching everything) adds no duplicate rows.
    before = rows(db_path, "select article_id, duplicate_of, method, similarity, run_id, detected_at from duplicates order by 1")
    ingest(urls_file=str(urls))
    assert rows(db_path, "select article_id, duplicate_of, method, similarity, run_id, detected_at from duplicates order by 1") == before
    assert rows(db_path, "select count(*) from articles")[0][0] == 5


@pytest.mark.parametrize("index_min", ["0", "1000000"], ids=["dedup-index", "lake-scan"])
def test_exact_copy_in_a_later_run_reuses_the_stored_articles_entities(prefect_api: None, env: dict, monkeypatch, index_min: str) -> None:
    """The entity stage's exact-copy owner of a stored article: through the dedup index's hashes, or the lake's articles."""
    from flows.ingest import ingest
    from warehouse import dedup_index

    monkeypatch.setenv("NEWSFLOW_DEDUP__INDEX_MIN_ARTICLES", index_min)
    db_path, site, tmp = env["db"], env["site"], env["tmp"]
    assert main(["init"]) == 0
    original = (DEMO / "world/2023/03/02/g20-foreign-ministers-new-delhi.html").read_bytes()
    site.set_file("/news/g20.html", original)
    site.set_file("/mirror/g20.html", original)
    first, second = tmp / "first.txt", tmp / "second.txt"
    first.write_text(site.url("/news/g20.html") + "\n")
    second.write_text(site.url("/mirror/g20.html") + "\n")
    assert ingest(urls_file=str(first))["new"] == 1
    assert ingest(urls_file=str(second))["new"] == 1
    copied = rows(
        db_path,
        "select a.url, c.url, r.mention_count, (select count(*) from mentions m where m.article_id = r.article_id) "
        "from article_entity_runs r join articles a on a.id = r.article_id join articles c on c.id = r.copied_from",
    )
    assert [(a.rsplit("/", 2)[-2], c.rsplit("/", 2)[-2]) for a, c, _, _ in copied] == [("mirror", "news")]
    assert copied[0][2] == copied[0][3] > 0
    from ingest.settings import Settings

    assert dedup_index.path_for(Settings()).exists() == (index_min == "0")
