"""Decoding fetched bytes to text, and the one rule for "is this an HTML page" (by media type and by content).

Order of evidence, as in browsers: a BOM, then the Content-Type charset, the <meta> or XML declaration,
valid UTF-8, and only then statistical detection (charset_normalizer).
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

from ingest.errors import TerminalError

# Media types the clean stage extracts from. XML types are included because XHTML is often served
# as application/xml, and text/plain because misconfigured servers label saved pages that way; a
# body that is not markup then fails as no_text. Discovery uses the narrower pair (a feed served as
# XML must not be taken for a page), see PAGE_TYPES.
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
EXTRACTABLE_TYPES = PAGE_TYPES | {"application/xml", "text/xml", "text/plain"}

_HTML_START_RE = re.compile(
    rb"^(?:\s|<\?xml[^>]*>|<!--.*?-->)*<(?:!doctype\s+html|html[\s>/]|head[\s>]|body[\s>])",
    re.IGNORECASE | re.DOTALL,
)


def media_type(content_type: str | None) -> str:
    """'Text/HTML; charset=utf-8' -> 'text/html'; '' when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_html_type(content_type: str | None, *, extractable: bool = False) -> bool:
    """True when a Content-Type names an HTML page (extractable=True: any type the clean stage accepts)."""
    return media_type(content_type) in (EXTRACTABLE_TYPES if extractable else PAGE_TYPES)


def looks_like_html(body: bytes) -> bool:
    """True when the body starts like an HTML page (after a BOM, an XML declaration and comments)."""
    return bool(_HTML_START_RE.match(body.lstrip(b"\xef\xbb\xbf")[:4096]))


def strip_xml_declaration(html: str) -> str:
    """Drop a leading <?xml ...?>: lxml refuses str input that carries an encoding declaration."""
    return _XML_DECL_STR_RE.sub("", html, count=1)


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


# Unicode category Cc (C0, DEL, C1) except tab, newline, carriage return and form feed.
_CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _looks_binary(text: str) -> bool:
    """True when decoded text is mostly control characters, i.e. not a markup/text document."""
    sample = text[:4096]
    if not sample:
        return False
    controls = len(_CONTROL_CHARS.findall(sample))
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
