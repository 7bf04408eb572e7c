"""Checks on the bundled offline demo sites (seeds/demo_site/) and the extra test pages (tests/data/site_extra/).

These pin the properties the demo relies on: trafilatura extracts the article text (and only the article text)
from every English page, the feeds/sitemap parse and point at files that exist in the mirror directories, the
syndicated copy is a near-duplicate of its original while the two same-event G20 stories are not, the French page
is recognisable as non-English and the picture gallery yields no article text.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path
from urllib.robotparser import RobotFileParser

import pytest
import trafilatura
from lxml import html as lxml_html

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "seeds" / "demo_site"
EXTRA = Path(__file__).resolve().parent / "data" / "site_extra"
SEED_G20 = ROOT / "seeds" / "000_7f41d666b0ea1f1a.txt"

SITES = {  # URL prefix -> mirror directory (as in seeds/sources.toml [mirrors])
    "https://www.harbourgazette.example/": DEMO / "harbourgazette",
    "https://northwire.example/": DEMO / "northwire",
}
HG, NW = SITES
HG_DIR, NW_DIR = SITES.values()

HG_G20_BLINKEN = "world/2023/03/02/g20-foreign-ministers-new-delhi.html"
HG_G20_INDIA = "world/2023/03/03/g20-india-host-no-joint-communique.html"
NW_SYNDICATED = "stories/2023-03-02/us-russia-diplomats-brief-talks-new-delhi.html"
NW_FRENCH = "fr/2023/03/04/retraites-greve-7-mars.html"
NW_NO_TEXT = "galleries/2023/02/27/storm-ilse-in-pictures.html"

HG_ARTICLES = sorted(p.relative_to(HG_DIR).as_posix() for p in HG_DIR.rglob("*.html") if p.name != "index.html")
NW_PAGES = sorted(p.relative_to(NW_DIR).as_posix() for p in NW_DIR.rglob("*.html") if p.name != "index.html")
NW_ENGLISH = [p for p in NW_PAGES if p not in (NW_FRENCH, NW_NO_TEXT)]
ENGLISH_ARTICLES = [(HG, p) for p in HG_ARTICLES] + [(NW, p) for p in NW_ENGLISH]

RESIDUE = ["Advertisement", "Leave a Reply", "Related articles", "Share on", "Subscribe", "cookie"]
NS = {
    "sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
    "news": "http://www.google.com/schemas/sitemap-news/0.9",
    "atom": "http://www.w3.org/2005/Atom",
}


# -- helpers ------------------------------------------------------------------------------------------------


def site_file(url: str) -> Path:
    """The mirror file serving `url` (directories serve index.html), as newsflow's fetcher maps it."""
    for prefix, root in SITES.items():
        if url.startswith(prefix):
            rel = url[len(prefix) :]
            return root / (rel if rel and not rel.endswith("/") else rel + "index.html")
    raise AssertionError(f"{url} is not under a demo site prefix")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@cache
