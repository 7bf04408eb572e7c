"""Dask scale-out: the same ingest run sequentially and on a real local Dask cluster loads the same warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from prefect_fixtures import prefect_api  # noqa: F401  (fixture)
from sitesrv import SiteServer
from test_flow_ingest import DEMO, rss
from lake import use_lake, lake_connect

REPO = Path(__file__).resolve().parent.parent
NORTHWIRE = REPO / "seeds" / "demo_site" / "northwire"

# Content columns only: timestamps, run ids and sequence-assigned entity ids differ between any two runs.
CONTENT_QUERIES = {
    "articles": "select id, url, page_url, source, title, text, authors, published_at, language, site_name, description,"
    " extractor, extractor_version, content_hash, word_count from articles order by id",
    "article_urls": "select url, article_id from article_urls order by all",
    "fingerprints": "select article_id, content_hash, signature, shingle_count, model from article_fingerprints order by article_id",
    "duplicates": "select article_id, duplicate_of, method, round(similarity, 9) from duplicates order by article_id",
    "entities": "select key, name, type, article_count from entities order by key",
    "entity_aliases": "select a.alias, e.key, a.surface, a.count from entity_aliases a join entities e on e.id = a.entity_id order by all",
    "mentions": "select m.article_id, e.key, m.surface, m.alias, m.start_char, m.end_char, m.snippet, m.raw_label, m.model,"
    " m.model_version from mentions m join entities e on e.id = m.entity_id order by m.article_id, m.start_char, m.end_char",
    "entity_runs": "select article_id, model, model_version, skipped_reason, mention_count, copied_from from article_entity_runs order by article_id",
    "failures": "select url, stage, reason, retryable from failures order by all",
}


def snapshot(db_path: Path) -> dict[str, list[tuple]]:
    """The warehouse's content, table by table."""
    with lake_connect(db_path) as con:
        return {name: con.execute(sql).fetchall() for name, sql in CONTENT_QUERIES.items()}


@pytest.fixture
def two_sites(site: SiteServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Harbour Gazette plus Northwire (which republishes some of its stories) behind one loopback feed."""
    paths = []
    for root, prefix in ((DEMO, ""), (NORTHWIRE, "nw/")):
        for p in sorted(root.rglob("*.html")):
            if p.name == "index.html":
                continue
            rel = prefix + p.relative_to(root).as_posix()
            site.set_file("/" + rel, p.read_bytes(), content_type="text/html; charset=utf-8")
            paths.append(rel)
    site.set_file("/feed.xml", rss(site, paths), content_type="application/rss+xml")
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[sources]]\nname = "fixture"\nkind = "rss"\nlocation = "{site.url("/feed.xml")}"\n')
    monkeypatch.setenv("NEWSFLOW_SOURCES_FILE", str(sources))
    monkeypatch.setenv("NEWSFLOW_FETCH__PER_HOST_DELAY_S", "0")
    # Small batches: several fetch tasks and several CPU-stage calls per run.
    monkeypatch.setenv("NEWSFLOW_BATCH_SIZE", "8")
    return tmp_path


@pytest.fixture
def cluster() -> Iterator[object]:
    """A real local Dask cluster: 2 worker processes with 1 thread each, on loopback."""
    from distributed import Client, LocalCluster

    from flows.compute import quiet_dask_logs

    quiet_dask_logs()

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as lc:
        with Client(lc) as client:
            yield client


@pytest.mark.slow
def test_dask_run_matches_sequential(prefect_api: None, two_sites: Path, cluster: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import get_task_stream

    from flows.ingest import ingest

    client = cluster
    seq_db, dask_db = two_sites / "seq", two_sites / "dask"

    use_lake(monkeypatch, seq_db)
    monkeypatch.setenv("NEWSFLOW_TASK_RUNNER", "threads")
    monkeypatch.setenv("NEWSFLOW_WORKERS", "1")
    r_seq = ingest()

    use_lake(monkeypatch, dask_db)
    monkeypatch.setenv("NEWSFLOW_TASK_RUNNER", "dask")
    monkeypatch.setenv("NEWSFLOW_DASK_ADDRESS", client.scheduler.address)  # type: ignore[attr-defined]
    monkeypatch.setenv("NEWSFLOW_WORKERS", "2")
    with get_task_stream(client) as stream:  # type: ignore[arg-type]
        r_dask = ingest()

    assert r_seq["new"] >= 10 and r_seq["duplicates"] >= 1 and r_seq["entities"] > 0, r_seq
    assert {k: v for k, v in r_dask.items() if k != "run_id"} == {k: v for k, v in r_seq.items() if k != "run_id"}
    seq, dsk = snapshot(seq_db), snapshot(dask_db)
    for table in CONTENT_QUERIES:
        assert dsk[table] == seq[table], f"{table} differs between the sequential and the Dask run"

    # The CPU stages and the fetch tasks ran on both Dask workers; nothing that writes DuckDB did.
    ran = [(t["key"], t["worker"]) for t in stream.data]
    names = {k.split("-")[0] for k, _ in ran}
    assert {"prepare_pages", "extract_entities"} <= names, names
    assert any(k.startswith("fetch") for k, _ in ran), names
    assert len({w for k, w in ran if k.startswith(("prepare_pages", "extract_entities"))}) == 2
    assert not any(("load" in k or "process_batch" in k or "register" in k) for k, _ in ran), names

    with lake_connect(dask_db) as con:
        row = con.execute("select status, trigger, flow_run_id from runs").fetchall()
    assert row[0][0] == "completed" and row[0][1] == "cli" and row[0][2]


def test_task_runner_follows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.compute import SettingsTaskRunner, local_cluster_kwargs
    from ingest.settings import Settings

    monkeypatch.delenv("NEWSFLOW_TASK_RUNNER", raising=False)
    monkeypatch.delenv("NEWSFLOW_DASK_ADDRESS", raising=False)
    assert type(SettingsTaskRunner().duplicate()) is ThreadPoolTaskRunner

    monkeypatch.setenv("NEWSFLOW_TASK_RUNNER", "dask")
    monkeypatch.setenv("NEWSFLOW_WORKERS", "2")
    local = SettingsTaskRunner().duplicate()
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs == local_cluster_kwargs(Settings())
    assert local.cluster_kwargs["n_workers"] == 2 and local.cluster_kwargs["threads_per_worker"] == 1
    assert local.cluster_kwargs["host"] == "127.0.0.1"

    monkeypatch.setenv("NEWSFLOW_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    remote = SettingsTaskRunner().duplicate()
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
