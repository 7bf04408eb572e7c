"""warehouse.dedup_index against real lakes: the SQLite band/hash index finds exactly what the lake join finds."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from ingest.dedup import decide, fingerprint
from ingest.models import Article, Fingerprint
from ingest.settings import DedupSettings
from warehouse import dedup_index, dedup_store, maintenance
from warehouse.db import init_db, session, transaction

from lake import lake_settings
from test_dedup_store import T0, insert_article

SETTINGS = DedupSettings()
WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "vo", "ze") for b in ("n", "r", "s", "t", "l", "m", "d", "k")]


def text(seed: int, n: int = 160) -> str:
    """A distinct article text (random words, so unrelated texts share no shingles)."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "."


def near_copy(body: str, seed: int) -> str:
    """The same text with a few words changed: a near duplicate (shares band keys)."""
    rng = random.Random(seed)
    words = body.split()
    for i in rng.sample(range(len(words)), 4):
        words[i] = rng.choice(WORDS)
    return " ".join(words)


@pytest.fixture()
def lake(tmp_path: Path):
    settings = lake_settings(tmp_path / "w", dedup=DedupSettings(index_min_articles=0))
    init_db(settings)
    return settings


def candidates(cands: dict) -> dict[str, list[str]]:
    return {q: [c.article_id for c in cs] for q, cs in cands.items()}


def run_batch(settings, con, items: list[tuple[str, str]], minute: int, *, rollback: bool = False, write_through: bool = False) -> dict[str, list[str]]:
    """One batch as flows/batch.py does it: sync the index, then in one transaction save, find (both ways), decide, save."""
    fps = [fingerprint(aid, body, SETTINGS) for aid, body in items]
    with dedup_index.opened(settings, con) as index:
        assert index is not None
        con.execute("BEGIN TRANSACTION")
        try:
            for aid, body in items:
                if con.execute("SELECT 1 FROM articles WHERE id = ?", [aid]).fetchall():
                    con.execute("UPDATE articles SET text = ? WHERE id = ?", [body, aid])
                else:
                    insert_article(con, aid, body, minute)
            dedup_store.save_fingerprints(con, fps, SETTINGS)
            current = dedup_index.still_current(index, con)
            assert current is index
            by_lake = dedup_store.find_candidates(con, fps)
            by_index = dedup_store.find_candidates(con, fps, current)
            assert candidates(by_index) == candidates(by_lake)
            assert by_index == by_lake  # the candidates' rows too
            batch = [(Article(id=aid, url=aid, page_url=aid, source="s", text=body, fetched_at=T0), fp) for (aid, body), fp in zip(items, fps)]
            matches = decide(batch, by_index, SETTINGS, first_seen=dedup_store.first_seen_times(con, [a for a, _ in items]))
            dedup_store.save_duplicates(con, matches, 1, checked_ids=[a for a, _ in items])
            if write_through:
                index.tag(con, fps)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("ROLLBACK" if rollback else "COMMIT")
    return candidates(by_index)


def index_rows(settings) -> tuple[set, set]:
    side = sqlite3.connect(dedup_index.path_for(settings))
    try:
        return set(side.execute("SELECT band, band_key, article_id FROM bands").fetchall()), set(side.execute("SELECT * FROM hashes").fetchall())
    finally:
        side.close()


def lake_rows(con) -> tuple[set, set]:
    return (
        set(con.execute("SELECT band, band_key, article_id FROM article_bands").fetchall()),
        set(con.execute("SELECT article_id, content_hash FROM article_fingerprints").fetchall()),
    )


