"""Per-batch lookups by article id and by URL as the warehouse grows: key-sorted row groups vs insertion order.

For each size N, two real lakes (SQLite catalog, Parquet files) get the same N synthetic articles (16-hex ids
like newsflow's, in random order) and N stored pages, written in 10 inserts and compacted as maintenance does:
- sorted: as migrated (articles sorted by id, migration 007; pages by url_key, migration 008; row groups of
  2048 rows), DuckDB's IN-filter threshold raised as warehouse.db sets it;
- baseline, measured in the same run: the sort orders reset and DuckDB's default threshold (50), i.e. the
  warehouse before those migrations.
Then the loads' own lookups: `queries.articles_first_seen` for 400 ids (200 stored, 200 new),
`queries.article_texts` for 100 stored ids, and `queries.validators` for 20 and 400 URLs (half stored);
median ms of 7 runs, and rows the articles scan emitted for the first. And the look-ups by hashed keys,
which no sort order prunes: dedup's part of a batch of 100 new articles (save their fingerprints,
`dedup_store.find_candidates` for 4,800 band keys and 100 content hashes against 48 band rows and a
fingerprint per stored article, commit) and the entity stage's `queries.existing_content_hashes` for 100
hashes (50 stored): in the baseline lake as scans/joins of the lake's tables, in the sorted one through
warehouse/dedup_index.py's SQLite index, its sync and write-through included (its one-time build from
the lake is printed too).

    .venv/bin/python benchmarks/lookups.py [--sizes 100000,1000000,3000000] [--entities]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.settings import Settings  # noqa: E402
from ingest.models import Fingerprint  # noqa: E402
from warehouse import db, dedup_index, dedup_store, queries  # noqa: E402

BANDS = 48  # DedupSettings: 32 whole-text bands + 16 lead bands
BAND_KEY = "(hash(i, b) >> 1)::BIGINT"  # a synthetic signed 64-bit band key per (article i, band b)
PROFILE = '{"OPERATOR_CARDINALITY": "true", "OPERATOR_TYPE": "true", "EXTRA_INFO": "true"}'


def fill(con, n: int) -> None:  # noqa: ANN001 - a DuckDB connection
    """n synthetic articles in 10 inserts, then compaction (like maintenance after many batches)."""
    step = -(-n // 10)
    for lo in range(0, n, step):
        with db.transaction(con):
            con.execute(
                "INSERT INTO articles (id, url, page_url, source, text, extractor, extractor_version, content_hash, "
                " word_count, first_seen_at, last_seen_at, updated_at) "
                "SELECT substr(md5(i::VARCHAR), 1, 16), 'https://news.example/' || i, 'https://news.example/' || i, 's', "
                " 'Story ' || i || repeat(' with some words', 20), 'trafilatura', '2', md5('h' || i), 81, now(), now(), now() "
                "FROM range(?, ?) r(i)",
                [lo, min(n, lo + step)],
            )
            con.execute(
                "INSERT INTO pages (url, url_key, kind, source, status, etag, fetched_at, checked_at) "
                "SELECT u, substr(md5(u), 1, 16), 'article', 's', 200, 'e', now(), now() "
                "FROM (SELECT 'https://news.example/2026/' || md5(i::VARCHAR) || '/story.html' AS u FROM range(?, ?) r(i))",
                [lo, min(n, lo + step)],
            )
            # Dedup's index as newsflow stores it: a fingerprint per article, 32 + 16 LSH band keys (random 64-bit).
            con.execute(
                "INSERT INTO article_fingerprints (article_id, content_hash, signature, shingle_count, model, updated_at) "
                "SELECT substr(md5(i::VARCHAR), 1, 16), md5('h' || i), []::UINTEGER[], 0, 'm', now() FROM range(?, ?) r(i)",
                [lo, min(n, lo + step)],
            )
            con.execute(
                f"INSERT INTO article_bands (band, band_key, article_id) SELECT b, {BAND_KEY}, substr(md5(i::VARCHAR), 1, 16) "
                f"FROM range(?, ?) r(i), range({BANDS}) bb(b)",
                [lo, min(n, lo + step)],
            )
    for table in ("articles", "pages", "article_fingerprints", "article_bands"):
        con.execute(f"CALL ducklake_merge_adjacent_files('newsflow', '{table}')")


MENTIONS_PER_ARTICLE = 10


def fill_entities(con, n: int) -> int:  # noqa: ANN001 - a DuckDB connection
    """Entities for the n articles: n/5 of them, 10 mentions per article, popularity skewed (a few in many
    articles, most in a few), an alias per entity, an entity run per article; compacted. Returns the entity count."""
    e = max(1000, n // 5)
    con.execute("SELECT setseed(0.42)")
    with db.transaction(con):
        con.execute(
            "INSERT INTO entities (id, key, name, type, first_seen_at, article_count, created_at, updated_at) "
            "SELECT k, 'PERSON:name ' || k, 'Name ' || k, 'PERSON', now(), 0, now(), now() FROM range(?) r(k)",
            [e],
        )
        con.execute(
            "INSERT INTO entity_aliases (alias, entity_id, surface, count) SELECT 'name ' || k, k, 'Name ' || k, 1 FROM range(?) r(k)", [e]
        )
    step = -(-n // 10)
    for lo in range(0, n, step):
        with db.transaction(con):
            # pow(random(), 3): entity 0 is in ~a fifth of the articles, the median entity in a handful.
            con.execute(
                "INSERT INTO mentions (article_id, entity_id, surface, alias, start_char, end_char, snippet, raw_label, model, model_version) "
                "SELECT substr(md5(i::VARCHAR), 1, 16), k, 'Name ' || k, 'name ' || k, j * 20, j * 20 + 6, 'a snippet', 'PERSON', 'm', '1' "
                f"FROM (SELECT i, j, floor(pow(random(), 3) * {e})::BIGINT AS k FROM range(?, ?) r(i), range({MENTIONS_PER_ARTICLE}) jj(j))",
                [lo, min(n, lo + step)],
            )
            con.execute(
                "INSERT INTO article_entity_runs (article_id, model, model_version, mention_count, first_seen_at, processed_at) "
                f"SELECT substr(md5(i::VARCHAR), 1, 16), 'm', '1', {MENTIONS_PER_ARTICLE}, now(), now() FROM range(?, ?) r(i)",
                [lo, min(n, lo + step)],
            )
    with db.transaction(con):
        con.execute(
            "UPDATE entities SET article_count = s.n FROM (SELECT entity_id, count(DISTINCT article_id) AS n FROM mentions GROUP BY 1) s "
            "WHERE entities.id = s.entity_id"
        )
    for table in ("entities", "entity_aliases", "mentions", "article_entity_runs"):
        con.execute(f"CALL ducklake_merge_adjacent_files('newsflow', '{table}')")
    return e


def measure_entities(con, n: int, e: int, rng: random.Random) -> dict[str, tuple[float, int]]:  # noqa: ANN001
    """The entity load's per-batch reads for 100 articles' entities (~10 mentions each), rolled back each time."""
    from datetime import datetime, timezone

    from warehouse import entities_store

    out = {}
    times_lookup, times_refresh = [], []
    for _ in range(7):
        touched = {int(rng.random() ** 3 * e) for _ in range(100 * MENTIONS_PER_ARTICLE)}
        keys = {f"PERSON:name {k}" for k in touched} | {f"PERSON:new {rng.getrandbits(40)}" for _ in range(100)}
        aliases = {k.split(":", 1)[1] for k in keys}
        t0 = time.perf_counter()
        entities_store._lookup(con, keys, aliases)
        times_lookup.append(time.perf_counter() - t0)
        con.execute("BEGIN TRANSACTION")
        try:
            t0 = time.perf_counter()
            entities_store._refresh_entities(con, touched, datetime.now(timezone.utc))
            times_refresh.append(time.perf_counter() - t0)
        finally:
            con.execute("ROLLBACK")
    out[f"entity lookup({len(keys)} keys)"] = (1000 * statistics.median(times_lookup), 0)
    out[f"entity refresh(~{len(touched)} ids)"] = (1000 * statistics.median(times_refresh), 0)
    return out


def scanned_rows(con) -> int:  # noqa: ANN001
    """Rows the articles scan emitted in the connection's last query."""
    out = []

    def walk(node: dict) -> None:
        if node.get("operator_type") == "TABLE_SCAN" and node.get("extra_info", {}).get("Table") == "articles":
            out.append(int(node["operator_cardinality"]))
        for child in node.get("children", []):
            walk(child)

    walk(json.loads(con.get_profiling_information(format="json")))
    return sum(out)


