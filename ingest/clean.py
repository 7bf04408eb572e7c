"""Clean stage: decode a fetched page, extract the article with trafilatura, strip residue, build an Article."""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit

import charset_normalizer
import trafilatura
from lxml.html import HtmlElement
from tld import get_fld
from trafilatura.utils import load_html

from ingest.canonical import canonicalize

from ingest.errors import TerminalError
from ingest.models import Article, FetchResult, article_id_for
from ingest.settings import CleanSettings


EXTRACTOR_NAME = "trafilatura"
# Bump the suffix whenever decoding, extraction options or clean_text rules change: re-processing
# compares it to decide whether stored output may differ from what this code would produce now.
EXTRACTOR_VERSION = f"{trafilatura.__version__}+newsflow.2"

# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Labels browsers decode with a superset codec (WHATWG Encoding Standard); pages rely on that,
# e.g. "iso-8859-1" pages routinely contain cp1252 curly quotes in 0x80-0x9F.
_LABEL_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "big5": "big5hkscs",
    "utf8": "utf-8",
    "unicode": "utf-8",  # a common mislabel; real UTF-16 pages carry a BOM
}
_CT_CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:\-]+)", re.I)
_META_CHARSET_RE = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:\-]+)", re.I)
_XML_DECL_RE = re.compile(rb"^\s*<\?xml[^>]+encoding\s*=\s*[\"']([\w.:\-]+)", re.I)
_XML_DECL_STR_RE = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml", "text/plain")


def _codec_for(label: str | None) -> str | None:
    """Python codec name for a charset label, or None when unknown (so a bogus label is skipped)."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _LABEL_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _strict(body: bytes, codec: str | None) -> str | None:
    """Decode strictly: a wrong declaration must not silently produce mojibake."""
    if codec is None:
        return None
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _looks_binary(text: str) -> bool:
    """True when decoded text is mostly control characters, i.e. not a markup/text document."""
    sample = text[:4096]
    if not sample:
        return False
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f")
    return "\x00" in sample or controls / len(sample) > 0.05


def decode_body(body: bytes, content_type: str | None = None) -> str:
    """Decode page bytes: BOM, Content-Type charset, <meta>/XML declaration, UTF-8, then detection."""
    if not body:
        return ""
    # A BOM is unambiguous and wins over any label (as in browsers); otherwise labels come first.
    for bom, codec in _BOMS:
        if body.startswith(bom):
            text = _strict(body, codec)
            if text is not None and not _looks_binary(text):
                return text.lstrip("\ufeff")
    # NUL bytes never occur in 8-bit or UTF-8 text; without a UTF-16/32 BOM this is binary.
    if b"\x00" in body[:4096]:
        raise TerminalError("body contains NUL bytes", reason="not_html")
    head = body[:4096]
    candidates: list[str | None] = []
    if content_type:
        m = _CT_CHARSET_RE.search(content_type)
        candidates.append(_codec_for(m.group(1)) if m else None)
    for rx in (_META_CHARSET_RE, _XML_DECL_RE):
        m = rx.search(head)
        candidates.append(_codec_for(m.group(1).decode("ascii", "ignore")) if m else None)
    # Valid UTF-8 is almost never accidental, and detectors are unreliable on short pages.
    candidates.append("utf-8")
    for codec in candidates:
        text = _strict(body, codec)
        if text is not None:
            if _looks_binary(text):
                raise TerminalError("decoded body is mostly control characters", reason="not_html")
            return text
    encoding = _detect_encoding(body)
    text = _strict(body, _codec_for(encoding))
    if text is None or _looks_binary(text):
        raise TerminalError(f"no character encoding decodes the body (guess: {encoding})", reason="not_html")
    return text


def _detect_encoding(body: bytes) -> str | None:
    """charset_normalizer's guess, preferring windows-1252 among equally plausible single-byte codecs."""
    matches = [m for m in charset_normalizer.from_bytes(body) if m.encoding]
    if not matches:
        return None
    least_chaos = min(m.chaos for m in matches)
    tied = [m.encoding for m in matches if m.chaos <= least_chaos + 0.01]
    # Mostly-ASCII Western text (é, £ only) fits cp1250/cp1252/cp775 alike and the detector picks
    # arbitrarily (£ becomes Ł); windows-1252 is what undeclared Western pages use (and browsers assume).
    return "cp1252" if "cp1252" in tied else tied[0]


