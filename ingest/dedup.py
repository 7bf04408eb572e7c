"""Duplicate detection: exact content hash, MinHash/LSH near-duplicates, and order-independent clustering.

Pipeline per batch: `fingerprint` every article -> the warehouse returns earlier articles sharing a band key
or content hash (`warehouse.dedup_store.find_candidates`) -> `decide` verifies candidate pairs and assigns
every duplicate to its cluster's canonical (the earliest-seen article). Nothing here touches the database.

Decision rule (`verify`), tuned with benchmarks/dedup_eval.py:
  * exact: equal `content_hash` (sha256 of the normalised text) -> similarity 1.0;
  * near:  exact shingle Jaccard >= jaccard_threshold, or containment |A∩B|/min(|A|,|B|) >= containment_threshold
    with Jaccard >= containment_min_jaccard (a copy trimmed or extended by a paragraph keeps a high containment
    while its Jaccard drops). The reported similarity is max(jaccard, containment).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from rensa import RMinHash

from ingest.models import Article, DedupCandidate, DuplicateMatch, Fingerprint
from ingest.settings import DedupSettings

# Bump when normalize_text or shingling changes: stored fingerprints then no longer compare (see model_id).
NORMALIZATION_VERSION = 1

# Apostrophes are deleted so that "don’t", "don't" and "donʼt" all become "dont" (a quote mark next to a word
# loses nothing either); invisible format characters (soft hyphen, zero-width space/joiners, BOM) that some
# CMSs insert inside words are deleted too. Every other quote, dash or punctuation mark (any non-word
# character) becomes a space. str.replace for the few fixed characters is far cheaper than a lookbehind regex.
_DELETE = ("'", "\u2019", "\u2018", "\u02bc", "\u2032", "`", "\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff")
_NON_WORD = re.compile(r"[^\w\s]|_")


def normalize_text(text: str) -> str:
    """Fold unicode (NFKC), case, quotes, dashes, punctuation and whitespace into a canonical word string."""
    t = unicodedata.normalize("NFKC", text).casefold()
    for ch in _DELETE:
        if ch in t:
            t = t.replace(ch, "")
    t = _NON_WORD.sub(" ", t)
    return " ".join(t.split())


def _sha256(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def content_hash(text: str) -> str:
    """sha256 hex digest of the normalised text: the exact-duplicate key."""
    return _sha256(normalize_text(text))


def _shingle_set(words: list[str], size: int) -> set[str]:
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    # zip over shifted views is ~1.5x faster than slicing a window per position.
    return set(map(" ".join, zip(*(words[i:] for i in range(size)))))


def shingles(text: str, size: int) -> set[str]:
    """Set of `size`-word shingles of the normalised text (the whole text if it is shorter)."""
    return _shingle_set(normalize_text(text).split(), size)


def model_id(settings: DedupSettings) -> str:
    """Identifier of the fingerprint parameters, stored with each fingerprint so a settings change is detectable."""
    return (
        f"minhash-{settings.shingle_size}w-{settings.num_perm}p-{settings.bands}b-s{settings.seed}"
        f"-n{NORMALIZATION_VERSION}-r{RMinHash.ALGORITHM_VERSION}"
    )


def _rows_per_band(settings: DedupSettings) -> int:
    if settings.bands <= 0 or settings.num_perm % settings.bands:
        raise ValueError(f"num_perm ({settings.num_perm}) must be a positive multiple of bands ({settings.bands})")
    return settings.num_perm // settings.bands


def band_keys(signature: list[int], settings: DedupSettings) -> list[int]:
    """One signed 64-bit key per LSH band (blake2b of the band's slice), so it fits a DuckDB BIGINT."""
    rows = _rows_per_band(settings)
    if len(signature) != settings.num_perm:
        return []
    buf = struct.pack(f"<{len(signature)}I", *signature)
    width = 4 * rows
    # blake2b, not hash(): Python's str/tuple hashing is randomised per process and keys must persist.
    return [
        int.from_bytes(hashlib.blake2b(buf[b * width : (b + 1) * width], digest_size=8).digest(), "little", signed=True)
        for b in range(settings.bands)
    ]


def _signature(shingle_set: set[str], settings: DedupSettings) -> list[int]:
    # rensa hashes tokens with a fixed internal hash and permutes with the given seed: reproducible everywhere.
    # Token order does not matter to a MinHash (a minimum over the set), so the set is passed as is.
    mh = RMinHash(num_perm=settings.num_perm, seed=settings.seed)
    mh.update(list(shingle_set))
    return [int(v) for v in mh.digest()]


def fingerprint(article_id: str, text: str, settings: DedupSettings) -> Fingerprint:
    """Content hash, MinHash signature (uint32 values) and LSH band keys of one article's text."""
    _rows_per_band(settings)
    norm = normalize_text(text)
    sh = _shingle_set(norm.split(), settings.shingle_size)
    if not sh:
        # Empty text has no meaningful signature; no band keys means it is never a near-duplicate candidate.
        return Fingerprint(article_id=article_id, content_hash=_sha256(norm), signature=[], band_keys=[], shingle_count=0)
    sig = _signature(sh, settings)
    return Fingerprint(
        article_id=article_id, content_hash=_sha256(norm), signature=sig, band_keys=band_keys(sig, settings), shingle_count=len(sh)
    )


def fingerprint_many(items: Iterable[tuple[str, str]], settings: DedupSettings, chunk: int = 1000) -> list[Fingerprint]:
    """Fingerprints of many (article_id, text) pairs, one rensa call per chunk (bulk loads, re-fingerprinting)."""
    _rows_per_band(settings)
    items = list(items)
    out: list[Fingerprint] = []
    # Chunked so that only `chunk` shingle sets (~100 KB each) are alive at a time.
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        norms = [normalize_text(text) for _, text in part]
        sets = [_shingle_set(n.split(), settings.shingle_size) for n in norms]
        nonempty = [i for i, s in enumerate(sets) if s]
        digests = RMinHash.digests_from_token_sets([list(sets[i]) for i in nonempty], settings.num_perm, settings.seed)
        sigs: dict[int, list[int]] = {i: [int(v) for v in d] for i, d in zip(nonempty, digests)}
        for i, (aid, _) in enumerate(part):
            sig = sigs.get(i, [])
            out.append(
                Fingerprint(
                    article_id=aid, content_hash=_sha256(norms[i]), signature=sig,
                    band_keys=band_keys(sig, settings) if sig else [], shingle_count=len(sets[i]),
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


def is_near(jaccard: float, containment: float, settings: DedupSettings) -> bool:
    """The near-duplicate rule applied to exact shingle similarities."""
    if jaccard >= settings.jaccard_threshold:
        return True
    # Containment alone would flag a short brief quoted inside a long round-up; the Jaccard floor keeps the
    # rule to copies that differ by about a paragraph.
    return containment >= settings.containment_threshold and jaccard >= settings.containment_min_jaccard


def _judge(
    hash_a: str, sig_a: list[int], sh_a: set[str], hash_b: str, sig_b: list[int], sh_b: set[str], settings: DedupSettings
) -> tuple[str, float] | None:
    # Symmetric in a and b, which is what makes decide() independent of batch order.
    if hash_a == hash_b and sh_a:
        return "exact", 1.0
    est = estimated_jaccard(sig_a, sig_b)
    if est is not None and est < settings.min_estimated_jaccard:
        # Cheap signature reject before the exact set comparison; the floor sits far below containment_min_jaccard
        # so that estimator noise (sd ~0.04 at 128 permutations) does not lose true pairs.
        return None
    j, c = similarity(sh_a, sh_b)
    if is_near(j, c, settings):
        return "near", max(j, c)
    return None


def verify(new_text: str, new_fp: Fingerprint, candidate: DedupCandidate, settings: DedupSettings) -> DuplicateMatch | None:
    """Check one candidate pair; a match says new_fp's article duplicates `candidate` (ordering is decide's job)."""
    res = _judge(
        new_fp.content_hash, new_fp.signature, shingles(new_text, settings.shingle_size),
        candidate.content_hash, candidate.signature, shingles(candidate.text, settings.shingle_size), settings,
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


@dataclass
class _Node:
    id: str
    first_seen: datetime
    content_hash: str
    signature: list[int]
    text: str
    in_batch: bool
    band_keys: list[int] = field(default_factory=list)
    published_at: datetime | None = None
    _shingles: set[str] | None = None

    def shingle_set(self, size: int) -> set[str]:
        if self._shingles is None:
            self._shingles = shingles(self.text, size)
        return self._shingles


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
                nodes[c.article_id] = _Node(
                    c.article_id, c.first_seen_at, c.content_hash, c.signature, c.text, False,
                    band_keys(c.signature, settings), c.published_at,
                )
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

    size = settings.shingle_size
    uf = _UnionFind()
    for a, b in sorted(pairs):
        na, nb = nodes[a], nodes[b]
        if _judge(na.content_hash, na.signature, na.shingle_set(size), nb.content_hash, nb.signature, nb.shingle_set(size), settings):
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
                # Reported against the canonical itself; a member joined through another member may score lower.
                j, c = similarity(m.shingle_set(size), canonical.shingle_set(size))
                method, sim = "near", max(j, c)
            matches.append(DuplicateMatch(article_id=m.id, duplicate_of=canonical.id, method=method, similarity=round(sim, 6)))
    return sorted(matches, key=lambda x: x.article_id)
