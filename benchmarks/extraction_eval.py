"""Score the clean stage on the Zyte article-extraction benchmark, against plain trafilatura (a quality gate).

Also prints what each residue rule of ingest/residue.py earns (pages it fired on, precision gained, recall lost:
a rule whose recall loss exceeds its precision gain is flagged to go), the stored-text score with default settings
(what a user gets: every language kept, short pages failing as no_text), and the effect of site boilerplate
removal, measured leave-one-out (each page against the recurring lines of the other pages of its site) on the
benchmark grouped by site and on the bundled demo sites (truth: their itemprop=articleBody text).

Usage: python benchmarks/extraction_eval.py [--data DIR] [--workers 2] [--out DIR]
Exit status: 0 ok; 1 newsflow's F1 is below plain trafilatura's in this run; 2 the scorer does not
reproduce the published trafilatura 2.0.0 numbers from the shipped reference outputs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "benchdata" / "article-extraction"
# Published in the benchmark README for trafilatura 2.0.0: the scorer must reproduce these.
PUBLISHED_TRAFILATURA = {"f1": 0.958, "precision": 0.938, "recall": 0.978}
CHECK_TOLERANCE = 0.0015  # published numbers are rounded to 3 decimals
BOOTSTRAP_SAMPLES = 1000

# ---------------------------------------------------------------------------------------------
# Metric (as described in the benchmark README)
# ---------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+")


def tokenize(text: str | None) -> list[str]:
    """Word tokens (regex \\w+, case kept)."""
    return _TOKEN_RE.findall(text or "")


def shingles(text: str | None, n: int = 4) -> Counter[tuple[str, ...]]:
    """Multiset of n-token shingles; a text shorter than n tokens is one short shingle."""
    tokens = tokenize(text)
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])


def tp_fp_fn(truth: str, pred: str) -> tuple[float, float, float]:
    """Shingle tp/fp/fn of one page, normalised by their sum so long pages do not weigh more."""
    t, p = shingles(truth), shingles(pred)
    tp = sum((t & p).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


@dataclass
class PageScore:
    """Per-page counts and exact-match flag."""

    tp: float
    fp: float
    fn: float
    exact: float


def score_page(truth: str, pred: str) -> PageScore:
    """Score one prediction against its ground truth."""
    tp, fp, fn = tp_fp_fn(truth, pred)
    return PageScore(tp, fp, fn, float(tokenize(truth) == tokenize(pred)))


def aggregate(pages: list[PageScore]) -> dict[str, float]:
    """Mean precision (pages with tp+fp>0), mean recall (tp+fn>0), F1 of the means, accuracy."""
    precs = [p.tp / (p.tp + p.fp) for p in pages if p.tp + p.fp > 0]
    recs = [p.tp / (p.tp + p.fn) for p in pages if p.tp + p.fn > 0]
    precision = statistics.fmean(precs) if precs else 0.0
    recall = statistics.fmean(recs) if recs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": statistics.fmean(p.exact for p in pages)}


def evaluate(truth: dict[str, str], preds: dict[str, str], seed: int = 0) -> dict[str, float]:
    """Metrics plus bootstrap standard deviations (`<name>_std`, 1000 resamples of pages)."""
    keys = sorted(truth)
    pages = [score_page(truth[k], preds.get(k) or "") for k in keys]
    result = aggregate(pages)
    rng = random.Random(seed)
    samples = [aggregate([pages[rng.randrange(len(pages))] for _ in pages]) for _ in range(BOOTSTRAP_SAMPLES)]
    for name in list(result):
        result[f"{name}_std"] = statistics.stdev(s[name] for s in samples)
    return result


# ---------------------------------------------------------------------------------------------
# Extractors under test (run in worker processes)
# ---------------------------------------------------------------------------------------------


def _init_worker() -> None:
    """Import the heavy modules once per worker, outside the timed runs."""
    import trafilatura  # noqa: F401

    import ingest.clean  # noqa: F401
    from ingest.language import detect_language

    detect_language("the stop-word profiles load on first use " * 3)


def _warmup(_: int) -> None:
    """Make sure a worker process has started and initialised."""


def run_plain(job: tuple[str, str, bytes]) -> tuple[str, str]:
    """Plain trafilatura with default options on the raw page."""
    import trafilatura

    key, _url, body = job
    return key, trafilatura.extract(body.decode("utf-8")) or ""


def run_newsflow(job: tuple[str, str, bytes]) -> tuple[str, str]:
    """newsflow's clean stage on a FetchResult of the page; a failure counts as an empty prediction."""
    from ingest.clean import clean
    from ingest.errors import NewsflowError
    from ingest.models import FetchResult
    from ingest.settings import CleanSettings

    key, url, body = job
    page = FetchResult(url=url, source="benchmark", status=200, content_type="text/html", body=body)
    try:
        return key, clean(page, CleanSettings(min_text_chars=0, languages=["*"])).text
    except NewsflowError:
        return key, ""


