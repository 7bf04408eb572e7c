"""Duplicate detection: exact content hash, MinHash/LSH near-duplicates, and order-independent clustering.

Pipeline per batch: `fingerprint` every article -> the warehouse returns earlier articles sharing a band key
or content hash (`warehouse.dedup_store.find_candidates`) -> `decide` verifies candidate pairs and assigns
every duplicate to its cluster's canonical (the earliest-seen article). Nothing here touches the database.

Decision rule (`verify`), tuned with benchmarks/dedup_eval.py:
  * exact: equal `content_hash` (sha256 of the normalised text) -> similarity 1.0;
  * near:  exact shingle Jaccard >= jaccard_threshold, or containment |A∩B|/min(|A|,|B|) >= containment_threshold
    with Jaccard >= containment_min_jaccard (a copy trimmed or extended by a paragraph keeps a high containment
    while its Jaccard drops). The reported similarity is max(jaccard, containment).
  * contained: the shorter text has at least contained_min_shingles shingles and containment >= contained_threshold,
    whatever the Jaccard (one copy extracted to its first fifth, or grown by live updates). Similarity = containment.

Shingles are runs of `shingle_size` words; in scripts written without spaces (Chinese, Japanese, Thai, ...) every
character is a token and a text written mostly in them uses runs of `char_shingle_size` characters.

Candidates: 32 LSH bands over the whole text's MinHash (Jaccard ~0.42 and up), plus `lead_bands` bands over a
MinHash of the text's lead (its first `lead_shingles` shingles of paragraphs that read like prose), so a copy cut
short or extended still meets its original, whose Jaccard with it is far below what whole-text bands catch.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import NamedTuple

from rensa import RMinHash

from ingest.models import Article, DedupCandidate, DuplicateMatch, Fingerprint
from ingest.settings import DedupSettings

# Bump when normalize_text or shingling changes: stored fingerprints then no longer compare (see model_id).
# 2: characters of scripts without spaces are tokens of their own (texts in space-separated scripts shingle, hash and
# sign exactly as in 1: only their band rows gained the lead bands, hence the new model string and a recompute).
NORMALIZATION_VERSION = 2

# Apostrophes are deleted so that "don’t", "don't" and "donʼt" all become "dont" (a quote mark next to a word
# loses nothing either); invisible format characters (soft hyphen, zero-width space/joiners, BOM) that some
# CMSs insert inside words are deleted too. Every other quote, dash or punctuation mark (any non-word
# character) becomes a space. str.replace for the few fixed characters is far cheaper than a lookbehind regex.
_DELETE = ("'", "\u2019", "\u2018", "\u02bc", "\u2032", "`", "\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_NON_WORD = re.compile(r"[^\w\s]|_")


def _fold(text: str) -> str:
    """normalize_text without the whitespace collapse: line breaks stay where they were (they are whitespace)."""
    t = unicodedata.normalize("NFKC", text).casefold()
    for ch in _DELETE:
        if ch in t:
            t = t.replace(ch, "")
    return _NON_WORD.sub(" ", t)


def normalize_text(text: str) -> str:
    """Fold unicode (NFKC), case, quotes, dashes, punctuation and whitespace into a canonical word string."""
    return " ".join(_fold(text).split())


def _sha256(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def content_hash(text: str) -> str:
    """sha256 hex digest of the normalised text: the exact-duplicate key."""
    return _sha256(normalize_text(text))


# Scripts written without spaces between words: Han (CJK ideographs, incl. extension A and compatibility), kana,
# and the South-East Asian abugidas Thai, Lao, Myanmar and Khmer. Each character is a token of its own.
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_SEA = "\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff"
_TOKEN_RE = re.compile(f"[{_CJK}{_SEA}]|[^\\s{_CJK}{_SEA}]+")
_NO_SPACE_RE = re.compile(f"[{_CJK}{_SEA}]")
_SEA_RE = re.compile(f"[{_SEA}]")
# A Thai/Lao/Khmer/Myanmar character is a letter, not a syllable or word like a Han character: runs twice as long
# (~3-4 words). Not measured (no labelled text in these scripts); Han/kana runs were (tests/test_dedup.py).
_SEA_SIZE_FACTOR = 2


def tokens(normalized: str) -> list[str]:
    """Tokens of a normalised text: its words, except that each character of a script without spaces is a token."""
    return _TOKEN_RE.findall(normalized)


def shingle_size_for(toks: list[str], settings: DedupSettings) -> int:
    """Tokens per shingle: shingle_size words, or char_shingle_size characters for a text mostly in such scripts."""
    # One C-level scan first: such a character is always a token of its own, so none in the joined tokens means
    # none at all (most texts), without a Python-level pass over every token.
    if not toks or not _NO_SPACE_RE.search("".join(toks)):
        return settings.shingle_size
    chars = sum(1 for t in toks if len(t) == 1 and _NO_SPACE_RE.match(t))
    if not toks or chars * 2 < len(toks):
        return settings.shingle_size
    sea = sum(1 for t in toks if len(t) == 1 and _SEA_RE.match(t))
    return settings.char_shingle_size * (_SEA_SIZE_FACTOR if sea * 2 > chars else 1)


def _shingle_set(words: list[str], size: int) -> set[str]:
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    # zip over shifted views is ~1.5x faster than slicing a window per position.
    return set(map(" ".join, zip(*(words[i:] for i in range(size)))))


def _text_shingles(normalized: str, settings: DedupSettings) -> set[str]:
    toks = tokens(normalized)
    return _shingle_set(toks, shingle_size_for(toks, settings))


def shingles(text: str, settings: DedupSettings | int) -> set[str]:
    """Shingle set of the normalised text (the whole text if it is shorter than one shingle).

    Given settings, the size follows the text's script (see shingle_size_for); given an int, that many tokens.
    """
    if isinstance(settings, int):
        return _shingle_set(tokens(normalize_text(text)), settings)
    return _text_shingles(normalize_text(text), settings)


def line_tokens(text: str) -> list[list[str]]:
    """The tokens of each line of the text, each line normalised as normalize_text does, in one pass over the text.

    Folding never adds or removes a line break (they are whitespace, which it keeps), so the lines are the text's
    own; the whole text's tokens are these lists in order. One pass instead of one normalize_text call per line
    (prose and lead sets) plus one for the whole text: most of dedup's verification time went to those calls.
    """
    return _split_lines(_fold(text))


def _split_lines(folded: str) -> list[list[str]]:
    return [_TOKEN_RE.findall(line) for line in folded.splitlines()]


def _prose_lines(text: str | list[list[str]], settings: DedupSettings) -> list[list[str]]:
    """Token lists of the lines that read like prose (>= lead_min_tokens tokens), in order (text or its line_tokens)."""
    lines = line_tokens(text) if isinstance(text, str) else text
    return [toks for toks in lines if len(toks) >= settings.lead_min_tokens]


def prose_shingles(text: str | list[list[str]], settings: DedupSettings) -> set[str]:
    """Shingles inside the text's prose lines (none across lines): the story without its template lines."""
    lines = _prose_lines(text, settings)
    if not lines:
        return set()
    size = shingle_size_for([t for toks in lines for t in toks], settings)
    return set().union(*(_shingle_set(toks, size) for toks in lines))


