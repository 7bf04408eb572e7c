"""Dedup evaluation: quality (precision/recall on labelled syndication pairs) and cost as history grows.

Quality. Originals are the real article bodies of the Zyte article-extraction benchmark (ground-truth.json) plus
the two seed articles. Positives are syndicated variants of an original, made deterministically (--seed):
re-templated (headline, byline, "originally published by", "Follow us" lines), trimmed by the last paragraph,
extended by a paragraph of another article, copy-edited (word substitutions, quote style, British spelling) and
combinations, plus pairs of two variants of the same original; and copies whose two sides were extracted to very
different lengths: cut to the first 20-40% of the story (bare, or re-templated), grown by live updates (new
paragraphs from three other stories), or opened by a different lede paragraph. Negatives are all pairs of distinct originals
(hard negatives: the pairs with the highest shingle overlap, and the two seeds, which cover the same G20 event)
and variants of an original against its most similar other original, plus a one-paragraph brief of each story
quoted inside a round-up of other stories' paragraphs. Each pair is decided by the real pipeline
functions: fingerprint -> LSH candidate (a shared band key or content hash) -> verify.

Cost. A real DuckLake warehouse (SQLite catalog, temporary directory) is filled with 1k, 10k and 100k synthetic
history articles (sentences of the ground truth mixed into new, distinct articles; bulk-loaded through Arrow), and a
batch of new articles (most novel, some syndicated copies of history) is checked: fingerprint + find_candidates + decide/verify + save.

Usage: .venv/bin/python benchmarks/dedup_eval.py [--quick] [--data PATH] [--seed N] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.dedup import (  # noqa: E402
    Side, compare, decide, estimated_jaccard, fingerprint, fingerprint_many, judge_scores, model_id, pair_scores, shingles,
    similarity, verify,
)
from ingest.models import Article, DedupCandidate, Fingerprint  # noqa: E402
from ingest.settings import DedupSettings, Settings  # noqa: E402
from warehouse import dedup_store  # noqa: E402
from warehouse.db import init_db, session, transaction  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "benchdata" / "article-extraction" / "ground-truth.json"
SEEDS = REPO / "seeds"
SEED_FILES = ("000_7f41d666b0ea1f1a.txt", "003_a6cc57f649ce1f43.txt")

# ---------------------------------------------------------------- corpus


def load_seed(path: Path) -> str:
    """Raw seed body: title line and paragraphs, up to the hashtag line (ingest/seeds.py does this properly)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            break
        out.append(line)
    return "\n".join(out).strip()


def load_originals(data: Path) -> dict[str, str]:
    """Ground-truth article bodies plus the two seeds, keyed by a short id."""
    gt = json.loads(data.read_text(encoding="utf-8"))
    originals = {f"gt-{k[:10]}": v["articleBody"].strip() for k, v in sorted(gt.items()) if v["articleBody"].strip()}
    for name in SEED_FILES:
        originals[f"seed-{name[:3]}"] = load_seed(SEEDS / name)
    return originals


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“‘(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for p in paragraphs(text) for s in _SENT.split(p) if s.strip()]


# ---------------------------------------------------------------- syndicated variants

NAMES = ["Maria Jensen", "Tom Okafor", "Priya Raman", "Luis Ortega", "Hannah Weiss", "Kenji Sato", "Amira Haddad", "Sam Doyle"]
OUTLETS = ["Agence France-Presse", "The Associated Press", "Reuters", "The Conversation", "Bloomberg", "Kaiser Health News", "CalMatters"]
DESKS = ["World Desk", "Business Reporter", "Staff Writer", "Tech Correspondent", "Wire Services"]
ORIGINALLY = [
    "This article was originally published by {o}.",
    "This story was originally published by {o} and is republished here with permission.",
    "Originally published on {o}. Republished under a content-sharing agreement.",
]
FOLLOW = [
    "Follow us on Twitter and Facebook for the latest updates.",
    "Sign up for our daily newsletter to get stories like this in your inbox.",
    "Follow our live coverage and download our app for breaking news alerts.",
]
SYNONYMS = {
    "said": "stated", "says": "states", "people": "residents", "government": "administration", "officials": "authorities",
    "big": "large", "about": "around", "also": "additionally", "because": "since", "however": "but", "many": "numerous",
    "new": "fresh", "help": "assist", "show": "demonstrate", "use": "utilise", "buy": "purchase", "start": "begin",
    "company": "firm", "percent": "per cent", "told": "informed", "week": "weekend", "first": "initial", "major": "key",
    "make": "create", "likely": "probably", "around": "roughly", "before": "prior to", "after": "following",
}
US_UK = [(r"ization\b", "isation"), (r"ize\b", "ise"), (r"izes\b", "ises"), (r"ized\b", "ised"), (r"izing\b", "ising"),
         (r"\bcolor", "colour"), (r"\bcenter", "centre"), (r"\bfavor", "favour"), (r"\bdefense\b", "defence"),
         (r"\bprogram\b", "programme"), (r"\banalyze", "analyse"), (r"\blabor\b", "labour"), (r"\bhonor", "honour")]


