"""Full-text search at scale: `newsflow search`'s FTS5 sidecar vs the in-lake BM25 index, on N synthetic articles.

Articles are made of real news sentences (the extraction benchmark's 181 article bodies and the seeds)
drawn at random, so the vocabulary and term frequencies are those of news text. The lake is a DuckLake
on a SQLite catalog in a temporary directory, loaded in bulk and compacted, the way newsflow stores it.
Then, with the real modules:

- sidecar (warehouse/search_sidecar.py): the full build from the lake; the query path of `newsflow
  search` warm (freshness check against the catalog, BM25 in FTS5, snippets), p50/p95 over a mix of
  common and rare phrases; the sync after one more 100-article batch (what the writer pays per run,
  or the first search after a batch);
- in-lake (warehouse/search.py, the search_articles() SQL macro): the same queries, as the baseline;
- whether both give the same ids in the same order, and a last summary line.

    python benchmarks/search_bench.py                 # 100k articles (~10 minutes on 2 cores)
    python benchmarks/search_bench.py --articles 20000

Last run: see the README's benchmark table and warehouse/search_sidecar.py.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from ingest.models import Article  # noqa: E402
from ingest.settings import BUNDLED_SEEDS_DIR  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from warehouse import db, search_sidecar  # noqa: E402
from warehouse import search as lake_search  # noqa: E402

BENCH = ROOT.parent / "shared" / "benchdata" / "article-extraction" / "ground-truth.json"
QUERIES = [
    "ukraine peace talks", "stock market", "police", "climate change", "president election", "football club",
    "interest rates inflation", "apple", "space telescope", "court ruling appeal", "hospital patients",
    "oil prices", "minister", "wildfire evacuation",
]
SOURCES = [f"source-{i}" for i in range(8)]


def sentence_pool() -> list[str]:
    """Real news sentences from the extraction benchmark bodies and the seed files."""
    texts: list[str] = []
    if BENCH.exists():
        texts += [v.get("articleBody") or "" for v in json.loads(BENCH.read_text(encoding="utf-8")).values()]
    texts += [Path(p).read_text(encoding="utf-8", errors="replace") for p in glob.glob(str(BUNDLED_SEEDS_DIR / "*.txt"))]
    out = []
    for t in texts:
        for s in t.replace("\n", " ").split(". "):
            s = s.strip()
            if 40 <= len(s) <= 400:
                out.append(s + ".")
    return out


def make_articles(pool: list[str], start: int, count: int, seed: int) -> list[Article]:
    """`count` synthetic articles numbered from `start`: 8-24 random sentences, title from one of them."""
    rnd = random.Random(seed * 1_000_003 + start)
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    out = []
    for i in range(start, start + count):
        text = " ".join(rnd.choice(pool) for _ in range(rnd.randint(8, 24)))
        title = " ".join(rnd.choice(pool).split()[:10])
        url = f"https://example.test/{i}"
        out.append(
            Article(
                id=hashlib.sha256(url.encode()).hexdigest()[:16], url=url, page_url=url, source=SOURCES[i % len(SOURCES)],
                title=title, text=text, content_hash=hashlib.sha256(text.encode()).hexdigest(), language="en",
                published_at=t0 + timedelta(minutes=7 * i), fetched_at=t0 + timedelta(minutes=7 * i),
            )
        )
    return out



# ---------------------------------------------------------------------------- the lake


def lake_settings(folder: Path) -> Settings:
    """Settings naming the benchmark's lake (SQLite catalog in `folder`)."""
    return Settings(catalog=f"sqlite:{folder / 'catalog.sqlite'}", data_path=f"{folder / 'data'}/")


def open_lake(folder: Path) -> duckdb.DuckDBPyConnection:
    """A DuckLake on a SQLite catalog in `folder`, attached as newsflow does, with the search tables and macro."""
    con = db.open_lake(db.target(lake_settings(folder)), read_only=False)
    con.execute(
        "CREATE TABLE articles (id VARCHAR NOT NULL, url VARCHAR NOT NULL, source VARCHAR NOT NULL, title VARCHAR, "
        "text VARCHAR NOT NULL, published_at TIMESTAMPTZ, first_seen_at TIMESTAMPTZ NOT NULL)"
    )
    for name in ("005_search.sql", "006_search_idf.sql"):
        con.execute((db.MIGRATIONS_DIR / name).read_text(encoding="utf-8"))
    return con


def lake_load(con: duckdb.DuckDBPyConnection, articles: list[Article]) -> None:
    """One load transaction: the articles and their index rows (what a batch load does)."""
    import pyarrow as pa

    rows = pa.Table.from_pylist(
        [{"id": a.id, "url": a.url, "source": a.source, "title": a.title, "text": a.text, "published_at": a.published_at,
          "first_seen_at": a.fetched_at} for a in articles]
    )
    con.execute("BEGIN")
    con.register("_bench_articles", rows)
    con.execute("INSERT INTO articles SELECT id, url, source, title, text, published_at, first_seen_at FROM _bench_articles")
    con.unregister("_bench_articles")
    lake_search.index_articles(con, articles)
    con.execute("COMMIT")