# ---------------------------------------------------------------------------------------------
# Language detection (py3langid is not installed: stop-word profiles from jusText + script ranges)
# ---------------------------------------------------------------------------------------------

# jusText (a trafilatura dependency) ships Wikipedia-derived stop-word lists; map the ones we use to ISO 639-1.
# Left out: Finnish, Estonian and Georgian, whose lists (5-7k words) are polluted with English and
# content words ("cup", "green", names) and outscore English on recipe lists and sports tables.
_JUSTEXT_LANGS = {
    "Afrikaans": "af", "Albanian": "sq", "Arabic": "ar", "Armenian": "hy", "Azerbaijani": "az",
    "Basque": "eu", "Belarusian": "be", "Bosnian": "bs", "Bulgarian": "bg", "Catalan": "ca",
    "Croatian": "hr", "Czech": "cs", "Danish": "da", "Dutch": "nl", "English": "en",
    "French": "fr", "Galician": "gl", "German": "de", "Greek": "el",
    "Hebrew": "he", "Hindi": "hi", "Hungarian": "hu", "Icelandic": "is", "Indonesian": "id",
    "Irish": "ga", "Italian": "it", "Kazakh": "kk", "Latvian": "lv", "Lithuanian": "lt",
    "Macedonian": "mk", "Malay": "ms", "Norwegian_Bokmal": "nb", "Norwegian_Nynorsk": "nn",
    "Persian": "fa", "Polish": "pl", "Portuguese": "pt", "Romanian": "ro", "Russian": "ru",
    "Serbian": "sr", "Slovak": "sk", "Slovenian": "sl", "Spanish": "es", "Swahili": "sw",
    "Swedish": "sv", "Tagalog": "tl", "Turkish": "tr", "Ukrainian": "uk", "Urdu": "ur",
    "Vietnamese": "vi", "Welsh": "cy",
}
_WORD_RE = re.compile(r"[^\W\d_]+")
_MIN_WORDS = 8  # fewer words than this: a stop-word ratio is noise, use the page's declared language
_MIN_RATIO = 0.15  # real prose in the winning language scores 0.35-0.6


@lru_cache(maxsize=1)
def _stopword_index() -> dict[str, frozenset[str]]:
    """Word -> languages whose stop-word list contains it (loaded once per process)."""
    import justext  # imported lazily: only needed when text is long enough to profile

    english = {w.lower() for w in justext.get_stoplist("English")}
    index: dict[str, set[str]] = {}
    for name, code in _JUSTEXT_LANGS.items():
        for word in justext.get_stoplist(name):
            word = word.lower()
            # Many lists contain English function words (Wikipedia text quotes English); counting
            # them for other languages would make English prose look foreign.
            if code == "en" or word not in english:
                index.setdefault(word, set()).add(code)
    return {w: frozenset(langs) for w, langs in index.items()}


def _script_language(text: str) -> str | None:
    """Language implied by a writing system without spaces between words (ja, zh, ko, th), if dominant."""
    kana = han = hangul = thai = letters = 0
    for ch in text[:5000]:
        o = ord(ch)
        if 0x3040 <= o <= 0x30FF:
            kana += 1
        elif 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF:
            han += 1
        elif 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF:
            hangul += 1
        elif 0x0E00 <= o <= 0x0E7F:
            thai += 1
        elif ch.isalpha():
            letters += 1
    total = kana + han + hangul + thai + letters
    if not total:
        return None
    if (kana + han) / total > 0.3:
        # Japanese always mixes kana into kanji; Chinese has none.
        return "ja" if kana > 0.05 * (kana + han) else "zh"
    if hangul / total > 0.3:
        return "ko"
    if thai / total > 0.3:
        return "th"
    return None


def _primary_subtag(lang: str | None) -> str | None:
    """'en-GB' / 'en_US' / 'EN' -> 'en'; None for empty values."""
    if not lang:
        return None
    code = re.split(r"[-_,;\s]", lang.strip().lower(), maxsplit=1)[0]
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


def detect_language(text: str, declared: str | None = None) -> str | None:
    """ISO 639-1 code of `text` from its script or stop words, else the page's declared language."""
    by_script = _script_language(text)
    if by_script:
        return by_script
    words = [w.lower() for w in _WORD_RE.findall(text[:20000])]
    if len(words) >= _MIN_WORDS:
        index = _stopword_index()
        hits: Counter[str] = Counter()
        for w in words:
            hits.update(index.get(w, ()))
        declared_code = _primary_subtag(declared)
        if hits:
            lang, n = hits.most_common(1)[0]
            if n / len(words) >= _MIN_RATIO:
                # Close relatives (id/ms, pt/gl, nb/da) score alike: then trust what the page declares.
                if declared_code and declared_code != lang and hits[declared_code] >= 0.8 * n:
                    return declared_code
                return lang
    return _primary_subtag(declared)


