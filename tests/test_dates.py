"""The one date parser: every format the pipeline meets, always aware UTC."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ingest.dates import parse_datetime


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-03-01T10:20:00+0530", utc(2023, 3, 1, 4, 50)),  # htmldate's %z output
        ("2023-03-01T10:20:00", utc(2023, 3, 1, 10, 20)),  # naive means UTC
        ("  2023-03-01  ", utc(2023, 3, 1)),
        ("Wed, 01 Mar 2023 10:20:00 +0100", utc(2023, 3, 1, 9, 20)),  # RSS / HTTP
        ("2023-02-30", None),
        ("not a date", None),
        (None, None),
    ],
)
def test_parse_datetime(value: str | None, expected: datetime | None) -> None:
    assert parse_datetime(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-05", utc(2024, 3, 6)),  # "--until 2024-03-05" includes the whole day
        ("2024-12", utc(2025, 1, 1)),
        ("2024", utc(2025, 1, 1)),
        ("2024-03-05T10:00:00Z", utc(2024, 3, 5, 10)),  # a timestamp is its own end
    ],
)
def test_end_of_period(value: str, expected: datetime) -> None:
    assert parse_datetime(value, end_of_period=True) == expected