@pytest.mark.parametrize("write_through", [False, True], ids=["synced", "written-through"])
def test_index_matches_lake_scan_through_changes_and_maintenance(lake, write_through: bool) -> None:
    wt = {"write_through": write_through}
    with session(lake) as con:
        got = run_batch(lake, con, [(f"h{i}", text(i)) for i in range(12)], 0, **wt)
        assert all(v == [] for v in got.values())
        # Near copies of history, an exact copy, an intra-batch pair, a novel article.
        got = run_batch(lake, con, [("c1", near_copy(text(1), 101)), ("c2", near_copy(text(2), 102)), ("x3", text(3)),
                                    ("p1", text(50)), ("p2", near_copy(text(50), 103)), ("n1", text(60))], 10)
        assert got["c1"] == ["h1"] and got["x3"] == ["h3"] and got["p2"] == ["p1"] and got["n1"] == []
        # A recorded duplicate brings its canonical; a re-fingerprinted article drops its old bands.
        maintenance.flush_inlined(con)
        got = run_batch(lake, con, [("c1b", near_copy(text(1), 104)), ("h4", text(70)), ("r4", near_copy(text(4), 105))], 20, **wt)
        assert set(got["c1b"]) == {"h1", "c1"} and got["h4"] == [] and got["r4"] == []
        # A rolled-back batch leaves nothing behind in either.
        run_batch(lake, con, [("gone", text(80)), ("h5", text(81))], 30, rollback=True, **wt)
        got = run_batch(lake, con, [("t80", near_copy(text(80), 106)), ("t70", near_copy(text(70), 107)), ("t4", near_copy(text(4), 108))], 40, **wt)
        assert got["t80"] == [] and got["t70"] == ["h4"] and got["t4"] == ["r4"]  # h4 was re-fingerprinted away from text 4
        rows_lake = lake_rows(con)
    maintenance.maintain(lake, full=True)  # flush, rewrite, merge: maintenance-only snapshots
    with session(lake) as con:
        run_batch(lake, con, [("t5", near_copy(text(5), 109)), ("n90", text(90))], 50, **wt)
        with dedup_index.opened(lake, con) as index:
            # the last batch's commit: written through, else read back from the change feed
            assert index.sync.action == ("fresh" if write_through else "applied")
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "fresh"
        assert index_rows(lake) == lake_rows(con)
        assert lake_rows(con) != rows_lake


def test_index_rebuilt_when_missing_or_lake_recreated(lake, tmp_path: Path) -> None:
    with session(lake) as con:
        run_batch(lake, con, [(f"h{i}", text(i)) for i in range(5)], 0)
        path = dedup_index.path_for(lake)
        assert path.name == "catalog.dedup.sqlite" and path.exists()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "rebuilt"
        assert index_rows(lake) == lake_rows(con)
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "fresh"
        run_batch(lake, con, [("c1", near_copy(text(1), 1))], 10)
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "applied" and index.sync.rows > 0  # the batch's own commit, read back
    # The lake deleted and created again: same path, another lake, so the old index must not be used.
    for p in (tmp_path / "w").iterdir():
        if p.name != "catalog.dedup.sqlite":
            p.unlink() if p.is_file() else __import__("shutil").rmtree(p)
    init_db(lake)
    with session(lake) as con:
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "rebuilt"
        got = run_batch(lake, con, [("c1", near_copy(text(1), 1))], 0)
        assert got["c1"] == []
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "applied"
        assert index_rows(lake) == lake_rows(con)


def test_index_not_current_after_another_commit(lake) -> None:
    """A writer that commits between the sync and the batch's transaction: the batch must not use the stale index."""
    with session(lake) as con:
        run_batch(lake, con, [("h1", text(1))], 0)
        with dedup_index.opened(lake, con) as index:
            with transaction(con):
                insert_article(con, "h2", text(2), 1)
                dedup_store.save_fingerprints(con, [fingerprint("h2", text(2), SETTINGS)], SETTINGS)
            con.execute("BEGIN TRANSACTION")
            try:
                assert dedup_index.still_current(index, con) is None
            finally:
                con.execute("ROLLBACK")


def test_index_off_or_unusable_falls_back_to_lake(lake, tmp_path: Path, monkeypatch) -> None:
    with session(lake) as con:
        off = lake.model_copy(update={"dedup": DedupSettings(index=False, index_min_articles=0)})
        with dedup_index.opened(off, con) as index:
            assert index is None
        assert not dedup_index.path_for(lake).exists()
        # The index path occupied by a directory: unusable, said once, and the batch still finds its candidates.
        dedup_index.path_for(lake).mkdir()
        said: list[str] = []
        assert dedup_index.open_synced(lake, con, said.append) is None
        assert dedup_index.open_synced(lake, con, said.append) is None
        assert len(said) == 1 and "unusable" in said[0]
    monkeypatch.setenv("NEWSFLOW_DEDUP__INDEX", "false")
    from ingest.settings import Settings

    assert Settings().dedup.index is False


