"""URL canonicalisation: tracking, AMP and cosmetic variants of one article URL collapse to one form."""

from __future__ import annotations

import pytest

from ingest.canonical import canonicalize

BASE = "https://example.com/world/2023/03/01/blinken-g20"


@pytest.mark.parametrize(
    "variant",
    [
        BASE,
        BASE + "/",
        "HTTPS://WWW.EXAMPLE.COM/world/2023/03/01/blinken-g20",
        "https://example.com:443/world/2023/03/01/blinken-g20",
        BASE + "#comments",
        BASE + "?utm_source=twitter&utm_medium=social&utm_campaign=g20",
        BASE + "?fbclid=IwAR0abc&gclid=xyz",
        BASE + "?mc_cid=123&mc_eid=456",
        BASE + "/amp",
        BASE + "/amp/",
        BASE + "?amp",
        BASE + "?amp=1",
        "https://amp.example.com/world/2023/03/01/blinken-g20",
        "https://www.example.com/world/2023/03/01/blinken-g20/?utm_source=rss#top",
    ],
)
def test_variants_collapse(variant: str) -> None:
    assert canonicalize(variant) == BASE


def test_amp_html_suffix() -> None:
    assert canonicalize("https://news.example.org/story-123.amp.html") == "https://news.example.org/story-123.html"
    assert canonicalize("https://amp.news.example.org/a/amp/story.html") == "https://news.example.org/a/story.html"


def test_http_default_port_and_scheme_case() -> None:
    assert canonicalize("HTTP://Example.COM:80/A/b/") == "http://example.com/A/b"


def test_meaningful_query_kept_sorted() -> None:
    assert canonicalize("https://example.com/article?p=2&id=55&utm_term=x") == "https://example.com/article?id=55&p=2"


def test_non_default_port_and_path_case_kept() -> None:
    assert canonicalize("https://example.com:8443/News/Story") == "https://example.com:8443/News/Story"


def test_amp_lookalikes_untouched() -> None:
    assert canonicalize("https://example.com/amplifier/review") == "https://example.com/amplifier/review"
    assert canonicalize("https://example.com/camp/news") == "https://example.com/camp/news"


def test_root_keeps_single_slash() -> None:
    assert canonicalize("https://www.example.com") == "https://example.com/"
    assert canonicalize("https://www.example.com/?utm_source=x") == "https://example.com/"


@pytest.mark.parametrize("url", ["seed://000_7f41d666b0ea1f1a.txt", "file:///tmp/Page.HTML#x", "mailto:Desk@Example.com"])
def test_non_http_schemes_pass_through(url: str) -> None:
    assert canonicalize(url) == url


def test_idempotent() -> None:
    once = canonicalize("https://www.Example.com/a/amp/?b=2&a=1&utm_source=x#f")
    assert canonicalize(once) == once
