"""Residue: page furniture that survives extraction (share bars, comment forms, newsletter and cookie
boxes, related-links lists, a repeated title), removed line by line from extracted text and seed files.
"""

from __future__ import annotations

import re
import unicodedata

# Whole-line patterns only: a line that *is* page furniture is dropped, a sentence that merely
# mentions cookies or comments is kept. Matched against the stripped line, case-insensitively.
# One named rule per kind of furniture, so benchmarks/extraction_eval.py can show what each one earns.
_LINE_RULES: dict[str, list[str]] = {
    "comment_form": [
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
        r"(tell us|let us know) what you think[.!…]*",
    ],
    "share_bar": [
        r"share( this( article| story| post| page)?)?( on| via)?:?",
        r"(share|post) (on|to|via) (facebook|twitter|x|linkedin|whatsapp|reddit|email|telegram|pinterest)",
        r"(facebook|twitter|linkedin|whatsapp|reddit|telegram|pinterest|email|print|tweet|copy link|copy url)",
        r"(facebook|twitter|linkedin|whatsapp|email|print|share)([\s|/·•,]+(facebook|twitter|x|linkedin|whatsapp|email|print|share|reddit))+",
        r"(like this (story|article|post)\?\s*)?share (it|this)( (story|article))? with (a|your) friends?[.!]?",
        # an author box or promo line that ends in social handles ("... is out now. Follow him on Twitter @...")
        r".{0,250}\bfollow (us|him|her|me|them) on (twitter|facebook|instagram|x)\b.{0,150}",
    ],
    "promo_line": [
        r"(related|recommended|more|popular|trending|latest)( articles| stories| posts| news| reading| content| for you)?:?",
        r"(read|see) (more|also|next)(:.*)?",
        r"you (may|might) (also )?(like|be interested in|enjoy):?",
        r"most (read|popular|viewed|shared)",
        r"advertisement|sponsored( content)?|\[?ad\]?",
        r"also on [\w-]+(\.[\w-]+)*\.[a-z]{2,}\b.*",  # "Also on rt.com: <headline>"
        r"(related|see also|also read|read also)\s*:\s*[^.!?]{1,150}",  # "Related: <headline>" inside the body
        r".{0,150}\bclick here\b.{0,60}",  # "12 issues for £11.99. Click here for more information."
    ],
    "newsletter_box": [
        r"(sign up|subscribe)( now| today)?( (to|for) (our|the)( [\w'’-]+){0,4} newsletters?)?[.!]?",
        r"newsletter( sign[- ]?up)?",
        r"get the latest( news| headlines| stories)?( delivered)? (to|in) your inbox[.!]?",
        r"enter your email( address)?",
        # a whole paragraph that asks for a newsletter sign-up ("... Sign up for The Water Coolest today to get the
        # free daily newsletter delivered to your inbox daily.")
        r".{0,150}\bsign up (for|to)\b.{0,100}\bnewsletter\b.{0,100}",
    ],
    # "Tags: a, b, c" / "Filed under: ..." lines (a sentence never starts like that and runs without a full stop).
    "taxonomy": [
        r"(tags|tagged( with)?|filed under|categories|topics)\s*:?(\s*[^.!?]{0,300})?",
    ],
    # A stand-alone time stamp: "Updated at 1:23 p.m.", "Published 05/10/2018 14:05".
    "timestamp": [
        r"((last )?updated|published|posted)( on| at)?:?\s*[\w ,.:/+-]{0,40}(\d{1,2}:\d{2}|\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4})[\w ,.:/+()-]{0,30}",
        # any language: a short line with a year and a time of day and no sentence in it ("segunda-feira, 22 de
        # janeiro de 2018 às 0:13", "22. Januar 2018, 14:05 Uhr")
        r"[^.!?]{0,40}\b(19|20)\d\d\b[^.!?]{0,20}\b\d{1,2}[:h]\d{2}\b[^.!?]{0,15}",
    ],
    # A CMS shortcode left in the text: "[button link=...]Send us your review[/button]".
    "shortcode": [
        r"\[(\w+)\b[^\]]*\].*\[/\1\]",
    ],
    # A label and a link, nothing else ("Listen: http://po.st/TP_615"). A bare URL line stays: in the benchmark
    # it was the article's own reference (shop links, a theatre's site) on 5 of 6 pages.
    "link_line": [
        r"[\w][\w ]{0,30}:\s*(https?://|www\.)\S+",
    ],
    "cookie_banner": [
        r"(we|this (web)?site) uses? cookies\b.{0,300}",
        r"by (continuing|using) (to (use|browse) )?(this|our) (web)?site.{0,200}cookies.{0,200}",
        r"(accept|reject|decline|allow)( all)?( cookies)?|cookie (settings|preferences|policy)|manage (cookies|preferences)|got it!?",
    ],
}
_LINE_RULE_RES = {name: re.compile(r"^(?:" + "|".join(pats) + r")$", re.I) for name, pats in _LINE_RULES.items()}
# "Tags" on a line of its own introduces the list on the next line ("stock car 2018, stock car brasil, ...").
_TAXONOMY_HEAD_RE = re.compile(r"^(tags|tagged( with)?|filed under|categories|topics)\s*:?$", re.I)
_TAG_LIST_RE = re.compile(r"^[^.!?]{1,80}(,\s*[^,.!?]{1,80}){2,}$")
# "#Antony #Blinken #G20": a line made only of hashtags (two or more, or one with letters).
_HASHTAG_LINE_RE = re.compile(r"^(#[^\W_][\w-]*)([\s,]+#[^\W_][\w-]*)+$|^#[^\W\d_][\w-]*$")
_RELATED_HEAD_RE = re.compile(
    r"^(related|recommended|more|popular|trending|latest)( articles| stories| posts| news| reading| content| for you)?:?$"
    r"|^you (may|might) (also )?(like|be interested in|enjoy):?$|^most (read|popular|viewed|shared)$",
    re.I,
)
_SENTENCE_END_RE = re.compile(r"[.!?…:;\"'”’»)]$")
# Every rule clean_text applies, by name (what `skip` accepts and the extraction benchmark reports).
RULES = ("repeated_title", "related_box", *_LINE_RULES, "hashtags")
_LINK_MAX_CHARS = 150
# A paragraph this long after a related-links heading means the story goes on (a live blog's updates): no cut.
_PROSE_MIN_CHARS = 100
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


