"""Pure dedup logic: normalisation, hashing, fingerprints, pair verification and batch decisions."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.dedup import content_hash, decide, fingerprint, fingerprint_many, model_id, normalize_text, shingles, similarity, verify
from ingest.models import Article, DedupCandidate, Fingerprint
from ingest.settings import DedupSettings

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SETTINGS = DedupSettings()
T0 = datetime(2023, 3, 1, tzinfo=timezone.utc)


def seed_text(name: str) -> str:
    """Raw seed body: first line is the title, stop at the hashtag line (ingest/seeds.py does it properly)."""
    lines = []
    for line in (SEEDS / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("#Antony"):
            break
        lines.append(line)
    return "\n".join(lines).strip()


SEED_A = seed_text("000_7f41d666b0ea1f1a.txt")
SEED_B = seed_text("003_a6cc57f649ce1f43.txt")


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def syndicated_copy(text: str) -> str:
    """Seed 000 as a partner site shows it: new headline, byline, 'originally published' line, last paragraph cut."""
    paras = paragraphs(text)
    return "\n\n".join(
        [
            "Blinken rules out G20 talks with Moscow and Beijing envoys",
            "By Maria Jensen, World Desk | March 1, 2023",
            "This story was originally published by Agence France-Presse and is republished here with permission.",
            *paras[1:-1],
        ]
    )


def article(aid: str, text: str, minutes: int) -> Article:
    return Article(id=aid, url=f"https://site{aid}.example/{aid}", page_url=f"https://site{aid}.example/{aid}", source=f"src-{aid}",
                   text=text, fetched_at=T0 + timedelta(minutes=minutes))


def entry(aid: str, text: str, minutes: int) -> tuple[Article, Fingerprint]:
    return article(aid, text, minutes), fingerprint(aid, text, SETTINGS)


def candidate(aid: str, text: str, minutes: int) -> DedupCandidate:
    fp = fingerprint(aid, text, SETTINGS)
    return DedupCandidate(article_id=aid, first_seen_at=T0 + timedelta(minutes=minutes), content_hash=fp.content_hash,
                          signature=fp.signature, text=text)


# ---------------------------------------------------------------- normalisation and exact hash


def test_normalize_folds_case_quotes_dashes_punctuation_whitespace() -> None:
    a = "“I have NO plans,” Blinken said — don’t   expect talks…\n\nＧ２０"
    b = '"i have no plans," blinken said - dont expect talks...  G20'
    assert normalize_text(a) == normalize_text(b) == "i have no plans blinken said dont expect talks g20"


def test_content_hash_ignores_typography_only() -> None:
    assert content_hash("It’s the G20 — in New Delhi.") == content_hash("it's the g20 - in new delhi")
    assert content_hash("It’s the G20 in New Delhi.") != content_hash("It’s the G7 in New Delhi.")
    assert len(content_hash("x")) == 64


# ---------------------------------------------------------------- fingerprints


def test_fingerprint_shape_and_bigint_band_keys() -> None:
    fp = fingerprint("a", SEED_A, SETTINGS)
    assert len(fp.signature) == SETTINGS.num_perm
    assert all(0 <= v < 2**32 for v in fp.signature)
    assert len(fp.band_keys) == SETTINGS.bands + SETTINGS.lead_bands  # whole-text bands, then lead bands
    assert all(-(2**63) <= k < 2**63 for k in fp.band_keys)
    assert fp.shingle_count == len(shingles(SEED_A, SETTINGS.shingle_size))
    assert model_id(SETTINGS).startswith(f"minhash-{SETTINGS.shingle_size}w-{SETTINGS.num_perm}p-{SETTINGS.bands}b")


def test_fingerprint_reproducible_across_processes() -> None:
    """Signatures and band keys must not depend on Python's per-process hash randomisation."""
    here = fingerprint("a", SEED_A, SETTINGS)
    code = (
        "import json,sys; from ingest.dedup import fingerprint; from ingest.settings import DedupSettings; "
        "fp = fingerprint('a', sys.stdin.read(), DedupSettings()); print(json.dumps([fp.signature, fp.band_keys]))"
    )
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], input=SEED_A, capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, cwd=Path(__file__).resolve().parent.parent)
        import json

        assert json.loads(out.stdout) == [here.signature, here.band_keys]


def test_settings_must_divide_into_bands() -> None:
    with pytest.raises(ValueError):
        fingerprint("a", SEED_A, DedupSettings(num_perm=100, bands=32))


def test_empty_text_has_no_band_keys() -> None:
    fp = fingerprint("e", "  ...  ", SETTINGS)
    assert fp.signature == [] and fp.band_keys == [] and fp.shingle_count == 0


# ---------------------------------------------------------------- verify


