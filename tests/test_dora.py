"""History summaries and DORA figures over tables of events, checked against hand computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.deployments import DeploymentEvent, Dora, EventType, Summary
from umig_monitor.core.dora import Incident, dora, summarize

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
#   d1  start 1 Oct 09:00, success 09:10, commit 07:10Z     reached, lead 2h = 7200 s
#   d2  start 3 Oct 09:00, failure 09:05                    failed
#   d3  start 3 Oct 10:00, success 10:35, commit 2 Oct
#       10:35+02:00 = 08:35Z                                reached, lead 26h = 93600 s
#   o1  observed 5 Oct 12:00                                reached (nobody reported it)
#   d4  start 7 Oct 09:00 carrying the commit 6 Oct 21:20Z,
#       success 09:20, rolled back 11:00                    reached, lead 12h = 43200 s; failed change
#   d5  start 8 Oct 10:40, success 11:00, commit 8 Oct
#       11:30Z (after the success: clock skew)              reached, lead not counted
#   d6  start 9 Oct 09:00, failure 09:15                    failed (during incident B)
#   d8  start 10 Oct 11:50, failure 12:00                   failed, never restored
#   uat success 9 Oct 10:00                                 another environment
# Health incidents: Z 30 Sep 11:00-12:00 (outside); A 7 Oct 09:40-11:30, 20 min after d4 reached:
# linked to d4; B 9 Oct 09:10-11:15, a day after d5: linked to nothing.
#
# deployments = d1 d3 o1 d4 d5 = 5; frequency 5 / 10 days = 0.5 per day
# change failure rate: of the 8 finished (d1 d2 d3 o1 d4 d5 d6 d8), d2 d6 d8 failed and d4 was
#   rolled back (and had incident A): 4/8
# time to restore, to the first of a rollback, the next production success, the incident's end:
#   incident A 7 Oct 09:40: the rollback at 11:00 (80 min), its end 11:30        -> 4800 s
#   incident B 9 Oct 09:10: its end 11:15 (no success or rollback after it)      -> 7500 s
#   d2 failure 3 Oct 09:05: success 10:35                                         -> 5400 s
#   d6 failure 9 Oct 09:15: inside incident B, which is counted already          -> not again
#   d8 failure 10 Oct 12:00: nothing after it                                     -> unresolved
#   restores 3; median 5400; mean (4800 + 7500 + 5400) / 3 = 5900
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
    ev(B, "d4", at(7, 9), commit_time="2024-10-06T21:20:00Z"),
    ev(S, "d4", at(7, 9, 20)),
    ev(R, "d4", at(7, 11)),
    ev(B, "d5", at(8, 10, 40)),
    ev(S, "d5", at(8, 11), commit_time="2024-10-08T11:30:00Z"),
    ev(B, "d6", at(9, 9)),
    ev(F, "d6", at(9, 9, 15)),
    ev(S, "u1", at(9, 10), environment="uat"),
    ev(B, "d8", at(10, 11, 50)),
    ev(F, "d8", at(10, 12)),
]
INCIDENTS = [
    Incident(datetime(2024, 9, 30, 11, tzinfo=UTC), datetime(2024, 9, 30, 12, tzinfo=UTC)),
    Incident(at(7, 9, 40), at(7, 11, 30)),
    Incident(at(9, 9, 10), at(9, 11, 15)),
]


def figures(
    deployments: int,
    cfr: float | None,
    restore: tuple[float | None, float | None, int],
    lead: tuple[float | None, float | None, int],
    failed: int = 0,
    incidents: tuple[int, int] = (0, 0),
) -> Dora:
    return Dora("production", 10.0, deployments, deployments / 10, cfr, *restore, *lead, failed, *incidents)


NONE = (None, None, 0)


@pytest.mark.parametrize(
    ("events", "incidents", "expected"),
    [
        (SCENARIO, INCIDENTS, figures(5, 4 / 8, (5400.0, 5900.0, 3), (43200.0, 48000.0, 3), 4, (2, 1))),
        ([], [], figures(0, None, NONE, NONE)),
        (  # only another environment's events
            [ev(B, "u", at(2, 9), "uat"), ev(F, "u", at(2, 10), "uat")],
            [],
            figures(0, None, NONE, NONE),
        ),
        (  # a failure late in the window is restored after it: still measured
            [ev(B, "x", at(10, 22)), ev(F, "x", at(10, 23)), ev(S, "y", at(11, 1))],
            [],
            figures(0, 1.0, (7200.0, 7200.0, 1), NONE, 1),
        ),
        (  # a failure rolled back 3 minutes later is restored in 3 minutes, and is one deployment
            [ev(B, "x", at(5, 9)), ev(F, "x", at(5, 9, 10)), ev(R, "x", at(5, 9, 13))],
            [],
            figures(0, 1.0, (180.0, 180.0, 1), NONE, 1),
        ),
        (  # an incident soon after a deployment makes it a failed change, and is restored by its end
            [ev(S, "a", at(5, 9))],
            [Incident(at(5, 9, 30), at(5, 9, 45))],
            figures(1, 1.0, (900.0, 900.0, 1), NONE, 1, (1, 1)),
        ),
        (  # events exactly at start count, exactly at end do not
            [ev(S, "a", START), ev(S, "b", END)],
            [],
            figures(1, 0.0, NONE, NONE),
        ),
    ],
)
def test_dora(events: list[DeploymentEvent], incidents: list[Incident], expected: Dora) -> None:
    assert dora("production", events, incidents, START, END) == expected


def test_dora_needs_a_sane_window() -> None:
    with pytest.raises(ValueError, match="after start"):
        dora("production", [], [], END, START)
    with pytest.raises(ValueError, match="timezone-aware"):
        dora("production", [], [], START.replace(tzinfo=None), END)
