"""Site boilerplate: lines recurring on other articles of one site are removed from its new articles, with a reason;
the warehouse finds them per site (bounded, duplicates left out) and records what each article lost."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.boilerplate import MAX_REMOVED_SHARE, recurring_lines, remove_site_boilerplate, site_of
from ingest.clean import clean
from ingest.models import Article, FetchResult
from ingest.settings import CleanSettings
from warehouse import boilerplate as store
from warehouse.db import init_db, session, transaction

from lake import lake_settings

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
PROMO = "Support independent journalism in Wexmouth: become a member today for less than a coffee a week."
LEGAL = "© 2024 Harbour Gazette Ltd. Registered in England No. 01234567. All rights reserved."
STORIES = [
    [
        "The harbour authority approved a new ferry timetable on Monday after months of complaints from commuters.",
        "Boats will run every twenty minutes at peak times, the authority said, starting in June.",
    ],
    [
        "Wexmouth's oldest bakery closed its doors on Saturday after 112 years, citing rising energy bills.",
        "Customers queued around the block for a last loaf, and the owners thanked the town for its loyalty.",
    ],
    [
        "A storm surge flooded the promenade overnight, leaving cafes and a lifeboat station under water.",
        "Council workers began pumping out basements at dawn while the coastguard closed the beach.",
    ],
    [
        "The town's football club signed a teenage striker from the academy to a three-year contract.",
        "The manager said the player had scored in every youth cup match this season.",
        "Supporters will get a first look at the new signing in Saturday's friendly against the Castlereach reserves.",
    ],
]


def story(i: int, *, with_template: bool = True) -> str:
    lines = STORIES[i] + ([PROMO, LEGAL] if with_template else [])
    return "\n\n".join(lines)


def test_site_of() -> None:
    assert site_of("https://www.HarbourGazette.example:443/a/b?x=1") == "harbourgazette.example"
    assert site_of("https://news.harbourgazette.example/a") == "news.harbourgazette.example"
    assert site_of("file:///tmp/a.html") is None


def test_recurring_lines_need_three_pages_of_the_same_site() -> None:
    pages = [(f"https://www.gazette.example/{i}", story(i)) for i in range(3)]
    pages.append(("https://other.example/x", story(3)))
    found = recurring_lines(pages)
    assert found == {"gazette.example": frozenset({PROMO, LEGAL})}
    assert recurring_lines(pages[:2]) == {}  # two pages are not enough


def test_remove_site_boilerplate_explains_each_line() -> None:
    text, removed = remove_site_boilerplate(story(3), frozenset({PROMO, LEGAL}))
    assert text == "\n\n".join(STORIES[3])
    assert [line for line, _ in removed] == [PROMO, LEGAL]
    assert all(reason.startswith("site_boilerplate:") and ">= 3" in reason for _, reason in removed)
    # Lines that merely resemble a template line stay.
    assert remove_site_boilerplate(STORIES[0][0] + "\n\n" + PROMO.upper(), {PROMO}) == (STORIES[0][0] + "\n\n" + PROMO.upper(), [])


def test_a_second_copy_of_a_stored_story_is_not_stripped() -> None:
    """When most of a text is known lines, it is the same story again, not template: nothing is removed."""
    known = frozenset([*STORIES[0], PROMO, LEGAL])
    assert remove_site_boilerplate(story(0), known) == (story(0), [])
    assert sum(map(len, STORIES[0])) > MAX_REMOVED_SHARE * len(story(0))
    assert remove_site_boilerplate(story(0), frozenset(STORIES[0])) == (story(0), [])


def test_clean_removes_known_lines_and_records_them() -> None:
    html = "<html lang='en'><head><title>Ferry timetable</title></head><body><article><h1>Ferry timetable</h1>" + "".join(
        f"<p>{p}</p>" for p in STORIES[0] * 3 + [PROMO, LEGAL]
    ) + "</article></body></html>"
    page = FetchResult(url="https://www.gazette.example/ferry", source="t", status=200, content_type="text/html", body=html.encode())
    plain = clean(page, CleanSettings(min_text_chars=50))
    assert PROMO in plain.text and plain.boilerplate_removed == []
    art = clean(page, CleanSettings(min_text_chars=50), frozenset({PROMO, LEGAL}))
    assert PROMO not in art.text and LEGAL not in art.text and STORIES[0][1] in art.text
    assert [line for line, _ in art.boilerplate_removed] == [PROMO, LEGAL]


# ---------------------------------------------------------------- warehouse


@pytest.fixture()
def lake(tmp_path: Path) -> Path:
    path = tmp_path / "wh"
    init_db(lake_settings(path))
    return path


def _insert(con, aid: str, url: str, text: str, minutes: int) -> None:  # noqa: ANN001
    seen = T0 + timedelta(minutes=minutes)
    con.execute(
        "INSERT INTO articles (id, url, page_url, source, title, text, extractor, extractor_version, content_hash, "
        "word_count, first_seen_at, last_seen_at, updated_at) VALUES (?, ?, ?, 's', 't', ?, 'test', '0', ?, 1, ?, ?, ?)",
        [aid, url, url, text, aid, seen, seen, seen],
    )


def test_warehouse_recurring_lines_per_site(lake: Path) -> None:
    with session(lake_settings(lake)) as con:
        with transaction(con):
            for i in range(3):
                _insert(con, f"g{i}", f"https://www.gazette.example/{i}", story(i), i)
            _insert(con, "o1", "https://other.example/1", story(3), 9)
        found = store.recurring_lines(con, ["gazette.example", "other.example", "nowhere.example"])
        assert found == {"gazette.example": frozenset({PROMO, LEGAL})}
        # The same answer as the pure version over the same texts.
        assert found == recurring_lines([(f"https://www.gazette.example/{i}", story(i)) for i in range(3)])
        # Excluding one of the three pages (e.g. the article being re-processed) leaves too few.
        assert store.recurring_lines(con, ["gazette.example"], exclude_ids=["g0"]) == {}
        # Bounded per site: only the most recent pages are read.
        assert store.recurring_lines(con, ["gazette.example"], per_site_limit=2) == {}
        # A recorded duplicate does not count: several URLs of one story would make its body look recurring.
        with transaction(con):
            con.execute(
                "INSERT INTO duplicates (article_id, duplicate_of, method, similarity, run_id, detected_at) "
                "VALUES ('g2', 'g1', 'near', 0.9, 1, now())"
            )
        assert store.recurring_lines(con, ["gazette.example"]) == {}


def test_removed_lines_are_recorded_and_keep_counting(lake: Path) -> None:
    with session(lake_settings(lake)) as con:
        with transaction(con):
            for i in range(3):
                # Stored after removal: the template lines are gone from the texts, recorded per article instead.
                _insert(con, f"g{i}", f"https://gazette.example/{i}", story(i, with_template=False), i)
            arts = [
                Article(id=f"g{i}", url="u", page_url="u", source="s", text=story(i, with_template=False),
                        boilerplate_removed=[(PROMO, "site_boilerplate: test"), (LEGAL, "site_boilerplate: test")])
                for i in range(3)
            ]
            assert store.save_removed_lines(con, arts) == 6
        rows = con.execute("SELECT article_id, line, reason FROM articles_boilerplate ORDER BY article_id, line").fetchall()
        assert ("g0", LEGAL, "site_boilerplate: test") in rows and len(rows) == 6
        # Removed lines still count as occurrences, so the site's template stays known.
        assert store.recurring_lines(con, ["gazette.example"]) == {"gazette.example": frozenset({PROMO, LEGAL})}
        # Re-saving an article replaces its rows (re-processing after the template changed).
        with transaction(con):
            store.save_removed_lines(con, [arts[0].model_copy(update={"boilerplate_removed": []})])
        assert con.execute("SELECT count(*) FROM articles_boilerplate WHERE article_id = 'g0'").fetchall()[0][0] == 0