def residue_rule(line: str, skip: frozenset[str] = frozenset()) -> str | None:
    """Name of the line rule a whole (normalised) line falls under (share bar, comment form, hashtags, ...), or None."""
    for name, rx in _LINE_RULE_RES.items():
        if name not in skip and rx.match(line):
            return name
    if "hashtags" not in skip and _HASHTAG_LINE_RE.match(line):
        return "hashtags"
    return None


def is_residue_line(line: str) -> bool:
    """True when a whole (normalised) line is page furniture: share bar, comment form, hashtags, banners."""
    return residue_rule(line) is not None


def _is_link_line(line: str) -> bool:
    """A line that reads like a headline link, not prose: short and without a sentence end."""
    return len(line) <= _LINK_MAX_CHARS and not _SENTENCE_END_RE.search(line)


def _related_box_end(lines: list[str], head: int) -> int | None:
    """Index after the related-links box opened by the heading at `head`, or None when no box follows it.

    The box is the run of headline-like lines after the heading, and it is cut only when what follows it is not
    a long prose paragraph: "Latest" above a live blog's time stamp, update headline and long paragraphs cuts
    nothing, while a "Related articles" list at the end of a story, or before a short line, goes.
    """
    end = head + 1
    while end < len(lines) and _is_link_line(lines[end]):
        end += 1
    if end < len(lines) and len(lines[end]) >= _PROSE_MIN_CHARS and not _is_link_line(lines[end]):
        return None
    return end


def split_paragraphs(text: str) -> list[str]:
    """Non-empty normalised lines of `text`: one paragraph per line, as trafilatura and seed files write them."""
    return [ln for ln in (_norm_line(line) for line in text.splitlines()) if ln]


def same_title(line: str, title: str | None) -> bool:
    """True when `line` is the title again (ignoring case, quotes and punctuation)."""
    return bool(title) and _title_key(line) == _title_key(title or "")


def clean_text_explained(
    text: str, title: str | None = None, skip: frozenset[str] = frozenset()
) -> tuple[str, list[tuple[str, str]]]:
    """clean_text, plus the removed lines with the rule that removed each (rules named in `skip` are not applied)."""
    lines = split_paragraphs(text)
    kept: list[str] = []
    removed: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if "repeated_title" not in skip and same_title(ln, title):
            removed.append((ln, "repeated_title"))
            i += 1
            continue
        if "related_box" not in skip and _RELATED_HEAD_RE.match(ln):
            end = _related_box_end(lines, i)
            if end is not None:
                # The headline links listed under a "Related articles" heading go with it.
                removed.extend((x, "related_box") for x in lines[i:end])
                i = end
                continue
        rule = residue_rule(ln, skip)
        if rule:
            removed.append((ln, rule))
            if rule == "taxonomy" and _TAXONOMY_HEAD_RE.match(ln) and i + 1 < len(lines) and _TAG_LIST_RE.match(lines[i + 1]):
                removed.append((lines[i + 1], rule))
                i += 1
        else:
            kept.append(ln)
        i += 1
    return "\n\n".join(kept), removed


def clean_text(text: str, title: str | None = None, skip: frozenset[str] = frozenset()) -> str:
    """Remove page residue (repeated title, share/comment/newsletter/related lines, hashtags); paragraphs joined by blank lines."""
    return clean_text_explained(text, title, skip)[0]
