"""Pydantic models at the stage boundaries: discover -> fetch -> clean -> dedup -> entities -> load."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """Timezone-aware current UTC time (all stored times are UTC)."""
    return datetime.now(timezone.utc)


def article_id_for(canonical_url: str) -> str:
    """Stable article id derived from the canonical URL, so ids survive rebuilds and re-runs."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:16]


Stage = Literal["discover", "fetch", "clean", "dedup", "entities", "load", "seed"]


class Failure(BaseModel):
    """One failed item: what, where, why, and whether a later run may succeed."""

    url: str
    source: str
    stage: Stage
    reason: str  # short code, e.g. http_500, timeout, robots_disallowed, no_text, malformed_feed
    detail: str = ""
    retryable: bool = False
    # Seconds the server asked us to wait (Retry-After), if any.
    retry_after_s: float | None = None
    failed_at: datetime = Field(default_factory=utcnow)


class DiscoveredItem(BaseModel):
    """An article URL found by discovery, with the hints its feed or sitemap gave."""

    url: str
    source: str
    via: str = ""  # the feed/sitemap/file it came from
    lastmod: datetime | None = None  # feed <updated> / sitemap <lastmod>: a newer value triggers a re-fetch
    title: str | None = None
    published_at: datetime | None = None


class FetchRequest(BaseModel):
    """One URL to fetch, with the validators of its last successful fetch for a conditional GET."""

    url: str
    source: str
    kind: Literal["article", "feed", "sitemap", "robots"] = "article"
    etag: str | None = None
    last_modified: str | None = None
    conditional: bool = True
    # True when the user configured this URL directly (a source location): the SSRF guard allows
    # private addresses for such URLs, but not for links or redirects found on public hosts.
    user_configured: bool = False


class FetchResult(BaseModel):
    """The outcome of one fetch: a page (200), a not-modified (304), or a failure."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str
    source: str
    kind: Literal["article", "feed", "sitemap", "robots"] = "article"
    final_url: str | None = None
    status: int = 0  # 0 when no HTTP response was received
    fetched_at: datetime = Field(default_factory=utcnow)
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    body: bytes | None = None  # decoded transfer encoding (gzip etc. removed), capped at max_body_bytes
    not_modified: bool = False
    elapsed_ms: float = 0.0
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx with a body that can be processed."""
        return self.failure is None and not self.not_modified and self.body is not None


class Article(BaseModel):
    """A cleaned article, ready for dedup, entities and loading."""

    id: str
    url: str  # canonical URL (or seed://<file> for seed articles)
    page_url: str  # the URL actually fetched (final URL after redirects)
    source: str
    title: str | None = None
    text: str
    authors: list[str] = Field(default_factory=list)
    published_at: datetime | None = None
    language: str | None = None
    site_name: str | None = None
    description: str | None = None
    extractor: str = "trafilatura"
    extractor_version: str = ""
    content_hash: str = ""  # hash of normalised text (exact-duplicate key)
    fetched_at: datetime = Field(default_factory=utcnow)
    # Lines removed as the site's template (recurring on other articles of the same host), with the reason each
    # went (ingest.boilerplate); stored in articles_boilerplate.
    boilerplate_removed: list[tuple[str, str]] = Field(default_factory=list)


class Fingerprint(BaseModel):
    """Dedup fingerprint of one article: exact hash, MinHash signature and LSH band keys."""

    article_id: str
    content_hash: str
    signature: list[int]
    band_keys: list[int]  # one key per band; equal keys in a band make a candidate pair
    shingle_count: int = 0


class DedupCandidate(BaseModel):
    """An earlier article that shares a band key (or content hash) with a new one."""

    article_id: str
    first_seen_at: datetime
    content_hash: str
    signature: list[int]
    text: str
    published_at: datetime | None = None
    # The canonical of the candidate's recorded cluster (its own id when it duplicates nothing); None: not known.
    # Two candidates whose clusters are known were judged when the later of them arrived, so dedup.decide
    # joins them by these records instead of comparing their texts again.
    cluster: str | None = None


class DuplicateMatch(BaseModel):
    """A decision that `article_id` duplicates the earlier canonical `duplicate_of`."""

    article_id: str
    duplicate_of: str
    # contained: the shorter text is (almost) all inside the longer one; similarity is then the containment.
    method: Literal["url", "exact", "near", "contained"]
    similarity: float


class EntityLabel(str, Enum):
    """spaCy OntoNotes labels we keep by default."""

    PERSON = "PERSON"
    ORG = "ORG"
    GPE = "GPE"
    LOC = "LOC"
    NORP = "NORP"
    FAC = "FAC"
    EVENT = "EVENT"
    PRODUCT = "PRODUCT"
    WORK_OF_ART = "WORK_OF_ART"
    LAW = "LAW"
    LANGUAGE = "LANGUAGE"


class Mention(BaseModel):
    """One entity mention in an article, already resolved to its in-article canonical entity."""

    entity_key: str  # normalised "type:name" key shared across articles, e.g. "PERSON:antony blinken"
    name: str  # canonical display name, e.g. "Antony Blinken"
    type: str  # voted label, e.g. PERSON
    surface: str  # text as written, e.g. "Blinken"
    start: int  # character offsets into Article.text
    end: int
    raw_label: str  # the label the model gave this mention
    snippet: str  # the sentence around it


class ArticleEntities(BaseModel):
    """NER output for one article (empty with a reason when its language has no model)."""

    article_id: str
    mentions: list[Mention] = Field(default_factory=list)
    model: str = ""
    model_version: str = ""
    skipped_reason: str | None = None
