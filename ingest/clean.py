"""Clean stage: a fetched page -> an Article (decode, extract with trafilatura, strip residue, metadata).

The concerns it calls live in their own modules: `ingest.decode` (bytes -> text, is it HTML),
`ingest.language` (declared/detected language, the filter), `ingest.residue` (page furniture),
`ingest.dates` (the one date parser, declared publication time), `ingest.canonical` (URL identity).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trafilatura
from trafilatura.utils import load_html

from ingest.boilerplate import remove_site_boilerplate
from ingest.canonical import canonical_url_of, html_canonical
from ingest.dates import declared_published, parse_datetime, precise_date
from ingest.decode import decode_body, is_html_type, media_type, strip_xml_declaration
from ingest.errors import TerminalError
from ingest.language import declared_language, detect_language, language_allowed, primary_subtag
from ingest.models import Article, FetchResult, article_id_for
from ingest.residue import clean_text
from ingest.settings import CleanSettings

EXTRACTOR_NAME = "trafilatura"
# Bump the suffix whenever decoding, extraction options or clean_text rules change: re-processing
# compares it to decide whether stored output may differ from what this code would produce now.
EXTRACTOR_VERSION = f"{trafilatura.__version__}+newsflow.4"

# Only unambiguous separators: commas may sit inside one name ("Smith, John"), and other languages'
# conjunctions ("y", "e") also occur inside names ("Ortega y Gasset").
_AUTHOR_SPLIT_RE = re.compile(r"\s*(?:;|\||\s&\s|\band\b)\s*", re.I)


def _split_authors(author: str | None) -> list[str]:
    """Split trafilatura's author string ("A; B and C") into distinct names, order kept."""
    if not author:
        return []
    names: list[str] = []
    for part in _AUTHOR_SPLIT_RE.split(author):
        name = re.sub(r"^(by|von|par|por|di)\s+", "", part.strip(" ,"), flags=re.I).strip()
        if name and name.casefold() not in {n.casefold() for n in names}:
            names.append(name)
    return names


@dataclass
class Extraction:
    """trafilatura's document for a page, with what the page declares that extraction would prune."""

    page_url: str
    doc: Any  # trafilatura.settings.Document
    declared_canonical: str | None
    declared_language: str | None
    declared_dates: list[datetime]

    @property
    def title(self) -> str | None:
        return (self.doc.title or "").strip() or None

    @property
    def raw_text(self) -> str:
        """The extracted text before residue rules (benchmarks/extraction_eval.py scores the rules on it)."""
        return self.doc.text or ""


def extract(page: FetchResult, settings: CleanSettings) -> Extraction:
    """Decode and parse a page and run trafilatura on it; TerminalError (not_html, no_text) when that fails."""
    page_url = page.final_url or page.url
    if not page.body:
        raise TerminalError(f"empty body: {page_url}", reason="no_text")
    mime = media_type(page.content_type)
    if mime and not is_html_type(mime, extractable=True):
        raise TerminalError(f"content type {mime!r} is not HTML: {page_url}", reason="not_html")
    html = decode_body(page.body, page.content_type)
    # lxml refuses str input carrying an XML encoding declaration (and the bytes fallback would
    # re-apply the declared charset to our already-decoded text), so drop the declaration.
    tree = load_html(strip_xml_declaration(html))
    if tree is None:
        raise TerminalError(f"not parseable as HTML: {page_url}", reason="not_html")
    # Read these before extraction: trafilatura prunes the tree it is given.
    declared_canonical = html_canonical(tree.iter("link"))
    declared_lang = declared_language(tree)
    declared_dates = declared_published(tree)

    # favor_precision drops more boilerplate; on the benchmark it also raises F1 (see benchmarks/).
    doc = _bare_extraction(tree, page_url, settings, favor_precision=settings.favor_precision)
    short = len((doc.text or "") if doc is not None else "") < settings.precision_fallback_chars
    if settings.favor_precision and short:
        # Precision mode can discard a whole body whose container looks like boilerplate to it, leaving
        # a reprints notice or a caption. A short result is checked against the balanced extraction
        # (tree re-parsed: trafilatura pruned the first one) and replaced when that finds far more text.
        balanced = _bare_extraction(load_html(strip_xml_declaration(html)), page_url, settings, favor_precision=False)
        if balanced is not None and len(balanced.text or "") >= 3 * max(1, len((doc.text or "") if doc is not None else "")):
            doc = balanced
    if doc is None:
        raise TerminalError(f"trafilatura found no article: {page_url}", reason="no_text")
    return Extraction(page_url, doc, declared_canonical, declared_lang, declared_dates)


def _bare_extraction(tree: Any, page_url: str, settings: CleanSettings, *, favor_precision: bool) -> Any:
    """trafilatura.bare_extraction with newsflow's options (metadata on, no comments, images or links)."""
    if tree is None:
        return None
    return trafilatura.bare_extraction(
        tree,
        url=page_url,
        with_metadata=True,
        include_comments=False,
        favor_precision=favor_precision,
        include_tables=settings.include_tables,
        include_images=False,
        include_links=False,
        date_extraction_params={
            "extensive_search": True,
            "original_date": True,
            "outputformat": "%Y-%m-%dT%H:%M:%S%z",
        },
    )


def clean(page: FetchResult, settings: CleanSettings, site_boilerplate: Collection[str] = ()) -> Article:
    """Turn a fetched HTML page into an Article, or raise TerminalError (not_html, no_text, unsupported_language).

    `site_boilerplate`: the known template lines of the page's site (warehouse.boilerplate.recurring_lines); those
    found in the text are removed and listed in Article.boilerplate_removed.
    """
    ex = extract(page, settings)
    page_url, doc, title = ex.page_url, ex.doc, ex.title
    text, removed = remove_site_boilerplate(clean_text(ex.raw_text, title), site_boilerplate)
    if not text or len(text) < settings.min_text_chars:
        raise TerminalError(
            f"article text too short ({len(text)} < {settings.min_text_chars} chars): {page_url}", reason="no_text"
        )
    language = primary_subtag(getattr(doc, "language", None)) or detect_language(text, ex.declared_language)
    if not language_allowed(language, settings.languages):
        raise TerminalError(f"language {language!r} not in {settings.languages}: {page_url}", reason="unsupported_language")
    for_source = settings.source_languages.get(page.source)
    if for_source and not language_allowed(language, for_source):
        raise TerminalError(
            f"language {language!r} not in source {page.source!r}'s languages {for_source}: {page_url}", reason="unsupported_language"
        )

    url = canonical_url_of(page_url, ex.declared_canonical)
    return Article(
        id=article_id_for(url),
        url=url,
        page_url=page_url,
        source=page.source,
        title=title,
        text=text,
        authors=_split_authors(doc.author),
        published_at=precise_date(parse_datetime(doc.date), ex.declared_dates),
        language=language,
        site_name=(doc.sitename or "").strip() or None,
        description=(doc.description or "").strip() or None,
        extractor=EXTRACTOR_NAME,
        extractor_version=EXTRACTOR_VERSION,
        fetched_at=page.fetched_at,
        boilerplate_removed=removed,
    )
