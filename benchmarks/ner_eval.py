"""NER evaluation: precision/recall/F1 per type of raw spaCy vs newsflow's normalised entities, plus throughput.

Gold: benchmarks/data/ner_gold.jsonl (20 Zyte benchmark articles + the 2 seeds, hand-labelled; guidelines in
benchmarks/data/README.md). A mention counts as correct only with exact span and type; "lenient" also
forgives a leading "the"/trailing 's difference.

    python benchmarks/ner_eval.py                    # scores + throughput
    python benchmarks/ner_eval.py --no-speed         # scores only
    python benchmarks/ner_eval.py --build-gold       # rebuild ner_gold.jsonl from ner_gold_spec.txt
    python benchmarks/ner_eval.py --data /path/to/article-extraction
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.entities import extract_entities, extract_entities_parallel, load_nlp, _worker_extract  # noqa: E402
from ingest.models import Article  # noqa: E402
from ingest.settings import BUNDLED_SEEDS_DIR, EntitySettings  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "data"
GOLD = DATA_DIR / "ner_gold.jsonl"
SPEC = DATA_DIR / "ner_gold_spec.txt"
DEFAULT_BENCH = ROOT.parent / "shared" / "benchdata" / "article-extraction"
SEED_FILES = ["000_7f41d666b0ea1f1a.txt", "003_a6cc57f649ce1f43.txt"]
TYPES = ["PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE"]


def sha256(text: str) -> str:
    """Hex SHA-256 of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_texts(bench_dir: Path) -> dict[str, tuple[str, str, str]]:
    """id -> (source, url, text) for benchmark articles and the seeds."""
    from ingest.seeds import load_seed

    gt = json.loads((bench_dir / "ground-truth.json").read_text(encoding="utf-8"))
    out = {k: ("zyte-benchmark", v["url"], v["articleBody"]) for k, v in gt.items()}
    for name in SEED_FILES:
        a = load_seed(BUNDLED_SEEDS_DIR / name)
        out[a.id] = ("seed", a.url, a.text)
    return out


def build_gold(bench_dir: Path) -> None:
    """Turn ner_gold_spec.txt into ner_gold.jsonl (every listed surface must match at least once)."""
    texts = load_texts(bench_dir)
    blocks: list[tuple[str, list[str]]] = []
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            blocks.append((line[3:].strip(), []))
        elif line.strip() and not line.startswith("#"):
            blocks[-1][1].append(line.strip())
    records = []
    for prefix, lines in blocks:
        (doc_id,) = [k for k in texts if k.startswith(prefix)]
        source, url, text = texts[doc_id]
        specs = [ln.split("|") for ln in lines]
        taken = [False] * len(text)
        ents = []
        # Longest surfaces first so "Hong Kong Stock Exchange" wins over "Hong Kong".
        for parts in sorted(specs, key=lambda p: -len(p[0])):
            surface, label = parts[0], parts[1]
            only = {int(i) for i in parts[2].split(",")} if len(parts) > 2 else None
            matches = list(re.finditer(r"(?<!\w)" + re.escape(surface) + r"(?!\w)", text))
            if not matches:
                raise SystemExit(f"{prefix}: {surface!r} not found")
            placed = 0
            for i, m in enumerate(matches):
                if only is not None and i not in only:
                    continue
                if any(taken[m.start() : m.end()]):
                    continue
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                ents.append({"start": m.start(), "end": m.end(), "text": surface, "label": label})
                placed += 1
            if not placed:
                raise SystemExit(f"{prefix}: {surface!r} only inside longer spans")
        ents.sort(key=lambda e: e["start"])
        records.append({"id": doc_id, "source": source, "url": url, "text_sha256": sha256(text), "n_chars": len(text), "entities": ents})
    with GOLD.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {GOLD} ({len(records)} texts, {sum(len(r['entities']) for r in records)} entities)")


