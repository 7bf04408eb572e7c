"""Safe XML helpers: entity-free parsing with defusedxml, capped gunzip, namespace-agnostic names."""

from __future__ import annotations

import gzip
import io
import re
import zlib
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from ingest.errors import TerminalError

GZIP_MAGIC = b"\x1f\x8b"
# Decoded size cap for gzip bodies: the sitemap protocol caps an uncompressed sitemap at 50 MB.
MAX_DECODED_BYTES = 50 * 1024 * 1024

# expat can fail on a bad byte *before* reaching the DOCTYPE (e.g. a lying encoding declaration),
# and feedparser then falls back to its loose parser, which handles DTD entities itself; so a
# raw byte scan backs up the parser-based check. These are `<!ENTITY` in the wide encodings a
# parser may auto-detect from a BOM (the ASCII form is matched by _ENTITY_RE below).
_WIDE_ENTITY_MARKERS = tuple("<!ENTITY".encode(enc) for enc in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))
_ENTITY_RE = re.compile(rb"<!ENTITY", re.IGNORECASE)
# The prolog ends at the first element start tag; the rule is feedparser's own (sanitizer.replace_doctype),
# so we scan exactly the region its loose parser takes entity declarations from. Scanning only the
# prolog avoids rejecting a feed whose article text (CDATA) merely mentions "<!ENTITY".
_FIRST_ELEMENT_RE = re.compile(rb"<\w")


def local_name(tag: object) -> str:
    """The tag name without its `{namespace}` prefix ('' for comments and processing instructions)."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def has_entity_declarations(body: bytes) -> bool:
    """True when the document declares DTD entities (internal or external), without expanding any."""
    first = _FIRST_ELEMENT_RE.search(body)
    prolog = body[: first.start()] if first else body
    if _ENTITY_RE.search(prolog) or any(m in body for m in _WIDE_ENTITY_MARKERS):
        return True
    try:
        # DTD declarations precede the root element: stop at the first start tag so this check
        # stays cheap even for large documents. Entity declarations raise before any expansion.
        for _ in DET.iterparse(io.BytesIO(body), events=("start",), forbid_dtd=False, forbid_entities=True, forbid_external=True):
            break
    except DefusedXmlException:
        return True
    except (ParseError, ValueError, LookupError):
        # Not well-formed (or unknown encoding): the caller's own parser decides what that means;
        # the byte scan above already covered entity declarations.
        return False
    return False


def reject_entities(body: bytes, url: str = "") -> None:
    """Raise TerminalError(xml_entities_forbidden) if the XML declares entities (billion laughs, XXE)."""
    if has_entity_declarations(body):
        raise TerminalError(
            f"{url or 'document'}: XML declares DTD entities; refused (entity expansion / external entity attack)",
            reason="xml_entities_forbidden",
        )


def parse_xml(body: bytes, *, url: str = "", malformed_reason: str = "malformed_xml") -> Element:
    """Parse XML with defusedxml (no entities, no external references) into an Element tree."""
    try:
        return DET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise TerminalError(
            f"{url or 'document'}: XML declares DTD entities; refused ({type(e).__name__})",
            reason="xml_entities_forbidden",
        ) from None
    except (ParseError, ValueError, LookupError) as e:
        raise TerminalError(f"{url or 'document'}: not well-formed XML: {e}", reason=malformed_reason) from None


def is_gzip(body: bytes) -> bool:
    """True when the body starts with the gzip magic bytes."""
    return body[:2] == GZIP_MAGIC


def gunzip_capped(body: bytes, *, max_bytes: int = MAX_DECODED_BYTES, url: str = "", malformed_reason: str = "malformed_gzip") -> bytes:
    """Decompress a gzip body, refusing (TerminalError 'too_large') past `max_bytes` decoded bytes."""
    try:
        # read(max_bytes + 1) never holds more than that much decoded data, so a gzip bomb
        # costs at most max_bytes of memory before it is refused.
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as gz:
            data = gz.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise TerminalError(f"{url or 'document'}: corrupt gzip: {e}", reason=malformed_reason) from None
    if len(data) > max_bytes:
        raise TerminalError(
            f"{url or 'document'}: decompressed body exceeds {max_bytes} bytes", reason="too_large"
        )
    return data
