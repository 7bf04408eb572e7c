"""sources.toml validation: good files load, bad ones fail with a message naming the source and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import ConfigError
from ingest.settings import BUNDLED_SEEDS_DIR
from ingest.sources import SourceKind, load_sources


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sources.toml"
    p.write_text(text, encoding="utf-8")
    return p


GOOD = """
[[sources]]
name = "gazette-rss"
kind = "rss"
location = "https://www.harbourgazette.example/feed.xml"
schedule = { interval_seconds = 900 }
max_items = 20
language = "en"

[[sources]]
name = "local-list"
kind = "urls"
location = "lists/urls.txt"
enabled = false

[[sources]]
name = "saved"
kind = "html"
location = "saved/"
base_url = "https://www.harbourgazette.example/"
schedule = { cron = "*/15 * * * *" }

[mirrors]
"https://www.harbourgazette.example/" = "demo_site/harbourgazette/"
"""


def test_good_file_loads_and_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = load_sources(write(tmp_path, GOOD))
    assert [s.name for s in cfg.sources] == ["gazette-rss", "local-list", "saved"]
    rss, lst, saved = cfg.sources
    assert rss.kind is SourceKind.rss and rss.is_remote
    assert rss.location == "https://www.harbourgazette.example/feed.xml"  # URLs are left alone
    assert rss.schedule is not None and rss.schedule.interval is not None
    assert rss.schedule.interval.total_seconds() == 900
    assert rss.max_items == 20 and rss.language == "en" and rss.enabled
    assert lst.location == str((tmp_path / "lists" / "urls.txt").resolve()) and not lst.enabled
    assert saved.schedule is not None and saved.schedule.cron == "*/15 * * * *"
    assert saved.base_url == "https://www.harbourgazette.example/"
    assert cfg.mirrors == {"https://www.harbourgazette.example/": str((tmp_path / "demo_site" / "harbourgazette").resolve())}
    assert cfg.get("saved") is saved


def test_unknown_source_name_lists_known(tmp_path: Path) -> None:
    cfg = load_sources(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="gazette-rss") as ei:
        cfg.get("nope")
    assert ei.value.reason == "unknown_source"


@pytest.mark.parametrize(
    ("body", "must_mention"),
    [
        pytest.param(
            '[[sources]]\nname = "bad-kind"\nkind = "podcast"\nlocation = "https://x.example/feed"\n',
            ["bad-kind", "kind"],
            id="unknown-kind",
        ),
        pytest.param('[[sources]]\nname = "no-loc"\nkind = "rss"\n', ["no-loc", "location"], id="missing-location"),
        pytest.param(
            '[[sources]]\nname = "both"\nkind = "rss"\nlocation = "https://x.example/f"\n'
            'schedule = { cron = "0 * * * *", interval_seconds = 60 }\n',
            ["both", "schedule", "exactly one"],
            id="schedule-cron-and-interval",
        ),
        pytest.param(
            '[[sources]]\nname = "neither"\nkind = "rss"\nlocation = "https://x.example/f"\nschedule = {}\n',
            ["neither", "schedule"],
            id="schedule-empty",
        ),
        pytest.param(
            '[[sources]]\nname = "zero"\nkind = "rss"\nlocation = "https://x.example/f"\nschedule = { interval_seconds = 0 }\n',
            ["zero", "schedule.interval_seconds"],
            id="schedule-zero-interval",
        ),
        pytest.param(
            '[[sources]]\nname = "typo"\nkind = "rss"\nlocation = "https://x.example/f"\nschedule = { every = 60 }\n',
            ["typo", "schedule.every"],
            id="schedule-unknown-key",
        ),
        pytest.param('[[sources]]\nname = "seed"\nkind = "rss"\nlocation = "https://x.example/f"\n', ["seed", "name", "reserved"], id="reserved-name"),
        pytest.param('[[sources]]\nname = "Bad Name"\nkind = "rss"\nlocation = "https://x.example/f"\n', ["Bad Name", "name"], id="bad-name-pattern"),
        pytest.param(
            '[[sources]]\nname = "extra"\nkind = "rss"\nlocation = "https://x.example/f"\nurl = "https://x.example/f"\n',
            ["extra", "url"],
            id="unknown-key",
        ),
        pytest.param(
            '[[sources]]\nname = "neg"\nkind = "rss"\nlocation = "https://x.example/f"\nmax_items = -1\n',
            ["neg", "max_items"],
            id="negative-max-items",
        ),
    ],
)
def test_invalid_source_names_the_source_and_field(tmp_path: Path, body: str, must_mention: list[str]) -> None:
    with pytest.raises(ConfigError) as ei:
        load_sources(write(tmp_path, body))
    msg = str(ei.value)
    assert ei.value.reason == "bad_sources_file"
    for word in must_mention:
        assert word in msg, f"{word!r} not in {msg!r}"


def test_bad_source_is_named_even_among_good_ones(tmp_path: Path) -> None:
    body = GOOD + '\n[[sources]]\nname = "broken"\nkind = "feed"\nlocation = "https://x.example/f"\n'
    # GOOD ends with [mirrors]; the appended [[sources]] table still belongs to the sources array.
    with pytest.raises(ConfigError) as ei:
        load_sources(write(tmp_path, body))
    assert "sources['broken'].kind" in str(ei.value)
    assert "gazette-rss" not in str(ei.value)


def test_duplicate_names(tmp_path: Path) -> None:
    body = (
        '[[sources]]\nname = "twice"\nkind = "rss"\nlocation = "https://a.example/f"\n'
        '[[sources]]\nname = "twice"\nkind = "atom"\nlocation = "https://b.example/f"\n'
    )
    with pytest.raises(ConfigError, match="duplicate source name 'twice'"):
        load_sources(write(tmp_path, body))


def test_unknown_top_level_key_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mirror"):
        load_sources(write(tmp_path, '[mirror]\n"https://x.example/" = "d"\n'))
    with pytest.raises(ConfigError, match="invalid TOML") as ei:
        load_sources(write(tmp_path, "[[sources]\nname = \n"))
    assert ei.value.reason == "bad_sources_file"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_sources(tmp_path / "absent.toml")
    assert ei.value.reason == "no_sources_file"


def test_bundled_sources_file_is_valid() -> None:
    cfg = load_sources(BUNDLED_SEEDS_DIR / "sources.toml")
    by_name = {s.name: s for s in cfg.sources}
    assert set(by_name) == {"harbour-gazette-rss", "harbour-gazette-sitemap", "northwire-atom"}
    rss = by_name["harbour-gazette-rss"]
    assert rss.kind is SourceKind.rss and rss.location == "https://www.harbourgazette.example/feed.xml"
    assert rss.schedule is not None and rss.schedule.interval_seconds == 900
    sm = by_name["harbour-gazette-sitemap"]
    assert sm.kind is SourceKind.sitemap and sm.location == "https://www.harbourgazette.example/sitemap.xml"
    assert sm.schedule is not None and sm.schedule.cron == "0 * * * *"
    atom = by_name["northwire-atom"]
    assert atom.kind is SourceKind.atom and atom.location == "https://northwire.example/atom.xml"
    assert atom.schedule is not None and atom.schedule.interval_seconds == 1800
    assert all(s.enabled for s in cfg.sources)
    # Mirrors are resolved next to the toml, so the demo works from any working directory.
    assert cfg.mirrors == {
        "https://www.harbourgazette.example/": str((BUNDLED_SEEDS_DIR / "demo_site" / "harbourgazette").resolve()),
        "https://northwire.example/": str((BUNDLED_SEEDS_DIR / "demo_site" / "northwire").resolve()),
    }
    # Every mirrored source is covered by a mirror prefix (offline demo needs no network).
    for s in cfg.sources:
        assert any(s.location.startswith(prefix) for prefix in cfg.mirrors), s.name
