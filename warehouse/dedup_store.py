"""Dedup persistence: fingerprints, the LSH band index, candidate look-up and recorded duplicate decisions.

Like warehouse.loads, every function takes an open connection and leaves transaction control to the caller
(one batch, one transaction). Batches are registered as Arrow tables and handled by set-based statements,
so a batch costs a fixed number of queries however many articles it holds or the warehouse already has.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from ingest.dedup import model_id
from ingest.models import DedupCandidate, DuplicateMatch, Fingerprint
from ingest.settings import DedupSettings
from warehouse.arrow import registered

if TYPE_CHECKING:
    from warehouse.dedup_index import DedupIndex

log = logging.getLogger(__name__)

_QUERY_BANDS = pa.schema([("query_id", pa.string()), ("band", pa.int16()), ("band_key", pa.int64())])
_QUERY_HASHES = pa.schema([("query_id", pa.string()), ("content_hash", pa.string())])
_FPS = pa.schema(
    [
        ("article_id", pa.string()), ("content_hash", pa.string()), ("signature", pa.list_(pa.uint32())),
        ("shingle_count", pa.int32()), ("model", pa.string()),
    ]
)
_BANDS = pa.schema([("band", pa.int16()), ("band_key", pa.int64()), ("article_id", pa.string())])
_MATCHES = pa.schema(
    [("article_id", pa.string()), ("duplicate_of", pa.string()), ("method", pa.string()), ("similarity", pa.float64())]
)
_IDS = pa.schema([("article_id", pa.string())])


def _ids_table(ids: Iterable[str]) -> pa.Table:
    return pa.Table.from_pylist([{"article_id": i} for i in dict.fromkeys(ids)], schema=_IDS)


def _pairs_from_lake(con: duckdb.DuckDBPyConnection, fps: Sequence[Fingerprint]) -> list[tuple[str, str]]:
    """(query, candidate) pairs by joining the lake's band and fingerprint tables (two tables that grow, unpruned)."""
    bands = pa.Table.from_pylist(
        [{"query_id": fp.article_id, "band": b, "band_key": k} for fp in fps for b, k in enumerate(fp.band_keys)],
        schema=_QUERY_BANDS,
    )
    hashes = pa.Table.from_pylist([{"query_id": fp.article_id, "content_hash": fp.content_hash} for fp in fps], schema=_QUERY_HASHES)
    with registered(con, "dedup_query_bands", bands), registered(con, "dedup_query_hashes", hashes):
        return con.execute(
            "WITH hits AS ("
            "  SELECT q.query_id, b.article_id AS cand_id FROM dedup_query_bands q"
            "  JOIN article_bands b ON b.band = q.band AND b.band_key = q.band_key"
            "  UNION"
            "  SELECT q.query_id, f.article_id FROM dedup_query_hashes q"
            "  JOIN article_fingerprints f ON f.content_hash = q.content_hash"
            ") "
            "SELECT query_id, cand_id FROM hits WHERE cand_id <> query_id "
            "UNION "
            "SELECT h.query_id, d.duplicate_of FROM hits h JOIN duplicates d ON d.article_id = h.cand_id "
            "WHERE d.duplicate_of <> h.query_id"
        ).fetchall()


def _pairs_from_index(con: duckdb.DuckDBPyConnection, fps: Sequence[Fingerprint], index: DedupIndex) -> list[tuple[str, str]]:
    """The same pairs as _pairs_from_lake: committed articles from the index, the batch against itself in memory."""
    batch = {fp.article_id: fp for fp in fps}  # last one wins, as in save_fingerprints
    # The batch's stored rows are its fingerprints now (saved in this transaction); the index may still hold
    # older bands of re-fingerprinted batch articles, so its hits on batch articles are replaced.
    hits = {(q, c) for q, c in index.hits(fps) if c not in batch}
    by_key: dict[tuple, list[str]] = {}
    for fp in batch.values():
        for key in {("h", fp.content_hash), *(("b", b, k) for b, k in enumerate(fp.band_keys))}:
            by_key.setdefault(key, []).append(fp.article_id)
    for fp in fps:
        for key in {("h", fp.content_hash), *(("b", b, k) for b, k in enumerate(fp.band_keys))}:
            hits.update((fp.article_id, c) for c in by_key.get(key, ()))
    cands = sorted({c for _, c in hits})
    # duplicates is sorted by article_id: the bound list prunes its row groups (a join to the hits would not).
    canonical = dict(
        con.execute(
            "SELECT article_id, duplicate_of FROM duplicates "
            "WHERE article_id IN (SELECT unnest(?::VARCHAR[])) AND list_contains(?::VARCHAR[], article_id)",
            [cands, cands],
        ).fetchall()
    ) if cands else {}
    pairs = {(q, c) for q, c in hits if c != q}
    pairs.update((q, canonical[c]) for q, c in hits if c in canonical and canonical[c] != q)
    return sorted(pairs)


