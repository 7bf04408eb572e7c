"""Residue: page furniture that survives extraction (share bars, comment forms, newsletter and cookie
boxes, related-links lists, a repeated title), removed line by line from extracted text and seed files.
"""

from __future__ import annotations

import re
import unicodedata

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
