"""The seed corpus: plain-text articles in seeds/NNN_<hex>.txt, loaded as Articles."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from ingest.clean import EXTRACTOR_VERSION
from ingest.decode import decode_body
from ingest.language import detect_language
from ingest.residue import clean_text, is_residue_line, same_title, split_paragraphs
from ingest.errors import TerminalError
from ingest.models import Article, article_id_for, utcnow

SEED_NAME_RE = re.compile(r"^(\d+)_([0-9a-f]+)\.txt$")
# A seed's first-seen time is when it was loaded (`newsflow init` runs before any ingest, so seeds are
# still the earliest-seen copy for dedup); the NNN prefix, as microseconds, orders them among themselves.
# Seed files carry no publication date, so published_at stays empty.
# Seed files saved from article pages may read: title, standfirst line(s), title again, body.
# Only this close to the top is a repeated title taken as the end of such a header.
STANDFIRST_MAX_LINES = 2


def seed_files(seeds_dir: Path) -> list[Path]:
    """Seed files (NNN_hex.txt) in `seeds_dir`, ordered by their number prefix."""
    if not seeds_dir.is_dir():
        return []
    found = [p for p in seeds_dir.iterdir() if p.is_file() and SEED_NAME_RE.match(p.name)]
    return sorted(found, key=lambda p: (int(SEED_NAME_RE.match(p.name).group(1)), p.name))  # type: ignore[union-attr]


def load_seed(path: Path, loaded_at: datetime | None = None) -> Article:
    """Read one seed file into an Article: first real line is the title, the rest cleaned of page residue.

    `loaded_at` (default now) becomes its fetch time, plus the file's number in microseconds; pass one
    value for a whole load so the seeds keep their file order.
    """
    m = SEED_NAME_RE.match(path.name)
    if m is None:
        raise TerminalError(f"not a seed file name (NNN_hex.txt): {path.name}", reason="bad_seed_name")
    url = f"seed://{path.name}"
    paragraphs = split_paragraphs(decode_body(path.read_bytes()))
    # The title is the first line that is not residue (003 starts with a stray "Share" line).
    while paragraphs and is_residue_line(paragraphs[0]):
        paragraphs.pop(0)
    title = paragraphs.pop(0) if paragraphs else None
    standfirst: list[str] = []
    for i, line in enumerate(paragraphs[: STANDFIRST_MAX_LINES + 1]):
        if i > 0 and same_title(line, title):
            standfirst = [ln for ln in paragraphs[:i] if not is_residue_line(ln)]
            paragraphs = paragraphs[i:]
            break
    text = clean_text("\n".join(paragraphs), title)
    if not text:
        raise TerminalError(f"seed has no text: {path.name}", reason="no_text")
    return Article(
        id=article_id_for(url),
        url=url,
        page_url=url,
        source="seed",
        title=title,
        text=text,
        # The standfirst above the repeated title is not body text, but it is the article's summary.
        description=" ".join(standfirst) or None,
        language=detect_language(text),
        extractor="seed",
        extractor_version=EXTRACTOR_VERSION,
        fetched_at=(loaded_at or utcnow()) + timedelta(microseconds=int(m.group(1))),
    )