def lead_shingles(text: str | list[list[str]], settings: DedupSettings) -> set[str]:
    """The first `lead_shingles` shingles of the text's prose paragraphs (lines of >= lead_min_tokens tokens).

    Short lines (headlines, bylines, "originally published by ...", photo credits) differ between two copies of one
    story and come first, so they are skipped; what is left starts where the story starts on every site.
    `text` may be given as its line_tokens.
    """
    prose = [t for toks in _prose_lines(text, settings) for t in toks]
    if not prose:
        return set()
    size = shingle_size_for(prose, settings)
    window = prose[: settings.lead_shingles + size - 1]
    return _shingle_set(window, size)


def model_id(settings: DedupSettings) -> str:
    """Identifier of the fingerprint parameters, stored with each fingerprint so a settings change is detectable."""
    return (
        f"minhash-{settings.shingle_size}w-{settings.num_perm}p-{settings.bands}b-{settings.char_shingle_size}c"
        f"-lead{settings.lead_bands}x{settings.lead_rows}of{settings.lead_shingles}m{settings.lead_min_tokens}"
        f"-s{settings.seed}-n{NORMALIZATION_VERSION}-r{RMinHash.ALGORITHM_VERSION}"
    )


def _rows_per_band(settings: DedupSettings) -> int:
    if settings.bands <= 0 or settings.num_perm % settings.bands:
        raise ValueError(f"num_perm ({settings.num_perm}) must be a positive multiple of bands ({settings.bands})")
    return settings.num_perm // settings.bands


