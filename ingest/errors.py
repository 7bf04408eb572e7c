"""newsflow's one error hierarchy: every error says whether trying again later can succeed.

    NewsflowError                 base; `reason` is the short code stored in `failures.reason`
    ├── TransientError            may succeed later: timeouts, 5xx, 429, a busy warehouse (retried)
    │   └── (warehouse.db.WarehouseBusy)
    └── TerminalError             will not change by retrying: 404/410, robots, no text
        ├── ConfigError           invalid configuration (settings, sources.toml, a missing extension)
        └── UsageError            invalid command-line or flow input (a missing path, a bad date)

Retry decisions use `isinstance(exc, TransientError)` (see `is_retryable`), never attributes or class
names. The default for everything else, including exceptions that are not NewsflowErrors (a bug, an
OSError, a DuckDB error), is **not retryable**: an unexpected failure is reported once, with its
traceback, rather than repeated. The CLI maps ConfigError/UsageError to exit code 2 and every other
failure of a run to exit code 1.
"""

from __future__ import annotations


class NewsflowError(Exception):
    """Base error; `retryable` tells callers whether trying again later can succeed.

    `retryable` is fixed by the class (TransientError: True, everything else: False); a failure that
    is sometimes transient (an HTTP status) picks the class when it is raised.
    """

    retryable: bool = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        # `reason` is a short machine-readable code stored in `failures.reason`.
        self.reason = reason or type(self).__name__


class TransientError(NewsflowError):
    """A failure that may succeed on a later attempt (timeouts, 5xx, 429, locks)."""

    retryable = True


class TerminalError(NewsflowError):
    """A failure that will not change by retrying (404/410, robots disallow, no text, bad config)."""

    retryable = False


class ConfigError(TerminalError):
    """Invalid user configuration (settings, sources.toml, a missing extension or model)."""


class UsageError(TerminalError):
    """Invalid input to a command or flow (a path that does not exist, a date that does not parse)."""


def is_retryable(exc: BaseException) -> bool:
    """True only for TransientError (and subclasses); the default for any other exception is False."""
    return isinstance(exc, TransientError)
