"""Inputs of the ingest and reingest flows, checked before anything runs (no Prefect import here).

Everything that can be checked without the network is checked here, by the CLI before Prefect
starts and again by the flows themselves (deployment runs get the same checks): ad-hoc paths and URL
lists exist, feeds are http(s) URLs or existing local files, source names exist, dates parse.
A bad input raises UsageError/ConfigError (exit 2 on the command line, nothing written).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ingest.dates import parse_datetime
from ingest.errors import ConfigError, UsageError
from ingest.settings import Settings
from ingest.sources import Source, SourceKind, SourcesConfig, load_sources

MODES = ("refetch", "reprocess")
WINDOW_ON = ("first_seen", "published")

# ---------------------------------------------------------------- ingest: sources


def feed_location(value: str) -> str:
    """A --feed value as a source location: an http(s) URL with a host, or an existing local file (path)."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise UsageError(f"--feed {value!r}: the URL has no host (want e.g. https://example.com/feed.xml)", reason="bad_feed")
        return text
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif parts.scheme and len(parts.scheme) > 1:  # a scheme we do not fetch (ftp:, mailto:, ...); "C:" is a path
        raise UsageError(f"--feed {value!r}: only http:// and https:// URLs or local feed files are supported", reason="bad_feed")
    else:
        path = Path(text).expanduser()
    if not path.is_file():
        raise UsageError(
            f"--feed {value!r} is neither an http(s) URL nor an existing file (want e.g. https://example.com/feed.xml or ./feed.xml)",
            reason="bad_feed",
        )
    return str(path.resolve())


def existing_path(option: str, value: str, *, want_file: bool = False) -> Path:
    """`value` resolved, or a UsageError naming the option when it does not exist."""
    path = Path(value).expanduser()
    if not path.exists():
        raise UsageError(f"{option} {value!r}: no such file or directory", reason="no_such_path")
    if want_file and not path.is_file():
        raise UsageError(f"{option} {value!r} is a directory; want a text file with one URL per line", reason="no_such_path")
    return path.resolve()


def select_sources(
    settings: Settings,
    names: Sequence[str] | None = None,
    feeds: Sequence[str] | None = None,
    urls_file: str | None = None,
    path: str | None = None,
) -> tuple[list[Source], dict[str, str]]:
    """Sources for this run: ad-hoc ones from options, else the named (or all enabled) configured ones.

    Raises UsageError for a missing path or URL list or a bad feed, ConfigError for an unknown source
    name or a bad sources.toml, before anything is written.
    """
    adhoc: list[Source] = []
    for url in feeds or []:
        location = feed_location(url)
        host = (urlsplit(location).hostname or Path(location).stem or "feed").lower()
        name = re.sub(r"[^a-z0-9_.-]+", "-", f"adhoc-{host}")[:64]
        adhoc.append(Source(name=name, kind=SourceKind.rss, location=location))
    if urls_file:
        adhoc.append(Source(name="adhoc-urls", kind=SourceKind.urls, location=str(existing_path("--urls", urls_file, want_file=True))))
    if path:
        p = existing_path("--path", path)
        kind = SourceKind.warc if p.is_file() and ".warc" in p.name else SourceKind.html
        adhoc.append(Source(name="adhoc-path", kind=kind, location=str(p)))
    need_config = bool(names) or not adhoc or settings.sources_path.exists()
    config = load_sources(settings.sources_path) if need_config else SourcesConfig()
    named = [config.get(n) for n in names or []]
    if adhoc:
        chosen = adhoc + named
    elif names:
        chosen = named
    else:
        chosen = [s for s in config.sources if s.enabled]
    return chosen, config.mirrors


def check_models(settings: Settings) -> None:
    """ConfigError when a configured spaCy model is neither an installed package nor a model directory."""
    import importlib.util

    for language, model in sorted(settings.entities.models_by_language.items()):
        if Path(model).expanduser().is_dir():
            continue
        try:
            found = importlib.util.find_spec(model) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(
                f"spaCy model {model!r} (for language {language!r}) is not installed; install it with pip, or choose an "
                f"installed one with NEWSFLOW_ENTITIES__MODELS_BY_LANGUAGE",
                reason="missing_model",
            )


# ---------------------------------------------------------------- reingest: dates and selector

_RELATIVE = re.compile(r"^(\d+)\s*(m|min|h|d|w)$", re.IGNORECASE)
_UNIT = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DATE_FORMS = "YYYY-MM-DD, an ISO datetime such as 2024-03-05T14:00 (UTC unless it has an offset), or a time ago: 90m, 36h, 2d, 1w"


def parse_when(value: str, *, end: bool = False, now: datetime | None = None) -> datetime:
    """A command-line date as aware UTC: ISO date/datetime, or relative (`90m`, `36h`, `2d`, `1w` ago).

    A bare date with end=True means the end of that day ("--until 2024-03-05" includes 5 March).
    Anything else raises ConfigError naming the accepted forms.
    """
    text = value.strip()
    m = _RELATIVE.match(text)
    if m:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(**{_UNIT[m.group(2).lower()]: int(m.group(1))})
    # Only ISO forms here (parse_datetime also reads RFC 822 dates, which a user would not type).
    parsed = parse_datetime(text, end_of_period=end) if re.match(r"^\d{4}-\d{2}-\d{2}", text) else None
    if parsed is None:
        raise ConfigError(f"not a date: {value!r}; use {DATE_FORMS}", reason="bad_date")
    return parsed


@dataclass(frozen=True)
class Selector:
    """Exactly one way of choosing what to re-ingest (validated)."""

    source: str | None = None
    url: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    window_on: str = "first_seen"
    failed: bool = False
    all: bool = False

    @classmethod
    def of(
        cls, *, source: str | None, url: str | None, since: str | None, until: str | None, window_on: str, failed: bool, all: bool  # noqa: A002
    ) -> "Selector":
        """Validate flow parameters into a Selector; a ConfigError (not retryable) names the problem."""
        given = [name for name, v in (("source", source), ("url", url), ("since/until", since or until), ("failed", failed), ("all", all)) if v]
        if len(given) != 1:
            raise ConfigError(
                "give exactly one selector: source, url, since/until, failed or all" + (f" (got {', '.join(given)})" if given else ""),
                reason="bad_selector",
            )
        if window_on not in WINDOW_ON:
            raise ConfigError(f"window_on must be one of {', '.join(WINDOW_ON)}, not {window_on!r}", reason="bad_selector")
        now = datetime.now(timezone.utc)
        lo = parse_when(since, now=now) if since else None
        hi = parse_when(until, end=True, now=now) if until else None
        if lo is not None and hi is not None and hi <= lo:
            raise ConfigError(f"empty time window: until ({until}) is not after since ({since})", reason="bad_selector")
        return cls(source=source, url=url, since=lo, until=hi, window_on=window_on, failed=bool(failed), all=bool(all))

    def describe(self) -> str:
        """Human wording of the selection, e.g. "source 'bbc'"."""
        if self.source:
            return f"source {self.source!r}"
        if self.url:
            return f"URLs matching {self.url!r}"
        if self.since or self.until:
            what = "first seen" if self.window_on == "first_seen" else "published"
            lo = self.since.isoformat() if self.since else "the beginning"
            hi = self.until.isoformat() if self.until else "now"
            return f"articles {what} from {lo} until {hi}"
        if self.failed:
            return "failed URLs"
        return "all articles"

    def select(self, con: Any) -> list[Any]:
        """Run the matching selection query (warehouse.reingest) on a read-only connection."""
        from warehouse import reingest as selection

        if self.source:
            return selection.by_source(con, self.source)
        if self.url:
            return selection.by_url(con, self.url)
        if self.since or self.until:
            return selection.by_window(con, self.since, self.until, self.window_on)
        if self.failed:
            return selection.failed(con)
        return selection.everything(con)


def check_mode(mode: str) -> None:
    """ConfigError unless `mode` is refetch or reprocess."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}", reason="bad_mode")


def check_reingest_source(settings: Settings, name: str, targets: Sequence[Any]) -> None:
    """A reingest source must be configured in sources.toml or have articles in the warehouse (ad-hoc sources)."""
    if targets:
        return
    config = load_sources(settings.sources_path) if settings.sources_path.exists() else SourcesConfig()
    config.get(name)  # ConfigError "unknown source ...; known sources: ..." when not configured either


def selection_counts(targets: Sequence[Any], mode: str) -> dict[str, int]:
    """What a selection touches: distinct articles, page URLs (not seeds), seeds, and pages that cannot be re-processed."""
    pages = [t for t in targets if not t.is_seed]
    return {
        "articles": len({t.article_id for t in targets if t.article_id}),
        "urls": len(pages),
        "seeds": sum(1 for t in targets if t.is_seed),
        # reprocess needs a stored body: a URL that never returned one (e.g. a 500) is skipped.
        "no_stored_page": sum(1 for t in pages if not t.has_body) if mode == "reprocess" else 0,
    }
