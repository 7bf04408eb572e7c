"""Bad input is refused before anything runs: exit 2, one line on stderr, nothing written, no Prefect.

Each command runs in a fresh Python process (as a user's shell would start it), so the test can also
check that Prefect was never imported and that no warehouse file or directory appeared.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flows.cli._output import EXIT_RUN_FAILED, EXIT_USAGE, describe_error, print_table
from flows.inputs import parse_when
from ingest.errors import ConfigError, NewsflowError, TerminalError, TransientError, UsageError, is_retryable
from ingest.settings import Settings

REPO = Path(__file__).resolve().parent.parent

# Runs newsflow's main() in a fresh interpreter and reports its exit code and whether Prefect was imported.
_PROBE = (
    "import json, sys\n"
    "from flows.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "print(json.dumps({'code': code, 'prefect': any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules)}), file=sys.stdout)\n"
)


def warehouse_env(tmp_path: Path) -> dict[str, str]:
    """Environment pointing every warehouse setting into tmp_path/wh (which must stay absent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    wh = tmp_path / "wh"
    env.update(
        NEWSFLOW_DB=str(wh / "w.duckdb"),
        NEWSFLOW_CATALOG=f"sqlite:{wh / 'catalog.sqlite'}",
        NEWSFLOW_DATA_PATH=str(wh / "data") + "/",
        NEWSFLOW_WORKERS="1",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
    )
    return env


def probe(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bool, str]:
    """(exit code, Prefect imported?, stderr) of `newsflow ARGS` in a new process."""
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["code"], result["prefect"], out.stderr


@pytest.fixture
def user(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A user's environment and an empty working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return warehouse_env(tmp_path), cwd


def refused(user: tuple[dict[str, str], Path], args: list[str]) -> str:
    """Assert `newsflow ARGS` is bad usage (exit 2, one line, no Prefect, nothing written); return the line."""
    env, cwd = user
    code, prefect_imported, err = probe(args, env, cwd)
    assert code == EXIT_USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("newsflow: error: "), err
    assert not prefect_imported, f"{args}: Prefect was imported for bad usage"
    assert not (cwd.parent / "wh").exists() and list(cwd.iterdir()) == [], "something was written"
    return lines[0]


def test_bad_ad_hoc_inputs_are_refused_before_prefect(user: tuple[dict[str, str], Path]) -> None:
    assert "--path '/no/such': no such file or directory" in refused(user, ["ingest", "--path", "/no/such"])
    assert "--urls 'missing.txt': no such file or directory" in refused(user, ["ingest", "--urls", "missing.txt"])
    line = refused(user, ["ingest", "--feed", "not-a-url"])
    assert "neither an http(s) URL nor an existing file" in line
    assert "only http:// and https://" in refused(user, ["ingest", "--feed", "ftp://example.com/feed.xml"])
    assert "has no host" in refused(user, ["ingest", "--feed", "https:///feed.xml"])
    assert "unknown source 'nope'" in refused(user, ["ingest", "--source", "nope"])


def test_missing_spacy_model_is_refused_before_prefect(user: tuple[dict[str, str], Path]) -> None:
    env, cwd = user
    env["NEWSFLOW_ENTITIES__MODELS_BY_LANGUAGE"] = '{"en": "no_such_model_xyz"}'
    for args in (["ingest"], ["init"], ["reingest", "--all"]):
        line = refused((env, cwd), args)
        assert "spaCy model 'no_such_model_xyz'" in line and "NEWSFLOW_ENTITIES__MODELS_BY_LANGUAGE" in line


def test_bad_dates_name_the_accepted_forms(user: tuple[dict[str, str], Path]) -> None:
    line = refused(user, ["reingest", "--since", "yesterday"])
    assert "'yesterday'" in line and "2d" in line and "YYYY-MM-DD" in line
    assert "not after" in refused(user, ["reingest", "--since", "2024-03-05", "--until", "2024-03-01"])
    assert "--until needs --since" in refused(user, ["reingest", "--all", "--until", "2024-03-01"])
    # argparse's own errors are one line too.
    assert "one of the arguments" in refused(user, ["reingest"])


def test_bad_cron_and_interval_are_refused_at_load_with_source_and_field(user: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, cwd = user
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[sources]]\nname = "hourly-news"\nkind = "rss"\nlocation = "https://news.example/feed.xml"\nschedule = { cron = "every hour" }\n\n'
        '[[sources]]\nname = "fast"\nkind = "rss"\nlocation = "https://fast.example/feed.xml"\nschedule = { interval_seconds = 0 }\n',
        encoding="utf-8",
    )
    env["NEWSFLOW_SOURCES_FILE"] = str(sources)
    line = refused((env, cwd), ["ingest"])
    assert "sources['hourly-news'].schedule.cron" in line and "'every hour'" in line
    assert "sources['fast'].schedule.interval_seconds" in line
    # The same file is refused by `serve` before it talks to any Prefect server.
    assert "sources['hourly-news'].schedule.cron" in refused((env, cwd), ["serve"])


def test_good_cron_forms_load(tmp_path: Path) -> None:
    from ingest.sources import load_sources

    f = tmp_path / "sources.toml"
    f.write_text(
        "".join(
            f'[[sources]]\nname = "s{i}"\nkind = "rss"\nlocation = "https://x.example/{i}"\nschedule = {{ cron = "{c}" }}\n'
            for i, c in enumerate(["0 * * * *", "*/15 6-22 * * MON-FRI", "@daily"])
        ),
        encoding="utf-8",
    )
    assert [s.schedule.cron for s in load_sources(f).sources] == ["0 * * * *", "*/15 6-22 * * MON-FRI", "@daily"]


def test_feed_locations_and_parser_choices(tmp_path: Path) -> None:
    from flows import inputs
    from flows.cli import _reingest_command

    feed = tmp_path / "feed.xml"
    feed.write_text("<rss/>", encoding="utf-8")
    assert inputs.feed_location(str(feed)) == str(feed.resolve())
    assert inputs.feed_location(feed.as_uri()) == str(feed.resolve())
    assert inputs.feed_location("https://example.com/feed.xml") == "https://example.com/feed.xml"
    sources, _ = inputs.select_sources(Settings(sources_file=tmp_path / "none.toml"), feeds=[str(feed)])
    assert [(s.name, s.location) for s in sources] == [("adhoc-feed", str(feed.resolve()))]
    assert (_reingest_command.MODES, _reingest_command.WINDOW_ON) == (inputs.MODES, inputs.WINDOW_ON)


def test_parse_when_accepts_iso_and_relative_forms() -> None:
    now = datetime(2024, 3, 5, 12, 0, tzinfo=timezone.utc)
    assert parse_when("2d", now=now) == now - timedelta(days=2)
    assert parse_when("36h", now=now) == now - timedelta(hours=36)
    assert parse_when("90m", now=now) == now - timedelta(minutes=90)
    assert parse_when("1w", now=now) == now - timedelta(weeks=1)
    assert parse_when("2024-03-01") == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert parse_when("2024-03-01", end=True) == datetime(2024, 3, 2, tzinfo=timezone.utc)
    assert parse_when("2024-03-01T10:30+02:00") == datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)
    for bad in ["yesterday", "last tuesday", "2x", "-2d", "Tue, 05 Mar 2024 10:00:00 GMT", ""]:
        with pytest.raises(ConfigError, match="YYYY-MM-DD"):
            parse_when(bad)


