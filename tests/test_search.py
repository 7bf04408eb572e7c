"""Full-text search: tokenising and stemming, the in-lake index (incremental, stale entries, merges), BM25
ranking from Python and from SQL, `newsflow search`, and searching while a load is writing."""

from __future__ import annotations

import glob
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from demo_warehouse import demo_lake
from flows.cli import main
from ingest.models import Article
from ingest.settings import BUNDLED_SEEDS_DIR
from ingest.terms import STOP_WORDS, TITLE_WEIGHT, query_terms, stem, term_counts, tokens
from lake import lake_connect, lake_settings, use_lake
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from warehouse import db, search

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


# ---------------------------------------------------------------- terms


def test_tokens_and_stems() -> None:
    assert tokens("The U.S. and Russia's talks, in 2023!") == ["russia", "talks", "2023"]
    assert query_terms("Talks talking TALKED") == ["talk"]
    assert stem("negotiations") == stem("negotiation") == "negoti"
    counts, length = term_counts("Peace talks", "Talks resumed. The talks went well.")
    assert counts["talk"] == 2 + TITLE_WEIGHT and counts["peac"] == TITLE_WEIGHT and "the" not in counts
    assert length == sum(counts.values())


def test_python_stems_equal_duckdb_stems_so_sql_and_python_rank_alike() -> None:
    words = set()
    for path in glob.glob(str(BUNDLED_SEEDS_DIR / "**" / "*.*"), recursive=True):
        words |= set(tokens(Path(path).read_text(encoding="utf-8", errors="replace")))
    t = db.target(lake_settings("/nonexistent"))
    import duckdb

    from warehouse import extensions

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "extension_directory": str(extensions.prepare(t.extension_names))})
    con.execute("LOAD fts")
    got = dict(con.execute("SELECT w, stem(w, 'porter') FROM unnest(?) t(w)", [sorted(words)]).fetchall())
    assert len(words) > 1500
    assert {w: stem(w) for w in words} == got


def test_c_stemmer_in_use_and_equal_to_the_pure_python_port() -> None:
    """PyStemmer (a dependency) does the stemming, with the stems of snowballstemmer's own Python port."""
    import snowballstemmer
    from snowballstemmer.porter_stemmer import PorterStemmer

    from ingest import terms

    assert type(terms._stemmer).__module__ == "Stemmer"  # snowballstemmer handed it to PyStemmer
    assert snowballstemmer.stemmer("porter").__class__.__module__ == "Stemmer"
    words = set()
    for path in glob.glob(str(BUNDLED_SEEDS_DIR / "**" / "*.*"), recursive=True):
        words |= set(tokens(Path(path).read_text(encoding="utf-8", errors="replace")))
    assert len(words) > 1500
    pure = PorterStemmer()
    assert {w: terms._stemmer.stemWord(w) for w in words} == {w: pure.stemWord(w) for w in words}


def test_stop_words_match_the_sql_macro() -> None:
    # The latest migration that (re)defines the macro.
    latest = max(p for p in (Path(search.__file__).parent / "migrations").glob("*.sql") if "MACRO search_articles" in p.read_text(encoding="utf-8"))
    sql = latest.read_text(encoding="utf-8")
    listed = set(re.findall(r"'([a-z]+)'", sql[sql.index("list_contains(") :]))
    assert listed == set(STOP_WORDS)


# ---------------------------------------------------------------- the index on a fresh lake


def article(i: int, title: str, text: str, source: str = "s1") -> Article:
    url = f"https://example.test/{i}"
    return Article(id=f"a{i:03d}", url=url, page_url=url, source=source, title=title, text=text,
                   content_hash=f"h{i}-{hash(text) & 0xFFFF}", published_at=T0.replace(day=i), fetched_at=T0)


