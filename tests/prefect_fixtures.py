"""A session-wide Prefect test API (real embedded server, temporary database) for flow tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import flows  # noqa: F401  (Prefect defaults: analytics off, quiet logs)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run flows against prefect_test_harness (starts once per session, ~7 s)."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