def test_error_hierarchy_and_retry_rule() -> None:
    assert issubclass(ConfigError, TerminalError) and issubclass(UsageError, TerminalError)
    assert issubclass(TransientError, NewsflowError) and issubclass(TerminalError, NewsflowError)
    assert is_retryable(TransientError("x")) and not is_retryable(TerminalError("x"))
    # Unexpected exceptions are not retryable, whatever attributes they carry.
    odd = RuntimeError("boom")
    odd.retryable = True  # type: ignore[attr-defined]
    assert not is_retryable(odd)


def test_failures_are_one_line_with_the_traceback_in_a_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_CATALOG", f"sqlite:{tmp_path / 'wh' / 'catalog.sqlite'}")
    monkeypatch.setenv("NEWSFLOW_DB", str(tmp_path / "wh" / "w.duckdb"))
    log = tmp_path / "wh" / "logs" / "newsflow.log"
    # A real disk-full error (/dev/full), a real permission error (sysfs refuses new files, even to root).
    try:
        with open("/dev/full", "w") as f:
            f.write("x")
            f.flush()
    except OSError as exc:
        full = exc
    assert full.errno == errno.ENOSPC
    line, code = describe_error(full)
    assert code == EXIT_RUN_FAILED and "disk is full" in line and f"(details: {log})" in line
    try:
        Path("/sys/newsflow-test").mkdir()
    except OSError as exc:
        denied = exc
    line, code = describe_error(denied)
    assert code == EXIT_RUN_FAILED and "cannot write /sys/newsflow-test" in line and "writable" in line
    # Anything unexpected: one line naming the exception, the full traceback in the log.
    try:
        {}["missing"]
    except KeyError as exc:
        line, code = describe_error(exc)
    assert code == EXIT_RUN_FAILED and "KeyError" in line and "\n" not in line
    text = log.read_text(encoding="utf-8")
    assert text.count("\n--- ") + text.startswith("--- ") == 3 and "Traceback (most recent call last)" in text
    assert "No space left on device" in text and "KeyError: 'missing'" in text
    # Usage errors are the user's: exit 2, no log entry.
    assert describe_error(UsageError("--path 'x': no such file or directory")) == ("--path 'x': no such file or directory", EXIT_USAGE)


def test_max_width_zero_never_cuts(capsys: pytest.CaptureFixture[str]) -> None:
    long = "word " * 40
    print_table(["text"], [[long]], max_width=0)
    assert long.strip() in capsys.readouterr().out
    print_table(["text"], [[long]], max_width=10)
    out = capsys.readouterr().out
    assert "word word…" in out and long.strip() not in out


def test_commands_that_run_nothing_never_import_prefect(user: tuple[dict[str, str], Path]) -> None:
    env, cwd = user
    code, prefect_imported, _ = probe(["--version"], env, cwd)
    assert code == 0 and not prefect_imported
    from flows.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert {"status", "sql", "reingest", "ingest", "serve", "server", "init"} <= set(commands)
    for cmd in commands:
        code, prefect_imported, _ = probe([cmd, "--help"], env, cwd)
        assert code == 0 and not prefect_imported, cmd


def test_version_names_every_component() -> None:
    exe = Path(sys.executable).parent / "newsflow"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == ""
    names = [line.rsplit(" ", 1)[0] for line in out.stdout.splitlines()]
    for wanted in ["newsflow", "duckdb", "prefect", "trafilatura", "spacy"]:
        assert wanted in names, out.stdout
    assert any(n.startswith("spaCy model ") for n in names) and "not installed" not in out.stdout