def find_candidates(
    con: duckdb.DuckDBPyConnection, fps: Sequence[Fingerprint], index: DedupIndex | None = None
) -> dict[str, list[DedupCandidate]]:
    """Earlier articles sharing a band key or content hash with each fingerprint, found set-based per batch.

    A hit that is itself a recorded duplicate also brings its cluster canonical, so a new copy joins the existing
    cluster. The article itself is never its own candidate (re-runs). Every fingerprint id is a key in the result.
    `index`: warehouse.dedup_index synced to the snapshot `con`'s transaction reads, with the batch's own
    fingerprints (saved in this transaction, not in the index) matched in memory; without it the lake's band
    and fingerprint tables are joined (a scan that grows with the warehouse).
    """
    out: dict[str, list[DedupCandidate]] = {fp.article_id: [] for fp in fps}
    if not fps:
        return out
    pairs = None
    if index is not None:
        try:
            pairs = _pairs_from_index(con, fps, index)
        except sqlite3.Error as exc:  # a cache that fails (disk full, damaged file): the lake has the answer
            log.warning("dedup index %s failed (%s); this batch joins the warehouse tables, the next rebuilds the index", index.path, str(exc).splitlines()[0][:200])
            index.invalidate()
    if pairs is None:
        pairs = _pairs_from_lake(con, fps)
    if not pairs:
        return out
    # A second statement, with the ids as one bound list (the form of warehouse.queries.article_texts): joined
    # to the pairs or to a registered table, DuckDB reads every article's text (~0.3 s at 100k articles).
    cand_ids = sorted({c for _, c in pairs})
    rows = con.execute(
        "WITH f AS (SELECT article_id, content_hash, signature FROM article_fingerprints "
        " WHERE article_id IN (SELECT unnest(?::VARCHAR[])) AND list_contains(?::VARCHAR[], article_id)), "
        "d AS (SELECT article_id, duplicate_of FROM duplicates WHERE article_id IN (SELECT unnest(?::VARCHAR[]))) "
        "SELECT a.id, a.first_seen_at, coalesce(f.content_hash, a.content_hash), coalesce(f.signature, []::UINTEGER[]), a.text, "
        "a.published_at, coalesce(d.duplicate_of, a.id) "
        "FROM articles a LEFT JOIN f ON f.article_id = a.id LEFT JOIN d ON d.article_id = a.id "
        "WHERE a.id IN (SELECT unnest(?::VARCHAR[])) AND list_contains(?::VARCHAR[], a.id)",
        [cand_ids] * 5,
    ).fetchall()
    details = {
        aid: DedupCandidate(
            article_id=aid, first_seen_at=seen, content_hash=chash, signature=list(sig), text=text, published_at=published,
            cluster=cluster,
        )
        for aid, seen, chash, sig, text, published, cluster in rows
    }
    for query_id, cand_id in sorted(pairs, key=lambda p: (p[0], details[p[1]].first_seen_at if p[1] in details else 0, p[1])):
        if cand_id in details:
            out[query_id].append(details[cand_id])
    return out


def save_fingerprints(con: duckdb.DuckDBPyConnection, fps: Sequence[Fingerprint], settings: DedupSettings | None = None) -> int:
    """Upsert fingerprints and their band keys (made with `settings`); returns how many changed."""
    model = model_id(settings or DedupSettings())
    # Last one wins within a batch, like save_articles.
    by_id = {fp.article_id: fp for fp in fps}
    if not by_id:
        return 0
    table = pa.Table.from_pylist(
        [
            {"article_id": fp.article_id, "content_hash": fp.content_hash, "signature": fp.signature,
             "shingle_count": fp.shingle_count, "model": model}
            for fp in by_id.values()
        ],
        schema=_FPS,
    )
    with registered(con, "dedup_batch_fps", table):
        # Only fingerprints that differ are rewritten, so a re-run of an unchanged batch writes nothing. The same
        # normalised text under the same model always gives the same signature, so hash + model decide.
        status = con.execute(
            "SELECT b.article_id, f.article_id IS NOT NULL FROM dedup_batch_fps b "
            "LEFT JOIN article_fingerprints f ON f.article_id = b.article_id "
            "WHERE f.article_id IS NULL OR f.content_hash <> b.content_hash OR f.model <> b.model"
        ).fetchall()
        if not status:
            return 0
        changed = [aid for aid, _ in status]
        # Articles fingerprinted before have old band rows to drop; new ones (the common case) skip that scan.
        replaced = [aid for aid, existed in status if existed]
        changed_set = set(changed)
        band_rows = pa.Table.from_pylist(
            [{"band": b, "band_key": k, "article_id": fp.article_id}
             for fp in by_id.values() if fp.article_id in changed_set for b, k in enumerate(fp.band_keys)],
            schema=_BANDS,
        )
        with registered(con, "dedup_changed", _ids_table(changed)), registered(con, "dedup_batch_bands", band_rows):
            if replaced:
                con.execute("DELETE FROM article_bands WHERE list_contains(?::VARCHAR[], article_id)", [replaced])
            # Band rows of changed articles were deleted above (or never existed), so a plain insert of
            # the distinct batch rows keeps (band, band_key, article_id) unique.
            con.execute(
                "INSERT INTO article_bands (band, band_key, article_id) SELECT DISTINCT band, band_key, article_id FROM dedup_batch_bands"
            )
            con.execute(
                "MERGE INTO article_fingerprints t USING (SELECT b.* FROM dedup_batch_fps b "
                " JOIN dedup_changed c ON c.article_id = b.article_id) b ON t.article_id = b.article_id "
                "WHEN MATCHED THEN UPDATE SET content_hash = b.content_hash, signature = b.signature, "
                " shingle_count = b.shingle_count, model = b.model, updated_at = now() "
                "WHEN NOT MATCHED THEN INSERT (article_id, content_hash, signature, shingle_count, model, updated_at) "
                " VALUES (b.article_id, b.content_hash, b.signature, b.shingle_count, b.model, now())"
            )
    return len(changed)


