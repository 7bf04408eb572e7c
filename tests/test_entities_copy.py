"""copy_entities_many (one set of statements per batch) leaves what one copy_entities call per pair leaves."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from ingest.entities import extract_entities
from ingest.models import Article
from ingest.settings import BUNDLED_SEEDS_DIR, EntitySettings
from lake import lake_settings
from warehouse.db import init_db, session, transaction
from warehouse.entities_store import copy_entities, copy_entities_many, save_entities

T0 = datetime(2023, 3, 1, 9, 0, tzinfo=timezone.utc)


def _insert(con, a: Article, first_seen: datetime) -> None:  # noqa: ANN001
    con.execute(
        "INSERT INTO articles (id, url, page_url, source, title, text, published_at, language, extractor, extractor_version, "
        " content_hash, word_count, first_seen_at, last_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [a.id, a.url, a.page_url, a.source, a.title, a.text, None, a.language, "seed", "1", a.id, len(a.text.split()), first_seen, first_seen, first_seen],
    )


def _warehouse(path: Path) -> tuple[Article, Article]:
    from ingest.seeds import load_seed

    arts = [load_seed(BUNDLED_SEEDS_DIR / "000_7f41d666b0ea1f1a.txt"), load_seed(BUNDLED_SEEDS_DIR / "003_a6cc57f649ce1f43.txt")]
    results = extract_entities(arts, EntitySettings())
    init_db(lake_settings(path))
    with session(lake_settings(path)) as con, transaction(con):
        for i, a in enumerate(arts):
            _insert(con, a, T0 + timedelta(days=i))
        save_entities(con, results, {a.id: T0 + timedelta(days=i) for i, a in enumerate(arts)})
        for n, (src, text) in enumerate([(arts[0], None), (arts[0], None), (arts[1], None), (arts[1], "x " + arts[1].text)]):
            _insert(con, src.model_copy(update={"id": f"dup{n}", "url": f"http://x/{n}", "page_url": f"http://x/{n}", "text": text or src.text}), T0 + timedelta(days=9, hours=n))
    return arts[0], arts[1]


def _state(path: Path) -> dict[str, list[tuple]]:
    with session(lake_settings(path), read_only=True) as con:
        return {
            "mentions": con.execute("SELECT article_id, entity_id, start_char, end_char, surface FROM mentions ORDER BY ALL").fetchall(),
            "runs": con.execute("SELECT article_id, copied_from, mention_count, first_seen_at FROM article_entity_runs ORDER BY ALL").fetchall(),
            "entities": con.execute("SELECT id, article_count, first_seen_at FROM entities ORDER BY ALL").fetchall(),
            "aliases": con.execute("SELECT alias, entity_id, surface, count FROM entity_aliases ORDER BY ALL").fetchall(),
        }


def test_many_pairs_at_once_equal_one_call_per_pair(tmp_path: Path) -> None:
    pairs_of = lambda a, b: [("dup0", "dup1"), (a.id, "dup0"), (b.id, "dup2"), (b.id, "dup3")]  # noqa: E731 - dup1 copies dup0, listed first
    a, b = _warehouse(tmp_path / "one")
    with session(lake_settings(tmp_path / "one")) as con, transaction(con):
        got = [copy_entities(con, frm, to) for frm, to in [(a.id, "dup0"), ("dup0", "dup1"), (b.id, "dup2"), (b.id, "dup3")]]
    assert got == [True, True, True, False]
    a, b = _warehouse(tmp_path / "many")
    with session(lake_settings(tmp_path / "many")) as con, transaction(con):
        assert copy_entities_many(con, pairs_of(a, b)) == {"dup0", "dup1", "dup2"}
    one, many = _state(tmp_path / "one"), _state(tmp_path / "many")
    assert one == many and any(r[0] == "dup1" for r in many["mentions"])
