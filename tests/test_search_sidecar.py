"""The FTS5 sidecar of `newsflow search`: same ranking as the lake's SQL macro, full build, incremental
sync (changes, removals, maintenance, expired snapshots), concurrent syncs, fallback, and the CLI."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flows.cli import main
from ingest.models import Article
from ingest.terms import query_terms
from lake import lake_settings, use_lake
from warehouse import db, maintenance, search, search_sidecar

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

WORDS = (
    "ceasefire talks harbour strike storm coast ferry minister election court ruling appeal bridge toll police "
    "hospital patients oil prices inflation rates market football club climate wildfire evacuation telescope "
    "Zürich café naïve 2023 covid19 g7 résumé"
).split()
QUERIES = ["ceasefire talks", "harbour", "court ruling appeal", "Zürich café", "2023 covid19", "oil prices inflation", "g7 résumé", "storm"]


def article(i: int, title: str, text: str, source: str = "s1") -> Article:
    url = f"https://example.test/{i}"
    return Article(id=f"a{i:03d}", url=url, page_url=url, source=source, title=title, text=text,
                   content_hash=f"h{i}-{hash(text) & 0xFFFF}", published_at=T0.replace(day=1 + i % 28), fetched_at=T0)


def corpus(start: int, count: int) -> list[Article]:
    """Articles with overlapping vocabularies (deterministic), so terms have varied df and tf."""
    out = []
    for i in range(start, start + count):
        words = [WORDS[(i * 7 + k * k) % len(WORDS)] for k in range(5 + i % 11)]
        title = " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(1 + i % 4))
        out.append(article(i, title.capitalize(), ". ".join(" ".join(words[j:j + 4]) for j in range(0, len(words), 4)) + ".", source=f"s{i % 3}"))
    return out


def load(con, arts: list[Article]) -> int:  # noqa: ANN001
    """What a batch load does for search: the article rows and their index rows in one transaction."""
    with db.transaction(con):
        con.execute("DELETE FROM articles WHERE id IN (SELECT unnest(?))", [[a.id for a in arts]])
        for a in arts:
            con.execute(
                "INSERT INTO articles (id, url, page_url, source, title, text, published_at, extractor, extractor_version, "
                "content_hash, word_count, first_seen_at, last_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'test', '1', ?, ?, ?, ?, ?)",
                [a.id, a.url, a.page_url, a.source, a.title, a.text, a.published_at, a.content_hash, len(a.text.split()), T0, T0, T0],
            )
        return search.index_articles(con, arts)


def load_then_remove(lake, starts: tuple[int, ...], removed: range) -> None:  # noqa: ANN001
    """Batches of ten articles from each of `starts`, then the articles numbered `removed` deleted with their index rows."""
    ids = [f"a{i:03d}" for i in removed]
    with db.session(lake) as con:
        for start in starts:
            load(con, corpus(start, 10))
        with db.transaction(con):
            search.remove_articles(con, ids)
            con.execute("DELETE FROM articles WHERE id IN (SELECT unnest(?))", [ids])


@pytest.fixture
def lake(tmp_path: Path):  # noqa: ANN201
    settings = lake_settings(tmp_path / "lake")
    db.init_db(settings)
    with db.session(settings) as con:
        load(con, corpus(1, 40))
    yield settings
    db.close_all()


def sidecar_hits(settings, q: str, **kw) -> list[tuple[str, float]]:  # noqa: ANN001, ANN003
    side = search_sidecar.connect(search_sidecar.path_for(settings))
    try:
        return [(h["id"], h["score"]) for h in search_sidecar.query(side, q, **kw)]
    finally:
        side.close()


def macro_hits(settings, q: str) -> list[tuple[str, float]]:  # noqa: ANN001
    with db.session(settings, read_only=True) as con:
        return [(r[0], r[1]) for r in con.execute("SELECT article_id, score FROM search_articles(?) LIMIT 20", [q]).fetchall()]


def assert_same_ranking(settings) -> None:  # noqa: ANN001
    """The sidecar's order is the SQL macro's (and warehouse.search's), with the same scores, for every query."""
    for q in QUERIES:
        want = macro_hits(settings, q)
        got = sidecar_hits(settings, q)
        assert want, q
        assert [i for i, _ in got] == [i for i, _ in want], q
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9), q
        with db.session(settings, read_only=True) as con:
            assert [h["id"] for h in search.search(con, q)] == [i for i, _ in want], q


