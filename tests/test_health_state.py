"""The incident state machine, as a table: sequences of poll results and the transitions they give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.health_state import Change, Phase, State, step

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def run(
    seq: str, failure_threshold: int = 3, success_threshold: int = 2
) -> tuple[State, list[tuple[int, Change]]]:
    """seq: '+' success, '-' failure, one poll every 30 s. Returns the end state and (index, change)."""
    state = State()
    out = []
    for i, ch in enumerate(seq):
        state, transition = step(
            state,
            ch == "+",
            T0 + timedelta(seconds=30 * i),
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
            detail=f"poll {i}",
        )
        if transition:
            out.append((i, transition.change))
    return state, out


@pytest.mark.parametrize(
    ("seq", "expected", "phase"),
    [
        ("", [], Phase.UNKNOWN),
        ("+", [], Phase.UNKNOWN),
        ("++", [(1, Change.CLOSED)], Phase.UP),  # start-up: closes an incident left open, if any
        ("++++++", [(1, Change.CLOSED)], Phase.UP),
        ("--", [], Phase.UNKNOWN),
        ("---", [(2, Change.OPENED)], Phase.DOWN),
        ("++---", [(1, Change.CLOSED), (4, Change.OPENED)], Phase.DOWN),
        ("++--------", [(1, Change.CLOSED), (4, Change.OPENED)], Phase.DOWN),  # one alert per incident
        ("++---+", [(1, Change.CLOSED), (4, Change.OPENED)], Phase.DOWN),  # one success is not recovery
        ("++---++", [(1, Change.CLOSED), (4, Change.OPENED), (6, Change.CLOSED)], Phase.UP),
        ("++-+-+-+-+-+", [(1, Change.CLOSED)], Phase.UP),  # flapping below the threshold: silence
        ("++--+--+--+", [(1, Change.CLOSED)], Phase.UP),
        ("++---+-+-+-", [(1, Change.CLOSED), (4, Change.OPENED)], Phase.DOWN),  # flapping while down
    ],
)
def test_transitions(seq: str, expected: list[tuple[int, Change]], phase: Phase) -> None:
    state, transitions = run(seq)
    assert transitions == expected
    assert state.phase is phase


@pytest.mark.parametrize(
    ("ft", "st", "seq", "expected"),
    [
        (1, 1, "+-+", [(0, Change.CLOSED), (1, Change.OPENED), (2, Change.CLOSED)]),
        (2, 3, "+++--++-+++", [(2, Change.CLOSED), (4, Change.OPENED), (10, Change.CLOSED)]),
    ],
)
def test_thresholds_are_configurable(ft: int, st: int, seq: str, expected: list[tuple[int, Change]]) -> None:
    assert run(seq, ft, st)[1] == expected


def test_incident_start_is_the_first_failure_of_the_streak() -> None:
    state = State()
    transitions = []
    for i, ok in enumerate([True, True, False, False, False, True, True]):
        state, t = step(
            state,
            ok,
            T0 + timedelta(seconds=30 * i),
            failure_threshold=3,
            success_threshold=2,
            detail="HTTP 503" if not ok else None,
        )
        if t:
            transitions.append(t)
    opened, closed = transitions[1], transitions[2]
    assert opened.started_at == T0 + timedelta(seconds=60)
    assert opened.at == T0 + timedelta(seconds=120)
    assert opened.detail == "HTTP 503"
    assert closed.started_at == opened.started_at
    assert closed.detail == "HTTP 503"