def run_newsflow_defaults(job: tuple[str, str, bytes]) -> tuple[str, str]:
    """The clean stage with default settings, as a user's ingest stores it (a failed page stores nothing)."""
    from ingest.clean import clean
    from ingest.errors import NewsflowError
    from ingest.models import FetchResult
    from ingest.settings import CleanSettings

    key, url, body = job
    page = FetchResult(url=url, source="benchmark", status=200, content_type="text/html", body=body)
    try:
        return key, clean(page, CleanSettings()).text
    except NewsflowError:
        return key, ""


def run_raw(job: tuple[str, str, bytes]) -> tuple[str, str, str | None]:
    """trafilatura's text for the page before residue rules, and its title (for the per-rule ablation)."""
    from ingest.clean import extract
    from ingest.errors import NewsflowError
    from ingest.models import FetchResult
    from ingest.settings import CleanSettings

    key, url, body = job
    page = FetchResult(url=url, source="benchmark", status=200, content_type="text/html", body=body)
    try:
        ex = extract(page, CleanSettings(min_text_chars=0, languages=["*"]))
    except NewsflowError:
        return key, "", None
    return key, ex.raw_text, ex.title


# ---------------------------------------------------------------------------------------------
# What each residue rule and site boilerplate removal earn
# ---------------------------------------------------------------------------------------------


def rule_table(truth: dict[str, str], raws: dict[str, tuple[str, str | None]]) -> list[tuple[str, int, int, float, float]]:
    """Per residue rule: (name, pages fired, lines removed, precision gain, recall loss) against the rule left out."""
    from ingest.residue import RULES, clean_text, clean_text_explained

    keys = sorted(truth)
    explained = {k: clean_text_explained(*raws[k]) for k in keys}
    full = aggregate([score_page(truth[k], explained[k][0]) for k in keys])
    rows = []
    for rule in RULES:
        fired = {k for k in keys if any(r == rule for _, r in explained[k][1])}
        lines = sum(1 for k in keys for _, r in explained[k][1] if r == rule)
        without = aggregate([
            score_page(truth[k], clean_text(*raws[k], skip=frozenset({rule})) if k in fired else explained[k][0]) for k in keys
        ])
        rows.append((rule, len(fired), lines, full["precision"] - without["precision"], without["recall"] - full["recall"]))
    return rows


def leave_one_out(pages: dict[str, tuple[str, str]], min_pages: int) -> dict[str, frozenset[str]]:
    """Page key -> template lines of its site found on >= min_pages *other* pages (url, cleaned text) of that site."""
    from ingest.boilerplate import recurring_lines, site_of

    by_site: dict[str | None, list[str]] = {}
    for k, (url, _) in pages.items():
        by_site.setdefault(site_of(url), []).append(k)
    out = {}
    for k, (url, _) in pages.items():
        others = [pages[o] for o in by_site[site_of(url)] if o != k]
        out[k] = recurring_lines(others, min_pages).get(site_of(url) or "", frozenset())
    return out


def boilerplate_effect(truth: dict[str, str], pages: dict[str, tuple[str, str]], min_pages: int) -> tuple[dict, dict, int, int]:
    """(scores before, scores after, pages changed, lines removed) of site boilerplate removal, leave-one-out."""
    from ingest.boilerplate import remove_site_boilerplate

    known = leave_one_out(pages, min_pages)
    keys = sorted(truth)
    after = {k: remove_site_boilerplate(pages[k][1], known[k], min_pages) for k in keys}
    before_s = aggregate([score_page(truth[k], pages[k][1]) for k in keys])
    after_s = aggregate([score_page(truth[k], after[k][0]) for k in keys])
    return before_s, after_s, sum(1 for k in keys if after[k][1]), sum(len(after[k][1]) for k in keys)


def demo_pages() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The bundled demo sites' article pages: truth (articleBody text) and (URL, clean() text) per page."""
    from lxml import html as lxml_html

    from ingest.clean import clean
    from ingest.models import FetchResult
    from ingest.settings import CleanSettings

    root = REPO_ROOT / "seeds" / "demo_site"
    bases = {"harbourgazette": "https://www.harbourgazette.example/", "northwire": "https://northwire.example/"}
    truth, pages = {}, {}
    for site, base in bases.items():
        for path in sorted((root / site).rglob("*.html")):
            tree = lxml_html.fromstring(path.read_bytes())
            blocks = tree.xpath('//*[@itemprop="articleBody"]//*[self::p or self::h2 or self::blockquote[not(.//p)]]')
            if not blocks:
                continue  # front pages, galleries
            rel = path.relative_to(root / site).as_posix()
            truth[rel] = "\n".join(" ".join(b.text_content().split()) for b in blocks)
            page = FetchResult(url=base + rel, source="demo", status=200, content_type="text/html", body=path.read_bytes())
            pages[rel] = (base + rel, clean(page, CleanSettings(min_text_chars=0)).text)
    return truth, pages