def headline(rng: random.Random, text: str) -> str:
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", text)
    return " ".join(rng.sample(words, min(len(words), rng.randint(6, 11)))).capitalize() if words else "Update"


def _strip_title(paras: list[str]) -> list[str]:
    # A short first line is the original's own headline: a re-headlined copy replaces it.
    return paras[1:] if len(paras) > 2 and len(paras[0].split()) < 15 else paras


def retemplate(rng: random.Random, text: str, other: str) -> str:
    paras = _strip_title(paragraphs(text))
    top = [headline(rng, text), f"By {rng.choice(NAMES)}, {rng.choice(DESKS)}"]
    if rng.random() < 0.7:
        top.append(rng.choice(ORIGINALLY).format(o=rng.choice(OUTLETS)))
    return "\n\n".join(top + paras + [rng.choice(FOLLOW)])


def trim(rng: random.Random, text: str, other: str) -> str:
    paras = paragraphs(text)
    if len(paras) >= 3:
        return "\n\n".join(paras[:-1])
    sents = sentences(text)
    return " ".join(sents[:-1]) if len(sents) >= 3 else text


def extend(rng: random.Random, text: str, other: str) -> str:
    extra = [p for p in paragraphs(other) if 20 <= len(p.split()) <= 120] or paragraphs(other)[:1]
    return text + "\n\n" + rng.choice(extra)


def copyedit(rng: random.Random, text: str, other: str) -> str:
    for pat, rep in US_UK:
        text = re.sub(pat, rep, text)
    words = text.split(" ")
    spots = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
    for i in rng.sample(spots, min(len(spots), rng.randint(3, 5))):
        words[i] = SYNONYMS[words[i].lower()]
    text = " ".join(words)
    if rng.random() < 0.5:
        text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2019", "'").replace("\u2014", "-")
    else:
        text = re.sub(r'"([^"]*)"', "\u201c\\1\u201d", text).replace("'", "\u2019")
    return text


def boilerplate(rng: random.Random) -> tuple[list[str], str]:
    """One partner site's template lines: byline and 'originally published' on top, a 'Follow us' line below."""
    return [f"By {rng.choice(NAMES)}, {rng.choice(DESKS)}", rng.choice(ORIGINALLY).format(o=rng.choice(OUTLETS))], rng.choice(FOLLOW)


def syndicated(rng: random.Random, text: str, other: str) -> str:
    return retemplate(rng, trim(rng, copyedit(rng, text, other), other), other)


def extended_retemplated(rng: random.Random, text: str, other: str) -> str:
    return retemplate(rng, extend(rng, text, other), other)


def _cut_words(paras: list[str], share: float) -> list[str]:
    """Leading paragraphs up to `share` of the words; the last one cut at a sentence end (or mid-way) to fit."""
    total = sum(len(p.split()) for p in paras)
    goal, out, n = share * total, [], 0
    for p in paras:
        w = len(p.split())
        if n + w <= goal:
            out.append(p)
            n += w
            continue
        sents = [x for x in _SENT.split(p) if x.strip()]
        part: list[str] = []
        for sent in sents:
            if n + len(sent.split()) > goal and (part or out):
                break
            part.append(sent)
            n += len(sent.split())
        if part:
            out.append(" ".join(part))
        break
    return out or [" ".join(paras[0].split()[: max(1, int(goal))])]


