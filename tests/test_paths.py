"""User paths end to end through the real CLI into a real lake: `ingest --path DIR` and `--path FILE.warc`,
a second run that skips unchanged saved pages, `reingest --mode refetch` of file:// pages, `make demo`'s own
commands over the bundled offline sources, and the progress bar on a terminal versus a pipe."""

from __future__ import annotations

import io
import os
import pty
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from hostile_site import NEWSFLOW, cli_env, q, serve_many_articles
from lake import use_lake
from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
HG = REPO / "seeds" / "demo_site" / "harbourgazette"
NEW_SENTENCE = "The harbour master added on Friday that the new pontoon will open to the public in June."


def saved_pages(n: int) -> list[Path]:
    """The first `n` saved Harbour Gazette article pages (relative paths)."""
    pages = sorted(p.relative_to(HG) for p in HG.rglob("*.html") if p.name != "index.html")
    assert len(pages) >= n, "demo site missing"
    return pages[:n]


def last_run(wh: Path, flow: str = "ingest") -> dict:
    cols = ["id", "status", "discovered", "fetched", "new", "updated", "unchanged", "failed"]
    row = q(wh, f"select {', '.join(cols)} from runs where flow = ? order by id desc limit 1", [flow])[0]
    return dict(zip(cols, row))


@pytest.fixture
def cli(prefect_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """`newsflow` in this process (real CLI, real flows) on a fresh lake, with no sources.toml."""
    from flows.cli import main

    wh = use_lake(monkeypatch, tmp_path / "wh")
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(tmp_path / "no-sources.toml"))
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")

    def run(*args: str) -> int:
        return main(list(args))

    run.wh = wh  # type: ignore[attr-defined]
    return run


def test_ingest_path_dir_skips_unchanged_then_refetch_updates(cli, tmp_path: Path) -> None:  # noqa: ANN001
    saved = tmp_path / "saved"
    pages = saved_pages(4)
    for rel in pages:
        (saved / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HG / rel, saved / rel)
    wh = cli.wh

    assert cli("ingest", "--path", str(saved)) == 0
    first = last_run(wh)
    urls = {u for (u,) in q(wh, "select url from pages")}
    assert urls == {(saved / rel).resolve().as_uri() for rel in pages}  # saved pages become file:// URLs
    assert (first["status"], first["new"]) == ("completed", 4)
    assert q(wh, "select count(*) from articles where source = 'adhoc-path'")[0][0] == 4
    before = q(wh, "select id, content_hash, updated_at from articles order by id")

    # A second run over the unchanged directory skips every page: nothing new, nothing rewritten.
    assert cli("ingest", "--path", str(saved)) == 0
    second = last_run(wh)
    assert second["id"] > first["id"] and second["status"] == "completed"
    # Discovered again, but not one page was read into the pipeline (not even as "unchanged").
    assert (second["discovered"], second["fetched"], second["new"], second["updated"], second["unchanged"]) == (4, 0, 0, 0, 0)
    assert q(wh, "select id, content_hash, updated_at from articles order by id") == before

    # The page changes on disk; refetching its file:// URL reads it again and updates the article.
    changed = saved / pages[0]
    html = changed.read_text(encoding="utf-8")
    changed.write_text(re.sub(r"</p>", f" {NEW_SENTENCE}</p>", html, count=1), encoding="utf-8")
    url = changed.resolve().as_uri()
    assert cli("reingest", "--url", url, "--mode", "refetch") == 0
    re_run = last_run(wh, "reingest")
    assert (re_run["status"], re_run["updated"]) == ("completed", 1)
    (text,) = q(wh, "select a.text from article_urls u join articles a on a.id = u.article_id where u.url = ?", [url])[0]
    assert NEW_SENTENCE in text
    assert q(wh, "select count(*) from article_versions")[0][0] == 1  # the old version was kept
    assert q(wh, "select count(*) from articles")[0][0] == 4


def _write_warc(path: Path, pages: list[tuple[str, bytes]]) -> None:
    with path.open("wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for url, body in pages:
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))


def test_ingest_path_warc_then_unchanged(cli, tmp_path: Path) -> None:  # noqa: ANN001
    pages = [(f"https://www.harbourgazette.example/{rel.as_posix()}", (HG / rel).read_bytes()) for rel in saved_pages(3)]
    warc = tmp_path / "crawl.warc.gz"
    _write_warc(warc, pages)
    wh = cli.wh
    assert cli("ingest", "--path", str(warc)) == 0
    assert (last_run(wh)["status"], last_run(wh)["new"]) == ("completed", 3)
    assert {u for (u,) in q(wh, "select url from article_urls")} >= {u for u, _ in pages}
    assert cli("ingest", "--path", str(warc)) == 0
    again = last_run(wh)
    assert (again["discovered"], again["fetched"], again["new"], again["updated"], again["unchanged"]) == (3, 0, 0, 0, 0)
    assert q(wh, "select count(*) from articles")[0][0] == 3


