"""Dedup persistence against real DuckDB files: fingerprints, candidates, idempotent saves and views."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.dedup import decide, fingerprint, model_id
from ingest.models import Article, DuplicateMatch
from ingest.settings import DedupSettings
from warehouse import dedup_store as store
from warehouse.db import init_db, session, transaction

from test_dedup import SEED_A, SEED_B, paragraphs, syndicated_copy
from lake import lake_settings

SETTINGS = DedupSettings()
T0 = datetime(2023, 3, 1, tzinfo=timezone.utc)


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "wh"
    init_db(lake_settings(path))
    return path


def insert_article(con, aid: str, text: str, minutes: int, source: str | None = None) -> None:
    seen = T0 + timedelta(minutes=minutes)
    con.execute(
        "INSERT INTO articles (id, url, page_url, source, title, text, extractor, extractor_version, content_hash, "
        "word_count, first_seen_at, last_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'test', '0', ?, ?, ?, ?, ?)",
        [aid, f"https://{aid}.example/a", f"https://{aid}.example/a", source or f"src-{aid}", f"title {aid}", text,
         fingerprint(aid, text, SETTINGS).content_hash, len(text.split()), seen, seen + timedelta(minutes=1), seen],
    )


def ingest(con, items: list[tuple[str, str, int]], run_id: int = 1) -> list[DuplicateMatch]:
    """What the pipeline does per batch: fingerprint, find candidates, decide, then save articles + dedup."""
    batch = [
        (Article(id=aid, url=aid, page_url=aid, source=f"src-{aid}", text=text, fetched_at=T0 + timedelta(minutes=m)),
         fingerprint(aid, text, SETTINGS))
        for aid, text, m in items
    ]
    fps = [fp for _, fp in batch]
    cands = store.find_candidates(con, fps)
    seen = store.first_seen_times(con, [a.id for a, _ in batch])
    matches = decide(batch, cands, SETTINGS, first_seen=seen)
    with transaction(con):
        for aid, text, m in items:
            if not con.execute("SELECT 1 FROM articles WHERE id = ?", [aid]).fetchall():
                insert_article(con, aid, text, m)
            else:
                con.execute("UPDATE articles SET text = ? WHERE id = ?", [text, aid])
        store.save_fingerprints(con, fps, SETTINGS)
        store.save_duplicates(con, matches, run_id, checked_ids=[a.id for a, _ in batch])
    return matches


def dup_rows(con) -> list[tuple]:
    return con.execute("SELECT article_id, duplicate_of, method, round(similarity, 6), run_id, detected_at FROM duplicates ORDER BY 1").fetchall()


def test_migration_creates_tables_and_views(db: Path) -> None:
    with session(lake_settings(db), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"article_fingerprints", "article_bands", "duplicates", "v_articles_unique", "v_story_clusters"} <= tables


def test_fingerprint_round_trip(db: Path) -> None:
    fp = fingerprint("a", SEED_A, SETTINGS)
    with session(lake_settings(db)) as con:
        insert_article(con, "a", SEED_A, 0)
        with transaction(con):
            assert store.save_fingerprints(con, [fp], SETTINGS) == 1
        row = con.execute("SELECT content_hash, signature, shingle_count, model FROM article_fingerprints").fetchall()[0]
        bands = con.execute("SELECT band, band_key FROM article_bands WHERE article_id = 'a' ORDER BY band").fetchall()
        assert row == (fp.content_hash, fp.signature, fp.shingle_count, model_id(SETTINGS))
        assert bands == list(enumerate(fp.band_keys))
        # Idempotent: the same fingerprint again changes nothing.
        with transaction(con):
            assert store.save_fingerprints(con, [fp], SETTINGS) == 0
        assert con.execute("SELECT count(*) FROM article_bands").fetchall()[0][0] == len(fp.band_keys)  # whole-text + lead bands
        # Changed text rewrites the bands of that article only.
        fp2 = fingerprint("a", SEED_B, SETTINGS)
        with transaction(con):
            assert store.save_fingerprints(con, [fp2], SETTINGS) == 1
        assert con.execute("SELECT list(band_key ORDER BY band) FROM article_bands").fetchall()[0][0] == fp2.band_keys
        assert store.stale_fingerprint_ids(con, SETTINGS) == []
        assert store.stale_fingerprint_ids(con, DedupSettings(shingle_size=4)) == ["a"]


def test_find_candidates_bands_hash_and_self_exclusion(db: Path) -> None:
    with session(lake_settings(db)) as con:
        insert_article(con, "seed-a", SEED_A, 0)
        insert_article(con, "seed-b", SEED_B, 1)
        store.save_fingerprints(con, [fingerprint("seed-a", SEED_A, SETTINGS), fingerprint("seed-b", SEED_B, SETTINGS)], SETTINGS)
        copy = syndicated_copy(SEED_A)
        fps = [
            fingerprint("copy", copy, SETTINGS),
            fingerprint("exact", SEED_B.upper(), SETTINGS),
            fingerprint("seed-a", SEED_A, SETTINGS),  # re-run of an article already stored
            fingerprint("novel", "An entirely unrelated note about tomato harvests in the valley this autumn.", SETTINGS),
        ]
        got = store.find_candidates(con, fps)
    assert set(got) == {"copy", "exact", "seed-a", "novel"}
    assert [c.article_id for c in got["copy"]] == ["seed-a"]
    assert [c.article_id for c in got["exact"]] == ["seed-b"]
    assert got["seed-a"] == [] and got["novel"] == []
    c = got["copy"][0]
    assert c.first_seen_at == T0 and c.text == SEED_A and c.signature == fingerprint("x", SEED_A, SETTINGS).signature


def test_find_candidates_brings_canonical_of_recorded_duplicate(db: Path) -> None:
    paras = paragraphs(SEED_A)
    with session(lake_settings(db)) as con:
        ingest(con, [("canon", SEED_A, 0)])
        ingest(con, [("dup", "\n\n".join(paras[:-1]), 10)])
        # Force the band path only through "dup": a fingerprint that shares dup's band keys but no hash.
        dup_fp = fingerprint("dup", "\n\n".join(paras[:-1]), SETTINGS)
        probe = dup_fp.model_copy(update={"article_id": "probe", "content_hash": "0" * 64})
        con.execute("DELETE FROM article_bands WHERE article_id = 'canon'")
        got = store.find_candidates(con, [probe])
    assert {c.article_id for c in got["probe"]} == {"dup", "canon"}


def test_pipeline_records_and_is_idempotent(db: Path) -> None:
    copy = syndicated_copy(SEED_A)
    with session(lake_settings(db)) as con:
        ingest(con, [("seed-a", SEED_A, 0), ("seed-b", SEED_B, 1)], run_id=1)
        assert dup_rows(con) == []
        matches = ingest(con, [("copy", copy, 60), ("copy2", copy.replace("Maria Jensen", "Ann Lee"), 61), ("other", "Quiet day at the harbour as fishing boats stay in port because of the storm warning issued overnight.", 62)], run_id=2)
        assert {(m.article_id, m.duplicate_of) for m in matches} == {("copy", "seed-a"), ("copy2", "seed-a")}
        before = dup_rows(con)
        counts = con.execute("SELECT (SELECT count(*) FROM article_fingerprints), (SELECT count(*) FROM article_bands)").fetchall()[0]
        # Re-running the same batches leaves exactly the same rows (same run id and detection time too).
        ingest(con, [("copy", copy, 120), ("copy2", copy.replace("Maria Jensen", "Ann Lee"), 121), ("other", "Quiet day at the harbour as fishing boats stay in port because of the storm warning issued overnight.", 122)], run_id=3)
        ingest(con, [("seed-a", SEED_A, 130), ("seed-b", SEED_B, 131)], run_id=4)
        assert dup_rows(con) == before
        assert con.execute("SELECT (SELECT count(*) FROM article_fingerprints), (SELECT count(*) FROM article_bands)").fetchall()[0] == counts
        assert {r[4] for r in before} == {2}


def test_changed_text_clears_duplicate(db: Path) -> None:
    with session(lake_settings(db)) as con:
        ingest(con, [("seed-a", SEED_A, 0)])
        ingest(con, [("copy", syndicated_copy(SEED_A), 10)])
        assert [r[:2] for r in dup_rows(con)] == [("copy", "seed-a")]
        ingest(con, [("copy", "The page now shows a correction notice about an unrelated local council vote and nothing else.", 20)])
        assert dup_rows(con) == []


def test_save_duplicates_keeps_pointing_at_canonical(db: Path) -> None:
    """When a canonical becomes a duplicate itself, existing records move to the new canonical."""
    with session(lake_settings(db)) as con:
        with transaction(con):
            store.save_duplicates(con, [DuplicateMatch(article_id="d1", duplicate_of="h", method="near", similarity=0.9)], 1)
        with transaction(con):
            store.save_duplicates(con, [DuplicateMatch(article_id="h", duplicate_of="s", method="near", similarity=0.8)], 2)
        rows = {r[0]: r[1] for r in dup_rows(con)}
        assert rows == {"d1": "s", "h": "s"}
        # An article named as a canonical (h) loses its own record; records pointing at s follow it to z.
        with transaction(con):
            store.save_duplicates(con, [DuplicateMatch(article_id="s", duplicate_of="z", method="exact", similarity=1.0),
                                        DuplicateMatch(article_id="q", duplicate_of="h", method="near", similarity=0.7)], 3)
        rows = {r[0]: r[1] for r in dup_rows(con)}
        assert rows == {"d1": "z", "s": "z", "q": "h"}
        assert all(v not in rows for v in rows.values())
        assert store.clear_duplicates(con, ["q", "nope"]) == 1


def test_views_contents(db: Path) -> None:
    copy = syndicated_copy(SEED_A)
    with session(lake_settings(db)) as con:
        ingest(con, [("seed-a", SEED_A, 0), ("seed-b", SEED_B, 1)])
        ingest(con, [("copy", copy, 60), ("copy2", copy.replace("Maria Jensen", "Ann Lee"), 90)])
        unique = sorted(r[0] for r in con.execute("SELECT id FROM v_articles_unique").fetchall())
        clusters = con.execute(
            "SELECT article_id, duplicate_count, sources, duplicate_ids, first_seen_at, last_seen_at FROM v_story_clusters ORDER BY article_id"
        ).fetchall()
    assert unique == ["seed-a", "seed-b"]
    assert clusters == [
        ("seed-a", 2, ["src-copy", "src-copy2", "src-seed-a"], ["copy", "copy2"], T0, T0 + timedelta(minutes=91)),
        ("seed-b", 0, ["src-seed-b"], [], T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)),
    ]
