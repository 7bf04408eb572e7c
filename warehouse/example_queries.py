"""The example queries in warehouse/examples/: each a .sql file with a header comment and parameter defaults.

A file starts with comment lines saying what it answers, then one line per parameter:

    -- param: entity = 'Blinken'
    -- param: days = 7

and uses `$entity`, `$days` in its body. `newsflow sql --file F` binds the defaults and `--param
name=value` overrides them. Values are typed as the CLI types them: quoted -> text, whole or decimal
numbers -> numbers, true/false -> booleans, anything else -> text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"

_PARAM_LINE = re.compile(r"^\s*--\s*param:\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def typed(value: str) -> Any:
    """A default's value as int, float, bool or text."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_example(path: Path) -> tuple[str, dict[str, Any]]:
    """(SQL text, parameter defaults) of one example file."""
    sql = Path(path).read_text(encoding="utf-8")
    defaults = {m.group(1): typed(m.group(2)) for m in map(_PARAM_LINE.match, sql.splitlines()) if m}
    return sql, defaults


def describe(path: Path) -> str:
    """The header comment of an example: what it answers (comment lines before the first param/SQL line)."""
    lines = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.startswith("--") or _PARAM_LINE.match(line):
            break
        lines.append(line[2:].strip())
    return " ".join(lines)


def example_files() -> list[Path]:
    """Every example query file, by name."""
    return sorted(EXAMPLES_DIR.glob("*.sql"))