def print_boilerplate(label: str, truth: dict[str, str], pages: dict[str, tuple[str, str]]) -> None:
    for min_pages in (3, 2, 1):
        b, a, changed, lines = boilerplate_effect(truth, pages, min_pages)
        print(f"  {label}, lines on >= {min_pages} other pages of the site: P {b['precision']:.4f} -> {a['precision']:.4f}  "
              f"R {b['recall']:.4f} -> {a['recall']:.4f}  F1 {b['f1']:.4f} -> {a['f1']:.4f}  ({changed} pages changed, {lines} lines removed)")


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def load_reference(path: Path) -> dict[str, str]:
    """A reference output file ({"version", "output": {id: {"articleBody"}}} or the bare mapping)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    output = data.get("output", data) if isinstance(data, dict) else {}
    return {k: (v or {}).get("articleBody") or "" for k, v in output.items()}


def main(argv: list[str] | None = None) -> int:
    """Check the scorer, run both extractors, print the table, apply the quality gate."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="benchmark directory (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=None, help="write each system's predictions as JSON here")
    args = ap.parse_args(argv)

    data: Path = args.data.resolve()
    gt = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    truth = {k: v.get("articleBody") or "" for k, v in gt.items()}
    print(f"benchmark: {data} ({len(truth)} pages)")

    # 1. The scorer must reproduce the published trafilatura 2.0.0 numbers from the shipped outputs.
    ref = evaluate(truth, load_reference(data / "reference-outputs" / "trafilatura.json"))
    ok = all(abs(ref[k] - v) <= CHECK_TOLERANCE for k, v in PUBLISHED_TRAFILATURA.items())
    print(
        f"scorer check: trafilatura 2.0.0 reference outputs -> F1 {ref['f1']:.3f} P {ref['precision']:.3f} "
        f"R {ref['recall']:.3f} acc {ref['accuracy']:.3f} (published F1 0.958 P 0.938 R 0.978) "
        f"{'OK' if ok else 'MISMATCH'}"
    )
    if not ok:
        return 2

    jobs = []
    for key in sorted(truth):
        with gzip.open(data / "html" / f"{key}.html.gz") as fh:
            jobs.append((key, gt[key].get("url") or "", fh.read()))

    import trafilatura

    systems = {
        f"trafilatura {trafilatura.__version__} extract() defaults": run_plain,
        "newsflow clean()": run_newsflow,
        "newsflow clean(), default settings": run_newsflow_defaults,
    }
    print(f"running {len(systems)} extractors on {len(jobs)} pages with {args.workers} worker processes (ProcessPoolExecutor)")
    results: dict[str, dict[str, float]] = {}
    all_preds: dict[str, dict[str, str]] = {}
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_init_worker) as pool:
        list(pool.map(_warmup, range(args.workers * 4)))
        for name, fn in systems.items():
            start = time.perf_counter()
            preds = dict(pool.map(fn, jobs, chunksize=4))
            elapsed = time.perf_counter() - start
            results[name] = evaluate(truth, preds)
            results[name]["pages_per_s"] = len(jobs) / elapsed
            all_preds[name] = preds
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                slug = re.sub(r"\W+", "_", name).strip("_")
                (args.out / f"{slug}.json").write_text(json.dumps(preds, ensure_ascii=False, indent=1), encoding="utf-8")
        raws = {k: (text, title) for k, text, title in pool.map(run_raw, jobs, chunksize=4)}

    header = f"{'system':<42} {'precision':>15} {'recall':>15} {'F1':>15} {'accuracy':>15} {'pages/s':>8}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        cells = " ".join(f"{r[m]:.3f} ± {r[m + '_std']:.3f}".rjust(15) for m in ("precision", "recall", "f1", "accuracy"))
        print(f"{name:<42} {cells} {r['pages_per_s']:>8.1f}")

    stored = all_preds["newsflow clean(), default settings"]
    print(f"default settings store {sum(1 for v in stored.values() if v)} of {len(stored)} pages as articles")

    print("\nResidue rules (ingest/residue.py), each scored against the same output with only that rule left out:")
    print(f"| rule | pages fired | lines removed | precision gain | recall loss | verdict |\n|---|---:|---:|---:|---:|---|")
    for rule, fired, lines, gain, loss in rule_table(truth, raws):
        verdict = "goes (loses more recall than it gains precision)" if loss > gain else "keep"
        print(f"| {rule} | {fired} | {lines} | {gain:+.4f} | {loss:+.4f} | {verdict} |")

    print("\nSite boilerplate (ingest/boilerplate.py), leave-one-out, default threshold 3 pages; lower thresholds for scale:")
    ours_preds = all_preds["newsflow clean()"]
    bench_pages = {k: (gt[k].get("url") or "", ours_preds.get(k) or "") for k in truth}
    print_boilerplate("benchmark by site", truth, bench_pages)
    demo_truth, demo = demo_pages()
    print_boilerplate(f"demo sites ({len(demo)} article pages)", demo_truth, demo)

    plain, ours = list(results.values())[:2]
    if ours["f1"] < plain["f1"]:
        print(f"QUALITY GATE FAILED: newsflow F1 {ours['f1']:.4f} < plain trafilatura F1 {plain['f1']:.4f}")
        return 1
    print(f"quality gate passed: newsflow F1 {ours['f1']:.4f} >= plain trafilatura F1 {plain['f1']:.4f}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere
    sys.exit(main())
