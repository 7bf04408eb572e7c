"""Language: the page's declared language, detection from the text, and the language filter.

py3langid is not installed: detection uses stop-word profiles from jusText (a trafilatura
dependency) and Unicode script ranges for writing systems without spaces between words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from lxml.html import HtmlElement

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


# Any character of the scripts _script_language counts (kana, CJK ideographs, hangul, Thai).
_SPACELESS_SCRIPT = re.compile("[\u3040-\u30ff\u4e00-\u9fff\u3400-\u4dbf\uac00-\ud7af\u1100-\u11ff\u0e00-\u0e7f]")


def _script_language(text: str) -> str | None:
    """Language implied by a writing system without spaces between words (ja, zh, ko, th), if dominant."""
    sample = text[:5000]
    if not _SPACELESS_SCRIPT.search(sample):
        return None  # the common case, found by one C-level scan instead of a Python loop per character
    kana = han = hangul = thai = letters = 0
    for ch in sample:
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


def primary_subtag(lang: str | None) -> str | None:
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
        declared_code = primary_subtag(declared)
        if hits:
            lang, n = hits.most_common(1)[0]
            if n / len(words) >= _MIN_RATIO:
                # Close relatives (id/ms, pt/gl, nb/da) score alike: then trust what the page declares.
                if declared_code and declared_code != lang and hits[declared_code] >= 0.8 * n:
                    return declared_code
                return lang
    return primary_subtag(declared)


def declared_language(tree: HtmlElement) -> str | None:
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


def language_allowed(lang: str | None, allowed: Iterable[str]) -> bool:
    """True when `allowed` holds '*' or `lang`; an unknown language is let through (we cannot claim it is unsupported)."""
    allowed = {a.strip().lower() for a in allowed}
    return lang is None or "*" in allowed or lang in allowed


def parse_language_list(value: str | Iterable[str] | None) -> list[str]:
    """A language setting as a list of codes: "en", "en, fr", ["en", "fr"] or "*"; [] when unset."""
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip().lower() for p in parts if p and p.strip()]


def languages_by_source(sources: Iterable[object]) -> dict[str, list[str]]:
    """Source name -> accepted languages, for the sources that set `language` (CleanSettings.source_languages)."""
    out: dict[str, list[str]] = {}
    for src in sources:
        langs = parse_language_list(getattr(src, "language", None))
        if langs:
            out[str(getattr(src, "name"))] = langs
    return out