# -- make demo -----------------------------------------------------------------------------------------


def demo_recipe() -> list[list[str]]:
    """The commands of the Makefile's `demo` target, with $(VENV)/bin/newsflow as this environment's CLI."""
    lines = (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("demo:"))
    cmds = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        argv = shlex.split(line.strip())
        assert argv[0] == "$(VENV)/bin/newsflow", f"unexpected demo step {line!r}"
        cmds.append([*NEWSFLOW, *argv[1:]])
    return cmds


def test_make_demo_path_loads_the_bundled_sources(prefect_api: None, tmp_path: Path) -> None:
    # `make demo` runs in the repository with default settings; here in an empty directory, so the
    # default warehouse (./newsflow/...) lands in tmp_path. The demo's hosts do not exist: the mirrors
    # serve them from seeds/demo_site/, through the real fetcher.
    env = {k: v for k, v in cli_env(tmp_path / "unused", tmp_path / "unused.toml", tmp_path / "prefect").items()
           if k not in ("NEWSFLOW_CATALOG", "NEWSFLOW_DATA_PATH", "NEWSFLOW_SOURCES_FILE")}
    cmds = demo_recipe()
    assert [c[len(NEWSFLOW)] for c in cmds] == ["init", "ingest", "sql"]
    outs = []
    for cmd in cmds:
        r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (cmd, r.stderr[-3000:])
        outs.append(r)
    wh = tmp_path / "newsflow"
    assert (wh / "catalog.sqlite").is_file()
    by_source = dict(q(wh, "select source, count(*) from articles group by source"))
    seeds = by_source.pop("seed", 0)
    demo_sources = {"harbour-gazette-rss", "harbour-gazette-sitemap", "northwire-atom"}
    assert set(by_source) <= demo_sources and seeds >= 2
    run = q(wh, "select status, discovered, new, failed from runs where flow = 'ingest'")
    assert len(run) == 1 and run[0][0] == "completed"
    # Every new article was discovered, came through the mirror fetcher and is in the warehouse.
    assert sum(by_source.values()) == run[0][2] >= 13
    assert q(wh, "select count(*) from pages where url like 'https://%' and status = 200")[0][0] >= run[0][2]
    # The recipe's last step printed the per-source counts it just loaded.
    for source, n in by_source.items():
        assert re.search(rf"{re.escape(source)}\s*\|?\s*{n}\b", outs[-1].stdout), outs[-1].stdout
    print(f"\nmake demo path: {sum(by_source.values())} new articles from {sorted(by_source)} + {seeds} seeds")


# -- the progress bar ----------------------------------------------------------------------------------


def _run_on_pty(cmd: list[str], env: dict[str, str], timeout_s: float = 600) -> tuple[int, str]:
    """Run `cmd` with stdout and stderr on a pseudo-terminal; return (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=timeout_s), b"".join(chunks).decode("utf-8", errors="replace")


BAR = re.compile(r"(fetch|process)\s.*━.*\d+/\d+")


def test_progress_bar_on_a_terminal_and_silent_when_piped(prefect_api: None, site: SiteServer, tmp_path: Path) -> None:
    sources, _urls = serve_many_articles(site, tmp_path, n=12, delay_s=0.1)
    env = cli_env(tmp_path / "wh", sources, tmp_path / "prefect", NEWSFLOW_BATCH_SIZE="4", TERM="xterm-256color", COLUMNS="120")
    code, tty_out = _run_on_pty([*NEWSFLOW, "ingest"], env)
    assert code == 0, tty_out[-3000:]
    assert BAR.search(tty_out), tty_out[-3000:]  # a rich bar: stage name, bar glyphs, done/total
    assert "\x1b[" in tty_out  # drawn with terminal control sequences

    site.clear_log()
    piped = subprocess.run([*NEWSFLOW, "ingest"], env={**env, "NEWSFLOW_SOURCES_FILE": str(sources)}, capture_output=True, text=True, timeout=600)
    assert piped.returncode == 0, piped.stderr[-3000:]
    for out in (piped.stdout, piped.stderr):
        assert not BAR.search(out) and "━" not in out and "\x1b[" not in out and "\r" not in out, out[-2000:]
    assert "run " in piped.stderr  # the summary line is still there