def insert_rows(con, arts: list[Article]) -> None:  # noqa: ANN001
    """The articles' rows (replacing any with the same id)."""
    con.execute("DELETE FROM articles WHERE id IN (SELECT unnest(?))", [[a.id for a in arts]])
    for a in arts:
        con.execute(
            "INSERT INTO articles (id, url, page_url, source, title, text, published_at, extractor, extractor_version, "
            "content_hash, word_count, first_seen_at, last_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'test', '1', ?, ?, ?, ?, ?)",
            [a.id, a.url, a.page_url, a.source, a.title, a.text, a.published_at, a.content_hash, len(a.text.split()), T0, T0, T0],
        )


def load(con, arts: list[Article]) -> int:  # noqa: ANN001
    """What a batch load does for search: the article rows and their index rows in one transaction."""
    with db.transaction(con):
        insert_rows(con, arts)
        return search.index_articles(con, arts)


@pytest.fixture
def fresh(tmp_path: Path):  # noqa: ANN201
    settings = lake_settings(tmp_path / "lake")
    db.init_db(settings)
    arts = [
        article(1, "Ceasefire talks resume in Geneva", "Negotiators met in Geneva. The ceasefire talks lasted six hours."),
        article(2, "Harbour strike ends", "Dockworkers ended their strike after talks with the port authority.", source="s2"),
        article(3, "Storm hits the coast", "A storm flooded the harbour road. Ferries were cancelled.", source="s2"),
    ]
    with db.session(settings) as con:
        assert load(con, arts) == 3
    yield settings, arts, tmp_path / "lake"
    db.close_all()


def ids(hits: list[dict]) -> list[str]:
    return [h["id"] for h in hits]


def test_ranking_filters_and_snippets(fresh) -> None:  # noqa: ANN001
    settings, _, _ = fresh
    with db.session(settings, read_only=True) as con:
        hits = search.search(con, "ceasefire talks")
        assert ids(hits) == ["a001", "a002"]  # both terms (in the title, twice) beat one term once
        assert hits[0]["score"] > hits[1]["score"] > 0 and hits[0]["matched_terms"] == 2
        snip = hits[0]["snippet"]
        assert {snip[s:e].lower() for s, e in hits[0]["highlights"]} >= {"ceasefire", "talks"}
        assert ids(search.search(con, "talking")) == ids(search.search(con, "talks"))  # stemming
        assert ids(search.search(con, "talks", source="s2")) == ["a002"]
        assert ids(search.search(con, "talks", since="2026-03-02")) == ["a002"]
        assert ids(search.search(con, "talks", limit=1)) == ["a001"]
        assert search.search(con, "the and of") == [] and search.search(con, "zeppelin") == []
        sql = con.execute("SELECT article_id, score FROM search_articles('ceasefire talks')").fetchall()
        assert [r[0] for r in sql] == ids(hits) and sql[0][1] == pytest.approx(hits[0]["score"])


def test_new_ids_index_without_the_lookup_and_stored_ones_are_still_checked(fresh) -> None:  # noqa: ANN001
    """A batch load passes the articles its transaction inserted as new_ids: they are indexed without looking up
    earlier index rows; the others in the same call are still compared with what is indexed (unchanged: skipped)."""
    settings, arts, _ = fresh
    new = article(4, "Zeppelin lands", "A zeppelin landed at the harbour.")
    with db.session(settings) as con:
        with db.transaction(con):
            insert_rows(con, [new])
            assert search.index_articles(con, [*arts, new], new_ids={new.id}) == 1
        assert ids(search.search(con, "zeppelin")) == ["a004"]
        assert con.execute("SELECT count(*) FROM article_search_docs").fetchall() == [(4,)]