def prefix(rng: random.Random, text: str, other: str) -> str:
    """The copy whose extraction stopped early: the first 20-40% of the story's words."""
    return "\n\n".join(_cut_words(paragraphs(text), rng.uniform(0.2, 0.4)))


def prefix_retemplated(rng: random.Random, text: str, other: str) -> str:
    return retemplate(rng, prefix(rng, text, other), other)


def updates_appended(rng: random.Random, text: str, other: str, pool: list[str] | None = None) -> str:
    """A live copy grown by later updates: timestamped paragraphs from three other stories, 0.5-1.5x the story's length."""
    pool = pool or [p for p in paragraphs(other) if len(p.split()) >= 15]
    goal = rng.uniform(0.5, 1.5) * len(text.split())
    out, n, hour = [], 0, rng.randint(8, 18)
    for p in rng.sample(pool, min(len(pool), 40)):
        if n >= goal:
            break
        out.append(f"Update {hour:02d}:{rng.randint(0, 59):02d}: {p}")
        n += len(p.split())
        hour = min(hour + 1, 23)
    return text + "\n\n" + "\n\n".join(out)


def different_lede(rng: random.Random, text: str, other: str) -> str:
    """A partner's own opening paragraph (same length, other wording) above the rest of the story."""
    paras = _strip_title(paragraphs(text))
    if len(paras) < 2:
        return text
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", paras[0]) or ["Update"]
    lede = " ".join(rng.choice(words) for _ in range(len(paras[0].split()))).capitalize() + "."
    return "\n\n".join([lede] + paras[1:])


VARIANTS = {
    "retemplate": retemplate, "trim": trim, "extend": extend, "copyedit": copyedit,
    "syndicated": syndicated, "extend+retemplate": extended_retemplated,
    "prefix 20-40%": prefix, "prefix 20-40%+retemplate": prefix_retemplated,
    "updates appended": updates_appended, "different lede": different_lede,
}


# ---------------------------------------------------------------- pairwise pipeline decisions


@dataclass
class Doc:
    id: str
    text: str
    fp: Fingerprint
    sh: set[str]
    side: Side


def make_doc(doc_id: str, text: str, settings: DedupSettings) -> Doc:
    fp = fingerprint(doc_id, text, settings)
    return Doc(doc_id, text, fp, shingles(text, settings), Side(fp.content_hash, fp.signature, text))


def lsh_candidate(a: Doc, b: Doc) -> bool:
    """What find_candidates would return: any band with equal keys, or equal content hash."""
    return a.fp.content_hash == b.fp.content_hash or any(x == y for x, y in zip(a.fp.band_keys, b.fp.band_keys))