def _keys(signature: list[int], rows: int, bands: int, salt: bytes = b"") -> list[int]:
    buf = struct.pack(f"<{len(signature)}I", *signature)
    width = 4 * rows
    # blake2b, not hash(): Python's str/tuple hashing is randomised per process and keys must persist.
    return [
        int.from_bytes(hashlib.blake2b(salt + buf[b * width : (b + 1) * width], digest_size=8).digest(), "little", signed=True)
        for b in range(bands)
    ]


def band_keys(signature: list[int], settings: DedupSettings) -> list[int]:
    """One signed 64-bit key per whole-text LSH band (blake2b of the band's slice), so it fits a DuckDB BIGINT."""
    rows = _rows_per_band(settings)
    if len(signature) != settings.num_perm:
        return []
    return _keys(signature, rows, settings.bands)


def _lead_keys(lead: set[str], settings: DedupSettings) -> list[int]:
    """Keys of the lead bands (numbered after the whole-text bands); [] when the text has no prose lead."""
    if not lead or settings.lead_bands <= 0:
        return []
    # Another seed than the whole-text signature, and a salt: a lead key never equals a whole-text key by construction.
    mh = RMinHash(num_perm=settings.lead_bands * settings.lead_rows, seed=settings.seed + 1)
    mh.update(list(lead))
    return _keys([int(v) for v in mh.digest()], settings.lead_rows, settings.lead_bands, salt=b"lead")


def all_band_keys(signature: list[int], lead: set[str], settings: DedupSettings) -> list[int]:
    """Whole-text band keys, then lead band keys: position = band number (bands .. bands + lead_bands - 1)."""
    keys = band_keys(signature, settings)
    if not keys:
        return []
    lead_keys = _lead_keys(lead, settings)
    # An article without a prose lead gets no lead bands; its list is then shorter, which keeps band numbers right.
    return keys + lead_keys


def _signature(shingle_set: set[str], settings: DedupSettings) -> list[int]:
    # rensa hashes tokens with a fixed internal hash and permutes with the given seed: reproducible everywhere.
    # Token order does not matter to a MinHash (a minimum over the set), so the set is passed as is.
    mh = RMinHash(num_perm=settings.num_perm, seed=settings.seed)
    mh.update(list(shingle_set))
    return [int(v) for v in mh.digest()]


def fingerprint(article_id: str, text: str, settings: DedupSettings) -> Fingerprint:
    """Content hash, MinHash signature (uint32 values) and LSH band keys (whole text, then lead) of one article's text."""
    _rows_per_band(settings)
    side = Side("", [], text)
    norm = side.normalized()
    sh = side.shingle_set(settings)
    if not sh:
        # Empty text has no meaningful signature; no band keys means it is never a near-duplicate candidate.
        return Fingerprint(article_id=article_id, content_hash=_sha256(norm), signature=[], band_keys=[], shingle_count=0)
    sig = _signature(sh, settings)
    return Fingerprint(
        article_id=article_id, content_hash=_sha256(norm), signature=sig,
        band_keys=all_band_keys(sig, side.lead_set(settings), settings), shingle_count=len(sh),
    )


def fingerprint_many(items: Iterable[tuple[str, str]], settings: DedupSettings, chunk: int = 1000) -> list[Fingerprint]:
    """Fingerprints of many (article_id, text) pairs, one rensa call per chunk (bulk loads, re-fingerprinting)."""
    _rows_per_band(settings)
    items = list(items)
    out: list[Fingerprint] = []
    # Chunked so that only `chunk` shingle sets (~100 KB each) are alive at a time.
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        sides = [Side("", [], text) for _, text in part]
        norms = [side.normalized() for side in sides]
        sets = [side.shingle_set(settings) for side in sides]
        nonempty = [i for i, s in enumerate(sets) if s]
        digests = RMinHash.digests_from_token_sets([list(sets[i]) for i in nonempty], settings.num_perm, settings.seed)
        sigs: dict[int, list[int]] = {i: [int(v) for v in d] for i, d in zip(nonempty, digests)}
        for i, (aid, _) in enumerate(part):
            sig = sigs.get(i, [])
            out.append(
                Fingerprint(
                    article_id=aid, content_hash=_sha256(norms[i]), signature=sig,
                    band_keys=all_band_keys(sig, sides[i].lead_set(settings), settings) if sig else [],
                    shingle_count=len(sets[i]),
                )
            )
    return out


