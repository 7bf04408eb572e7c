"""Clean stage: extraction precision, decoding, failures, language, canonical URL."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ingest.canonical import canonical_url_of, canonicalize
from ingest.clean import EXTRACTOR_NAME, EXTRACTOR_VERSION, clean
from ingest.decode import decode_body
from ingest.language import detect_language
from ingest.residue import clean_text
from ingest.errors import TerminalError
from ingest.models import FetchResult, article_id_for
from ingest.settings import CleanSettings

DATA = Path(__file__).parent / "data" / "clean"
PAGE_URL = "https://www.coastalcourier.example.com/news/2024/03/flood-barrier-approved"
FETCHED_AT = datetime(2024, 3, 6, 12, 0, tzinfo=timezone.utc)

BODY_SENTENCES = [
    "Councillors in the harbour city voted on Tuesday evening to build a movable flood barrier",
    "The barrier, expected to cost about 40 million pounds, will consist of two steel gates",
    "“This is the most important decision this council has taken in a generation,” said the council leader",
    "“Without it, the shops and homes along the quay would flood several times a year by the end of the decade.”",
    "Opponents argued that the gates would damage the fishing fleet",
    "Engineers told the meeting that a higher wall would cut the old town off from the water",
    "Construction is due to start next spring and should take three years",
]
NAV_ITEMS = ["Home", "News", "Sport", "Business", "Opinion", "Weather", "Privacy policy"]
RESIDUE = [
    "We use cookies",
    "Accept all",
    "Cookie settings",
    "Share on Facebook",
    "Tweet",
    "Share this article",
    "LinkedIn",
    "#FloodBarrier",
    "Related articles",
    "Storm damage bill tops",
    "Quay closed after record high tide",
    "newsletter",
    "delivered to your inbox",
    "Subscribe",
    "Leave a Reply",
    "Your email address will not be published",
    "Required fields are marked",
    "Post Comment",
    "All rights reserved",
    "By Maria Lopez",
]

RUSSIAN = [
    "Министр иностранных дел России заявил в среду, что Москва не будет обсуждать с Вашингтоном вопросы безопасности.",
    "По его словам, переговоры возможны только после того, как будут учтены интересы всех сторон.",
    "Эксперты считают, что это заявление не изменит позицию западных стран, которые продолжают поддерживать Киев.",
    "Встреча министров иностранных дел стран «большой двадцатки» пройдёт в Нью-Дели в конце недели.",
]
JAPANESE = [
    "アントニー・ブリンケン米国務長官は水曜日、ニューデリーで開かれる主要20カ国・地域の外相会合で、ロシアや中国の外相と会談する予定はないと述べた。",
    "ブリンケン氏は記者団に対し、ロシアが戦争を終わらせることに真剣ではないと批判した。",
    "一方で、会合の全体会議には参加する見通しだと説明した。",
    "中国が提案した和平案については、評価できる点もあるとしながらも、ウクライナの主権回復を重視すべきだと強調した。",
]
FRENCH = [
    "Le secrétaire d'État américain a déclaré mercredi qu'il ne rencontrerait pas les ministres russe et chinois lors du sommet.",
    "Selon lui, Moscou n'est pas sérieux quand il parle de mettre fin à la guerre en Ukraine.",
    "Il a toutefois ajouté qu'il participerait aux sessions de groupe avec eux, comme prévu par les organisateurs.",
    "La réunion des ministres des affaires étrangères du G20 se tient cette semaine à New Delhi, dans un climat tendu.",
]
ENGLISH_LATIN1 = [
    "The café on the quay raised the price of a coffee to £4 this week, blaming the cost of milk and energy.",
    "Its owner, Renée Dupré, said the décor and the staff would stay the same despite the increase.",
    "Customers interviewed on Saturday were divided, with some saying they would now make their own coffee at home.",
    "The town council said it had received no complaints about prices at the café or its neighbours so far.",
]


def page_html(paragraphs: list[str], *, lang: str | None, title: str, head_extra: str = "") -> str:
    """A minimal but realistic article page around `paragraphs`."""
    lang_attr = f' lang="{lang}"' if lang else ""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html{lang_attr}><head>{head_extra}<title>{title}</title></head><body>"
        f'<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li></ul></nav>'
        f"<article><h1>{title}</h1>{body}</article><footer><p>(c) 2024 Example News</p></footer></body></html>"
    )


def fetch(body: bytes, *, content_type: str | None = "text/html", url: str = PAGE_URL, final_url: str | None = None) -> FetchResult:
    """A successful FetchResult carrying `body`."""
    return FetchResult(
        url=url, final_url=final_url, source="test", status=200, content_type=content_type, body=body, fetched_at=FETCHED_AT
    )


@pytest.fixture(scope="module")
def article_page() -> bytes:
    return (DATA / "article.html").read_bytes()


# --- extraction precision and metadata -------------------------------------------------------


def test_article_keeps_every_body_sentence_and_no_residue(article_page: bytes) -> None:
    art = clean(fetch(article_page, content_type="text/html; charset=utf-8"), CleanSettings())
    for sentence in BODY_SENTENCES:
        assert sentence in art.text
    for phrase in RESIDUE:
        assert phrase.lower() not in art.text.lower(), phrase
    paragraphs = art.text.split("\n\n")
    for item in NAV_ITEMS:
        assert item not in paragraphs, item
    # The title is metadata, not a repeated first paragraph.
    assert not art.text.startswith("Harbour city approves")
    assert art.text.count("\n\n") == len(BODY_SENTENCES) - 2  # six paragraphs (one holds two quotes)


def test_article_metadata(article_page: bytes) -> None:
    art = clean(fetch(article_page), CleanSettings())
    assert art.title == "Harbour city approves new flood barrier after decade of debate"
    assert art.authors == ["Maria Lopez", "James O'Neill"]
    assert art.published_at == datetime(2024, 3, 5, 8, 30, tzinfo=timezone.utc)
    assert art.published_at.tzinfo is not None
    assert art.language == "en"
    assert art.site_name == "The Coastal Courier"
    assert art.description and art.description.startswith("Councillors back")
    assert art.extractor == EXTRACTOR_NAME == "trafilatura"
    assert art.extractor_version == EXTRACTOR_VERSION and "+newsflow." in EXTRACTOR_VERSION
    assert art.fetched_at == FETCHED_AT
    assert art.content_hash == ""  # filled by the pipeline (dedup)
    assert art.source == "test"


# --- canonical URL ---------------------------------------------------------------------------


def test_same_domain_canonical_is_used_and_normalised(article_page: bytes) -> None:
    # Fetched via a redirect from the bare domain with a tracking parameter; canonical is on www.
    page = fetch(article_page, url="https://coastalcourier.example.com/p/123", final_url=PAGE_URL + "?utm_medium=social")
    art = clean(page, CleanSettings())
    assert art.url == canonicalize(PAGE_URL)  # utm_source and www. dropped by normalisation
    assert art.id == article_id_for(art.url)
    assert art.page_url == PAGE_URL + "?utm_medium=social"


def test_canonical_on_sibling_subdomain_counts_as_same_site() -> None:
    page = fetch(b"", url="https://amp.paper.co.uk/story/1")
    assert canonical_url_of(page.final_url or page.url, "https://www.paper.co.uk/story/1") == "https://paper.co.uk/story/1"


def test_relative_canonical_is_resolved() -> None:
    page = fetch(b"", url="https://news.example.org/a/b?x=1")
    assert canonical_url_of(page.final_url or page.url, "/a/b") == "https://news.example.org/a/b"


def test_cross_domain_canonical_is_ignored() -> None:
    # A syndicated copy pointing at the original site keeps its own URL so dedup can flag it.
    page = fetch(b"", url="https://www.syndicator.example.net/wire/blinken-g20")
    assert canonical_url_of(page.final_url or page.url, "https://www.original.example.com/news/blinken-g20") == (
        "https://syndicator.example.net/wire/blinken-g20"
    )
    # Same registered-domain check must be public-suffix aware: two different .co.uk sites.
    page = fetch(b"", url="https://www.one.co.uk/story")
    assert canonical_url_of(page.final_url or page.url, "https://www.two.co.uk/story") == "https://one.co.uk/story"


def test_missing_or_bad_canonical_falls_back_to_final_url() -> None:
    page = fetch(b"", url="https://example.com/old", final_url="https://Example.com/new#top")
    assert canonical_url_of(page.final_url or page.url, None) == "https://example.com/new"
    assert canonical_url_of(page.final_url or page.url, "javascript:void(0)") == "https://example.com/new"


def test_cross_domain_canonical_in_page(article_page: bytes) -> None:
    page = fetch(article_page, url="https://mirror.example.org/copy/flood-barrier")
    art = clean(page, CleanSettings())
    assert art.url == "https://mirror.example.org/copy/flood-barrier"


# --- decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", ["meta", "header", "none"])
def test_windows_1251_russian(declared: str) -> None:
    head = '<meta charset="windows-1251">' if declared == "meta" else ""
    html = page_html(RUSSIAN, lang="ru", title="Лавров о переговорах", head_extra=head)
    body = html.encode("windows-1251")
    ctype = "text/html; charset=windows-1251" if declared == "header" else "text/html"
    assert RUSSIAN[0] in decode_body(body, ctype)
    with pytest.raises(TerminalError) as exc:
        clean(fetch(body, content_type=ctype), CleanSettings(languages=["en"]))
    assert exc.value.reason == "unsupported_language"
    assert exc.value.retryable is False
    assert "'ru'" in str(exc.value)
    art = clean(fetch(body, content_type=ctype), CleanSettings(languages=["en", "ru"]))
    assert art.language == "ru"
    assert RUSSIAN[2] in art.text


@pytest.mark.parametrize("declared", ["meta", "header", "none"])
def test_shift_jis_japanese(declared: str) -> None:
    head = '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">' if declared == "meta" else ""
    html = page_html(JAPANESE, lang="ja", title="ブリンケン長官、G20で露中と会談せず", head_extra=head)
    body = html.encode("shift_jis")
    ctype = "text/html; charset=Shift_JIS" if declared == "header" else None
    text = decode_body(body, ctype)
    assert JAPANESE[0] in text and JAPANESE[3] in text
    assert detect_language(text) == "ja"
    with pytest.raises(TerminalError) as exc:
        clean(fetch(body, content_type=ctype), CleanSettings(languages=["en"]))
    assert exc.value.reason == "unsupported_language"
    assert "'ja'" in str(exc.value)
    art = clean(fetch(body, content_type=ctype), CleanSettings())  # every language is kept by default
    assert art.language == "ja" and JAPANESE[3] in art.text


def test_iso_8859_1_without_declaration() -> None:
    html = page_html(ENGLISH_LATIN1, lang=None, title="Café raises coffee price to £4")
    body = html.encode("iso-8859-1")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")  # the test only means something if UTF-8 fails
    art = clean(fetch(body, content_type="text/html"), CleanSettings())
    assert art.language == "en"
    assert ENGLISH_LATIN1[0] in art.text and "Renée Dupré" in art.text
    assert art.title == "Café raises coffee price to £4"


def test_iso_8859_1_label_decodes_cp1252_quotes() -> None:
    # Browsers decode "iso-8859-1" as windows-1252; pages rely on its curly quotes.
    body = "<p>\u201cQuoted\u201d text \u2013 fine</p>".encode("cp1252")
    assert decode_body(body, "text/html; charset=ISO-8859-1") == "<p>\u201cQuoted\u201d text \u2013 fine</p>"


def test_bom_wins_and_wrong_declaration_is_not_trusted() -> None:
    html = "<html><body><p>naïve café</p></body></html>"
    assert decode_body(b"\xef\xbb\xbf" + html.encode("utf-8"), "text/html; charset=windows-1251") == html
    assert decode_body(html.encode("utf-16"), "text/html") == html
    # Declared UTF-8 that is not: falls through to the next candidates instead of producing U+FFFD.
    assert decode_body(html.encode("cp1252"), "text/html; charset=utf-8") == html


def test_binary_labelled_html_is_not_html() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    with pytest.raises(TerminalError) as exc:
        clean(fetch(png, content_type="text/html"), CleanSettings())
    assert exc.value.reason == "not_html"
    assert exc.value.retryable is False
    noise = bytes(random.Random(7).randrange(1, 256) for _ in range(4000))  # no NUL bytes at all
    with pytest.raises(TerminalError) as exc:
        clean(fetch(noise, content_type="text/html; charset=utf-8"), CleanSettings())
    assert exc.value.reason == "not_html"


def test_non_html_content_type_is_not_html(article_page: bytes) -> None:
    with pytest.raises(TerminalError) as exc:
        clean(fetch(article_page, content_type="application/pdf"), CleanSettings())
    assert exc.value.reason == "not_html"


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><head><title>Nothing here</title></head><body></body></html>",
        page_html([], lang="en", title="Home").encode(),
        page_html(["Too short to be an article."], lang="en", title="Stub").encode(),
    ],
)
def test_no_text(body: bytes) -> None:
    with pytest.raises(TerminalError) as exc:
        clean(fetch(body), CleanSettings())
    assert exc.value.reason == "no_text"
    assert exc.value.retryable is False


def test_min_text_chars_is_respected(article_page: bytes) -> None:
    with pytest.raises(TerminalError) as exc:
        clean(fetch(article_page), CleanSettings(min_text_chars=100_000))
    assert exc.value.reason == "no_text"


def test_every_language_is_kept_by_default() -> None:
    body = page_html(FRENCH, lang="fr", title="Blinken au G20").encode("utf-8")
    art = clean(fetch(body), CleanSettings())
    assert art.language == "fr"
    assert FRENCH[1] in art.text


def test_global_language_filter_rejects_with_a_reason() -> None:
    body = page_html(FRENCH, lang="fr", title="Blinken au G20").encode("utf-8")
    with pytest.raises(TerminalError) as exc:
        clean(fetch(body), CleanSettings(languages=["en"]))
    assert exc.value.reason == "unsupported_language"
    assert exc.value.retryable is False
    assert "'fr'" in str(exc.value)


def test_per_source_language_filter() -> None:
    from ingest.language import languages_by_source
    from ingest.sources import Source, SourceKind

    sources = [
        Source(name="test", kind=SourceKind.rss, location="https://a.example/feed", language="en"),
        Source(name="bilingual", kind=SourceKind.rss, location="https://b.example/feed", language="en, FR"),
        Source(name="any", kind=SourceKind.rss, location="https://c.example/feed"),
    ]
    by_source = languages_by_source(sources)
    assert by_source == {"test": ["en"], "bilingual": ["en", "fr"]}
    settings = CleanSettings(source_languages=by_source)
    body = page_html(FRENCH, lang="fr", title="Blinken au G20").encode("utf-8")
    with pytest.raises(TerminalError) as exc:
        clean(fetch(body), settings)  # fetch() pages belong to source "test"
    assert exc.value.reason == "unsupported_language"
    assert "source 'test'" in str(exc.value)
    page = fetch(body).model_copy(update={"source": "bilingual"})
    assert clean(page, settings).language == "fr"
    assert clean(fetch(body).model_copy(update={"source": "any"}), settings).language == "fr"


def test_text_language_beats_wrong_html_lang() -> None:
    # Templates often hard-code lang="en"; the French text decides.
    body = page_html(FRENCH, lang="en", title="Blinken au G20").encode("utf-8")
    with pytest.raises(TerminalError) as exc:
        clean(fetch(body), CleanSettings(languages=["en"]))
    assert exc.value.reason == "unsupported_language"


def test_detect_language() -> None:
    assert detect_language(" ".join(ENGLISH_LATIN1)) == "en"
    assert detect_language(" ".join(FRENCH)) == "fr"
    assert detect_language(" ".join(RUSSIAN)) == "ru"
    assert detect_language(" ".join(JAPANESE)) == "ja"
    assert detect_language("Ok.", declared="en-GB") == "en"  # too short to profile: declared language
    assert detect_language("", declared=None) is None


# --- clean_text rules ------------------------------------------------------------------------


def test_clean_text_drops_residue_lines_only() -> None:
    raw = "\n".join(
        [
            "Big storm hits coast",
            "Share",
            "The storm hit the coast on Monday night.",
            "Share prices of insurers fell by 3% on Tuesday.",
            "The website uses cookies to track readers, the regulator said in its report.",
            "We use cookies to give you the best experience. By continuing you agree to our cookie policy.",
            "Related articles",
            "Storm season starts early",
            "Insurers brace for claims",
            "Officials said repairs would take weeks.",
            "#storm #coast",
            "Leave a Reply",
            "Your email address will not be published. Required fields are marked *",
            "3 comments",
            "comments",
        ]
    )
    out = clean_text(raw, title="Big storm hits coast")
    assert out.split("\n\n") == [
        "The storm hit the coast on Monday night.",
        "Share prices of insurers fell by 3% on Tuesday.",
        "The website uses cookies to track readers, the regulator said in its report.",
        "Officials said repairs would take weeks.",
    ]


def test_clean_text_normalises_whitespace_and_keeps_paragraphs() -> None:
    assert clean_text("  One\u00a0 two\u200b.  \n\n\n Three.\t\n") == "One two.\n\nThree."
    # A lone "#1" style line or a sentence with a hashtag is content, not a hashtag line.
    assert clean_text("Why #MeToo changed hiring, in five charts.") == "Why #MeToo changed hiring, in five charts."


def test_published_at_keeps_the_declared_time_of_day() -> None:
    # htmldate finds the date only; the page's article:published_time gives the time (orders same-day copies).
    html = (Path(__file__).resolve().parent.parent / "seeds/demo_site/northwire/stories/2023-03-02/us-russia-diplomats-brief-talks-new-delhi.html").read_bytes()
    art = clean(fetch(html, url="https://northwire.example/stories/x.html"), CleanSettings())
    assert art.published_at == datetime(2023, 3, 2, 18, 20, tzinfo=timezone.utc)


def test_marker_followed_by_long_paragraphs_cuts_nothing() -> None:
    """A live blog: "Latest" above time stamps, update headlines and long paragraphs. No rule may eat the updates."""
    story = [
        f"Paragraph {i} of the story: councillors met on Tuesday to discuss the flood barrier, and residents described "
        "how the water reached their doors during the storm while engineers explained the options." for i in range(6)
    ]
    updates = [
        f"Update {i}: engineers confirmed later in the afternoon that the barrier would need a second set of gates, "
        "adding months to the schedule and several million pounds to the cost, officials said." for i in range(12)
    ]
    blog = "".join(f"<p>{p}</p>" for p in story) + "<h2>Latest</h2>" + "".join(
        f"<p>1{i % 10}:05 GMT</p><h3>Barrier update number {i}</h3><p>{u}</p>" for i, u in enumerate(updates)
    )
    html = f"<html lang='en'><head><title>Flood barrier live</title></head><body><article><h1>Flood barrier live</h1>{blog}</article></body></html>"
    art = clean(fetch(html.encode()), CleanSettings())
    assert all(p in art.text for p in story + updates)
    assert all(f"Barrier update number {i}" in art.text for i in range(12))


def test_related_box_is_cut_only_when_residue_follows() -> None:
    from ingest.residue import clean_text_explained

    links = ["Storm season starts early", "Insurers brace for claims", "Quay closed after record high tide"]
    prose = "The council will publish the full engineering report next month, and a public consultation will follow in the spring."
    at_end = clean_text_explained("\n".join(["Body text of the story, long enough to be prose here.", "Related articles", *links]))
    assert at_end[0] == "Body text of the story, long enough to be prose here."
    assert [rule for _, rule in at_end[1]] == ["related_box"] * 4
    before_prose = clean_text("\n".join(["Related articles", *links[:1], prose]))
    assert before_prose.split("\n\n") == [links[0], prose]  # only the heading line goes (promo_line)
    assert clean_text("\n".join(["Related articles", *links]), skip=frozenset({"related_box", "promo_line"})).split("\n\n") == [
        "Related articles", *links,
    ]


def test_clean_text_drops_taxonomy_timestamps_shortcodes_and_promos() -> None:
    from ingest.residue import clean_text_explained

    body = [
        "The stock car season opens in Interlagos on Sunday, the organisers said.",
        "Updated at 1:23 p.m. on Tuesday, the timetable still shows thirteen rounds.",  # a sentence: kept
        "Tagged players will miss the first round, officials said.",  # a sentence starting like a tag line: kept
    ]
    raw = "\n".join(
        [
            body[0],
            "Updated at 1:23 p.m.",
            "segunda-feira, 22 de janeiro de 2018 às 0:13",
            body[1],
            "Tags",
            "calendario stock car 2018, stock car brasil, stock car interlagos",
            body[2],
            "[button link=\"http://example.com/submit\" type=\"big\"] Send us YOUR kit review[/button]",
            "Like this story? Share it with a friend!",
            "Tell us what YOU think...",
            "Get the magazine delivered every month. 12 issues for £11.99. Click here for more information.",
            "Related: Possible Water Plumes on Europa: The Discovery in Images",
            "Listen: http://po.st/TP_615",
            "Mike Wall's book about alien life is out now. Follow him on Twitter @michaeldwall.",
            "https://www.example.com/the-article-s-own-reference",  # a bare link can be the article's: kept
        ]
    )
    text, removed = clean_text_explained(raw)
    assert text.split("\n\n") == [*body, "https://www.example.com/the-article-s-own-reference"]
    assert [rule for _, rule in removed] == [
        "timestamp", "timestamp", "taxonomy", "taxonomy", "shortcode", "share_bar", "comment_form", "promo_line",
        "promo_line", "link_line", "share_bar",
    ]


def test_precision_mode_that_drops_the_body_falls_back_to_the_balanced_extraction() -> None:
    """trafilatura's precision mode discards a body held in a container it reads as a share bar; the short result is replaced."""
    para = "<p>" + " ".join(["The council approved the new budget for the harbour district after a long debate on Tuesday evening."] * 3) + "</p>"
    notice = "<header><p>This copy is for your personal, non-commercial use only. To order copies visit reprints.</p></header>"
    body = f"<html><head><title>Budget</title></head><body>{notice}<div class='share'>{para * 5}</div></body></html>".encode()
    art = clean(fetch(body), CleanSettings())
    assert art.text.count("The council approved the new budget") == 15
    # Without the fallback (threshold 0) the page keeps what precision mode found: most of the body is lost.
    short = clean(fetch(body), CleanSettings(precision_fallback_chars=0))
    assert short.text.count("The council approved the new budget") <= 3, short.text