def pipeline_match(a: Doc, b: Doc, settings: DedupSettings) -> bool:
    """fingerprint -> LSH candidate -> verify, exactly as the pipeline decides one pair."""
    if not lsh_candidate(a, b):
        return False
    cand = DedupCandidate(article_id=b.id, first_seen_at=datetime(2020, 1, 1, tzinfo=timezone.utc),
                          content_hash=b.fp.content_hash, signature=b.fp.signature, text=b.text)
    return verify(a.text, a.fp, cand, settings) is not None


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def build_pairs(originals: dict[str, str], rng: random.Random, settings: DedupSettings):
    """Docs and labelled pairs: (a_id, b_id, label, kind)."""
    docs = {k: make_doc(k, t, settings) for k, t in originals.items()}
    ids = sorted(originals)
    # Nearest other original by exact shingle Jaccard: the hard negatives and the "extend" donors.
    nearest: dict[str, tuple[float, str]] = {}
    all_neg = []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            j, _ = similarity(docs[a].sh, docs[b].sh)
            all_neg.append((j, a, b))
            for x, y in ((a, b), (b, a)):
                if j > nearest.get(x, (-1.0, ""))[0]:
                    nearest[x] = (j, y)
    hard = {(a, b) for _, a, b in sorted(all_neg, reverse=True)[:50]}
    pairs = []
    for _, a, b in all_neg:
        kind = "seeds(same event)" if a.startswith("seed") and b.startswith("seed") else ("hard(top-50 overlap)" if (a, b) in hard else "original-vs-original")
        pairs.append((a, b, False, kind))
    for oid in ids:
        donor = nearest[oid][1]
        made = []
        for kind, fn in VARIANTS.items():
            vid = f"{oid}~{kind}"
            vrng = random.Random(f"{rng.random()}-{vid}")
            if fn is updates_appended:
                # Updates come from three other stories (not the donor), a few paragraphs each.
                others = vrng.sample([i for i in ids if i not in (oid, donor)], 3)
                pool = [p for i in others for p in paragraphs(originals[i])[:6] if len(p.split()) >= 15]
                text = updates_appended(vrng, originals[oid], originals[donor], pool)
                for i in others:
                    pairs.append((vid, i, False, "updates-vs-their-sources"))
            else:
                text = fn(vrng, originals[oid], originals[donor])
            docs[vid] = make_doc(vid, text, settings)
            made.append(vid)
            pairs.append((vid, oid, True, kind))
            pairs.append((vid, donor, False, "variant-vs-nearest-other"))
        # A one-paragraph brief of the story quoted in a round-up of three other stories' openings: not a copy.
        lede = max(_strip_title(paragraphs(originals[oid]))[:2], key=lambda p: len(p.split()))
        brng = random.Random(f"{rng.random()}-{oid}-roundup")
        parts = [paragraphs(originals[i])[:2] for i in brng.sample([i for i in ids if i != oid], 3)]
        roundup = "\n\n".join([p for ps in parts for p in ps] + [lede])
        docs[f"{oid}~brief"] = make_doc(f"{oid}~brief", lede, settings)
        docs[f"{oid}~roundup"] = make_doc(f"{oid}~roundup", roundup, settings)
        pairs.append((f"{oid}~brief", f"{oid}~roundup", False, "brief-in-roundup"))
        pairs.append((made[0], made[4], True, "variant-vs-variant"))
        pairs.append((made[2], made[1], True, "variant-vs-variant"))
        # Two different stories republished by the same partner: identical template lines, different bodies.
        top, bottom = boilerplate(random.Random(f"{rng.random()}-{oid}-tpl"))
        a_id, b_id = f"{oid}~tpl", f"{donor}~tpl-of-{oid}"
        docs[a_id] = make_doc(a_id, "\n\n".join(top + paragraphs(originals[oid]) + [bottom]), settings)
        docs[b_id] = make_doc(b_id, "\n\n".join(top + paragraphs(originals[donor]) + [bottom]), settings)
        pairs.append((a_id, b_id, False, "same-template-other-story"))
    return docs, pairs