def estimated_jaccard(a: list[int], b: list[int]) -> float | None:
    """Share of equal MinHash values, or None when the signatures are not comparable (other parameters)."""
    if not a or len(a) != len(b):
        return None
    return sum(x == y for x, y in zip(a, b)) / len(a)


def similarity(a: set[str], b: set[str]) -> tuple[float, float]:
    """Exact (jaccard, containment) of two shingle sets; containment is |A∩B| / min(|A|, |B|)."""
    if not a or not b:
        return 0.0, 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter), inter / min(len(a), len(b))


def is_near(jaccard: float, containment: float, settings: DedupSettings, lead_overlap: float = 1.0) -> bool:
    """The near-duplicate rule applied to exact shingle similarities."""
    if jaccard >= settings.jaccard_threshold:
        return True
    # Containment alone would flag a short brief quoted inside a long round-up; the Jaccard floor keeps the
    # rule to copies that differ by about a paragraph, and the lead check to copies that open the same way.
    return (
        containment >= settings.containment_threshold
        and jaccard >= settings.containment_min_jaccard
        and lead_overlap >= settings.contained_min_lead_overlap
    )


def is_contained(containment: float, smaller: int, lead_overlap: float, settings: DedupSettings) -> bool:
    """The containment rule: the smaller text is long enough to be a story of its own, almost all of it is in the
    larger one, and the two open with the same story (a brief quoted further down a round-up is not a copy)."""
    return (
        smaller >= settings.contained_min_shingles
        and containment >= settings.contained_threshold
        and lead_overlap >= settings.contained_min_lead_overlap
    )


class PairScores(NamedTuple):
    """What the decision rule looks at for one pair of texts (exact duplicates aside)."""

    jaccard: float
    containment: float  # |A∩B| / min(|A|, |B|) over all shingles
    prose_containment: float  # the shorter text's prose shingles found in the longer (see prose_containment)
    prose_count: int  # how many shingles that share was taken over
    lead_overlap: float  # containment of one lead in the other: do the two open with the same story?


def judge_scores(sc: PairScores, settings: DedupSettings) -> tuple[str, float] | None:
    """(method, similarity) of a pair that is not an exact copy, or None: near first, then contained."""
    if is_near(sc.jaccard, sc.containment, settings, sc.lead_overlap):
        return "near", max(sc.jaccard, sc.containment)
    if is_contained(sc.prose_containment, sc.prose_count, sc.lead_overlap, settings):
        return "contained", round(sc.prose_containment, 6)
    return None


class Side:
    """One text of a pair under comparison, its shingle and lead sets computed on first use."""

    def __init__(self, content_hash: str, signature: list[int], text: str) -> None:
        self.content_hash = content_hash
        self.signature = signature
        self.text = text
        self._folded: str | None = None
        self._shingles: set[str] | None = None
        self._lead: set[str] | None = None
        self._prose: set[str] | None = None

    def lines(self) -> list[list[str]]:
        """The text's line_tokens. The folded text is kept (folding is the costly part), not the token lists:
        a decision holds thousands of Sides and the lists would take ~15x the text's size."""
        return _split_lines(self._fold())

    def _fold(self) -> str:
        if self._folded is None:
            self._folded = _fold(self.text)
        return self._folded

    def normalized(self) -> str:
        """normalize_text of the text, from the same folding as the sets."""
        return " ".join(self._fold().split())

    def shingle_set(self, settings: DedupSettings) -> set[str]:
        if self._shingles is None:
            toks = [t for line in self.lines() for t in line]
            self._shingles = _shingle_set(toks, shingle_size_for(toks, settings))
        return self._shingles

    def lead_set(self, settings: DedupSettings) -> set[str]:
        if self._lead is None:
            self._lead = lead_shingles(self.lines(), settings)
        return self._lead

    def prose_set(self, settings: DedupSettings) -> set[str]:
        if self._prose is None:
            self._prose = prose_shingles(self.lines(), settings)
        return self._prose


def prose_containment(short: set[str], short_prose: set[str], long: set[str], settings: DedupSettings) -> tuple[float, int]:
    """(containment, shingle count) of the shorter text in the longer, over its prose lines when it has enough of them:
    a partner's headline, byline and "originally published" lines would otherwise dilute a short copy's containment."""
    if len(short_prose) >= settings.contained_min_shingles:
        return len(short_prose & long) / len(short_prose), len(short_prose)
    return (len(short & long) / len(short) if short else 0.0), len(short)