def test_seeds_same_event_are_not_duplicates() -> None:
    fa, fb = fingerprint("a", SEED_A, SETTINGS), fingerprint("b", SEED_B, SETTINGS)
    assert not set(zip(range(SETTINGS.bands), fa.band_keys)) & set(zip(range(SETTINGS.bands), fb.band_keys))
    assert verify(SEED_B, fb, candidate("a", SEED_A, 0), SETTINGS) is None
    assert decide([entry("a", SEED_A, 0), entry("b", SEED_B, 1)], {}, SETTINGS) == []


def test_syndicated_copy_of_seed_is_near_duplicate() -> None:
    copy = syndicated_copy(SEED_A)
    fc, fa = fingerprint("copy", copy, SETTINGS), fingerprint("a", SEED_A, SETTINGS)
    assert fc.content_hash != fa.content_hash
    # LSH must make it a candidate: at least one band key in common.
    assert any(x == y for x, y in zip(fc.band_keys, fa.band_keys))
    m = verify(copy, fc, candidate("a", SEED_A, 0), SETTINGS)
    assert m is not None and m.method == "near" and m.duplicate_of == "a" and m.similarity >= SETTINGS.jaccard_threshold


def test_trimmed_and_extended_copies_match_by_containment() -> None:
    paras = paragraphs(SEED_A)
    trimmed = "\n\n".join(paras[:-2])  # two paragraphs less
    extended = SEED_A + "\n\n" + "\n\n".join(paragraphs(SEED_B)[3:5])  # another story's paragraphs appended
    base = shingles(SEED_A, SETTINGS.shingle_size)
    for variant in (trimmed, extended):
        j, c = similarity(base, shingles(variant, SETTINGS.shingle_size))
        assert c >= SETTINGS.containment_threshold
        m = verify(variant, fingerprint("v", variant, SETTINGS), candidate("a", SEED_A, 0), SETTINGS)
        assert m is not None and m.method == "near"
        assert m.similarity == pytest.approx(max(j, c))


def test_exact_duplicate_after_typography_changes() -> None:
    copy = SEED_A.replace("’", "'").replace("“", '"').replace("”", '"').replace("—", "-").upper()
    m = verify(copy, fingerprint("c", copy, SETTINGS), candidate("a", SEED_A, 0), SETTINGS)
    assert m is not None and m.method == "exact" and m.similarity == 1.0


# ---------------------------------------------------------------- copies of very different lengths


def _first_share(text: str, share: float) -> str:
    """Leading paragraphs up to `share` of the words: a copy whose extraction stopped early."""
    paras, out, n = paragraphs(text), [], 0
    total = sum(len(p.split()) for p in paras)
    for p in paras:
        if out and n + len(p.split()) > share * total:
            break
        out.append(p)
        n += len(p.split())
    return "\n\n".join(out)


def test_copy_extracted_to_its_first_fifth_is_contained() -> None:
    short = "\n\n".join(["By Maria Jensen, World Desk", _first_share(SEED_A, 0.25)])
    j, c = similarity(shingles(short, SETTINGS), shingles(SEED_A, SETTINGS))
    assert j < SETTINGS.containment_min_jaccard  # neither earlier rule can fire: this is what the issue found
    fs, fa = fingerprint("short", short, SETTINGS), fingerprint("a", SEED_A, SETTINGS)
    # Whole-text bands rarely meet at this Jaccard; the lead bands (numbered after them) do.
    lead = range(SETTINGS.bands, SETTINGS.bands + SETTINGS.lead_bands)
    assert any(fs.band_keys[b] == fa.band_keys[b] for b in lead)
    m = verify(short, fs, candidate("a", SEED_A, 0), SETTINGS)
    assert m is not None and m.method == "contained" and m.duplicate_of == "a"
    assert m.similarity >= SETTINGS.contained_threshold


def test_copy_grown_by_live_updates_is_contained() -> None:
    updates = [f"Update {10 + i}:05 GMT: {p}" for i, p in enumerate(paragraphs(SEED_B)[1:9])]
    live = "\n\n".join([SEED_A, *updates])
    m = verify(SEED_A, fingerprint("a", SEED_A, SETTINGS), candidate("live", live, 0), SETTINGS)
    assert m is not None and m.method in ("near", "contained")
    # ... and the seed whose paragraphs were the updates is not a copy of the live page.
    assert verify(SEED_B, fingerprint("b", SEED_B, SETTINGS), candidate("live", live, 0), SETTINGS) is None


def test_contained_needs_a_minimum_length() -> None:
    tiny = " ".join(SEED_A.split()[20:38])  # one sentence: too short to be a story of its own
    assert len(shingles(tiny, SETTINGS)) < SETTINGS.contained_min_shingles
    assert verify(tiny, fingerprint("t", tiny, SETTINGS), candidate("a", SEED_A, 0), SETTINGS) is None


