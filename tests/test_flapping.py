"""Version flapping as tables of polls: which changes are announced one by one, when the one notice
per window goes out and with what count, and when flapping ends; the notice as an alert."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.flapping import FLAPPING, Flap, FlapNotice, FlapPolicy, notice_alert, step

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
POLICY = FlapPolicy(window=timedelta(minutes=10), changes=3)

Said = tuple[float, str, int, int]  # (seconds, "announce" | "first" | "more", changes, total)


def polls(
    every: float, until: float, changes: Sequence[float], policy: FlapPolicy = POLICY
) -> tuple[list[Said], Flap]:
    """Poll every ``every`` seconds up to ``until``; the version changed at the polls in ``changes``.
    What was said, in order."""
    flap, said = Flap(), []
    changed_at = {round(c, 3) for c in changes}
    t = 0.0
    while t <= until:
        flap, decision = step(flap, round(t, 3) in changed_at, T0 + timedelta(seconds=t), policy)
        if decision.announce:
            said.append((t, "announce", 1, 1))
        if decision.notice is not None:
            n = decision.notice
            said.append((t, "first" if n.first else "more", n.changes, n.total))
        t = round(t + every, 3)
    return said, flap


@pytest.mark.parametrize(
    ("every", "until", "changes", "expected"),
    [
        # no change: nothing
        (30, 3600, [], []),
        # one deployment
        (30, 3600, [60], [(60, "announce", 1, 1)]),
        # deployment, quick fix, rollback within minutes: each is announced
        (
            30,
            3600,
            [60, 120, 300],
            [(60, "announce", 1, 1), (120, "announce", 1, 1), (300, "announce", 1, 1)],
        ),
        # one every 4 minutes: never more than 3 in a window, all announced
        (60, 3600, [0, 240, 480, 720, 960], [(t, "announce", 1, 1) for t in (0, 240, 480, 720, 960)]),
        # the issue: a new version on every 2 s poll for 62 s (31 changes), then quiet. Three
        # announced, then flapping is told at once with the 4 changes so far, the other 27 when
        # the window ends, and nothing when a quiet window ends it.
        (
            2,
            1800,
            [2 * i for i in range(1, 32)],
            [
                (2, "announce", 1, 1),
                (4, "announce", 1, 1),
                (6, "announce", 1, 1),
                (8, "first", 4, 4),
                (608, "more", 27, 31),
            ],
        ),
        # flapping that goes on: one notice per window, each with that window's changes
        (
            60,
            1900,
            [60 * i for i in range(1, 31)],
            [
                (60, "announce", 1, 1),
                (120, "announce", 1, 1),
                (180, "announce", 1, 1),
                (240, "first", 4, 4),
                (840, "more", 10, 14),
                (1440, "more", 10, 24),
            ],
        ),
    ],
)
def test_flapping(every: float, until: float, changes: list[float], expected: list[Said]) -> None:
    said, _ = polls(every, until, changes)
    assert said == expected


def test_a_quiet_window_ends_flapping_and_the_count_starts_again() -> None:
    flapping = [2 * i for i in range(1, 32)]
    said, flap = polls(2, 1300, [*flapping, 1300])
    assert flap.since is None  # ended at 1208 (a window after 608 without a change)
    assert said[-1] == (1300, "announce", 1, 1)


def test_the_window_is_configurable() -> None:
    said, _ = polls(1, 30, [1, 2, 3], FlapPolicy(window=timedelta(seconds=5), changes=1))
    assert said == [(1, "announce", 1, 1), (2, "first", 2, 2), (7, "more", 1, 3)]


def test_changes_older_than_the_window_do_not_count() -> None:
    # three changes, then the fourth 10 minutes after the first: the first has left the window
    said, _ = polls(60, 700, [0, 60, 120, 600])
    assert [s[1] for s in said] == ["announce"] * 4


NOTICE_FIRST = FlapNotice(4, T0, T0 + timedelta(seconds=6), 4, T0, first=True)
NOTICE_MORE = FlapNotice(27, T0 + timedelta(seconds=6), T0 + timedelta(seconds=606), 31, T0, first=False)


@pytest.mark.parametrize(
    ("notice", "kind", "version", "severity", "summary"),
    [
        (
            NOTICE_FIRST,
            "uat",
            "1.2.0-rc.9",
            "warning",
            "uat: version flapping, 4 changes in 6s, now 1.2.0-rc.9",
        ),
        (
            NOTICE_MORE,
            "uat",
            "1.2.0-rc.9",
            "warning",
            "uat: still flapping, 27 more version changes in 10m00s (31 since 2026-05-04 08:00:00 UTC), "
            "now 1.2.0-rc.9",
        ),
        (NOTICE_FIRST, "development", None, "info", "uat: version flapping, 4 changes in 6s"),
    ],
)
def test_notice_alert(
    notice: FlapNotice, kind: str, version: str | None, severity: str, summary: str
) -> None:
    alert = notice_alert("uat", kind, notice, version, {"team": "ops"})
    assert (alert.type, alert.severity, alert.summary) == (FLAPPING, severity, summary)
    assert alert.labels == {"team": "ops", "kind": kind}
    assert alert.details["changes"] == notice.changes
    assert alert.details["total"] == notice.total


def test_each_window_has_its_own_notice_key() -> None:
    first = notice_alert("uat", "uat", NOTICE_FIRST, None, {})
    more = notice_alert("uat", "uat", NOTICE_MORE, None, {})
    assert first.key != more.key
    assert first.key.startswith("version_flapping/uat/")