def test_unchanged_skipped_changed_reindexed_and_merges_keep_results(fresh, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    settings, arts, _ = fresh
    with db.session(settings) as con:
        with db.transaction(con):
            assert search.index_articles(con, arts) == 0  # nothing changed: nothing written
        changed = arts[2].model_copy(update={"text": "A blizzard closed the harbour road.", "content_hash": "h3b"})
        assert load(con, [changed]) == 1
        assert ids(search.search(con, "storm")) == ["a003"]  # the title still says storm
        assert ids(search.search(con, "ferries")) == []  # the old text's words no longer count
        assert ids(search.search(con, "blizzard")) == ["a003"]
        before = {q: [(h["id"], round(h["score"], 9)) for h in search.search(con, q)] for q in ("talks", "harbour", "storm road")}
        entries = con.execute("SELECT sum(len(postings)) FROM search_postings").fetchone()[0]
        with db.transaction(con):
            search.compact_search_index(con)
        assert con.execute("SELECT count(*) = count(DISTINCT term), bool_and(merged) FROM search_postings").fetchone() == (True, True)
        assert con.execute("SELECT sum(len(postings)) FROM search_postings").fetchone()[0] < entries  # stale entries dropped
        assert {q: [(h["id"], round(h["score"], 9)) for h in search.search(con, q)] for q in before} == before
        # A batch that pushes the unmerged rows past the limit merges them (same results again).
        monkeypatch.setattr(search, "TAIL_MERGE_ROWS", 1)
        assert load(con, [article(4, "Ferry news", "Ferries sail again.")]) == 1
        assert con.execute("SELECT count(*) FROM search_postings WHERE NOT merged").fetchone()[0] == 0
        for q in ("talks", "harbour"):  # scores move a little (one more article), the order does not
            assert ids(search.search(con, q)) == [i for i, _ in before[q]]
        assert ids(search.search(con, "ferries")) == ["a004"]
        with db.transaction(con):
            search.remove_articles(con, ["a004"])
        assert search.search(con, "ferries") == []


def test_search_answers_while_a_load_is_writing(fresh) -> None:  # noqa: ANN001
    settings, _, path = fresh
    with db.session(settings) as writer:
        writer.execute("BEGIN")
        writer.execute(
            "INSERT INTO articles (id, url, page_url, source, title, text, extractor, extractor_version, content_hash, "
            "word_count, first_seen_at, last_seen_at, updated_at) VALUES ('a009', 'u9', 'u9', 's1', 'Zeppelin', "
            "'A zeppelin landed.', 'test', '1', 'h9', 3, now(), now(), now())"
        )
        search.index_articles(writer, [article(9, "Zeppelin", "A zeppelin landed.")])
        # Another process's view: a fresh read-only connection, like `newsflow search` during an ingest.
        with lake_connect(path) as reader:
            assert search.search(reader, "zeppelin") == []  # uncommitted: not visible, and no waiting
            assert ids(search.search(reader, "ceasefire")) == ["a001"]
        writer.execute("COMMIT")
    with lake_connect(path) as reader:
        assert ids(search.search(reader, "zeppelin")) == ["a009"]


# ---------------------------------------------------------------- on the demo warehouse, from the command line


@pytest.fixture(scope="module")
def lake(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return demo_lake(tmp_path_factory)


def test_every_demo_article_is_indexed(lake: Path) -> None:
    with lake_connect(lake) as con:
        assert con.execute("SELECT count(*) FROM articles ANTI JOIN article_search_docs d ON d.article_id = articles.id").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM v_article_terms").fetchone()[0] > 1000


def test_newsflow_search_prints_ranked_highlighted_hits(lake: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_lake(monkeypatch, lake)
    assert main(["search", "bridge toll ruling", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    first, second = out.split("\n 2. ")
    assert first.startswith(" 1. High Court rules Kingsway Bridge toll") and "harbour-gazette-sitemap · 2023-03-06" in first
    assert "**toll**" in first and "**Bridge**" in first
    assert " 3. " not in second
    assert main(["search", "lavrov", "--source", "northwire-atom"]) == 0
    out = capsys.readouterr().out
    assert "northwire-atom" in out and "harbour-gazette" not in out
    assert main(["search", "lavrov", "--since", "2099-01-01"]) == 0
    assert "no articles match" in capsys.readouterr().err