# ---------------------------------------------------------------------------------------------
# Residue removal shared by fetched pages and seed files
# ---------------------------------------------------------------------------------------------

# Whole-line patterns only: a line that *is* page furniture is dropped, a sentence that merely
# mentions cookies or comments is kept. Matched against the stripped line, case-insensitively.
_BOILERPLATE_LINES = [
    # comment forms
    r"leave a (reply|comment)",
    r"(post|add|write|submit) (a |your )?comment",
    r"cancel reply",
    r"(your )?email address will not be published\.?(\s*required fields are marked\s*\*?)?(\s*share)?",
    r"required fields are marked\s*\*?(\s*share)?",
    r"save my name,? email,? and website in this browser for the next time i comment\.?",
    r"notify me of (follow-up comments|new posts|new comments)( by email)?\.?",
    r"(comment|name|email|website)\s*\*?",
    r"(\d+\s+)?comments?(\s*\(\d+\))?",
    r"no comments( yet)?\.?",
    r"(view|show|load|read|see) (all |more )?(\d+ )?comments",
    r"(be the first to comment|join the (conversation|discussion))\.?",
    # share bars
    r"share( this( article| story| post| page)?)?( on| via)?:?",
    r"(share|post) (on|to|via) (facebook|twitter|x|linkedin|whatsapp|reddit|email|telegram|pinterest)",
    r"(facebook|twitter|linkedin|whatsapp|reddit|telegram|pinterest|email|print|tweet|copy link|copy url)",
    r"(facebook|twitter|linkedin|whatsapp|email|print|share)([\s|/·•,]+(facebook|twitter|x|linkedin|whatsapp|email|print|share|reddit))+",
    # related / promo boxes
    r"(related|recommended|more|popular|trending|latest)( articles| stories| posts| news| reading| content| for you)?:?",
    r"(read|see) (more|also|next)(:.*)?",
    r"you (may|might) (also )?(like|be interested in|enjoy):?",
    r"most (read|popular|viewed|shared)",
    r"advertisement|sponsored( content)?|\[?ad\]?",
    # newsletter boxes
    r"(sign up|subscribe)( now| today)?( (to|for) (our|the)( [\w'’-]+){0,4} newsletters?)?[.!]?",
    r"newsletter( sign[- ]?up)?",
    r"get the latest( news| headlines| stories)?( delivered)? (to|in) your inbox[.!]?",
    r"enter your email( address)?",
    # cookie banners
    r"(we|this (web)?site) uses? cookies\b.{0,300}",
    r"by (continuing|using) (to (use|browse) )?(this|our) (web)?site.{0,200}cookies.{0,200}",
    r"(accept|reject|decline|allow)( all)?( cookies)?|cookie (settings|preferences|policy)|manage (cookies|preferences)|got it!?",
]
_BOILERPLATE_RE = re.compile(r"^(?:" + "|".join(_BOILERPLATE_LINES) + r")$", re.I)
# "#Antony #Blinken #G20": a line made only of hashtags (two or more, or one with letters).
_HASHTAG_LINE_RE = re.compile(r"^(#[^\W_][\w-]*)([\s,]+#[^\W_][\w-]*)+$|^#[^\W\d_][\w-]*$")
_RELATED_HEAD_RE = re.compile(
    r"^(related|recommended|more|popular|trending|latest)( articles| stories| posts| news| reading| content| for you)?:?$"
    r"|^you (may|might) (also )?(like|be interested in|enjoy):?$|^most (read|popular|viewed|shared)$",
    re.I,
)
_SENTENCE_END_RE = re.compile(r"[.!?…:;\"'”’»)]$")
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")


def _norm_line(line: str) -> str:
    """NFC, no invisible characters, single spaces: the form lines are compared and stored in."""
    line = unicodedata.normalize("NFC", line)
    line = _INVISIBLE_RE.sub("", line)
    return _SPACES_RE.sub(" ", line).strip()


def _title_key(line: str) -> str:
    """Comparison key for title lines: case, quotes and punctuation differences do not matter."""
    return " ".join(re.findall(r"\w+", line.casefold()))