def load_gold(bench_dir: Path) -> list[tuple[dict, str]]:
    """Gold records with their texts, refusing any whose text no longer matches the stored hash."""
    texts = load_texts(bench_dir)
    out = []
    for line in GOLD.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        text = texts[rec["id"]][2]
        if sha256(text) != rec["text_sha256"]:
            raise SystemExit(f"text of {rec['id']} changed since it was labelled")
        out.append((rec, text))
    return out


# ---------------------------------------------------------------------------- scoring



def _lenient(text: str, start: int, end: int) -> tuple[int, int]:
    s = text[start:end]
    m = re.match(r"(?i)the\s+", s)
    if m:
        start += m.end()
    if re.search(r"['\u2019]s$", text[start:end]):
        end -= 2
    return start, end


def score(gold: list[set], pred: list[set]) -> dict[str, tuple[int, int, int]]:
    """Per type and 'ALL': (tp, fp, fn) from per-document sets of (start, end, type)."""
    c: dict[str, Counter] = {}
    for g, p in zip(gold, pred):
        for t in {x[2] for x in g | p} | {"ALL"}:
            cc = c.setdefault(t, Counter())
            gs = g if t == "ALL" else {x for x in g if x[2] == t}
            ps = p if t == "ALL" else {x for x in p if x[2] == t}
            cc["tp"] += len(gs & ps)
            cc["fp"] += len(ps - gs)
            cc["fn"] += len(gs - ps)
    return {t: (v["tp"], v["fp"], v["fn"]) for t, v in c.items()}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def print_table(results: dict[str, dict[str, tuple[int, int, int]]]) -> None:
    """Per-type P/R/F1 for each system side by side."""
    names = list(results)
    print(f"{'type':<12}{'n_gold':>7}  " + "  ".join(f"{n:^22}" for n in names))
    print(f"{'':<12}{'':>7}  " + "  ".join(f"{'P':>6}{'R':>7}{'F1':>7}  " for _ in names))
    first = results[names[0]]
    for t in [t for t in TYPES if t in first or any(t in r for r in results.values())] + ["ALL"]:
        n_gold = first.get(t, (0, 0, 0))[0] + first.get(t, (0, 0, 0))[2]
        cells = []
        for n in names:
            p, r, f = prf(*results[n].get(t, (0, 0, 0)))
            cells.append(f"{p:6.3f}{r:7.3f}{f:7.3f}  ")
        label = "micro ALL" if t == "ALL" else t
        print(f"{label:<12}{n_gold:>7}  " + "  ".join(cells))


def evaluate(gold: list[tuple[dict, str]], settings: EntitySettings) -> None:
    """Score raw spaCy (full pipeline and newsflow's reduced one) against newsflow's normalised output."""
    import spacy

    keep = set(settings.keep_labels)
    texts = [t for _, t in gold]
    gold_sets = [{(e["start"], e["end"], e["label"]) for e in rec["entities"]} for rec, _ in gold]

    full = spacy.load(settings.spacy_model)
    raw_full = [{(e.start_char, e.end_char, e.label_) for e in d.ents if e.label_ in keep} for d in full.pipe(texts)]
    nlp = load_nlp(settings.spacy_model, sentences_before_ner=settings.sentences_before_ner)
    raw_nf = [{(e.start_char, e.end_char, e.label_) for e in d.ents if e.label_ in keep} for d in nlp.pipe(texts)]
    arts = [Article(id=r["id"], url=r["url"], page_url=r["url"], source=r["source"], text=t, language="en") for r, t in gold]
    res = extract_entities(arts, settings)
    norm = [{(m.start, m.end, m.type) for m in r.mentions} for r in res]

    systems = {"raw spaCy (full pipe)": raw_full, "raw spaCy (ner+sents)": raw_nf, "newsflow normalised": norm}
    print(f"\nStrict (exact span + type), {len(gold)} texts, {sum(len(g) for g in gold_sets)} gold mentions")
    print_table({n: score(gold_sets, p) for n, p in systems.items()})

    def lenient(sets: list[set]) -> list[set]:
        return [{(*_lenient(t, s, e), lab) for s, e, lab in d} for d, t in zip(sets, texts)]

    print("\nLenient span (leading 'the' / trailing 's forgiven), micro over all types:")
    lg = lenient(gold_sets)
    for n, p in systems.items():
        pp, rr, ff = prf(*score(lg, lenient(p))["ALL"])
        print(f"  {n:<24} P {pp:.3f}  R {rr:.3f}  F1 {ff:.3f}")
    # Untyped: did the span get found at all (type errors separated from boundary errors).
    print("\nSpan only (type ignored), strict boundaries:")
    for n, p in systems.items():
        pp, rr, ff = prf(*score([{(s, e, "X") for s, e, _ in g} for g in gold_sets], [{(s, e, "X") for s, e, _ in d} for d in p])["ALL"])
        print(f"  {n:<24} P {pp:.3f}  R {rr:.3f}  F1 {ff:.3f}")


