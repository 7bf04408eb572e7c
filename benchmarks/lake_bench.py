"""DuckLake warehouse costs, measured with newsflow's own loads and queries on a real lake.

1. 100 load batches of 100 articles through the real loads (pages, articles, aliases, failures, run
   counts: one transaction each, like an ingest): seconds per batch, then live data files and files on
   disk before and after the end-of-run maintenance.
2. A lake with `--articles` (default 100,000) stored articles, 2 aliases each: the incremental plan
   query ("which of these 100 URLs are new") per batch of 100, median and p95 over 20 batches.
Baseline for both, measured in the same run: the same statements on a plain DuckDB file (no lake).

    .venv/bin/python benchmarks/lake_bench.py [--articles N] [--catalog sqlite|postgres:DSN]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.models import Article, Failure, FetchResult  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from warehouse import db, loads, maintenance, queries  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def batch(b: int, size: int = 100) -> tuple[list[FetchResult], list[Article], list[tuple[Failure, str]]]:
    """One realistic batch: raw pages, their articles, one failure."""
    pages, arts = [], []
    for i in range(size):
        n = b * size + i
        url = f"https://news{n % 7}.example/2026/{n}.html"
        body = (f"<html><body><article><h1>Story {n}</h1>" + f"<p>Paragraph {n} of the story. " * 40 + "</article></body></html>").encode()
        at = T0 + timedelta(seconds=n)
        pages.append(FetchResult(url=url, source=f"s{n % 7}", status=200, body=body, fetched_at=at, content_type="text/html"))
        arts.append(Article(id=f"{n:016x}", url=url, page_url=url, source=f"s{n % 7}", title=f"Story {n}",
                            text=f"Paragraph {n} of the story. " * 40, content_hash=f"h{n}", fetched_at=at, language="en"))
    fails = [(Failure(url=f"https://news.example/missing/{b}", source="s0", stage="fetch", reason="http_503", retryable=True, failed_at=T0), "article")]
    return pages, arts, fails


def load_batches(settings: Settings, n_batches: int) -> list[float]:
    """Seconds per load transaction for n_batches batches."""
    times = []
    with db.session(settings) as con:
        with db.transaction(con):
            run = loads.start_run(con, flow="ingest", trigger="cli", params={}, flow_run_id=None)
        for b in range(n_batches):
            pages, arts, fails = batch(b)
            t = time.perf_counter()
            with db.transaction(con):
                loads.save_pages(con, pages, run)
                loads.save_articles(con, arts, run, seen_at=T0)
                loads.save_article_urls(con, [(a.url, a.id, a.fetched_at) for a in arts] + [(a.url + "?utm=x", a.id, a.fetched_at) for a in arts])
                loads.record_failures(con, fails, run, max_attempts=5, base_delay_s=600, max_delay_s=86400)
                loads.add_run_counts(con, run, {"new": len(arts), "fetched": len(pages)})
            times.append(time.perf_counter() - t)
    return times


def bulk_fill(settings: Settings, n: int) -> None:
    """n articles, n article pages and 2n aliases written set-based (as many batches would have left them)."""
    with db.session(settings) as con, db.transaction(con):
        con.execute(
            "INSERT INTO pages (url, url_key, kind, source, final_url, status, fetched_at, checked_at, body_bytes) "
            "SELECT u, substr(md5(u), 1, 16), 'article', 's', NULL, 200, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, 1000 "
            "FROM (SELECT 'https://bulk.example/a/' || i || '.html' AS u FROM range(?) t(i))", [T0, T0, n])
        con.execute(
            "INSERT INTO article_urls (url, url_key, article_id, first_seen_at) SELECT u, substr(md5(u), 1, 16), a, t FROM ("
            " SELECT 'https://bulk.example/a/' || i || '.html' AS u, i::VARCHAR AS a, ?::TIMESTAMPTZ AS t FROM range(?) t(i) "
            " UNION ALL SELECT 'https://bulk.example/a/' || i || '.html?utm_source=x', i::VARCHAR, ?::TIMESTAMPTZ FROM range(?) t(i))",
            [T0, n, T0, n])
        con.execute(
            "INSERT INTO articles (id, url, page_url, source, text, extractor, extractor_version, content_hash, word_count, "
            " first_seen_at, last_seen_at, updated_at) SELECT i::VARCHAR, 'https://bulk.example/a/' || i || '.html', "
            " 'https://bulk.example/a/' || i || '.html', 's', repeat('word ', 300), 'trafilatura', '2.3.1', md5(i::VARCHAR), 300, "
            " ?::TIMESTAMPTZ, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ FROM range(?) t(i)", [T0, T0, T0, n])


def time_plan(settings: Settings, n: int, rounds: int = 20) -> list[float]:
    """Seconds per plan query of 100 URLs (half stored, half new)."""
    out = []
    with db.session(settings, read_only=True) as con:
        for r in range(rounds):
            known = [f"https://bulk.example/a/{(r * 7919 + k * 104729) % n}.html" for k in range(50)]
            new = [f"https://fresh.example/{r}/{k}.html" for k in range(50)]
            items = [(u, u, "s", None) for u in known + new]
            t = time.perf_counter()
            plan = queries.plan_fetches(con, items, T0 + timedelta(days=1), ["s"])
            out.append(time.perf_counter() - t)
            assert len(plan.new) == 50 and plan.known == 50, (len(plan.new), plan.known)
    return out


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1000:.1f} ms, p95 {xs[int(len(xs) * 0.95) - 1] * 1000:.1f} ms"


def plain_duckdb_plan_baseline(n: int, tmp: Path) -> list[float]:
    """The same plan query on a plain DuckDB file (the 0.1 engine's storage) with the same rows."""
    import duckdb

    from warehouse import extensions

    ext = extensions.prepare(("fts",))
    con = duckdb.connect(str(tmp / "plain.duckdb"), config={"extension_directory": str(ext), "autoinstall_known_extensions": False})
    con.execute("LOAD fts")
    # DuckLake-only layout statements (sort keys, row-group size) have no meaning for a plain DuckDB file.
    lake_only = re.compile(r"^\s*(ALTER TABLE \S+ SET SORTED BY|CALL newsflow\.set_option)", re.IGNORECASE)
    for _v, _n, path in db.migration_files():
        sql = "\n".join(ln for ln in path.read_text(encoding="utf-8").splitlines() if not lake_only.match(ln))
        con.execute(sql)
    con.execute("INSERT INTO pages (url, url_key, kind, source, status, fetched_at, checked_at) SELECT u, substr(md5(u), 1, 16), "
                "'article', 's', 200, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ FROM (SELECT 'https://bulk.example/a/' || i || '.html' AS u "
                "FROM range(?) t(i))", [T0, T0, n])
    con.execute("INSERT INTO article_urls (url, url_key, article_id, first_seen_at) SELECT u, substr(md5(u), 1, 16), a, t FROM ("
                " SELECT 'https://bulk.example/a/' || i || '.html' AS u, i::VARCHAR AS a, ?::TIMESTAMPTZ AS t FROM range(?) t(i) "
                " UNION ALL SELECT 'https://bulk.example/a/' || i || '.html?utm_source=x', i::VARCHAR, ?::TIMESTAMPTZ FROM range(?) t(i))",
                [T0, n, T0, n])
    out = []
    for r in range(20):
        known = [f"https://bulk.example/a/{(r * 7919 + k * 104729) % n}.html" for k in range(50)]
        items = [(u, u, "s", None) for u in known + [f"https://fresh.example/{r}/{k}.html" for k in range(50)]]
        t = time.perf_counter()
        queries.plan_fetches(con, items, T0 + timedelta(days=1), ["s"])
        out.append(time.perf_counter() - t)
    con.close()
    return out


def main() -> None:
    """Run both measurements and print them."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--catalog", default="sqlite", help="sqlite (a temporary SQLite catalog) or postgres:<dsn>")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lake-bench-"))
    catalog = f"sqlite:{tmp}/a/catalog.sqlite" if args.catalog == "sqlite" else args.catalog

    s1 = Settings(catalog=catalog, data_path=f"{tmp}/a/data/")
    db.init_db(s1)
    t = time.perf_counter()
    times = load_batches(s1, args.batches)
    total = time.perf_counter() - t
    with db.session(s1, read_only=True) as con:
        live_before = maintenance.live_data_files(con)
    disk_before = maintenance.disk_files(db.target(s1))
    report = maintenance.maintain(s1)
    print(f"loads: {args.batches} batches x 100 articles in {total:.1f}s ({ms(times)} per batch transaction)")
    print(f"data files after {args.batches} batches: live {live_before}, on disk {disk_before}")
    print(f"after maintenance ({report.seconds:.2f}s; steps {report.steps}): live {report.live_files_after}, "
          f"on disk {report.disk_files_after} (files replaced by the merge stay until their snapshots expire, "
          f"{s1.snapshot_retention_days:g} days)")
    retention0 = maintenance.maintain(s1, retention_days=0)
    print(f"maintenance with retention 0 (no time travel kept): live {retention0.live_files_after}, on disk {retention0.disk_files_after}")

    s2 = Settings(catalog=f"sqlite:{tmp}/b/catalog.sqlite" if args.catalog == "sqlite" else args.catalog, data_path=f"{tmp}/b/data/")
    if args.catalog != "sqlite":
        print("(plan query on the same Postgres catalog after the load batches)")
    db.init_db(s2)
    t = time.perf_counter()
    bulk_fill(s2, args.articles)
    print(f"filled {args.articles:,} articles, {args.articles:,} pages, {2 * args.articles:,} aliases in {time.perf_counter() - t:.1f}s")
    lake = time_plan(s2, args.articles)
    plain = plain_duckdb_plan_baseline(args.articles, tmp)
    print(f"plan query, 100 URLs vs {args.articles:,} stored articles: lake {ms(lake)}; plain DuckDB file {ms(plain)}; "
          f"ratio lake/plain {statistics.median(lake) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