def is_residue_line(line: str) -> bool:
    """True when a whole (normalised) line is page furniture: share bar, comment form, hashtags, banners."""
    return bool(_BOILERPLATE_RE.match(line) or _HASHTAG_LINE_RE.match(line))


def split_paragraphs(text: str) -> list[str]:
    """Non-empty normalised lines of `text`: one paragraph per line, as trafilatura and seed files write them."""
    return [ln for ln in (_norm_line(line) for line in text.splitlines()) if ln]


def same_title(line: str, title: str | None) -> bool:
    """True when `line` is the title again (ignoring case, quotes and punctuation)."""
    return bool(title) and _title_key(line) == _title_key(title or "")


def clean_text(text: str, title: str | None = None) -> str:
    """Remove page residue (repeated title, share/comment/newsletter/related lines, hashtags); paragraphs joined by blank lines."""
    kept: list[str] = []
    in_related_box = False
    for ln in split_paragraphs(text):
        if same_title(ln, title):
            continue
        if _RELATED_HEAD_RE.match(ln):
            # The headline links listed under a "Related articles" heading go with it, up to the
            # first line that reads like prose (ends like a sentence or is long).
            in_related_box = True
            continue
        if in_related_box:
            if len(ln) <= 150 and not _SENTENCE_END_RE.search(ln):
                continue
            in_related_box = False
        if is_residue_line(ln):
            continue
        kept.append(ln)
    return "\n\n".join(kept)


# ---------------------------------------------------------------------------------------------
# Canonical URL
# ---------------------------------------------------------------------------------------------


def _registered_domain(url: str) -> str | None:
    """Registered domain (public-suffix aware: news.bbc.co.uk -> bbc.co.uk); the bare host for IPs/localhost."""
    fld = get_fld(url, fail_silently=True)
    if fld:
        return fld.lower()
    host = urlsplit(url).hostname
    return host.lower() if host else None


def canonical_url_of(page: FetchResult, html_canonical: str | None) -> str:
    """The article's canonical URL: the page's rel=canonical if on the same registered domain, else the fetched URL; normalised."""
    page_url = page.final_url or page.url
    url = page_url
    if html_canonical and html_canonical.strip():
        candidate = urljoin(page_url, html_canonical.strip())
        # A canonical on another site (syndicated copy -> original) is ignored: the copy keeps its own
        # URL so dedup can link it to the original instead of silently merging two sources.
        if urlsplit(candidate).scheme in ("http", "https") and _registered_domain(candidate) == _registered_domain(page_url):
            url = candidate
    return canonicalize(url)


# ---------------------------------------------------------------------------------------------
# The clean stage
# ---------------------------------------------------------------------------------------------

# Only unambiguous separators: commas may sit inside one name ("Smith, John"), and other languages'
# conjunctions ("y", "e") also occur inside names ("Ortega y Gasset").
_AUTHOR_SPLIT_RE = re.compile(r"\s*(?:;|\||\s&\s|\band\b)\s*", re.I)


def _split_authors(author: str | None) -> list[str]:
    """Split trafilatura's author string ("A; B and C") into distinct names, order kept."""
    if not author:
        return []
    names: list[str] = []
    for part in _AUTHOR_SPLIT_RE.split(author):
        name = re.sub(r"^(by|von|par|por|di)\s+", "", part.strip(" ,"), flags=re.I).strip()
        if name and name.casefold() not in {n.casefold() for n in names}:
            names.append(name)
    return names


_PUBLISHED_XPATH = (
    '//meta[@property="article:published_time" or @name="article:published_time" or @itemprop="datePublished"'
    ' or @name="pubdate" or @name="publishdate"]/@content'
    ' | //time[@itemprop="datePublished"]/@datetime'
)
_JSONLD_PUBLISHED = re.compile(r'"datePublished"\s*:\s*"([^"]{10,40})"')


def _declared_published(tree: Any) -> list[datetime]:
    """Publication timestamps the page declares (meta tags, microdata, JSON-LD), with their time of day."""
    values = [str(v) for v in tree.xpath(_PUBLISHED_XPATH)]
    for script in tree.xpath('//script[@type="application/ld+json"]/text()'):
        values.extend(_JSONLD_PUBLISHED.findall(str(script)))
    out = []
    for v in values:
        dt = _parse_date(v)
        if dt is not None:
            out.append(dt)
    return out