def measure(con, n: int, rng: random.Random, settings: Settings, *, with_index: bool) -> dict[str, tuple[float, int]]:  # noqa: ANN001
    """Median ms over 7 runs and rows scanned, per lookup."""
    ids = [r[0] for r in con.execute("SELECT substr(md5(i::VARCHAR), 1, 16) FROM range(?) r(i)", [n]).fetchall()]
    out = {}
    # Lookups by URL (migration 008): a small scheduled run's URLs and a backfill batch's, half stored, half new.
    for k in (20, 400):
        times = []
        for _ in range(7):
            want = [f"https://news.example/2026/{hashlib.md5(str(i).encode()).hexdigest()}/story.html" for i in rng.sample(range(n), k // 2)]
            want += [f"https://news.example/2026/{rng.getrandbits(64):x}/new.html" for _ in range(k - k // 2)]
            t0 = time.perf_counter()
            got = queries.validators(con, want)
            times.append(time.perf_counter() - t0)
            assert len(got) == k // 2, (k, len(got))
        out[f"validators({k} urls)"] = (1000 * statistics.median(times), 0)
    for name, fn, k_stored, k_new in (
        ("articles_first_seen(400 ids)", queries.articles_first_seen, 200, 200),
        ("article_texts(100 ids)", queries.article_texts, 100, 0),
    ):
        times, rows = [], 0
        for _ in range(7):
            want = rng.sample(ids, k_stored) + [f"{rng.getrandbits(64):016x}"[:15] + "z" for _ in range(k_new)]
            t0 = time.perf_counter()
            got = fn(con, want)
            times.append(time.perf_counter() - t0)
            assert len(got) == k_stored, (name, len(got))
        if fn is queries.articles_first_seen:
            con.execute("PRAGMA enable_profiling = 'no_output'")
            con.execute(f"SET custom_profiling_settings = '{PROFILE}'")
            con.execute(
                "SELECT a.id, a.first_seen_at FROM articles a WHERE a.id IN (SELECT unnest(?::VARCHAR[]))", [want]
            ).fetchall()
            rows = scanned_rows(con)
            con.execute("PRAGMA disable_profiling")
        out[name] = (1000 * statistics.median(times), rows)
    # Hashed keys, which no sort order prunes: dedup's candidate search (band keys and content hashes of
    # 100 new articles, 5 of them copies of stored ones) and the entity stage's content-hash lookup (50
    # stored hashes, 50 new).
    # Dedup per batch as flows/batch.py does it, for 100 new articles (5 of them copies of stored ones): save
    # their fingerprints, find candidates, commit. In the sorted lake through the dedup index
    # (warehouse/dedup_index.py): synced before the transaction, the commit written through after it;
    # its one-time build from the lake is timed on its own.
    # At every size, whatever dedup.index_min_articles says: these figures are what that threshold is set from.
    index_on = settings.model_copy(update={"dedup": settings.dedup.model_copy(update={"index": with_index, "index_min_articles": 0})})
    if with_index:
        t0 = time.perf_counter()
        dedup_index.open_synced(index_on, con).close()
        out["dedup index build (once)"] = (1000 * (time.perf_counter() - t0), 0)
    times = []
    for it in range(7):
        copies = rng.sample(range(n), 5)
        keys = dict(con.execute(
            f"SELECT i * 100 + b, {BAND_KEY} FROM (SELECT unnest(?::BIGINT[]) AS i), range({BANDS}) bb(b)", [copies]
        ).fetchall())
        fps = [
            Fingerprint(
                article_id=f"new{it}{q:012d}", content_hash=f"{rng.getrandbits(128):032x}", signature=[1], shingle_count=1,
                band_keys=[keys[copies[q] * 100 + b] if q < 5 else rng.getrandbits(63) for b in range(BANDS)],
            )
            for q in range(100)
        ]
        t0 = time.perf_counter()
        with dedup_index.opened(index_on, con, wanted=with_index) as index, db.transaction(con):
            dedup_store.save_fingerprints(con, fps, index_on.dedup)
            current = dedup_index.still_current(index, con)
            got = dedup_store.find_candidates(con, fps, current)
            if current is not None:
                current.tag(con, fps)
        times.append(time.perf_counter() - t0)
        assert sum(len(c) for c in got.values()) == 5, got
        assert with_index == (current is not None)
    out["dedup batch(100 articles)"] = (1000 * statistics.median(times), 0)
    times = []
    for _ in range(7):
        want = [hashlib.md5(f"h{i}".encode()).hexdigest() for i in rng.sample(range(n), 50)]
        want += [f"{rng.getrandbits(128):032x}" for _ in range(50)]
        t0 = time.perf_counter()
        # As flows/batch.py's entity planning does it: through the synced index when there is one.
        with dedup_index.opened(index_on, con, wanted=with_index, write_through=False) as index:
            got = queries.existing_content_hashes(con, want, index=dedup_index.still_current(index, con))
        times.append(time.perf_counter() - t0)
        assert len(got) == 50, len(got)
    out["existing_content_hashes(100)"] = (1000 * statistics.median(times), 0)
    return out


def lake(root: Path, name: str) -> Settings:
    """Settings for a new lake under root/name."""
    return Settings(catalog=f"sqlite:{root / name / 'catalog.sqlite'}", data_path=f"{root / name / 'data'}/")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000,3000000", help="comma-separated article counts")
    ap.add_argument(
        "--entities", action="store_true",
        help="also the entity load's look-ups by key/alias and its per-entity refresh (not pruned: entity ids are hashes)",
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(7)
    print(f"{'articles':>9}  {'lookup':30} {'base ms':>8} {'sorted ms':>9} {'ratio':>6} {'base rows':>10} {'sorted rows':>11}")
    with tempfile.TemporaryDirectory(prefix="nf-lookups-") as tmp:
        for n in sizes:
            results = {}
            for variant in ("baseline", "sorted"):
                settings = lake(Path(tmp), f"{variant}{n}")
                db.init_db(settings)
                with db.session(settings) as con:
                    if variant == "baseline":
                        con.execute("ALTER TABLE articles RESET SORTED BY")
                        con.execute("ALTER TABLE pages RESET SORTED BY")
                        con.execute("ALTER TABLE article_bands RESET SORTED BY")
                        con.execute("SET dynamic_or_filter_threshold = 50")
                    fill(con, n)
                    results[variant] = measure(con, n, rng, settings, with_index=variant == "sorted")
                    if variant == "sorted" and args.entities:
                        e = fill_entities(con, n)
                        results[variant].update(measure_entities(con, n, e, rng))
                    con.execute(f"SET dynamic_or_filter_threshold = {db.LOOKUP_IN_FILTER_MAX_KEYS}")
                db.close_all()
            for name in results["sorted"]:
                if name not in results["baseline"]:
                    print(f"{n:>9,}  {name:30} {'-':>8} {results['sorted'][name][0]:9.1f}", flush=True)
                    continue
                (b_ms, b_rows), (s_ms, s_rows) = results["baseline"][name], results["sorted"][name]
                br, sr = (f"{r:,}" if r else "-" for r in (b_rows, s_rows))
                print(f"{n:>9,}  {name:30} {b_ms:8.1f} {s_ms:9.1f} {b_ms / s_ms:5.2f}x {br:>10} {sr:>11}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