def sidecar_rows(settings) -> tuple[int, int, int]:  # noqa: ANN001
    side = sqlite3.connect(search_sidecar.path_for(settings))
    try:
        return side.execute("SELECT (SELECT count(*) FROM docs), (SELECT count(DISTINCT article_id) FROM docs), (SELECT count(*) FROM fts)").fetchone()
    finally:
        side.close()


def lake_docs(settings) -> int:  # noqa: ANN001
    with db.session(settings, read_only=True) as con:
        return con.execute("SELECT count(*) FROM article_search_docs").fetchone()[0]


def test_tokens_survive_the_fts5_tokenizer() -> None:
    assert search_sidecar.token("2023") == "2023" and search_sidecar.token("covid19") == "covid19"
    assert search_sidecar.token("zürich") == "_" + "zürich".encode().hex()
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE f USING fts5(terms, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\")")
    doc = search_sidecar.doc_tokens("Zürich café", "Zürich talks in 2023 about covid19.")
    con.execute("INSERT INTO f VALUES (?)", [doc])
    # Every term is one token, counted as often as the lake counts it (title terms twice).
    assert con.execute("SELECT count(*) FROM f WHERE f MATCH ?", ['"' + search_sidecar.token("zurich") + '"']).fetchone()[0] == 0
    for word, tf in (("zürich", 3), ("café", 2), ("2023", 1), ("covid19", 1), ("talk", 1)):
        assert doc.split().count(search_sidecar.token(query_terms(word)[0])) == tf, word
        assert con.execute("SELECT count(*) FROM f WHERE f MATCH ?", ['"' + search_sidecar.token(query_terms(word)[0]) + '"']).fetchone()[0] == 1


def test_build_then_same_ranking_as_the_sql_macro(lake) -> None:  # noqa: ANN001
    notices: list[str] = []
    r = search_sidecar.sync(lake, notice=notices.append)
    assert r.action == "rebuilt" and r.articles == 40 and len(notices) == 1 and "building the search index" in notices[0]
    assert sidecar_rows(lake) == (40, 40, 40)
    assert search_sidecar.sync(lake).action == "fresh"
    assert_same_ranking(lake)
    # Filters narrow without changing scores, as in the lake search.
    with db.session(lake, read_only=True) as con:
        for kw in ({"source": "s1"}, {"since": "2026-03-15"}, {"limit": 3}):
            want = [(h["id"], h["score"]) for h in search.search(con, "harbour storm", **kw)]
            got = sidecar_hits(lake, "harbour storm", **kw)
            assert [i for i, _ in got] == [i for i, _ in want] and [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9)
    hit = search_sidecar.query(search_sidecar.connect(search_sidecar.path_for(lake)), "ceasefire talks")[0]
    assert {hit["snippet"][s:e].lower() for s, e in hit["highlights"]} & {"ceasefire", "talks"}
    assert hit["matched_terms"] in (1, 2) and hit["published_at"].tzinfo is not None


