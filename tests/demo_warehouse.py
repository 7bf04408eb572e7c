"""The populated demo warehouse for analyst-side tests (examples, search, report).

Built the way a user builds it: `newsflow init`, then `newsflow ingest` on the bundled offline demo
(seeds/sources.toml, mirrored from seeds/demo_site/), then one page of the demo changes (a new closing
paragraph and a newer sitemap <lastmod>) and a second `newsflow ingest` picks the change up, so the
warehouse has two ingest runs, an article with an earlier version, and snapshots to travel back to.

Built once per test session and shared by the modules that ask (a DuckLake records its data path, so
a copy would need OVERRIDE_DATA_PATH): tests must only read it.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lake import lake_env

REPO = Path(__file__).resolve().parent.parent
CHANGED_PAGE = "harbourgazette/politics/2023/03/06/high-court-quashes-kingsway-bridge-toll.html"
CHANGED_URL = "https://www.harbourgazette.example/politics/2023/03/06/high-court-quashes-kingsway-bridge-toll.html"
ADDED_PARAGRAPH = (
    "Update: the council said on Tuesday evening that it would appeal the ruling to the Court of Appeal, "
    "and that toll booths would stay closed until the appeal is heard."
)

_BUILT: dict[str, Path] = {}


def _change_page(seeds: Path) -> None:
    """Add a closing paragraph to one demo article and give it a sitemap <lastmod> of now (after the first fetch)."""
    page = seeds / "demo_site" / CHANGED_PAGE
    html = page.read_text(encoding="utf-8")
    body = html.index('<div class="article-body"')
    end = html.index("</div>", html.rindex("</p>", body, html.index('<div class="share-bar share-bar-bottom"')))
    page.write_text(html[:end] + f"<p>{ADDED_PARAGRAPH}</p>\n      " + html[end:], encoding="utf-8")
    sitemap = seeds / "demo_site" / "harbourgazette" / "sitemap.xml"
    xml = sitemap.read_text(encoding="utf-8")
    pattern = re.compile(r"(<loc>" + re.escape(CHANGED_URL) + r"</loc>\s*<lastmod>)[^<]+(</lastmod>)")
    assert pattern.search(xml), "demo sitemap layout changed"
    # A future lastmod is not believed (ingest.discover), so: now, which is after the first fetch.
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sitemap.write_text(pattern.sub(lambda m: m.group(1) + now + m.group(2), xml), encoding="utf-8")


def _build(base: Path) -> Path:
    from flows.cli import main

    seeds = base / "seeds"
    shutil.copytree(REPO / "seeds", seeds)
    lake = base / "lake"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in lake_env(lake).items():
            mp.setenv(k, v)
        mp.setenv("NEWSFLOW_SEEDS_DIR", str(seeds))
        mp.setenv("NEWSFLOW_WORKERS", "1")
        assert main(["init"]) == 0
        assert main(["ingest"]) == 0
        _change_page(seeds)
        assert main(["ingest"]) == 0
    # Articles not in the search index yet (a no-op once every batch load indexes its articles).
    from warehouse import db

    # No index_missing() here: the batch loads index every article, and test_search checks that they did.
    db.close_all()
    return lake


def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The populated demo warehouse (directory with catalog.sqlite and data/), built on first use; read only."""
    if "lake" not in _BUILT:
        _BUILT["lake"] = _build(tmp_path_factory.mktemp("demo-build"))
    return _BUILT["lake"]