def clear_duplicates(con: duckdb.DuckDBPyConnection, article_ids: Iterable[str]) -> int:
    """Remove the duplicate records of these articles (e.g. their text changed and no longer matches)."""
    ids = _ids_table(article_ids)
    if not ids.num_rows:
        return 0
    with registered(con, "dedup_clear_ids", ids):
        return int(con.execute("DELETE FROM duplicates WHERE article_id IN (SELECT article_id FROM dedup_clear_ids)").fetchall()[0][0])


def save_duplicates(
    con: duckdb.DuckDBPyConnection, matches: Sequence[DuplicateMatch], run_id: int | None, checked_ids: Iterable[str] = ()
) -> int:
    """Idempotently record duplicate decisions; `checked_ids` not among the matches lose any old record.

    Keeps the invariant that duplicate_of is always a canonical: an article named as a canonical loses its own
    duplicate record, and records pointing at an article that became a duplicate move to its canonical.
    Returns how many rows were inserted or changed.
    """
    by_id = {m.article_id: m for m in matches}
    stale = [i for i in checked_ids if i not in by_id]
    clear_duplicates(con, stale)
    if not by_id:
        return 0
    table = pa.Table.from_pylist([m.model_dump() for m in by_id.values()], schema=_MATCHES)
    with registered(con, "dedup_batch_matches", table):
        con.execute(
            "DELETE FROM duplicates WHERE article_id IN (SELECT duplicate_of FROM dedup_batch_matches) "
            "AND article_id NOT IN (SELECT article_id FROM dedup_batch_matches)"
        )
        written = con.execute(
            "MERGE INTO duplicates t USING (SELECT * FROM dedup_batch_matches WHERE article_id <> duplicate_of) b "
            "ON t.article_id = b.article_id "
            # Unchanged decisions keep their original run and time, so a re-run leaves the rows as they were.
            "WHEN MATCHED AND (t.duplicate_of <> b.duplicate_of OR t.method <> b.method "
            " OR abs(t.similarity - b.similarity) > 1e-9) THEN UPDATE SET duplicate_of = b.duplicate_of, "
            " method = b.method, similarity = b.similarity, run_id = ?, detected_at = now() "
            "WHEN NOT MATCHED THEN INSERT (article_id, duplicate_of, method, similarity, run_id, detected_at) "
            " VALUES (b.article_id, b.duplicate_of, b.method, b.similarity, ?, now())",
            [run_id, run_id],
        ).fetchall()[0][0]
    # Chains can only be one step deep after the statements above; the loop is a guard, bounded against cycles.
    for _ in range(8):
        moved = con.execute(
            "UPDATE duplicates SET duplicate_of = p.duplicate_of, run_id = ?, detected_at = now() "
            "FROM duplicates p WHERE duplicates.duplicate_of = p.article_id AND p.duplicate_of <> duplicates.article_id",
            [run_id],
        ).fetchall()[0][0]
        if not moved:
            break
    return int(written)


def first_seen_times(con: duckdb.DuckDBPyConnection, article_ids: Iterable[str]) -> dict[str, datetime]:
    """Warehouse first_seen_at of the given articles that already exist (for decide() on re-runs)."""
    ids = _ids_table(article_ids)
    if not ids.num_rows:
        return {}
    with registered(con, "dedup_seen_ids", ids):
        rows = con.execute("SELECT a.id, a.first_seen_at FROM articles a JOIN dedup_seen_ids i ON i.article_id = a.id").fetchall()
    return {aid: seen.astimezone(timezone.utc) for aid, seen in rows}


def stale_fingerprint_ids(con: duckdb.DuckDBPyConnection, settings: DedupSettings | None = None, limit: int = 10_000) -> list[str]:
    """Articles whose fingerprint is missing or was made with other dedup settings (to recompute in batches)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT a.id FROM articles a LEFT JOIN article_fingerprints f ON f.article_id = a.id "
            "WHERE f.article_id IS NULL OR f.model <> ? ORDER BY a.first_seen_at, a.id LIMIT ?",
            [model_id(settings or DedupSettings()), limit],
        ).fetchall()
    ]
