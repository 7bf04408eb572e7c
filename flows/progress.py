"""A tiny progress hook: the CLI installs a reporter, flows call `advance` (a no-op when none is installed)."""

from __future__ import annotations

from collections.abc import Callable

Reporter = Callable[[str, int], None]
_reporter: Reporter | None = None


def install(reporter: Reporter | None) -> None:
    """Set (or clear) the process-wide progress reporter."""
    global _reporter
    _reporter = reporter


def expect(stage: str, total: int) -> None:
    """Announce that `total` more items of `stage` are coming."""
    if _reporter is not None:
        _reporter(f"total:{stage}", total)


def advance(stage: str, n: int = 1) -> None:
    """Report `n` items of `stage` done."""
    if _reporter is not None:
        _reporter(stage, n)


def status(text: str) -> None:
    """Say what the run is doing now (shown next to the CLI's spinner)."""
    if _reporter is not None:
        _reporter(f"status:{text}", 0)


def notice(text: str) -> None:
    """Tell the user one line now (the CLI prints it on stderr, even when piped); a no-op outside the CLI."""
    if _reporter is not None:
        _reporter(f"notice:{text}", 0)
