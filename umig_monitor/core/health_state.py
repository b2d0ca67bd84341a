"""Per-environment incident state with failure/success thresholds (flap control), as in Gatus.

``step(state, ok, now, ...)`` is pure: the same inputs always give the same state and transition.
An incident opens after ``failure_threshold`` consecutive failures and closes after
``success_threshold`` consecutive successes; anything in between changes nothing, so a flapping
target does not produce a message per flap."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime


class Phase(enum.StrEnum):
    UNKNOWN = "unknown"  # since start-up, before either threshold was reached
    UP = "up"
    DOWN = "down"


class Change(enum.StrEnum):
    OPENED = "opened"  # an incident starts: alert
    CLOSED = "closed"  # an incident ends: resolve (also after start-up, for an incident left open)


@dataclass(frozen=True, slots=True)
class State:
    phase: Phase = Phase.UNKNOWN
    failures: int = 0
    successes: int = 0
    since: datetime | None = None  # when the current phase began
    first_failure: datetime | None = None  # start of the current failure streak
    last_detail: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    change: Change
    at: datetime
    started_at: datetime  # when the incident began (first failure of the streak)
    detail: str | None


def step(
    state: State,
    ok: bool,
    now: datetime,
    *,
    failure_threshold: int,
    success_threshold: int,
    detail: str | None = None,
) -> tuple[State, Transition | None]:
    if ok:
        successes = state.successes + 1
        new = replace(state, failures=0, successes=successes, first_failure=None)
        if state.phase is not Phase.UP and successes >= success_threshold:
            started = state.since or now
            new = replace(new, phase=Phase.UP, since=now, last_detail=None)
            return new, Transition(Change.CLOSED, now, started, state.last_detail)
        return new, None
    failures = state.failures + 1
    first = state.first_failure or now
    new = replace(state, failures=failures, successes=0, first_failure=first, last_detail=detail)
    if state.phase is not Phase.DOWN and failures >= failure_threshold:
        new = replace(new, phase=Phase.DOWN, since=first)
        return new, Transition(Change.OPENED, now, first, detail)
    return new, None