def test_fingerprint_model_ignores_index_flag() -> None:
    from ingest.dedup import model_id

    assert model_id(DedupSettings(index=False)) == model_id(DedupSettings())


def _fp(aid: str, seed: int) -> Fingerprint:
    return fingerprint(aid, text(seed), SETTINGS)


def test_hits_finds_bands_and_hashes(lake) -> None:
    with session(lake) as con:
        run_batch(lake, con, [("a", text(1)), ("b", text(2))], 0)
        with dedup_index.opened(lake, con) as index:
            hits = index.hits([_fp("q1", 1), fingerprint("q2", near_copy(text(2), 3), SETTINGS), _fp("q3", 99)])
    assert hits == {("q1", "a"), ("q2", "b")}


def test_write_through_only_for_its_own_single_commit(lake) -> None:
    with session(lake) as con:
        run_batch(lake, con, [("a", text(1)), ("b", text(2))], 0, write_through=True)
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "fresh"  # the batch's commit was written through
        # An unchanged re-run is written through too (nothing to add).
        run_batch(lake, con, [("a", text(1))], 1, write_through=True)
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "fresh"
        # A re-fingerprinted article (its old keys are not known to the index): left to the change feed.
        run_batch(lake, con, [("a", text(3))], 2, write_through=True)
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "applied"
        # Another commit between the batch's and the write-through: not written through.
        with dedup_index.opened(lake, con) as index:
            fps = [fingerprint("c", text(4), SETTINGS)]
            with transaction(con):
                insert_article(con, "c", text(4), 3)
                dedup_store.save_fingerprints(con, fps, SETTINGS)
                index.tag(con, fps)
            with transaction(con):
                insert_article(con, "d", text(5), 4)
                dedup_store.save_fingerprints(con, [fingerprint("d", text(5), SETTINGS)], SETTINGS)
            assert index.written_through(con) is False
        # A rolled-back batch: no snapshot, nothing written.
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "applied"
            fps = [fingerprint("e", text(6), SETTINGS)]
            con.execute("BEGIN TRANSACTION")
            dedup_store.save_fingerprints(con, fps, SETTINGS)
            index.tag(con, fps)
            con.execute("ROLLBACK")
            assert index.written_through(con) is False
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "fresh"
        assert index_rows(lake) == lake_rows(con)


def test_index_built_only_from_min_articles(lake, monkeypatch) -> None:
    monkeypatch.setattr(dedup_index, "_RECOUNT_S", 0.0)
    three = lake.model_copy(update={"dedup": DedupSettings(index_min_articles=3)})
    with session(lake) as con:
        with transaction(con):
            dedup_store.save_fingerprints(con, [_fp("a", 1), _fp("b", 2)], SETTINGS)
        with dedup_index.opened(three, con) as index:
            assert index is None
        assert not dedup_index.path_for(lake).exists()
        with transaction(con):
            dedup_store.save_fingerprints(con, [_fp("c", 3)], SETTINGS)
        with dedup_index.opened(three, con) as index:
            assert index is not None and index.sync.action == "rebuilt"
        with transaction(con):
            con.execute("DELETE FROM article_fingerprints")
            con.execute("DELETE FROM article_bands")
        with dedup_index.opened(three, con) as index:  # once built, kept in step whatever the size
            assert index is not None and index.sync.action == "applied"
        assert index_rows(lake) == (set(), set())