def extract(path: Path, url: str | None = None) -> str:
    return trafilatura.extract(read(path), url=url, include_comments=False, favor_precision=True) or ""


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + k]) for i in range(len(w) - k + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def norm(s: str) -> str:
    return " ".join(s.split())


def first_sentence(path: Path) -> str:
    """First sentence of the first paragraph of the article body (itemprop=articleBody)."""
    tree = lxml_html.fromstring(path.read_bytes())
    paras = tree.xpath('//*[@itemprop="articleBody"]//p')
    assert paras, f"{path} has no articleBody paragraphs"
    return re.split(r"(?<=[.!?”])\s", norm(paras[0].text_content()))[0]


def seed_body(path: Path) -> tuple[str, list[str]]:
    """Title and body paragraphs of a seed text file (hashtag line and 'Leave a Reply' residue dropped)."""
    lines = read(path).splitlines()
    body = []
    for line in lines[1:]:
        s = line.strip()
        if s.startswith("Leave a Reply"):
            break
        if s and not s.startswith("#"):
            body.append(s)
    return lines[0].strip(), body


def rss_items(path: Path) -> list[ET.Element]:
    return ET.parse(path).getroot().findall("./channel/item")


# -- inventory -------------------------------------------------------------------------------------------------


def test_inventory():
    assert len(HG_ARTICLES) == 10
    assert {p.split("/")[0] for p in HG_ARTICLES} == {"world", "business", "tech", "politics"}
    assert len(NW_PAGES) == 5
    assert {HG_G20_BLINKEN, HG_G20_INDIA} <= set(HG_ARTICLES)
    assert {NW_SYNDICATED, NW_FRENCH, NW_NO_TEXT} <= set(NW_PAGES)
    for root in SITES.values():
        assert (root / "index.html").is_file()


# -- extraction of every English article -------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "rel"), ENGLISH_ARTICLES, ids=[r for _, r in ENGLISH_ARTICLES])
def test_english_article_extracts_cleanly(prefix, rel):
    path = SITES[prefix] / rel
    text = extract(path, prefix + rel)
    assert len(text.split()) >= 250, f"only {len(text.split())} words extracted"
    assert first_sentence(path) in norm(text)
    leaked = [r for r in RESIDUE if r.lower() in text.lower()]
    assert not leaked, f"page residue in extracted text: {leaked}"


@pytest.mark.parametrize("rel", HG_ARTICLES)
def test_harbour_gazette_article_metadata(rel):
    path = HG_DIR / rel
    url = HG + rel
    src = read(path)
    tree = lxml_html.fromstring(path.read_bytes())
    assert tree.get("lang") == "en"
    assert re.search(r'<meta charset="utf-8">', src, re.I)
    assert tree.xpath('string(//link[@rel="canonical"]/@href)') == url
    meta = {m.get("property") or m.get("name"): m.get("content") for m in tree.xpath("//head/meta[@content]")}
    for key in ("og:title", "og:site_name", "og:description", "article:published_time", "author"):
        assert meta.get(key), f"missing meta {key}"
    assert meta["og:site_name"] == "The Harbour Gazette"
    assert datetime.fromisoformat(meta["article:published_time"]).utcoffset() is not None
    ld = json.loads(tree.xpath('string(//script[@type="application/ld+json"])'))
    assert ld["@type"] == "NewsArticle"
    assert ld["headline"] == norm(tree.xpath("string(//article//h1)"))
    assert ld["datePublished"] == meta["article:published_time"]
    assert ld["author"][0]["name"] == meta["author"]
    # 350-700 words of body prose
    body = norm(" ".join(tree.xpath('//*[@itemprop="articleBody"]//text()')))
    assert 350 <= len(body.split()) <= 700
    # the residue the extractor has to ignore is really there
    for residue in ("Advertisement", "Leave a Reply", "Related articles", "Share on", "Subscribe", "cookies"):
        assert residue in src
    assert len(tree.xpath('//li[contains(@class, "comment")]')) == 2
    assert len(tree.xpath('//aside[contains(@class, "related")]//a')) == 4


def test_metadata_extracted_by_trafilatura():
    doc = trafilatura.extract_metadata(read(HG_DIR / HG_G20_BLINKEN))
    assert doc.url == HG + HG_G20_BLINKEN
    assert doc.author == "Maya Okonkwo"
    assert doc.date == "2023-03-02"
    assert doc.sitename == "The Harbour Gazette"
    syn = trafilatura.extract_metadata(read(NW_DIR / NW_SYNDICATED))
    assert syn.author == "NorthWire staff"
    assert syn.title != doc.title


# -- special NorthWire pages ----------------------------------------------------------------------------------


def test_no_text_page_yields_no_article():
    text = extract(NW_DIR / NW_NO_TEXT, NW + NW_NO_TEXT)
    assert len(text.split()) < 30


def test_french_page_is_marked_and_detected_as_non_english():
    path = NW_DIR / NW_FRENCH
    tree = lxml_html.fromstring(path.read_bytes())
    assert tree.get("lang") == "fr"
    # trafilatura's own language gate (meta content-language / og:locale) refuses it as English ...
    assert trafilatura.extract(read(path), url=NW + NW_FRENCH, target_language="en") is None
    # ... while the French text itself extracts fine.
    text = extract(path, NW + NW_FRENCH)
    assert len(text.split()) >= 250
    w = words(text)
    assert sum(t in {"le", "la", "les", "des", "du", "et", "une"} for t in w) > 40 * sum(t == "the" for t in w) + 20


# -- feeds, sitemap, robots, front pages -------------------------------------------------------------------------


def test_rss_feed():
    items = rss_items(HG_DIR / "feed.xml")
    assert len(items) == 8
    for item in items:
        link = item.findtext("link")
        assert link.startswith(HG)
        assert item.findtext("guid") == link
        assert item.findtext("title") and item.findtext("description")
        assert parsedate_to_datetime(item.findtext("pubDate")).utcoffset() is not None
        assert site_file(link).is_file(), link


def test_news_sitemap():
    urls = ET.parse(HG_DIR / "sitemap.xml").getroot().findall("sm:url", NS)
    assert len(urls) == 10
    locs = set()
    for u in urls:
        loc = u.findtext("sm:loc", namespaces=NS)
        locs.add(loc)
        assert site_file(loc).is_file(), loc
        assert datetime.fromisoformat(u.findtext("sm:lastmod", namespaces=NS)).utcoffset() is not None
        news = u.find("news:news", NS)
        assert news is not None
        pub = datetime.fromisoformat(news.findtext("news:publication_date", namespaces=NS))
        assert pub.utcoffset() is not None
        assert news.findtext("news:title", namespaces=NS)
    assert locs == {HG + p for p in HG_ARTICLES}
    feed_links = {i.findtext("link") for i in rss_items(HG_DIR / "feed.xml")}
    assert feed_links < locs and len(locs - feed_links) == 2


def test_atom_feed():
    root = ET.parse(NW_DIR / "atom.xml").getroot()
    entries = root.findall("atom:entry", NS)
    assert len(entries) == 5
    hrefs = set()
    for entry in entries:
        href = entry.find("atom:link", NS).get("href")
        hrefs.add(href)
        assert site_file(href).is_file(), href
        assert datetime.fromisoformat(entry.findtext("atom:updated", namespaces=NS)).utcoffset() is not None
    assert hrefs == {NW + p for p in NW_PAGES}


def test_robots_txt():
    rp = RobotFileParser()
    rp.parse(read(HG_DIR / "robots.txt").splitlines())
    assert rp.can_fetch("newsflow", HG + HG_G20_BLINKEN)
    assert rp.can_fetch("newsflow", HG + "feed.xml")
    assert not rp.can_fetch("newsflow", HG + "admin/login.html")


@pytest.mark.parametrize(("prefix", "pages"), [(HG, HG_ARTICLES), (NW, NW_PAGES)], ids=["harbourgazette", "northwire"])
def test_front_page_links_every_article(prefix, pages):
    tree = lxml_html.fromstring(site_file(prefix).read_bytes())
    links = {h.lstrip("/") for h in tree.xpath("//main//a/@href")}
    assert set(pages) <= links


# -- near-duplicates ---------------------------------------------------------------------------------------------


def test_syndicated_copy_is_near_duplicate_of_original():
    original = extract(HG_DIR / HG_G20_BLINKEN, HG + HG_G20_BLINKEN)
    copy = extract(NW_DIR / NW_SYNDICATED, NW + NW_SYNDICATED)
    assert "Originally published by The Harbour Gazette." in copy
    assert jaccard(original, copy) > 0.8
    assert original != copy


def test_same_event_stories_are_not_near_duplicates():
    a = extract(HG_DIR / HG_G20_BLINKEN, HG + HG_G20_BLINKEN)
    b = extract(HG_DIR / HG_G20_INDIA, HG + HG_G20_INDIA)
    assert jaccard(a, b) < 0.1


def test_other_articles_are_pairwise_distinct():
    texts = {p: extract(HG_DIR / p, HG + p) for p in HG_ARTICLES}
    texts.update({p: extract(NW_DIR / p, NW + p) for p in NW_ENGLISH if p != NW_SYNDICATED})
    keys = sorted(texts)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert jaccard(texts[a], texts[b]) < 0.1, (a, b)


# -- tests/data/site_extra -----------------------------------------------------------------------------------------


def test_extra_syndicated_copy_of_seed():
    title, body = seed_body(SEED_G20)
    path = EXTRA / "g20-syndicated-copy.html"
    tree = lxml_html.fromstring(path.read_bytes())
    paras = [norm(p.text_content()) for p in tree.xpath('//*[@itemprop="articleBody"]//p')]
    assert paras[0] == "This article was originally published by Agence Wire."
    assert paras[1:] == body[:-1]  # body verbatim, last paragraph cut
    assert norm(tree.xpath("string(//h1)")) != title
    text = extract(path)
    assert jaccard("\n".join(body), text) > 0.8
    assert not [r for r in RESIDUE if r.lower() in text.lower()]


def test_extra_updated_page():
    original_path, updated_path = HG_DIR / HG_G20_BLINKEN, EXTRA / "g20-blinken-updated.html"
    orig_tree = lxml_html.fromstring(original_path.read_bytes())
    upd_tree = lxml_html.fromstring(updated_path.read_bytes())
    canon = '//link[@rel="canonical"]/@href'
    assert upd_tree.xpath(canon) == orig_tree.xpath(canon)
    body = '//*[@itemprop="articleBody"]//p'
    orig = [norm(p.text_content()) for p in orig_tree.xpath(body)]
    upd = [norm(p.text_content()) for p in upd_tree.xpath(body)]
    assert len(upd) == len(orig) + 1
    assert len(set(orig) - set(upd)) == 1  # one paragraph rewritten
    assert len(set(upd) - set(orig)) == 2  # ... plus one added
    a, b = extract(original_path, HG + HG_G20_BLINKEN), extract(updated_path, HG + HG_G20_BLINKEN)
    assert a != b and 0.5 < jaccard(a, b) < 0.95


def test_extra_new_item_feed():
    old = {i.findtext("link") for i in rss_items(HG_DIR / "feed.xml")}
    items = rss_items(EXTRA / "new-item-feed.xml")
    new = {i.findtext("link") for i in items}
    assert len(items) == 9 and old < new
    (added,) = new - old
    assert site_file(added).is_file()
    assert added.removeprefix(HG) in HG_ARTICLES
