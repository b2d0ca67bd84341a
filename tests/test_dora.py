"""History summaries and DORA figures over tables of events, checked against hand computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.deployments import DeploymentEvent, Dora, EventType, Summary, dora, summarize

B, S, F = EventType.START, EventType.SUCCESS, EventType.FAILURE
R, OBS = EventType.ROLLBACK, EventType.OBSERVED
T0 = datetime(2024, 10, 1, tzinfo=UTC)


def ev(
    type: EventType,
    deployment: str,
    at: datetime | int,
    environment: str = "production",
    commit_time: str | None = None,
) -> DeploymentEvent:
    ts = at if isinstance(at, datetime) else T0 + timedelta(minutes=at)
    return DeploymentEvent(
        id=f"{deployment}-{type.value}",
        deployment_id=deployment,
        environment=environment,
        type=type,
        ts=ts,
        version="1.1.3",
        error="boom" if type is F else None,
        metadata={"commit_time": commit_time} if commit_time else {},
    )


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], Summary(0, 0, 0, 0, 0, 0, None)),
        ([ev(B, "a", 0)], Summary(1, 0, 0, 0, 1, 0, None)),
        ([ev(B, "a", 0), ev(S, "a", 5)], Summary(1, 1, 0, 0, 0, 0, 1.0)),
        ([ev(S, "a", 5)], Summary(1, 1, 0, 0, 0, 0, 1.0)),  # no start: still a deployment
        ([ev(B, "a", 0), ev(F, "a", 5)], Summary(1, 0, 1, 0, 0, 0, 0.0)),
        # retried under one id: succeeded in the end, and it had a failure (the guide counts both)
        ([ev(B, "a", 0), ev(F, "a", 5), ev(S, "a", 9)], Summary(1, 1, 1, 0, 0, 0, 1.0)),
        ([ev(S, "a", 9), ev(F, "a", 5)], Summary(1, 1, 1, 0, 0, 0, 1.0)),  # by time, not input order
        ([ev(S, "a", 5), ev(R, "a", 9)], Summary(1, 0, 0, 1, 0, 0, 0.0)),
        ([ev(F, "a", 5), ev(S, "a", 5)], Summary(1, 0, 1, 0, 0, 0, 0.0)),  # a tie: failure outranks success
        ([ev(OBS, "o", 0)], Summary(1, 0, 0, 0, 0, 1, None)),
        (
            [
                *(ev(B, "a", 0), ev(S, "a", 1), ev(B, "b", 2), ev(F, "b", 3), ev(R, "c", 4)),
                *(ev(B, "d", 5), ev(OBS, "e", 6), ev(B, "f", 7), ev(S, "f", 8), ev(S, "g", 9)),
            ],
            # a, f, g (no start) succeeded; b failed; c rolled back; d in progress; e observed
            Summary(7, successful=3, failed=1, rollbacks=1, in_progress=1, observed=1, success_rate=3 / 5),
        ),
    ],
)
def test_summarize(events: list[DeploymentEvent], expected: Summary) -> None:
    assert summarize(events) == expected


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 10, day, hour, minute, tzinfo=UTC)


START, END = at(1, 0), at(11, 0)  # a 10-day window

# Production over 1-11 October (UTC), plus events that must not count:
#   d0  succeeded 30 Sep                                    outside the window
#   d1  start 1 Oct 09:00, success 09:10, commit 07:10Z     success, lead 2h = 7200 s
#   d2  start 3 Oct 09:00, failure 09:05                    failure
#   d3  start 3 Oct 10:00, success 10:35, commit 2 Oct
#       10:35+02:00 = 08:35Z                                success, lead 26h = 93600 s
#   o1  observed 5 Oct 12:00                                observed
#   d4  start 7 Oct 09:00, success 09:20, commit 6 Oct
#       21:20Z                                              success, lead 12h = 43200 s
#   r1  rollback 7 Oct 11:00                                rollback
#   d5  start 8 Oct 10:40, success 11:00, commit 8 Oct
#       11:30Z (after the success: clock skew)              success, lead not counted
#   d6  start 9 Oct 09:00, failure 09:15                    failure
#   d8  start 10 Oct 11:50, failure 12:00                   failure
#   uat success 9 Oct 10:00                                 another environment
# Health recoveries: 30 Sep 12:00, 3 Oct 09:50, 7 Oct 11:30, 9 Oct 11:15.
#
# deployments = successes 4 (d1 d3 d4 d5) + observed 1 = 5; frequency 5 / 10 days = 0.5 per day
# change failure rate = (failed 3 (d2 d6 d8) + rolled back 1) / (4 + 1 + 3 + 1) = 4/9
# time to restore, to the first of next production success / next recovery:
#   d2 failure 3 Oct 09:05: success 10:35 (90 min) or recovery 09:50 (45 min)  -> 2700 s
#   r1 rollback 7 Oct 11:00: success 8 Oct 11:00 (24 h) or recovery 11:30       -> 1800 s
#   d6 failure 9 Oct 09:15: no later production success; recovery 11:15        -> 7200 s
#   d8 failure 10 Oct 12:00: nothing after it                                   -> unresolved
#   restores 3; median 2700; mean (2700 + 1800 + 7200) / 3 = 3900
# lead time samples 7200, 93600, 43200: median 43200, mean 144000 / 3 = 48000
SCENARIO = [
    ev(B, "d0", datetime(2024, 9, 30, 9, tzinfo=UTC)),
    ev(S, "d0", datetime(2024, 9, 30, 9, 30, tzinfo=UTC)),
    ev(B, "d1", at(1, 9)),
    ev(S, "d1", at(1, 9, 10), commit_time="2024-10-01T07:10:00Z"),
    ev(B, "d2", at(3, 9)),
    ev(F, "d2", at(3, 9, 5)),
    ev(B, "d3", at(3, 10)),
    ev(S, "d3", at(3, 10, 35), commit_time="2024-10-02T10:35:00+02:00"),
    ev(OBS, "o1", at(5, 12)),
    ev(B, "d4", at(7, 9)),
    ev(S, "d4", at(7, 9, 20), commit_time="2024-10-06T21:20:00Z"),
    ev(R, "r1", at(7, 11)),
    ev(B, "d5", at(8, 10, 40)),
    ev(S, "d5", at(8, 11), commit_time="2024-10-08T11:30:00Z"),
    ev(B, "d6", at(9, 9)),
    ev(F, "d6", at(9, 9, 15)),
    ev(S, "u1", at(9, 10), environment="uat"),
    ev(B, "d8", at(10, 11, 50)),
    ev(F, "d8", at(10, 12)),
]
RECOVERIES = [datetime(2024, 9, 30, 12, tzinfo=UTC), at(3, 9, 50), at(7, 11, 30), at(9, 11, 15)]


@pytest.mark.parametrize(
    ("events", "recoveries", "expected"),
    [
        (
            SCENARIO,
            RECOVERIES,
            Dora("production", 10.0, 5, 0.5, 4 / 9, 2700.0, 3900.0, 3, 43200.0, 48000.0, 3),
        ),
        ([], [], Dora("production", 10.0, 0, 0.0, None, None, None, 0, None, None, 0)),
        (  # only another environment's events
            [ev(B, "u", at(2, 9), "uat"), ev(F, "u", at(2, 10), "uat")],
            [],
            Dora("production", 10.0, 0, 0.0, None, None, None, 0, None, None, 0),
        ),
        (  # a failure late in the window is restored after it: still measured
            [ev(B, "x", at(10, 22)), ev(F, "x", at(10, 23)), ev(S, "y", at(11, 1))],
            [],
            Dora("production", 10.0, 0, 0.0, 1.0, 7200.0, 7200.0, 1, None, None, 0),
        ),
        (  # events exactly at start count, exactly at end do not
            [ev(S, "a", START), ev(S, "b", END)],
            [],
            Dora("production", 10.0, 1, 0.1, 0.0, None, None, 0, None, None, 0),
        ),
    ],
)
def test_dora(events: list[DeploymentEvent], recoveries: list[datetime], expected: Dora) -> None:
    assert dora("production", events, recoveries, START, END) == expected


def test_dora_needs_a_sane_window() -> None:
    with pytest.raises(ValueError, match="after start"):
        dora("production", [], [], END, START)
    with pytest.raises(ValueError, match="timezone-aware"):
        dora("production", [], [], START.replace(tzinfo=None), END)
