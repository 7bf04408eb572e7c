"""Country names: common forms resolve to one canonical name and one entity key."""

from __future__ import annotations

import pytest

from ingest.entities import _Raw, normalise_name, resolve_document
from ingest.places import SHORT_FORMS, canonical_country
from ingest.settings import EntitySettings


@pytest.mark.parametrize(
    "written, country",
    [
        ("US", "United States"), ("U.S.", "United States"), ("USA", "United States"), ("the United States", "United States"),
        ("United States of America", "United States"), ("UK", "United Kingdom"), ("U.K.", "United Kingdom"),
        ("Britain", "United Kingdom"), ("Great Britain", "United Kingdom"), ("United Kingdom", "United Kingdom"),
        ("Russia", "Russia"), ("Russian Federation", "Russia"), ("South Korea", "South Korea"),
        ("Korea, Republic of", "South Korea"), ("Türkiye", "Turkey"), ("Turkiye", "Turkey"), ("Ivory Coast", "Côte d'Ivoire"),
        ("Côte d’Ivoire", "Côte d'Ivoire"), ("Viet Nam", "Vietnam"), ("Germany", "Germany"), ("America", "United States"),
    ],
)
def test_common_forms_resolve(written: str, country: str) -> None:
    assert canonical_country(normalise_name(written)) == country


@pytest.mark.parametrize("written", ["Washington", "New Delhi", "Calif.", "IT", "IN", "Europe", "Georgia Tech", "States"])
def test_non_countries_and_iso_codes_do_not_resolve(written: str) -> None:
    assert canonical_country(normalise_name(written)) is None


def test_america_is_a_country_only_as_gpe() -> None:
    assert canonical_country("america", "GPE") == "United States"
    assert canonical_country("america", "LOC") is None


def test_every_short_form_resolves_to_its_code() -> None:
    # The hand-kept list must not contradict itself or ISO (each form names the country it is listed under).
    from ingest.places import _table

    for code, forms in SHORT_FORMS.items():
        for form in forms:
            assert _table()[normalise_name(form)] == code, form


def _raw(text: str, surface: str, label: str, nth: int = 0) -> _Raw:
    start = -1
    for _ in range(nth + 1):
        start = text.index(surface, start + 1)
    norm = normalise_name(surface)
    return _Raw(start, start + len(surface), surface, label, norm, tuple(norm.split()), "")


def test_one_entity_per_country_in_an_article() -> None:
    text = "The United States and the U.S. Treasury. US troops left; America waited. Britain and the UK agreed. Britain."
    raw = [
        _raw(text, "United States", "GPE"), _raw(text, "U.S.", "GPE"), _raw(text, "US", "GPE"),
        _raw(text, "America", "GPE"), _raw(text, "Britain", "LOC"), _raw(text, "UK", "GPE"), _raw(text, "Britain", "GPE", 1),
    ]
    out = resolve_document(raw, EntitySettings())
    keys = {m.surface: (m.entity_key, m.name, m.type) for m in out}
    us = ("GPE:united states", "United States", "GPE")
    uk = ("GPE:united kingdom", "United Kingdom", "GPE")
    assert keys == {"United States": us, "U.S.": us, "US": us, "America": us, "Britain": uk, "UK": uk}
    # Offsets and the written surface are untouched: only the key, name and type are canonical.
    assert all(text[m.start : m.end] == m.surface for m in out)


def test_continent_and_organisations_untouched() -> None:
    text = "America as a continent. Bank of America grew."
    raw = [_raw(text, "America", "LOC"), _raw(text, "Bank of America", "ORG")]
    out = resolve_document(raw, EntitySettings())
    assert {m.entity_key for m in out} == {"LOC:america", "ORG:bank of america"}
