"""Sources declared as data in sources.toml, validated by pydantic."""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ingest.errors import ConfigError


class SourceKind(str, Enum):
    """How a source lists its articles."""

    rss = "rss"
    atom = "atom"
    sitemap = "sitemap"  # also news sitemaps and sitemap indexes
    urls = "urls"  # a text file, one URL per line
    html = "html"  # a local directory of saved HTML pages
    warc = "warc"  # a local WARC file


# Cron shorthands Prefect's scheduler (croniter) accepts besides five-field expressions.
CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def check_cron(expression: str) -> str:
    """`expression` if it is a cron expression Prefect can schedule, else ValueError saying why.

    Checked with cronsim (already installed with Prefect), so loading sources.toml needs no Prefect.
    """
    from cronsim import CronSim, CronSimError

    text = expression.strip()
    if text.lower() in CRON_ALIASES:
        return text
    try:
        CronSim(text, datetime(2024, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"not a cron expression: {expression!r} ({exc}); want five fields 'minute hour day month weekday', e.g. '0 * * * *' for hourly") from None
    return text


class Schedule(BaseModel):
    """When a source is ingested by `newsflow serve`: a cron expression (UTC) or an interval."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    interval_seconds: int | None = Field(default=None, gt=0)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, v: str | None) -> str | None:
        return check_cron(v) if v is not None else None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Schedule":
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of 'cron' or 'interval_seconds'")
        return self

    @property
    def interval(self) -> timedelta | None:
        """The interval as a timedelta, if this is an interval schedule."""
        return timedelta(seconds=self.interval_seconds) if self.interval_seconds else None


class Source(BaseModel):
    """One configured source of articles."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)
    kind: SourceKind
    # An http(s) URL, or a path (relative paths are resolved against the sources.toml directory).
    location: str
    schedule: Schedule | None = None
    max_items: int | None = Field(default=None, gt=0)
    language: str | None = None
    enabled: bool = True
    # For `html` directories: the site URL the files were saved from (page URL = base_url + relative path).
    base_url: str | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v == "seed":
            raise ValueError("'seed' is reserved for the seed corpus")
        return v

    @property
    def is_remote(self) -> bool:
        """True when the location is an http(s) URL."""
        return self.location.startswith(("http://", "https://"))


class SourcesConfig(BaseModel):
    """The whole sources.toml: sources plus URL-prefix mirrors read from disk."""

    model_config = ConfigDict(extra="forbid")

    sources: list[Source] = Field(default_factory=list)
    # URL prefix -> local directory: fetches under the prefix read saved files instead of the network.
    mirrors: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> "SourcesConfig":
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"duplicate source name {s.name!r}")
            seen.add(s.name)
        return self

    def get(self, name: str) -> Source:
        """The source called `name`, or a ConfigError listing the known names."""
        for s in self.sources:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.sources) or "(none)"
        raise ConfigError(f"unknown source {name!r}; known sources: {known}", reason="unknown_source")


def load_sources(path: Path) -> SourcesConfig:
    """Read and validate sources.toml; relative paths become absolute against its directory."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"sources file not found: {path}", reason="no_sources_file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}", reason="bad_sources_file") from None
    try:
        cfg = SourcesConfig.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            # Show the offending source by name, not just its index, when we can.
            if err["loc"][:1] == ("sources",) and len(err["loc"]) > 1 and isinstance(err["loc"][1], int):
                idx = err["loc"][1]
                raw = data.get("sources", [])
                if idx < len(raw) and isinstance(raw[idx], dict) and "name" in raw[idx]:
                    loc = f"sources[{raw[idx]['name']!r}]" + "".join(f".{p}" for p in err["loc"][2:])
            lines.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
        # One line (the CLI prints errors as one line): every problem, each named by source and field.
        raise ConfigError(f"{path}: invalid sources: " + "; ".join(lines), reason="bad_sources_file") from None
    base = path.resolve().parent
    for s in cfg.sources:
        if not s.is_remote:
            s.location = str((base / s.location).resolve())
    cfg.mirrors = {prefix: str((base / d).resolve()) for prefix, d in cfg.mirrors.items()}
    return cfg