def test_incremental_sync_applies_adds_changes_and_removals(lake) -> None:  # noqa: ANN001
    search_sidecar.sync(lake)
    with db.session(lake) as con:
        load(con, corpus(41, 10))  # new articles
        changed = corpus(5, 1)[0].model_copy(update={"text": "A blizzard closed the harbour road in Zürich.", "content_hash": "h5b"})
        load(con, [changed])  # re-indexed: a new generation
        with db.transaction(con):
            search.remove_articles(con, ["a007"])
            con.execute("DELETE FROM articles WHERE id = 'a007'")
        with db.transaction(con):  # a display-only change: no new index row
            con.execute("UPDATE articles SET url = 'https://example.test/moved' WHERE id = 'a009'")
    r = search_sidecar.sync(lake)
    assert r.action == "applied" and r.articles == 13
    assert sidecar_rows(lake) == (49, 49, 49) == (lake_docs(lake),) * 3
    assert_same_ranking(lake)
    assert [i for i, _ in sidecar_hits(lake, "blizzard")] == ["a005"]
    side = search_sidecar.connect(search_sidecar.path_for(lake))
    assert side.execute("SELECT url FROM docs WHERE article_id = 'a009'").fetchone()[0] == "https://example.test/moved"
    assert side.execute("SELECT count(*) FROM docs WHERE article_id = 'a007'").fetchone()[0] == 0
    # An article stored before its index row (as `index_missing` finds them): each sync asks the lake.
    with db.session(lake) as con:
        load(con, corpus(60, 1))
        with db.transaction(con):
            search.remove_articles(con, ["a060"])
    assert search_sidecar.sync(lake).articles == 0
    assert side.execute("SELECT count(*) FROM docs WHERE article_id = 'a060'").fetchone()[0] == 0
    with db.session(lake) as con, db.transaction(con):
        assert search.index_missing(con) == 1
    assert search_sidecar.sync(lake).articles == 1
    assert side.execute("SELECT count(*) FROM docs WHERE article_id = 'a060'").fetchone()[0] == 1
    assert sidecar_rows(lake) == (lake_docs(lake),) * 3
    assert_same_ranking(lake)


def test_maintenance_snapshots_are_no_changes_and_expired_snapshots_rebuild(lake) -> None:  # noqa: ANN001
    search_sidecar.sync(lake)
    load_then_remove(lake, (41, 51, 61), range(41, 60))
    assert search_sidecar.sync(lake).action == "applied"
    # Flush, rewrite (which re-lists unchanged rows as inserts) and merge: the sidecar rewrites nothing.
    maintenance.maintain(lake, full=True)
    r = search_sidecar.sync(lake)
    assert r.action == "applied" and r.articles == 0
    assert_same_ranking(lake)
    # The sidecar's snapshot expires: it is rebuilt, and right.
    with db.session(lake) as con:
        load(con, corpus(70, 5))
    maintenance.maintain(lake, retention_days=0)
    notices: list[str] = []
    assert search_sidecar.sync(lake, notice=notices.append).action == "rebuilt" and notices
    assert sidecar_rows(lake) == (lake_docs(lake),) * 3
    assert_same_ranking(lake)


def test_a_sync_beside_maintenance_is_right_and_leaves_nothing_to_apply(lake) -> None:  # noqa: ANN001
    # The end of a run: the sidecar syncs in a thread while maintenance flushes, rewrites and merges.
    load_then_remove(lake, (81, 91, 101), range(81, 86))
    results: list[search_sidecar.SyncResult] = []
    thread = threading.Thread(target=lambda: results.append(search_sidecar.sync(lake)))
    thread.start()
    maintenance.maintain(lake, full=True)
    thread.join()
    assert results and results[0].articles > 0
    r = search_sidecar.sync(lake)  # whichever side of the merge it read, the merge itself changes nothing
    assert r.action in ("applied", "fresh") and r.articles == 0
    assert sidecar_rows(lake) == (lake_docs(lake),) * 3
    assert_same_ranking(lake)