def pair_scores(a: Side, b: Side, settings: DedupSettings) -> PairScores:
    """Every score of a pair, computed eagerly (compare() computes the lead only when a rule needs it)."""
    sh_a, sh_b = a.shingle_set(settings), b.shingle_set(settings)
    j, c = similarity(sh_a, sh_b)
    short, long = (a, b) if (len(sh_a), a.content_hash) <= (len(sh_b), b.content_hash) else (b, a)
    pc, p_count = prose_containment(short.shingle_set(settings), short.prose_set(settings), long.shingle_set(settings), settings)
    return PairScores(j, c, pc, p_count, similarity(a.lead_set(settings), b.lead_set(settings))[1])


def compare(a: Side, b: Side, settings: DedupSettings) -> tuple[str, float] | None:
    """(method, similarity) when the two texts are duplicates under the decision rule, else None. Symmetric in a, b."""
    # Symmetry is what makes decide() independent of batch order.
    sh_a, sh_b = a.shingle_set(settings), b.shingle_set(settings)
    if a.content_hash == b.content_hash and sh_a:
        return "exact", 1.0
    est = estimated_jaccard(a.signature, b.signature)
    smaller = min(len(sh_a), len(sh_b))
    if est is not None and est < settings.min_estimated_jaccard and smaller < settings.contained_min_shingles:
        # Cheap signature reject before the exact set comparison; the floor sits far below containment_min_jaccard
        # so that estimator noise (sd ~0.04 at 128 permutations) does not lose true pairs. A pair the containment rule
        # may still take (its Jaccard can be ~0.1: a fifth of the story) is always compared exactly.
        return None
    j, c = similarity(sh_a, sh_b)
    if j >= settings.jaccard_threshold:
        return "near", max(j, c)
    short, long = (a, b) if (len(sh_a), a.content_hash) <= (len(sh_b), b.content_hash) else (b, a)
    pc, p_count = prose_containment(short.shingle_set(settings), short.prose_set(settings), long.shingle_set(settings), settings)
    if judge_scores(PairScores(j, c, pc, p_count, 1.0), settings) is None:
        return None
    # Only now the leads: a containment rule holds numerically and needs the opening check.
    return judge_scores(PairScores(j, c, pc, p_count, similarity(a.lead_set(settings), b.lead_set(settings))[1]), settings)


def verify(new_text: str, new_fp: Fingerprint, candidate: DedupCandidate, settings: DedupSettings) -> DuplicateMatch | None:
    """Check one candidate pair; a match says new_fp's article duplicates `candidate` (ordering is decide's job)."""
    res = compare(
        Side(new_fp.content_hash, new_fp.signature, new_text), Side(candidate.content_hash, candidate.signature, candidate.text),
        settings,
    )
    if res is None:
        return None
    return DuplicateMatch(article_id=new_fp.article_id, duplicate_of=candidate.article_id, method=res[0], similarity=res[1])


_NO_DATE = datetime.max.replace(tzinfo=timezone.utc)


def _published_key(published: datetime | None) -> datetime:
    if published is None:
        return _NO_DATE
    return published if published.tzinfo else published.replace(tzinfo=timezone.utc)


def canonical_order(first_seen: datetime, published_at: datetime | None, article_id: str) -> tuple[datetime, datetime, str]:
    """Sort key of cluster members: the minimum is the canonical (earliest seen, then published, then id)."""
    return (first_seen, _published_key(published_at), article_id)


class _Node(Side):
    """An article in decide(): its side of comparisons, when it was seen, and whether it belongs to the batch."""

    def __init__(
        self, id: str, first_seen: datetime, content_hash: str, signature: list[int], text: str, in_batch: bool,
        band_keys: list[int], published_at: datetime | None, cluster: str | None = None,
    ) -> None:
        super().__init__(content_hash, signature, text)
        self.id = id
        self.first_seen = first_seen
        self.in_batch = in_batch
        self.band_keys = band_keys
        self.published_at = published_at
        self.cluster = cluster  # a history article's recorded cluster canonical (None: not known)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Deterministic root choice keeps the structure independent of input order.
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


