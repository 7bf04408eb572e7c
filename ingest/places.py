"""Country names: every common written form of a country resolves to one canonical name.

"US", "U.S.", "USA", "United States", "United States of America" and (as a place) "America" are one
entity, as are "UK", "Britain", "Great Britain" and "United Kingdom". The reference list is pycountry
(ISO 3166-1: name, common name, official name of 249 countries, kept up to date by its maintainers);
`SHORT_FORMS` adds the forms news writes that ISO does not list, and `DISPLAY_NAMES` the few display
names where ISO's name is not the one newsrooms use ("Russian Federation" -> "Russia").

Lookups take names already normalised by `ingest.entities.normalise_name` (case-folded, no leading
"the", dots of acronyms removed: "U.S." -> "us").
"""

from __future__ import annotations

import functools
import unicodedata

import pycountry

# Common forms missing from ISO 3166-1 (alpha-2 code -> forms). Two-letter ISO codes are NOT matched in
# general ("IN", "IT", "AT", "TO" are English words once case-folded); only the ones listed here.
SHORT_FORMS: dict[str, tuple[str, ...]] = {
    "US": ("US", "U.S.", "USA", "U.S.A.", "America", "United States of America"),
    "GB": ("UK", "U.K.", "Britain", "Great Britain"),
    "RU": ("Russia",),
    "AE": ("UAE", "U.A.E.", "Emirates"),
    "CD": ("DRC", "DR Congo", "Democratic Republic of Congo"),
    "CG": ("Republic of Congo", "Congo-Brazzaville"),
    "CI": ("Ivory Coast",),
    "CV": ("Cape Verde",),
    "CZ": ("Czech Republic",),
    "MM": ("Burma",),
    "MK": ("Macedonia",),
    "NL": ("Holland",),
    "PS": ("Palestine", "Palestinian territories"),
    "SZ": ("Swaziland",),
    "TL": ("East Timor",),
    "TR": ("Turkey",),
    "VA": ("Vatican", "Vatican City"),
}
# Display names where ISO's name is not the newsroom's (else common_name, else name).
DISPLAY_NAMES: dict[str, str] = {"RU": "Russia", "US": "United States", "GB": "United Kingdom", "TR": "Turkey"}
# Forms that name a country only when the model tagged them as a GPE ("America" as LOC is the continent).
GPE_ONLY_FORMS = frozenset({"america"})


def _fold(norm: str) -> str:
    """Accent-free form ("türkiye" -> "turkiye", "côte d'ivoire" -> "cote d'ivoire")."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", norm) if not unicodedata.combining(ch))


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    """Normalised form -> alpha-2 code, for every ISO name and every SHORT_FORMS entry."""
    from ingest.entities import normalise_name  # entities imports this module

    table: dict[str, str] = {}
    for c in pycountry.countries:
        for attr in ("name", "common_name", "official_name"):
            value = getattr(c, attr, None)
            if value:
                table.setdefault(_fold(normalise_name(value)), c.alpha_2)
    for code, forms in SHORT_FORMS.items():
        for form in forms:
            table[_fold(normalise_name(form))] = code
    return table


def display_name(code: str) -> str:
    """Display name of a country by alpha-2 code ("GB" -> "United Kingdom")."""
    if code in DISPLAY_NAMES:
        return DISPLAY_NAMES[code]
    c = pycountry.countries.get(alpha_2=code)
    return getattr(c, "common_name", None) or c.name


def canonical_country(norm: str, label: str = "GPE") -> str | None:
    """Display name of the country that normalised name `norm` refers to, or None.

    `label` is the entity type the mention was given: GPE_ONLY_FORMS count only as GPE.
    """
    folded = _fold(norm)
    if folded in GPE_ONLY_FORMS and label != "GPE":
        return None
    code = _table().get(folded)
    return display_name(code) if code else None
