"""Which polls read version and components, and what the polls between carry forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from umig_monitor.core.details import (
    CARRIED_MARK,
    Details,
    HealthMark,
    carry,
    details_needed,
    full_poll_due,
    head_start,
    mark_of,
    polled_without,
    remember,
)
from umig_monitor.core.health import HealthSample, Outcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MARK = HealthMark("1.2.0", None)
READ = Details(
    read_at=T0,
    mark=MARK,
    version="1.2.0",
    build="77",
    component_versions={"api": "2.0"},
    deployed_at=T0 - timedelta(days=1),
    deployed_by="ci",
    orchestrator="active",
)


@pytest.mark.parametrize(
    ("details", "every", "last", "due"),
    [
        (None, 4, None, True),  # nothing read yet
        (READ, 4, Outcome.HEALTHY, False),
        (polled_without(READ), 4, Outcome.HEALTHY, False),
        (polled_without(polled_without(READ)), 4, Outcome.HEALTHY, False),
        (polled_without(polled_without(polled_without(READ))), 4, Outcome.HEALTHY, True),  # the 4th
        (READ, 1, Outcome.HEALTHY, True),  # every poll
        (READ, 4, Outcome.DEGRADED, True),
        (READ, 4, Outcome.UNREACHABLE, True),
        (READ, 4, None, True),
    ],
)
def test_full_poll_due(details: Details | None, every: int, last: Outcome | None, due: bool) -> None:
    assert full_poll_due(details, every, last) is due


def sample(outcome: Outcome, **fields: Any) -> HealthSample:
    return HealthSample("prod", T0 + timedelta(minutes=1), outcome, **fields)


@pytest.mark.parametrize(
    ("outcome", "mark", "needed"),
    [
        (Outcome.HEALTHY, MARK, False),
        (Outcome.HEALTHY, HealthMark("1.2.1", None), True),  # another version
        (Outcome.HEALTHY, HealthMark("1.2.0", "78"), True),  # another build
        (Outcome.DEGRADED, MARK, True),
        (Outcome.UNHEALTHY, MARK, True),
        (Outcome.UNREACHABLE, HealthMark(), False),  # nothing the others could add
        (Outcome.INVALID_RESPONSE, HealthMark(), False),
    ],
)
def test_details_needed(outcome: Outcome, mark: HealthMark, needed: bool) -> None:
    assert details_needed(sample(outcome), mark, READ) is needed


@pytest.mark.parametrize(
    ("health", "mark"),
    [
        ({"umig": {"status": "healthy", "version": "1.2.0"}}, HealthMark("1.2.0", None)),
        ({"umig": {"version": "1.2.0", "build": 78}}, HealthMark("1.2.0", "78")),
        ({"umig": {"version": "9" * 1000}}, HealthMark("9" * 256, None)),
        ({"umig": "x"}, HealthMark()),
        ([], HealthMark()),
        (None, HealthMark()),
    ],
)
def test_mark_of(health: Any, mark: HealthMark) -> None:
    assert mark_of(health) == mark


def test_carry_keeps_the_reading_and_marks_it() -> None:
    health_only = sample(Outcome.HEALTHY, version="1.2.0", metrics={"errorRate": 0.01})
    carried = carry(health_only, READ)
    assert (carried.version, carried.build) == ("1.2.0", "77")
    assert carried.component_versions == {"api": "2.0"}
    assert (carried.deployed_at, carried.deployed_by) == (READ.deployed_at, "ci")
    assert carried.metrics == {"errorRate": 0.01, "orchestrator": "active", CARRIED_MARK: T0.isoformat()}
    assert carried.ts == health_only.ts  # the poll's own time; the reading's is in the mark


def test_remember_what_a_full_poll_read() -> None:
    full = sample(
        Outcome.HEALTHY,
        version="1.2.0",
        build="77",
        component_versions={"api": "2.0"},
        deployed_by="ci",
        metrics={"orchestrator": "active"},
    )
    details = remember(full, MARK)
    assert (details.read_at, details.mark, details.polls_since) == (full.ts, MARK, 0)
    assert (details.version, details.build, details.orchestrator) == ("1.2.0", "77", "active")
    assert polled_without(details).polls_since == 1


def test_a_head_start_staggers_full_polls_never_delays_them() -> None:
    """Environments started together read everything on different rounds: the first interval
    between full polls is shortened by a stable per-environment share, never lengthened."""
    starts = {head_start(f"env{i}", 4) for i in range(50)}
    assert starts == {0, 1, 2, 3}
    assert head_start("prod", 4) == head_start("prod", 4)
    assert head_start("prod", 1) == 0
    full = sample(Outcome.HEALTHY, version="1.2.0")
    for start in range(4):
        details = remember(full, MARK, start)
        polls = 1
        while not full_poll_due(details, 4, Outcome.HEALTHY):
            details = polled_without(details)
            polls += 1
        assert polls == 4 - start