def test_new_terms_version_or_another_lake_rebuilds(lake, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    search_sidecar.sync(lake)
    monkeypatch.setattr(search_sidecar, "TERMS_VERSION", "porter-test")
    assert search_sidecar.sync(lake).action == "rebuilt"
    assert search_sidecar.sync(lake).action == "fresh"
    monkeypatch.setattr(search_sidecar, "FORMAT", "test")
    assert search_sidecar.sync(lake).action == "rebuilt"
    assert sidecar_rows(lake) == (40, 40, 40)
    # The catalog deleted and created again (snapshot ids start over): another lake, rebuilt.
    db.close_all()
    catalog = Path(db.target(lake).location)
    for p in catalog.parent.glob("catalog.sqlite*"):
        p.unlink()
    shutil.rmtree(catalog.parent / "data")
    db.init_db(lake)
    with db.session(lake) as con:
        load(con, corpus(1, 3))
    assert search_sidecar.sync(lake).action == "rebuilt"
    assert sidecar_rows(lake) == (3, 3, 3)


def test_concurrent_syncs_write_each_article_once(lake) -> None:  # noqa: ANN001
    search_sidecar.sync(lake)
    with db.session(lake) as con:
        load(con, corpus(41, 30))
    errors: list[BaseException] = []
    results: list[str] = []

    def run() -> None:
        try:
            results.append(search_sidecar.sync(lake).action)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results).count("applied") == 1 and results.count("fresh") == 3
    assert sidecar_rows(lake) == (70, 70, 70)


def test_search_syncs_first_and_falls_back_to_the_lake(lake) -> None:  # noqa: ANN001
    notices: list[str] = []
    hits = search_sidecar.search(lake, "harbour", notice=notices.append)
    assert notices and search_sidecar.path_for(lake).is_file()
    assert [h["id"] for h in hits] == [i for i, _ in macro_hits(lake, "harbour")]
    with db.session(lake) as con:
        load(con, [article(99, "Zeppelin over the harbour", "A zeppelin landed.")])
    assert [h["id"] for h in search_sidecar.search(lake, "zeppelin")] == ["a099"]  # synced before answering
    # An unusable sidecar (here a directory where the file should be): the lake index answers.
    path = search_sidecar.path_for(lake)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()
    notices.clear()
    assert [h["id"] for h in search_sidecar.search(lake, "zeppelin", notice=notices.append)] == ["a099"]
    assert "searching the warehouse directly" in notices[0]


def test_search_answers_while_a_load_is_writing(lake) -> None:  # noqa: ANN001
    search_sidecar.sync(lake)
    with db.session(lake) as writer:
        writer.execute("BEGIN")
        writer.execute(
            "INSERT INTO articles (id, url, page_url, source, title, text, extractor, extractor_version, content_hash, "
            "word_count, first_seen_at, last_seen_at, updated_at) VALUES ('a099', 'u9', 'u9', 's1', 'Zeppelin', "
            "'A zeppelin landed.', 'test', '1', 'h9', 3, now(), now(), now())"
        )
        search.index_articles(writer, [article(99, "Zeppelin", "A zeppelin landed.")])
        assert search_sidecar.search(lake, "zeppelin") == []  # uncommitted: not visible, and no waiting
        writer.execute("COMMIT")
    assert [h["id"] for h in search_sidecar.search(lake, "zeppelin")] == ["a099"]


def test_sync_after_run_never_raises(lake, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    def boom(*a, **k) -> None:  # noqa: ANN002, ANN003
        raise RuntimeError("disk full")

    monkeypatch.setattr(search_sidecar, "sync", boom)
    search_sidecar.sync_after_run(lake)


def test_newsflow_search_uses_the_sidecar(lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:  # noqa: ANN001
    use_lake(monkeypatch, tmp_path / "lake")
    assert main(["search", "court ruling", "--limit", "3"]) == 0
    out = capsys.readouterr()
    assert "building the search index" in out.err and out.out.startswith(" 1. ")
    assert search_sidecar.path_for(lake).is_file()
    assert main(["search", "court ruling", "--limit", "3", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert out.err == "" and '"score"' in out.out
