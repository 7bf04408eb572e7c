"""Seed corpus: file discovery, titles, residue removal without losing any article sentence."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.clean import EXTRACTOR_VERSION
from ingest.errors import TerminalError
from ingest.models import Article, article_id_for
from ingest.seeds import load_seed, seed_files
from ingest.settings import BUNDLED_SEEDS_DIR

SEED_000 = BUNDLED_SEEDS_DIR / "000_7f41d666b0ea1f1a.txt"
SEED_003 = BUNDLED_SEEDS_DIR / "003_a6cc57f649ce1f43.txt"
TITLES = {
    SEED_000.name: "Antony Blinken says ‘no plans’ to meet Russia, China at G20",
    SEED_003.name: 'Russia-Ukraine war, first surprise meeting at the G20 between Blinken and Lavrov but Moscow holds back: "No negotiations"',
}
SUBTITLE_003 = "First brief face-to-face on the sidelines of the G20 between the US Secretary of State"


def raw_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a seed file, as written."""
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def expected_body(path: Path) -> list[str]:
    """Body paragraphs by an independent rule: after the last title line, before the first hashtag/comment-form line."""
    lines = raw_lines(path)
    title = TITLES[path.name]
    start = max(i for i, ln in enumerate(lines) if ln == title) + 1
    end = next(
        (i for i, ln in enumerate(lines) if i >= start and (ln.startswith("#") or ln in ("Leave a Reply", "comments"))),
        len(lines),
    )
    return lines[start:end]


def sentences(paragraph: str) -> list[str]:
    """Split a paragraph after sentence-ending punctuation (optionally followed by a closing quote)."""
    return [s for s in re.split(r"(?<=[.!?])[”\"]?\s+", paragraph) if s]


@pytest.fixture(scope="module", params=[SEED_000, SEED_003], ids=["000", "003"])
def seed(request: pytest.FixtureRequest) -> tuple[Path, Article]:
    return request.param, load_seed(request.param)


def test_seed_files_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ["010_ab12.txt", "002_ffff.txt", "README.txt", "003_xyz.txt", "001_abc.md", "sources.toml", "0001_0a.txt"]:
        (tmp_path / name).write_text("Title\n\nBody.", encoding="utf-8")
    assert [p.name for p in seed_files(tmp_path)] == ["0001_0a.txt", "002_ffff.txt", "010_ab12.txt"]
    assert seed_files(tmp_path / "missing") == []


def test_bundled_seed_files() -> None:
    names = [p.name for p in seed_files(BUNDLED_SEEDS_DIR)]
    assert names[:2] == [SEED_000.name, SEED_003.name]


def test_titles(seed: tuple[Path, Article]) -> None:
    path, art = seed
    assert art.title == TITLES[path.name]


def test_no_residue_left(seed: tuple[Path, Article]) -> None:
    path, art = seed
    lines = art.text.split("\n\n")
    assert not any(ln.startswith("#") for ln in lines), "hashtag line"
    for phrase in ["Leave a Reply", "Your email address", "Required fields", "#Antony", "#Blinken"]:
        assert phrase not in art.text
    assert not art.text.rstrip().endswith("comments")
    assert "comments" not in lines
    assert "Share" not in lines
    assert TITLES[path.name] not in lines, "repeated title line"
    assert SUBTITLE_003 not in art.text


def test_no_sentence_lost(seed: tuple[Path, Article]) -> None:
    path, art = seed
    body = expected_body(path)
    assert len(body) >= 5  # the rule found the article, not an empty slice
    for paragraph in body:
        for sentence in sentences(paragraph):
            assert sentence in art.text, sentence
    # Nothing but the body: the cleaned text is exactly the body paragraphs.
    assert art.text.split("\n\n") == body


def test_seed_article_fields(seed: tuple[Path, Article]) -> None:
    path, art = seed
    index = int(path.name.split("_")[0])
    assert art.url == art.page_url == f"seed://{path.name}"
    assert art.id == article_id_for(art.url)
    assert art.source == "seed"
    assert art.language == "en"
    assert art.content_hash == ""
    assert art.extractor_version == EXTRACTOR_VERSION
    assert abs(art.fetched_at - datetime.now(timezone.utc)) < timedelta(minutes=5)  # loaded now (not 1970)
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert load_seed(path, at).fetched_at == at + timedelta(microseconds=index)


def test_seed_003_subtitle_becomes_description() -> None:
    art = load_seed(SEED_003)
    assert art.description and art.description.startswith(SUBTITLE_003)
    assert load_seed(SEED_000).description is None


def test_seeds_loaded_together_keep_file_order() -> None:
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    a, b = load_seed(SEED_000, at), load_seed(SEED_003, at)
    assert at <= a.fetched_at < b.fetched_at < at + timedelta(seconds=1)
    assert a.published_at is None and b.published_at is None  # the files give no date


def test_load_seed_is_deterministic() -> None:
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert load_seed(SEED_003, at) == load_seed(SEED_003, at)


def test_bad_seed_name(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("Title\n\nBody text.", encoding="utf-8")
    with pytest.raises(TerminalError) as exc:
        load_seed(p)
    assert exc.value.reason == "bad_seed_name"


def test_empty_seed_is_no_text(tmp_path: Path) -> None:
    p = tmp_path / "005_abcd.txt"
    p.write_text("Only a title\n\nLeave a Reply\n\ncomments", encoding="utf-8")
    with pytest.raises(TerminalError) as exc:
        load_seed(p)
    assert exc.value.reason == "no_text"


def test_seed_without_residue_keeps_everything(tmp_path: Path) -> None:
    p = tmp_path / "007_beef.txt"
    p.write_text("A plain title\n\nFirst paragraph here.\n\nSecond paragraph, with a #hashtag inside.\n", encoding="utf-8")
    art = load_seed(p)
    assert art.title == "A plain title"
    assert art.text == "First paragraph here.\n\nSecond paragraph, with a #hashtag inside."
    assert load_seed(p, datetime(2026, 3, 1, tzinfo=timezone.utc)).fetched_at == datetime(2026, 3, 1, 0, 0, 0, 7, tzinfo=timezone.utc)
