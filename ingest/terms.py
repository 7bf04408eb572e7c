"""Search terms: the one tokeniser and stemmer behind the full-text index and search queries.

A text becomes terms by: lower-casing, splitting on anything that is not a letter or digit, dropping
English stop words and one-character tokens, and Porter-stemming what is left ("Talks", "talking" ->
"talk"). The Porter algorithm is frozen, and DuckDB's `stem(word, 'porter')` (fts extension) gives the
same stems as snowballstemmer's (0 differences on the 21.6k distinct words of the seeds, the demo sites
and the extraction benchmark), so a query tokenised in SQL (`warehouse/migrations/005_search.sql`)
matches the index written from Python. Keep STOP_WORDS and the split rule in step with that macro.
snowballstemmer hands the work to PyStemmer (Snowball's C library) when it is installed, as it is with
newsflow: the same algorithm, 17x faster (0 differences on 20k words).
"""

from __future__ import annotations

import functools
import re
from collections import Counter

import snowballstemmer

# Bump when tokenising or stemming changes: indexed articles record it, so stale ones can be re-indexed.
TERMS_VERSION = "porter-1"
# Title words count this many times: a match in the title says more about the article than one in the body.
TITLE_WEIGHT = 2

_SPLIT = re.compile(r"[^\w]+|_")
_stemmer = snowballstemmer.stemmer("porter")

# Very common English words: they carry no ranking signal (BM25 gives them ~0 weight anyway) and are a
# third of all tokens, so leaving them out keeps the term index small.
STOP_WORDS = frozenset(
    """a about after all also an and any are as at be been but by can could did do does for from had has have
    he her his how i if in into is it its just more most not now of on one or our out over said says she so
    some than that the their them then there these they this those to up was we were what when which who
    will with would you""".split()
)


@functools.lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Porter stem of one lower-case word (cached: news vocabularies repeat)."""
    return _stemmer.stemWord(word)


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of `text`, stop words and single characters removed."""
    return [w for w in _SPLIT.split(text.lower()) if len(w) > 1 and w not in STOP_WORDS]


def query_terms(text: str) -> list[str]:
    """Distinct stemmed terms of a search phrase, in the order written."""
    return list(dict.fromkeys(stem(w) for w in tokens(text)))


def term_counts(title: str | None, text: str) -> tuple[Counter[str], int]:
    """(term -> weighted frequency, document length) of an article; title terms count TITLE_WEIGHT times."""
    counts: Counter[str] = Counter(stem(w) for w in tokens(text))
    for w in tokens(title or ""):
        counts[stem(w)] += TITLE_WEIGHT
    return counts, sum(counts.values())