# ---------------------------------------------------------------------------- throughput


def _timed(fn, n_docs: int, n_words: int, label: str) -> float:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<48} {n_docs / dt:7.1f} articles/s  {n_words / dt:9.0f} words/s  ({dt:.2f}s)")
    return dt


def throughput(gold: list[tuple[dict, str]], settings: EntitySettings, repeat: int) -> None:
    """Articles/s and words/s: bare nlp.pipe baselines vs newsflow on one core and two worker processes."""
    import spacy

    texts = [t for _, t in gold] * repeat
    arts = [
        Article(id=f"{r['id']}-{i}", url="u", page_url="u", source="s", text=t, language="en")
        for i in range(repeat) for r, t in gold
    ]
    n, w = len(texts), sum(len(t.split()) for t in texts)
    print(f"\nThroughput on {len(gold)} texts x{repeat} = {n} articles, {w} words ({os.cpu_count()} CPUs); models loaded beforehand")
    full = spacy.load(settings.spacy_model)
    nlp = load_nlp(settings.spacy_model, sentences_before_ner=settings.sentences_before_ner)
    list(nlp.pipe(texts[:4]))
    list(full.pipe(texts[:4]))
    base = _timed(lambda: list(full.pipe(texts, batch_size=settings.batch_size)), n, w, "baseline: bare nlp.pipe, full pipeline, 1 core")
    _timed(lambda: list(nlp.pipe(texts, batch_size=settings.batch_size)), n, w, "bare nlp.pipe, ner+sentencizer only, 1 core")
    one = _timed(lambda: extract_entities(arts, settings), n, w, "newsflow extract_entities, 1 process")
    _timed(lambda: extract_entities(arts, settings, n_process=2), n, w, "newsflow extract_entities, nlp.pipe(n_process=2)")
    with ProcessPoolExecutor(max_workers=2) as pool:
        # Warm both workers (model load is per process, once) before timing.
        list(pool.map(_worker_extract, [(arts[:2], settings), (arts[2:4], settings)]))
        two = _timed(lambda: extract_entities_parallel(arts, settings, workers=2, executor=pool), n, w, "newsflow 2 worker processes")
    print(f"  speed-up vs full-pipeline baseline: 1 process {base / one:.2f}x, 2 workers {base / two:.2f}x; 2 workers vs 1 process {one / two:.2f}x")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_BENCH, help="article-extraction benchmark dir (with ground-truth.json)")
    ap.add_argument("--build-gold", action="store_true", help="rebuild ner_gold.jsonl from ner_gold_spec.txt and exit")
    ap.add_argument("--no-speed", action="store_true", help="skip the throughput runs")
    ap.add_argument("--repeat", type=int, default=5, help="repeat the texts this many times for throughput")
    ap.add_argument("--model", default=None, help="spaCy model (default: EntitySettings().spacy_model)")
    args = ap.parse_args(argv)
    if args.build_gold:
        build_gold(args.data)
        return
    settings = EntitySettings()
    if args.model:
        settings = settings.model_copy(update={"spacy_model": args.model, "models_by_language": {"en": args.model}})
    gold = load_gold(args.data)
    evaluate(gold, settings)
    if not args.no_speed:
        throughput(gold, settings, args.repeat)


if __name__ == "__main__":
    main()