def timed_ms(fn) -> float:  # noqa: ANN001
    """Wall milliseconds of fn()."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def latency(fn, queries: list[str], rounds: int) -> dict[str, float]:  # noqa: ANN001
    """p50/p95 wall ms and p50 CPU ms of fn(query) over `rounds` passes of the queries, after one warm-up pass."""
    for q in queries:
        fn(q)
    times, cpu = [], []
    for _ in range(rounds):
        for q in queries:
            c0 = time.process_time()
            times.append(timed_ms(lambda q=q: fn(q)))
            cpu.append((time.process_time() - c0) * 1000)
    times.sort()
    return {"p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))], "cpu": statistics.median(cpu)}


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=10_000, help="articles per bulk-load transaction while building")
    ap.add_argument("--rounds", type=int, default=5, help="passes over the queries for the sidecar")
    ap.add_argument("--lake-rounds", type=int, default=1, help="passes for the in-lake baseline (seconds per query at 100k)")
    ap.add_argument("--batches", type=int, default=5, help="100-article batches, each followed by a sidecar sync")
    args = ap.parse_args(argv)
    pool = sentence_pool()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times on a busy machine are inflated; CPU times less so)")
    print(f"{args.articles:,} synthetic articles from {len(pool)} real news sentences; {len(QUERIES)} queries")
    with tempfile.TemporaryDirectory(prefix="nf-search-bench-") as tmp:
        folder = Path(tmp)
        settings = lake_settings(folder)
        con = open_lake(folder)
        bulk = args.articles - 100 * args.batches
        t0 = time.perf_counter()
        for start in range(0, bulk, args.chunk):
            lake_load(con, make_articles(pool, start, min(args.chunk, bulk - start), 1))
        con.execute("BEGIN")
        lake_search.compact_search_index(con)
        con.execute("COMMIT")
        con.execute(f"CALL ducklake_merge_adjacent_files('{db.LAKE}')")
        lake_build_s = time.perf_counter() - t0

        # Sidecar: the full build, then the query path of `newsflow search`, then a sync per 100-article batch.
        built = search_sidecar.sync(settings)
        assert built.action == "rebuilt", built
        side_mb = sum(p.stat().st_size for p in folder.glob("*.search.sqlite*")) / 1e6
        side = latency(lambda q: search_sidecar.search(settings, q, limit=10), QUERIES, args.rounds)
        side_f = latency(lambda q: search_sidecar.search(settings, q, source="source-3", since="2026-06-01", limit=10), QUERIES, args.rounds)
        syncs = []
        for b in range(args.batches):
            lake_load(con, make_articles(pool, bulk + 100 * b, 100, 1))
            r = search_sidecar.sync(settings)
            assert r.action == "applied" and r.articles == 100, r
            syncs.append(r.seconds * 1000)

        # The in-lake index: search() as newsflow search used it, and the SQL macro.
        with db.session(settings, read_only=True) as ro:
            lake = latency(lambda q: lake_search.search(ro, q, limit=10), QUERIES, args.lake_rounds)
            macro = latency(lambda q: ro.execute("SELECT * FROM search_articles(?) LIMIT 20", [q]).fetchall(), QUERIES, args.lake_rounds)
            same = 0
            for q in QUERIES:
                want = [r[0] for r in ro.execute("SELECT article_id FROM search_articles(?) LIMIT 20", [q]).fetchall()]
                same += [h["id"] for h in search_sidecar.search(settings, q, limit=20)] == want
            docs = ro.execute("SELECT count(*) FROM article_search_docs").fetchone()[0]
        db.close_all()
        con.close()

    print(f"\nlake: {docs:,} articles indexed, bulk load + compaction {lake_build_s:.0f} s")
    print("\n(a) `newsflow search` = FTS5 sidecar (warehouse/search_sidecar.py)")
    print(f"    full build from the lake: {built.seconds:.1f} s, {side_mb:.0f} MB")
    print(f"    query path warm (freshness check, BM25, snippets; limit 10): p50 {side['p50']:.1f} ms, p95 {side['p95']:.1f} ms (CPU p50 {side['cpu']:.1f} ms)")
    print(f"    with --source/--since: p50 {side_f['p50']:.1f} ms, p95 {side_f['p95']:.1f} ms")
    print(f"    sync after one 100-article batch: median {statistics.median(syncs):.0f} ms, max {max(syncs):.0f} ms over {len(syncs)} batches")
    print("\n(b) in-lake index (baseline; the source of truth, and what SQL uses)")
    print(f"    warehouse.search.search(): p50 {lake['p50']:.0f} ms, p95 {lake['p95']:.0f} ms (CPU p50 {lake['cpu']:.0f} ms)")
    print(f"    SELECT * FROM search_articles(?) LIMIT 20: p50 {macro['p50']:.0f} ms, p95 {macro['p95']:.0f} ms (CPU p50 {macro['cpu']:.0f} ms)")
    print(f"\nsame top-20 ids in the same order (sidecar vs SQL macro): {same}/{len(QUERIES)} queries")
    verdict = "PASS" if side["p95"] < 200 and same == len(QUERIES) else "FAIL"
    print(
        f"summary: {verdict}: newsflow search p50 {side['p50']:.0f} ms / p95 {side['p95']:.0f} ms at {docs:,} articles (target < 200 ms; "
        f"in-lake p95 {lake['p95']:.0f} ms); sync per 100-article batch {statistics.median(syncs):.0f} ms; full build {built.seconds:.0f} s"
    )


if __name__ == "__main__":
    main()