def quality(originals: dict[str, str], seed: int, settings: DedupSettings) -> None:
    t0 = time.perf_counter()
    docs, pairs = build_pairs(originals, random.Random(seed), settings)
    n_pos = sum(1 for p in pairs if p[2])
    print(f"## Quality  ({len(originals)} originals, {len(docs) - len(originals)} derived texts, {n_pos} positive / {len(pairs) - n_pos} negative pairs)")
    print(f"settings: {settings.model_dump()}  model={model_id(settings)}")

    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_kind_cand: dict[str, int] = defaultdict(int)
    tp = fp = fn = 0
    misses, false_pos = [], []
    cand_pairs = []  # pairs LSH lets through, with exact scores, for the threshold sweep
    lsh_pos = 0
    for a, b, label, kind in pairs:
        da, db = docs[a], docs[b]
        is_cand = lsh_candidate(da, db)
        lsh_pos += label and is_cand
        pred = pipeline_match(da, db, settings)
        by_kind_cand[kind] += is_cand
        if is_cand:
            cand_pairs.append((label, da.fp.content_hash == db.fp.content_hash, estimated_jaccard(da.fp.signature, db.fp.signature),
                               min(len(da.sh), len(db.sh)), pair_scores(da.side, db.side, settings)))
        by_kind[kind][0] += pred == label
        by_kind[kind][1] += 1
        tp += pred and label
        fp += pred and not label
        fn += label and not pred
        if label and not pred:
            misses.append((kind, a, b))
        if pred and not label:
            false_pos.append((kind, a, b))
    neg = [similarity(docs[a].sh, docs[b].sh) + (kind,) for a, b, label, kind in pairs if not label]
    pos = [similarity(docs[a].sh, docs[b].sh) + (kind,) for a, b, label, kind in pairs if label]
    hj, hc = max(neg, key=lambda x: x[0]), max(neg, key=lambda x: x[1])
    p, r, f = prf(tp, fp, fn)
    print(f"negatives: max jaccard {hj[0]:.3f} ({hj[2]}), max containment {hc[1]:.3f} (jaccard {hc[0]:.3f}, {hc[2]})")
    print(f"positives: min jaccard {min(x[0] for x in pos):.3f}, median jaccard {statistics.median(x[0] for x in pos):.3f}, "
          f"min containment {min(x[1] for x in pos):.3f}")
    print(f"\nprecision {p:.4f}   recall {r:.4f}   F1 {f:.4f}   (tp={tp} fp={fp} fn={fn}; LSH candidate recall {lsh_pos / n_pos:.4f})")
    print("\n| pair kind | label | correct | pairs | recall (dup) / false-positive rate (distinct) | LSH candidates |\n|---|---|---:|---:|---:|---:|")
    labels = {k: lbl for _, _, lbl, k in pairs}
    for kind, (ok, n) in sorted(by_kind.items(), key=lambda kv: (not labels[kv[0]], kv[0])):
        rate = f"R {ok / n:.3f}" if labels[kind] else f"FP {(n - ok) / n:.3f}"
        print(f"| {kind} | {'dup' if labels[kind] else 'distinct'} | {ok} | {n} | {rate} | {by_kind_cand[kind] / n:.3f} |")
    # Precision per variant class: its true positives against every false positive of the run (a false positive
    # belongs to no variant class), i.e. what a user sees if the warehouse held only that kind of copy.
    print("\n| variant class | P | R |\n|---|---:|---:|")
    for kind, (ok, n) in sorted(by_kind.items()):
        if labels[kind]:
            kp, kr, _ = prf(ok, fp, n - ok)
            print(f"| {kind} | {kp:.4f} | {kr:.4f} |")
    methods: dict[str, int] = defaultdict(int)
    for a, b, label, kind in pairs:
        if label and pipeline_match(docs[a], docs[b], settings):
            methods[(compare(docs[a].side, docs[b].side, settings) or ("?",))[0]] += 1
    print("true positives by method: " + ", ".join(f"{k} {v}" for k, v in sorted(methods.items())))
    for label, rows in (("missed positives", misses), ("false positives", false_pos)):
        if rows:
            print(f"\n{label} ({len(rows)}), first 8:")
            for kind, a, b in rows[:8]:
                sc = pair_scores(docs[a].side, docs[b].side, settings)
                print(f"  {kind:22s} {a} vs {b}: words {len(docs[a].text.split())}/{len(docs[b].text.split())} jaccard={sc.jaccard:.3f} "
                      f"containment={sc.containment:.3f} prose containment={sc.prose_containment:.3f} of {sc.prose_count} "
                      f"lead_overlap={sc.lead_overlap:.2f} candidate={lsh_candidate(docs[a], docs[b])}")

    print("\nThreshold sweep (same LSH candidates; containment rule keeps jaccard >= containment_min_jaccard):")
    cts = [0.6, 0.7, 0.8, 0.9, 1.01]
    print("| jaccard \\ containment | " + " | ".join("off" if ct > 1 else f"{ct:.1f}" for ct in cts) + " |")
    print("|---|" + "---|" * len(cts))
    def sweep(s: DedupSettings) -> tuple[float, float, float]:
        stp = sfp = 0
        for label, exact, est, smaller, sc in cand_pairs:
            prefilter = est is None or est >= s.min_estimated_jaccard or smaller >= s.contained_min_shingles
            pred = exact or (prefilter and judge_scores(sc, s) is not None)
            stp += pred and label
            sfp += pred and not label
        return prf(stp, sfp, n_pos - stp)

    for jt in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        cells = []
        for ct in cts:
            sp, sr, sf = sweep(settings.model_copy(update={"jaccard_threshold": jt, "containment_threshold": ct}))
            cells.append(f"P{sp:.3f} R{sr:.3f} F{sf:.3f}")
        print(f"| {jt:.1f} | " + " | ".join(cells) + " |")
    print("\ncontainment_min_jaccard sweep (at the configured thresholds):")
    for floor in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5):
        sp, sr, sf = sweep(settings.model_copy(update={"containment_min_jaccard": floor}))
        print(f"  floor {floor:.1f}: P {sp:.4f} R {sr:.4f} F1 {sf:.4f}")
    print("\nContainment rule sweep (contained_min_shingles x contained_threshold; 'off' = rule disabled):")
    cths = [0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    print("| min shingles \\ containment | " + " | ".join(f"{c:.2f}" for c in cths) + " |\n|---|" + "---|" * len(cths))
    for mins in (15, 20, 30, 40, 60, 80, 100, 10**9):
        cells = []
        for ct in cths:
            sp, sr, sf = sweep(settings.model_copy(update={"contained_min_shingles": mins, "contained_threshold": ct}))
            cells.append(f"P{sp:.4f} R{sr:.4f}")
        print(f"| {'off' if mins == 10**9 else mins} | " + " | ".join(cells) + " |")
    print("\nLead overlap floor of the containment rule (at the configured thresholds):")
    for floor in (0.0, 0.25, 0.5, 0.75, 0.9):
        sp, sr, sf = sweep(settings.model_copy(update={"contained_min_lead_overlap": floor}))
        print(f"  lead overlap >= {floor:.2f}: P {sp:.4f} R {sr:.4f} F1 {sf:.4f}")

    print("\nLSH banding (candidate recall on positives / candidate share of negatives):")
    for num_perm, bands, lead in ((128, 16, 8), (128, 32, 0), (128, 32, 4), (128, 32, 8), (128, 32, 16), (128, 64, 8), (256, 64, 8)):
        s = settings.model_copy(update={"num_perm": num_perm, "bands": bands, "lead_bands": lead})
        alt = {k: fingerprint(k, d.text, s) for k, d in docs.items()}
        hits = [(lbl, alt[a].content_hash == alt[b].content_hash or any(x == y for x, y in zip(alt[a].band_keys, alt[b].band_keys)))
                for a, b, lbl, _ in pairs]
        rp = sum(h for lbl, h in hits if lbl) / n_pos
        rn = sum(h for lbl, h in hits if not lbl) / (len(pairs) - n_pos)
        print(f"  {num_perm} perms x {bands} bands ({num_perm // bands} rows) + {lead} lead bands x {s.lead_rows} rows: "
              f"candidate recall {rp:.4f}, negatives as candidates {rn:.5f}")
    print("\nShingle size (full pipeline at the configured thresholds and banding):")
    for k in (3, 4, 5, 6, 7):
        s = settings.model_copy(update={"shingle_size": k})
        alt = {key: make_doc(key, d.text, s) for key, d in docs.items()}
        ktp = kfp = 0
        for a, b, label, _ in pairs:
            pred = pipeline_match(alt[a], alt[b], s)
            ktp += pred and label
            kfp += pred and not label
        kp, kr, kf = prf(ktp, kfp, n_pos - ktp)
        print(f"  {k} words: P {kp:.4f} R {kr:.4f} F1 {kf:.4f}")
    print(f"(quality section {time.perf_counter() - t0:.1f}s)")


# ---------------------------------------------------------------- cost

_TS = pa.timestamp("us", tz="UTC")
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def synth_article(rng: random.Random, pool: list[str]) -> str:
    sents = rng.sample(pool, rng.randint(12, 30))
    out, i = [], 0
    while i < len(sents):
        k = rng.randint(2, 4)
        out.append(" ".join(sents[i : i + k]))
        i += k
    return "\n\n".join(out)


def bulk_load(con, start: int, texts: list[str], settings: DedupSettings) -> None:
    """Append history articles with their fingerprints and bands through Arrow (one statement per table)."""
    ids = [f"h{start + i:07d}" for i in range(len(texts))]
    fps = fingerprint_many(zip(ids, texts), settings)
    seen = [T0 + timedelta(seconds=start + i) for i in range(len(texts))]
    arts = pa.table({
        "id": ids, "url": [f"https://hist.example/{i}" for i in ids], "page_url": [f"https://hist.example/{i}" for i in ids],
        "source": [f"site{int(i[1:]) % 50}" for i in ids], "text": texts, "extractor": ["bench"] * len(ids),
        "extractor_version": ["0"] * len(ids), "content_hash": [f.content_hash for f in fps],
        "word_count": pa.array([len(t.split()) for t in texts], pa.int32()),
        "first_seen_at": pa.array(seen, _TS), "last_seen_at": pa.array(seen, _TS), "updated_at": pa.array(seen, _TS),
    })
    fpt = pa.table({
        "article_id": ids, "content_hash": [f.content_hash for f in fps],
        "signature": pa.array([f.signature for f in fps], pa.list_(pa.uint32())),
        "shingle_count": pa.array([f.shingle_count for f in fps], pa.int32()), "model": [model_id(settings)] * len(ids),
    })
    bands = pa.table({
        "band": pa.array([b for f in fps for b in range(len(f.band_keys))], pa.int16()),
        "band_key": pa.array([k for f in fps for k in f.band_keys], pa.int64()),
        "article_id": [f.article_id for f in fps for _ in f.band_keys],
    })
    with transaction(con):
        for name, table in (("bench_articles", arts), ("bench_fps", fpt), ("bench_bands", bands)):
            con.register(name, table)
        con.execute(
            "INSERT INTO articles (id, url, page_url, source, text, extractor, extractor_version, content_hash, word_count, "
            "first_seen_at, last_seen_at, updated_at) SELECT id, url, page_url, source, text, extractor, extractor_version, "
            "content_hash, word_count, first_seen_at, last_seen_at, updated_at FROM bench_articles"
        )
        con.execute(
            "INSERT INTO article_fingerprints SELECT article_id, content_hash, signature, shingle_count, model, now() FROM bench_fps"
        )
        con.execute("INSERT INTO article_bands SELECT band, band_key, article_id FROM bench_bands")
        for name in ("bench_articles", "bench_fps", "bench_bands"):
            con.unregister(name)


def check_batch(con, batch_texts: list[tuple[str, str]], settings: DedupSettings, now: datetime) -> dict[str, float]:
    """One pipeline dedup step for a batch, timed per phase (seconds)."""
    t = {}
    s = time.perf_counter()
    batch = [(Article(id=aid, url=aid, page_url=aid, source="bench", text=text, fetched_at=now), fingerprint(aid, text, settings))
             for aid, text in batch_texts]
    t["fingerprint"] = time.perf_counter() - s
    s = time.perf_counter()
    cands = dedup_store.find_candidates(con, [fp for _, fp in batch])
    t["find_candidates"] = time.perf_counter() - s
    s = time.perf_counter()
    matches = decide(batch, cands, settings)
    t["verify+decide"] = time.perf_counter() - s
    s = time.perf_counter()
    with transaction(con):
        dedup_store.save_fingerprints(con, [fp for _, fp in batch], settings)
        dedup_store.save_duplicates(con, matches, run_id=1, checked_ids=[a.id for a, _ in batch])
    t["save"] = time.perf_counter() - s
    t["candidates"] = sum(len(v) for v in cands.values())
    t["matches"] = sum(1 for m in matches if m.article_id.startswith("n"))
    return t


def cleanup_batch(con, ids: list[str]) -> None:
    """Remove a measured batch again so every size is measured against exactly N history articles."""
    with transaction(con):
        con.register("bench_ids", pa.table({"id": ids}))
        con.execute("DELETE FROM article_bands WHERE article_id IN (SELECT id FROM bench_ids)")
        con.execute("DELETE FROM article_fingerprints WHERE article_id IN (SELECT id FROM bench_ids)")
        con.execute("DELETE FROM duplicates WHERE article_id IN (SELECT id FROM bench_ids)")
        con.unregister("bench_ids")


def cost(originals: dict[str, str], sizes: list[int], batch_size: int, seed: int, settings: DedupSettings) -> None:
    print(f"\n## Cost  (batch of {batch_size} new articles: 85% novel, 15% syndicated copies of history)")
    pool = [s for t in originals.values() for s in sentences(t) if 6 <= len(s.split()) <= 60]
    rng = random.Random(seed)
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dedup-eval-") as tmp:
        path = Path(tmp) / "lake"
        lake = Settings(catalog=f"sqlite:{path / 'catalog.sqlite'}", data_path=f"{path / 'data'}/")
        init_db(lake)
        loaded = 0
        history_sample: list[str] = []
        with session(lake) as con:
            for size in sizes:
                ls = time.perf_counter()
                while loaded < size:
                    n = min(10_000, size - loaded)
                    texts = [synth_article(rng, pool) for _ in range(n)]
                    history_sample.extend(rng.sample(texts, min(len(texts), 200)))
                    bulk_load(con, loaded, texts, settings)
                    loaded += n
                load_s = time.perf_counter() - ls
                per_phase: dict[str, list[float]] = defaultdict(list)
                for rep in range(4):  # rep 0 warms caches; reps 1-2 are timed; rep 3 measures Python memory
                    brng = random.Random(f"{seed}-{size}-{rep}")
                    items, copies = [], 0
                    for i in range(batch_size):
                        if brng.random() < 0.15:
                            text = syndicated(brng, brng.choice(history_sample), "")
                            copies += 1
                        else:
                            text = synth_article(brng, pool)
                        items.append((f"n{rep}-{i:04d}", text))
                    if rep == 3:
                        # tracemalloc slows Python down, so this batch is only used for its allocation peak.
                        tracemalloc.start()
                        check_batch(con, items, settings, T0 + timedelta(days=30))
                        py_peak = tracemalloc.get_traced_memory()[1] / 2**20
                        tracemalloc.stop()
                        cleanup_batch(con, [i for i, _ in items])
                        continue
                    t = check_batch(con, items, settings, T0 + timedelta(days=30))
                    t["copies"] = copies
                    cleanup_batch(con, [i for i, _ in items])
                    if rep:
                        for k, v in t.items():
                            per_phase[k].append(v)
                row = {k: statistics.mean(v) for k, v in per_phase.items()}
                row.update(size=size, load_s=load_s, py_peak_mb=py_peak, rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                           db_mb=sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20)
                rows.append(row)
                ms = lambda k: 1000 * row[k] / batch_size  # noqa: E731
                total = sum(ms(k) for k in ("fingerprint", "find_candidates", "verify+decide", "save"))
                print(f"  history {size:>7,}: {total:6.2f} ms/article  (loaded in {load_s:.1f}s)", flush=True)
    print("\n| history articles | fingerprint | find_candidates | verify+decide | save | total ms/article | candidates/article | copies found/in batch | check peak Python MB | process peak RSS MB | DB MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        ms = {k: 1000 * row[k] / batch_size for k in ("fingerprint", "find_candidates", "verify+decide", "save")}
        print(f"| {row['size']:,} | {ms['fingerprint']:.2f} | {ms['find_candidates']:.2f} | {ms['verify+decide']:.2f} | {ms['save']:.2f} | "
              f"{sum(ms.values()):.2f} | {row['candidates'] / batch_size:.2f} | {row['matches']:.1f}/{row['copies']:.1f} | {row['py_peak_mb']:.1f} | {row['rss_mb']:.0f} | {row['db_mb']:.0f} |")
    print(f"(cost section {time.perf_counter() - t0:.1f}s; check peak Python = tracemalloc peak of one batch check, DuckDB's own "
          "memory not included; process RSS is the lifetime maximum, quality section and history generation included)")


def main(argv: list[str] | None = None) -> int:
    """Run the quality evaluation and the cost benchmark; print tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ground-truth.json of the article-extraction benchmark")
    ap.add_argument("--quick", action="store_true", help="skip the 100k-article history")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--batch", type=int, default=200, help="new articles per checked batch")
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args(argv)
    settings = DedupSettings()
    originals = load_originals(args.data)
    quality(originals, args.seed, settings)
    if not args.skip_cost:
        cost(originals, [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000], args.batch, args.seed, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
