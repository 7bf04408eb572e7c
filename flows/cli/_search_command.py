"""`newsflow search`: ranked full-text search over titles and text (BM25, English stemming; no Prefect)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flows.cli._output import EXIT_OK, json_value, load_settings


def highlight(snippet: str, marks: list[tuple[int, int]], *, ansi: bool) -> str:
    """The snippet with its matched words in bold (terminal) or between ** (pipes, files)."""
    on, off = ("\x1b[1;33m", "\x1b[0m") if ansi else ("**", "**")
    out, last = [], 0
    for start, end in marks:
        out += [snippet[last:start], on, snippet[start:end], off]
        last = end
    out.append(snippet[last:])
    return "".join(out)


def run(args: argparse.Namespace) -> int:
    """Print the articles that best match PHRASE: title, source, date, and a snippet with the matches highlighted."""
    from warehouse import search_sidecar

    since = None
    if args.since:
        from flows.inputs import parse_when  # only with --since: it brings the sources.toml models along

        since = parse_when(args.since)
    settings = load_settings()
    # The FTS5 sidecar (synced from the lake first if the lake moved on); the lake index if it is unusable.
    hits = search_sidecar.search(
        settings, args.phrase, source=args.source, since=since, limit=args.limit, notice=search_sidecar.stderr_notice
    )
    if args.format == "json":
        keys = ["title", "source", "published_at", "first_seen_at", "url", "score", "snippet", "id"]
        print(json.dumps([{k: json_value(h[k]) for k in keys} for h in hits], ensure_ascii=False, indent=1))
        return EXIT_OK
    if not hits:
        print(f"no articles match {args.phrase!r}", file=sys.stderr)
        return EXIT_OK
    ansi = sys.stdout.isatty()
    for i, h in enumerate(hits, 1):
        when = h["published_at"] or h["first_seen_at"]
        day = when.strftime("%Y-%m-%d") if when else "undated"
        title = h["title"] or "(no title)"
        print(f"{i:>2}. {title}\n    {h['source']} · {day} · score {h['score']:.2f} · {h['url']}")
        print(f"    {highlight(h['snippet'], h['highlights'], ansi=ansi)}\n")
    return EXIT_OK


def register(sub: Any) -> None:
    """Add `newsflow search`."""
    s = sub.add_parser(
        "search",
        help="find articles by words (ranked, stemmed full-text search)",
        description=run.__doc__ + " The same ranking in SQL: SELECT * FROM search_articles('phrase').",
    )
    s.add_argument("phrase", help="words to look for, e.g. \"ceasefire talks\" (word forms match: talks ~ talk, talking)")
    s.add_argument("--source", metavar="NAME", help="only articles of this source")
    s.add_argument("--since", metavar="DATE", help="only articles published (else first seen) since DATE: 2024-03-05, 2d, 36h")
    s.add_argument("--limit", type=int, default=10, metavar="N", help="at most N results (default 10)")
    s.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")
    s.set_defaults(func=run)
