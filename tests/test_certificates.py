"""Certificate expiry against the two thresholds, and how it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from umig_monitor.core.certificates import expiry_text, level, remaining

NOW = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
WARNING, CRITICAL = timedelta(days=21), timedelta(days=7)


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(days=90), None),
        (timedelta(days=21, seconds=1), None),
        (timedelta(days=21), "warning"),
        (timedelta(days=7, seconds=1), "warning"),
        (timedelta(days=7), "critical"),
        (timedelta(0), "critical"),
        (timedelta(days=-3), "critical"),  # expired
    ],
)
def test_level(left: timedelta, expected: str | None) -> None:
    assert level(NOW + left, NOW, WARNING, CRITICAL) == expected


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (timedelta(days=20, hours=5, minutes=3), "in 20d 5h"),
        (timedelta(days=7), "in 7d"),
        (timedelta(hours=3, minutes=20), "in 3h 20m"),
        (timedelta(hours=2), "in 2h"),
        (timedelta(minutes=4, seconds=59), "in 4m"),
        (timedelta(seconds=-1), "0m ago"),
        (timedelta(days=-2, hours=-1), "2d 1h ago"),
    ],
)
def test_remaining(left: timedelta, text: str) -> None:
    assert remaining(NOW + left, NOW) == text


def test_expiry_text_is_utc() -> None:
    paris = datetime(2026, 5, 20, 10, 30, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert expiry_text(paris, NOW) == "2026-05-20 10:30 UTC (in 16d 2h)"