def test_demo_ingest_with_index_decides_as_without(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """`newsflow ingest` of the bundled demo with the index from the first article: same fingerprints and decisions."""
    import shutil

    from demo_warehouse import REPO, _change_page, demo_lake
    from flows.cli import main
    from lake import lake_connect, lake_env
    from warehouse import db

    without = demo_lake(tmp_path_factory)  # built with the defaults: far below index_min_articles, no index
    assert not (without / "catalog.dedup.sqlite").exists()
    seeds = tmp_path / "seeds"
    shutil.copytree(REPO / "seeds", seeds)
    lake_dir = tmp_path / "lake"
    for k, v in lake_env(lake_dir).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("NEWSFLOW_SEEDS_DIR", str(seeds))
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")
    monkeypatch.setenv("NEWSFLOW_DEDUP__INDEX_MIN_ARTICLES", "0")
    assert main(["init"]) == 0
    assert main(["ingest"]) == 0
    _change_page(seeds)
    assert main(["ingest"]) == 0
    db.close_all()
    settings = lake_settings(lake_dir, dedup=DedupSettings(index_min_articles=0))
    sql = {
        "duplicates": "SELECT a.url, b.url, d.method FROM duplicates d JOIN articles a ON a.id = d.article_id "
        "JOIN articles b ON b.id = d.duplicate_of ORDER BY ALL",
        "fingerprints": "SELECT a.url, f.content_hash FROM article_fingerprints f JOIN articles a ON a.id = f.article_id ORDER BY ALL",
        # Entities as without the index (the entity stage's exact-copy owners come from its hashes;
        # a copy across runs: tests/test_seed_corpus.py).
        "entity_runs": "SELECT a.url, c.url, r.mention_count FROM article_entity_runs r JOIN articles a ON a.id = r.article_id "
        "LEFT JOIN articles c ON c.id = r.copied_from ORDER BY ALL",
        "mentions": "SELECT a.url, e.key, m.start_char, m.end_char FROM mentions m JOIN articles a ON a.id = m.article_id "
        "JOIN entities e ON e.id = m.entity_id ORDER BY ALL",
    }
    with lake_connect(without) as a, lake_connect(lake_dir) as b:
        for name, q in sql.items():
            assert b.execute(q).fetchall() == a.execute(q).fetchall(), name
        assert b.execute("SELECT count(*) FROM duplicates").fetchone()[0] > 0
    with session(settings) as con:
        # The last run re-fingerprinted the changed page: not written through, read back by the next sync.
        with dedup_index.opened(settings, con) as index:
            assert index.sync.action == "applied"
        assert index_rows(settings) == lake_rows(con)


def test_failing_index_mid_batch_falls_back_and_body_errors_propagate(lake) -> None:
    with session(lake) as con:
        run_batch(lake, con, [("a", text(1))], 0)
        with dedup_index.opened(lake, con) as index:
            index.side.execute("DROP TABLE hashes")  # the file damaged under a running batch
            got = dedup_store.find_candidates(con, [fingerprint("c", near_copy(text(1), 1), SETTINGS)], index)
            assert [c.article_id for c in got["c"]] == ["a"]  # answered by the lake join
        with dedup_index.opened(lake, con) as index:
            assert index.sync.action == "rebuilt"
        assert index_rows(lake) == lake_rows(con)
        # An error inside the block is the caller's, never swallowed by the index's context manager.
        with pytest.raises(sqlite3.OperationalError):
            with dedup_index.opened(lake, con) as index:
                index.side.execute("SELECT * FROM no_such_table")


def test_existing_content_hashes_through_index_as_through_lake(lake) -> None:
    from warehouse import queries

    with session(lake) as con:
        # Exact copies: a later one with a smaller id, and a tie on first_seen_at (the id decides).
        run_batch(lake, con, [("z1", text(1)), ("b2", text(2)), ("c2", text(2))], 0)
        run_batch(lake, con, [("a1", text(1)), ("n3", text(3))], 5)
        want = [_fp("q", s).content_hash for s in (1, 2, 3, 4)]
        by_lake = queries.existing_content_hashes(con, want)
        with dedup_index.opened(lake, con, write_through=False) as index:
            current = dedup_index.still_current(index, con)
            assert current is not None
            by_index = queries.existing_content_hashes(con, want, index=current)
        # An article deleted from the lake but still in a stale index is no owner.
        con.execute("DELETE FROM articles WHERE id = 'z1'")
        with dedup_index.opened(lake, con, write_through=False) as index:
            stale_owner = queries.existing_content_hashes(con, want[:1], index=index)
    assert by_lake == by_index == {want[0]: "z1", want[1]: "b2", want[2]: "n3"}
    assert stale_owner == {want[0]: "a1"}