def test_decide_reports_contained_method() -> None:
    short = _first_share(SEED_A, 0.25)
    (m,) = decide([entry("a", SEED_A, 0), entry("s", short, 5)], {}, SETTINGS)
    assert (m.article_id, m.duplicate_of, m.method) == ("s", "a", "contained")


def test_short_brief_inside_roundup_is_not_a_copy() -> None:
    """Full containment alone is not enough: the Jaccard floor rejects a brief quoted inside a much longer piece."""
    brief = paragraphs(SEED_A)[1]
    roundup = "\n\n".join(paragraphs(SEED_B) + [brief])
    m = verify(brief, fingerprint("brief", brief, SETTINGS), candidate("r", roundup, 0), SETTINGS)
    assert m is None
    # Also when the round-up is short, so that the brief is a third of it: the two do not open the same way.
    short_roundup = "\n\n".join(paragraphs(SEED_B)[1:3] + [brief])
    assert similarity(shingles(brief, SETTINGS), shingles(short_roundup, SETTINGS))[1] == 1.0
    assert verify(brief, fingerprint("brief", brief, SETTINGS), candidate("r", short_roundup, 0), SETTINGS) is None


# ---------------------------------------------------------------- scripts without spaces

JA = Path(__file__).parent / "data" / "dedup"


def test_japanese_is_shingled_by_characters() -> None:
    text = (JA / "ja_original.txt").read_text(encoding="utf-8")
    sh = shingles(text, SETTINGS)
    # Whitespace-split "words" would be whole clauses (a few dozen per article); characters give hundreds of shingles.
    assert len(normalize_text(text).split()) < 60 < 400 < len(sh)
    assert all(len(s.replace(" ", "")) == SETTINGS.char_shingle_size for s in sh if not any(c.isascii() for c in s))


def test_japanese_syndicated_pair_is_near_duplicate() -> None:
    original = (JA / "ja_original.txt").read_text(encoding="utf-8")
    # Another outlet's copy: own headline and credit line, full-width digits, one verb changed, last paragraph cut.
    copy = (JA / "ja_syndicated.txt").read_text(encoding="utf-8")
    fo, fc = fingerprint("o", original, SETTINGS), fingerprint("c", copy, SETTINGS)
    assert fo.content_hash != fc.content_hash
    assert any(x == y for x, y in zip(fo.band_keys[: SETTINGS.bands], fc.band_keys[: SETTINGS.bands]))
    m = verify(copy, fc, candidate("o", original, 0), SETTINGS)
    assert m is not None and m.method == "near" and m.similarity >= 0.9


def test_two_japanese_stories_on_one_event_are_not_duplicates() -> None:
    original = (JA / "ja_original.txt").read_text(encoding="utf-8")
    other = (JA / "ja_other_story.txt").read_text(encoding="utf-8")  # the same BOJ decision, seen from the markets
    fo, fx = fingerprint("o", original, SETTINGS), fingerprint("x", other, SETTINGS)
    j, c = similarity(shingles(original, SETTINGS), shingles(other, SETTINGS))
    assert j < 0.05 and c < 0.1
    assert not any(x == y for x, y in zip(fo.band_keys, fx.band_keys))
    assert verify(other, fx, candidate("o", original, 0), SETTINGS) is None
    assert decide([entry("o", original, 0), entry("x", other, 1)], {}, SETTINGS) == []


def test_space_separated_text_shingles_as_before() -> None:
    """Texts in space-separated scripts keep their words as tokens: their signatures did not change."""
    words = normalize_text(SEED_A).split()
    assert shingles(SEED_A, SETTINGS) == {" ".join(words[i : i + 5]) for i in range(len(words) - 4)}


# ---------------------------------------------------------------- decide


def _variants() -> dict[str, str]:
    paras = paragraphs(SEED_A)
    return {
        "seed-a": SEED_A,
        "seed-b": SEED_B,
        "copy1": syndicated_copy(SEED_A),
        "copy2": "\n\n".join(paras[:-1]),
        "exact": SEED_A.upper(),
        "copy-b": "\n\n".join(["Republished from our partners", *paragraphs(SEED_B)[:-1]]),
    }


def test_decide_clusters_to_earliest_and_is_order_independent() -> None:
    texts = _variants()
    minutes = {"seed-a": 5, "seed-b": 6, "copy1": 1, "copy2": 30, "exact": 40, "copy-b": 50}
    batch = [entry(aid, t, minutes[aid]) for aid, t in texts.items()]
    expected = decide(batch, {}, SETTINGS)
    # copy1 was seen first, so it is the canonical of the seed-a story.
    got = {(m.article_id, m.duplicate_of, m.method) for m in expected}
    assert got == {("seed-a", "copy1", "near"), ("copy2", "copy1", "near"), ("exact", "copy1", "near"), ("copy-b", "seed-b", "near")}
    rng = random.Random(7)
    for _ in range(5):
        shuffled = batch[:]
        rng.shuffle(shuffled)
        assert decide(shuffled, {}, SETTINGS) == expected


