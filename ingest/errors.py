"""Error types that say whether an operation may be retried."""

from __future__ import annotations


class NewsflowError(Exception):
    """Base error; `retryable` tells callers whether trying again later can succeed."""

    retryable: bool = False

    def __init__(self, message: str, *, reason: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        # `reason` is a short machine-readable code stored in `failures.reason`.
        self.reason = reason or type(self).__name__
        if retryable is not None:
            self.retryable = retryable


class TransientError(NewsflowError):
    """A failure that may succeed on a later attempt (timeouts, 5xx, 429, locks)."""

    retryable = True


class TerminalError(NewsflowError):
    """A failure that will not change by retrying (404/410, robots disallow, no text, bad config)."""

    retryable = False


class ConfigError(TerminalError):
    """Invalid user configuration (settings or sources.toml)."""