def decide(
    batch: list[tuple[Article, Fingerprint]],
    candidates: dict[str, list[DedupCandidate]],
    settings: DedupSettings,
    first_seen: Mapping[str, datetime] | None = None,
) -> list[DuplicateMatch]:
    """Duplicate decisions for a batch against itself and its history candidates, independent of batch order.

    Verified pairs are joined into clusters (connected components); each cluster's canonical is its earliest-seen
    article (first_seen, then id) and every other member of a cluster touching the batch gets a match pointing at
    it, history members included when an earlier batch article takes over their cluster. A batch article's time is
    Article.fetched_at, or the earlier warehouse first_seen_at passed in `first_seen` / seen as a candidate (re-runs).
    """
    first_seen = first_seen or {}
    nodes: dict[str, _Node] = {}
    for art, fp in batch:
        seen = min(art.fetched_at, first_seen.get(art.id, art.fetched_at))
        nodes[art.id] = _Node(art.id, seen, fp.content_hash, fp.signature, art.text, True, list(fp.band_keys), art.published_at)
    for cands in candidates.values():
        for c in cands:
            node = nodes.get(c.article_id)
            if node is None:
                node = nodes[c.article_id] = _Node(
                    c.article_id, c.first_seen_at, c.content_hash, c.signature, c.text, False, [], c.published_at, c.cluster
                )
                if c.cluster is None:
                    # Band keys pair it with the other history articles below (its pairs with the batch are the
                    # candidates themselves); with a known cluster it is joined by the records instead.
                    node.band_keys = all_band_keys(c.signature, node.lead_set(settings), settings)
            elif c.first_seen_at < node.first_seen:
                # The batch holds the newest text, the warehouse the earliest sighting.
                node.first_seen = c.first_seen_at

    pairs: set[tuple[str, str]] = set()

    def add_pair(a: str, b: str) -> None:
        if a != b and a in nodes and b in nodes:
            pairs.add((a, b) if a < b else (b, a))

    for aid, cands in candidates.items():
        for c in cands:
            add_pair(aid, c.article_id)
    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    by_hash: dict[str, list[str]] = defaultdict(list)
    for node in nodes.values():
        by_hash[node.content_hash].append(node.id)
        for b, key in enumerate(node.band_keys):
            buckets[(b, key)].append(node.id)
    # Pairs within the batch and among history candidates (to reconnect an existing cluster through its members).
    for group in list(buckets.values()) + list(by_hash.values()):
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                add_pair(a, b)

    uf = _UnionFind()
    # History articles with recorded clusters keep them: each pair of them was judged when the later one
    # arrived (and again whenever either changed), so comparing them in every later batch would only repeat
    # that work; it grew with the warehouse (a late batch of the 20,000-page benchmark: 18,000 such pairs,
    # 1 s of comparisons plus 1 s of band keys for 3,000 history articles).
    for node in nodes.values():
        if not node.in_batch and node.cluster is not None and node.cluster in nodes:
            uf.union(node.id, node.cluster)
    for a, b in sorted(pairs):
        na, nb = nodes[a], nodes[b]
        if not (na.in_batch or nb.in_batch) and na.cluster is not None and nb.cluster is not None:
            continue  # joined above if the records say so
        if compare(na, nb, settings):
            uf.union(a, b)

    clusters: dict[str, list[_Node]] = defaultdict(list)
    for node in nodes.values():
        clusters[uf.find(node.id)].append(node)
    matches = []
    for members in clusters.values():
        if len(members) < 2 or not any(m.in_batch for m in members):
            continue
        # Ties in first sighting (articles first seen by the same run share its start time) go to the
        # earliest publication date, then the id: never to whichever page happened to be fetched first.
        canonical = min(members, key=lambda m: canonical_order(m.first_seen, m.published_at, m.id))
        for m in members:
            if m is canonical:
                continue
            if m.content_hash == canonical.content_hash:
                method, sim = "exact", 1.0
            else:
                # Reported against the canonical itself; a member joined through another member may score lower
                # (and match no rule directly: then it is reported as near, with its similarity to the canonical).
                j, c = similarity(m.shingle_set(settings), canonical.shingle_set(settings))
                method, sim = compare(m, canonical, settings) or ("near", max(j, c))
            matches.append(DuplicateMatch(article_id=m.id, duplicate_of=canonical.id, method=method, similarity=round(sim, 6)))
    return sorted(matches, key=lambda x: x.article_id)