def test_decide_exact_method_against_canonical() -> None:
    batch = [entry("a", SEED_A, 0), entry("b", SEED_A.replace("’", "'"), 1)]
    (m,) = decide(batch, {}, SETTINGS)
    assert (m.article_id, m.duplicate_of, m.method, m.similarity) == ("b", "a", "exact", 1.0)


def test_decide_ties_broken_by_id() -> None:
    batch = [entry("zz", SEED_A, 0), entry("aa", syndicated_copy(SEED_A), 0)]
    (m,) = decide(batch, {}, SETTINGS)
    assert (m.article_id, m.duplicate_of) == ("zz", "aa")


def test_decide_against_history() -> None:
    copy = syndicated_copy(SEED_A)
    batch = [entry("new", copy, 100), entry("other", SEED_B, 100)]
    cands = {"new": [candidate("seed", SEED_A, -1000)], "other": []}
    (m,) = decide(batch, cands, SETTINGS)
    assert (m.article_id, m.duplicate_of, m.method) == ("new", "seed", "near")


def test_decide_batch_article_earlier_than_history_takes_over_cluster() -> None:
    """A seed loaded late is still the earliest: the history article and its copy are re-pointed to it."""
    copy = syndicated_copy(SEED_A)
    batch = [entry("seed", SEED_A, -1000)]
    cands = {"seed": [candidate("hist", copy, 0), candidate("hist-copy", copy.replace("Maria Jensen", "J. Doe"), 5)]}
    got = {(m.article_id, m.duplicate_of) for m in decide(batch, cands, SETTINGS)}
    assert got == {("hist", "seed"), ("hist-copy", "seed")}


def test_decide_joins_cluster_via_canonical_never_points_to_duplicate() -> None:
    """A new copy that matches a recorded duplicate points to that cluster's canonical, not to the duplicate."""
    paras = paragraphs(SEED_A)
    hist_dup = "\n\n".join(paras[:-1])
    new = "\n\n".join(["Wire copy", *paras[:-1]])
    cands = {"new": [candidate("canon", SEED_A, 0), candidate("dup", hist_dup, 10)]}
    matches = decide([entry("new", new, 100)], cands, SETTINGS)
    assert all(m.duplicate_of == "canon" for m in matches)
    assert {m.article_id for m in matches} == {"new", "dup"}


def test_decide_keeps_recorded_clusters_of_history_without_comparing_them_again(monkeypatch) -> None:
    """History articles with recorded clusters are joined by the records; only pairs with a batch article are compared."""
    import ingest.dedup as dedup_mod

    copy = syndicated_copy(SEED_A)
    hist = candidate("hist", copy, 0).model_copy(update={"cluster": "hist"})
    hist_copy = candidate("hist-copy", copy.replace("Maria Jensen", "J. Doe"), 5).model_copy(update={"cluster": "hist"})
    compared: list[tuple[str, str]] = []
    real = dedup_mod.compare

    def counting(a, b, settings):  # noqa: ANN001, ANN202
        compared.append((a.id, b.id))
        return real(a, b, settings)

    monkeypatch.setattr(dedup_mod, "compare", counting)
    got = {(m.article_id, m.duplicate_of) for m in decide([entry("seed", SEED_A, -1000)], {"seed": [hist, hist_copy]}, SETTINGS)}
    # The same decisions as when the clusters are not known (test above), without the history pair's comparison.
    assert got == {("hist", "seed"), ("hist-copy", "seed")}
    assert all("seed" in pair for pair in compared) and compared


def test_decide_rerun_uses_warehouse_first_seen() -> None:
    """On a re-run the batch copy of an old article keeps its original first sighting, so nothing flips."""
    copy = syndicated_copy(SEED_A)
    batch = [entry("old", SEED_A, 500)]  # re-fetched now, but first seen at minute 0
    cands = {"old": [candidate("later", copy, 10)]}
    (m,) = decide(batch, cands, SETTINGS, first_seen={"old": T0})
    assert (m.article_id, m.duplicate_of) == ("later", "old")


def test_decide_ignores_empty_texts() -> None:
    assert decide([entry("e1", "", 0), entry("e2", " ", 1)], {}, SETTINGS) == []


def test_fingerprint_many_equals_fingerprint() -> None:
    items = [("a", SEED_A), ("b", SEED_B), ("e", ""), ("c", syndicated_copy(SEED_A))]
    assert fingerprint_many(items, SETTINGS, chunk=3) == [fingerprint(i, t, SETTINGS) for i, t in items]
