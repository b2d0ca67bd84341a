"""Retry timing: exponential backoff with jitter, Retry-After honoured, deadlines kept, no overflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.retry import next_attempt

NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("attempts", "retry_after", "deadline", "expected"),
    [
        (1, None, None, 1),
        (2, None, None, 2),
        (5, None, None, 16),
        (20, None, None, 300),  # capped at max_backoff
        (5000, None, None, 300),  # no float overflow after days of outage
        (1, 30.0, None, 30),  # the receiver's Retry-After wins over a shorter backoff
        (1, 1e20, NOW + timedelta(hours=24), None),  # an absurd Retry-After: give up, do not overflow
        (20, None, NOW + timedelta(seconds=100), None),  # past the deadline: give up
    ],
)
def test_next_attempt(
    attempts: int, retry_after: float | None, deadline: datetime | None, expected: float | None
) -> None:
    when = next_attempt(attempts, NOW, deadline, initial=S, maximum=300 * S, retry_after=retry_after)
    assert (None if when is None else (when - NOW).total_seconds()) == expected