def _precise_date(found: datetime | None, declared: list[datetime]) -> datetime | None:
    """htmldate's date, with the time of day from a declared timestamp of the same day when there is one.

    htmldate returns dates only (midnight); the time matters for ordering same-day stories, e.g. an
    original and its syndicated copy.
    """
    if found is None:
        return declared[0] if declared else None
    for dt in declared:
        if dt.date() == found.date() or abs(dt - found) <= timedelta(hours=14):
            return dt
    return found


def _parse_date(value: str | None) -> datetime | None:
    """htmldate output ('2023-03-01T10:20:00+0530' or '2023-03-01') -> aware UTC datetime (naive = UTC)."""
    if not value:
        return None
    dt: datetime | None = None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            dt = datetime.strptime(value.strip(), fmt)
            break
        except ValueError:
            continue
    if dt is None:
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _html_canonical(tree: HtmlElement) -> str | None:
    """href of the first <link rel="canonical"> (rel may hold several tokens)."""
    for link in tree.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        if "canonical" in rel and link.get("href"):
            return link.get("href")
    return None


def _declared_language(tree: HtmlElement) -> str | None:
    """Language the page declares: <html lang>, else content-language / og:locale meta."""
    root = tree.getroottree().getroot()
    lang = root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    if lang:
        return lang
    for meta in tree.iter("meta"):
        key = (meta.get("http-equiv") or meta.get("property") or meta.get("name") or "").lower()
        if key in ("content-language", "og:locale", "language") and meta.get("content"):
            return meta.get("content")
    return None


def _language_allowed(lang: str | None, settings: CleanSettings) -> bool:
    """Unknown language is let through (we cannot claim it is unsupported); '*' allows all."""
    return lang is None or "*" in settings.languages or lang in settings.languages


def clean(page: FetchResult, settings: CleanSettings) -> Article:
    """Turn a fetched HTML page into an Article, or raise TerminalError (not_html, no_text, unsupported_language)."""
    page_url = page.final_url or page.url
    if not page.body:
        raise TerminalError(f"empty body: {page_url}", reason="no_text")
    mime = (page.content_type or "").split(";")[0].strip().lower()
    if mime and mime not in _HTML_TYPES:
        raise TerminalError(f"content type {mime!r} is not HTML: {page_url}", reason="not_html")
    html = decode_body(page.body, page.content_type)
    # lxml refuses str input carrying an XML encoding declaration (and the bytes fallback would
    # re-apply the declared charset to our already-decoded text), so drop the declaration.
    html = _XML_DECL_STR_RE.sub("", html, count=1)
    tree = load_html(html)
    if tree is None:
        raise TerminalError(f"not parseable as HTML: {page_url}", reason="not_html")
    # Read these before extraction: trafilatura prunes the tree it is given.
    html_canonical = _html_canonical(tree)
    declared_lang = _declared_language(tree)
    declared_published = _declared_published(tree)

    doc = trafilatura.bare_extraction(
        tree,
        url=page_url,
        with_metadata=True,
        include_comments=False,
        # favor_precision drops more boilerplate; on the benchmark it also raises F1 (see benchmarks/).
        favor_precision=settings.favor_precision,
        include_tables=settings.include_tables,
        include_images=False,
        include_links=False,
        date_extraction_params={
            "extensive_search": True,
            "original_date": True,
            "outputformat": "%Y-%m-%dT%H:%M:%S%z",
        },
    )
    if doc is None:
        raise TerminalError(f"trafilatura found no article: {page_url}", reason="no_text")
    title = (doc.title or "").strip() or None
    text = clean_text(doc.text or "", title)
    if not text or len(text) < settings.min_text_chars:
        raise TerminalError(
            f"article text too short ({len(text)} < {settings.min_text_chars} chars): {page_url}", reason="no_text"
        )
    language = _primary_subtag(getattr(doc, "language", None)) or detect_language(text, declared_lang)
    if not _language_allowed(language, settings):
        raise TerminalError(f"language {language!r} not in {settings.languages}: {page_url}", reason="unsupported_language")

    url = canonical_url_of(page, html_canonical)
    return Article(
        id=article_id_for(url),
        url=url,
        page_url=page_url,
        source=page.source,
        title=title,
        text=text,
        authors=_split_authors(doc.author),
        published_at=_precise_date(_parse_date(doc.date), declared_published),
        language=language,
        site_name=(doc.sitename or "").strip() or None,
        description=(doc.description or "").strip() or None,
        extractor=EXTRACTOR_NAME,
        extractor_version=EXTRACTOR_VERSION,
        fetched_at=page.fetched_at,
    )
