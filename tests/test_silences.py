"""Silence matchers and weekly maintenance windows, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from umig_monitor.core.silences import Silence, WeeklyWindow, parse_matcher, silenced_by

SAT_23 = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)  # a Saturday


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ("environment=uat", {"environment": "uat"}, True),
        ('environment="uat"', {"environment": "uat"}, True),
        ("environment=uat", {"environment": "uat2"}, False),
        ("environment!=production", {"environment": "uat"}, True),
        ("environment!=production", {"environment": "production"}, False),
        ("type=~version_.*", {"type": "version_drift"}, True),
        ("type=~drift", {"type": "version_drift"}, False),  # anchored
        ("type!~environment_.*", {"type": "version_drift"}, True),
        ("team=umig", {}, False),
        ("team=", {}, True),  # an absent label is the empty string, as in Alertmanager
        ('summary="say \\"hi\\""', {"summary": 'say "hi"'}, True),
    ],
)
def test_matchers(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(matcher).matches(labels) is expected


@pytest.mark.parametrize(
    "bad",
    ["environment", "=uat", "env~uat", "type=~((", 'environment="uat', 'environment=uat"', "x=" + "a" * 300],
)
def test_bad_matchers(bad: str) -> None:
    with pytest.raises(ValueError, match="matcher"):
        parse_matcher(bad)


def test_silence_window_in_time() -> None:
    s = Silence("s1", (parse_matcher("environment=uat"),), SAT_23, SAT_23 + timedelta(hours=2))
    labels = {"environment": "uat"}
    assert silenced_by(labels, SAT_23 - timedelta(seconds=1), [s], []) is None
    assert silenced_by(labels, SAT_23, [s], []) == "s1"
    assert silenced_by(labels, SAT_23 + timedelta(hours=2), [s], []) is None
    assert silenced_by({"environment": "production"}, SAT_23, [s], []) is None


@pytest.mark.parametrize(
    ("now", "active"),
    [
        (datetime(2026, 11, 28, 21, 59, tzinfo=UTC), False),
        (datetime(2026, 11, 28, 22, 0, tzinfo=UTC), True),
        (datetime(2026, 11, 29, 1, 59, tzinfo=UTC), True),  # Sunday, still in Saturday's window
        (datetime(2026, 11, 29, 2, 0, tzinfo=UTC), False),
        (datetime(2026, 11, 29, 22, 30, tzinfo=UTC), False),  # Sunday evening: not a window day
        (datetime(2026, 12, 5, 23, 0, tzinfo=UTC), True),  # the next Saturday
    ],
)
def test_weekly_window_crossing_midnight(now: datetime, active: bool) -> None:
    w = WeeklyWindow("w", (), days=(5,), start=time(22, 0), duration=timedelta(hours=4))
    assert w.active(now) is active


def test_weekly_window_in_local_time() -> None:
    w = WeeklyWindow(
        "w", (), days=(0,), start=time(9, 0), duration=timedelta(hours=1), timezone="Europe/Paris"
    )
    assert w.active(datetime(2026, 7, 6, 7, 30, tzinfo=UTC))  # 09:30 in Paris (summer time)
    assert not w.active(datetime(2026, 7, 6, 9, 30, tzinfo=UTC))
