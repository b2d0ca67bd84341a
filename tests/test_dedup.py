"""When to notify, as tables over a fake clock: first notice, reminders, resolved notices,
escalation, silences and group_wait."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.alerts import Alert, AlertState
from umig_monitor.core.alerts import NotificationKind as K
from umig_monitor.core.dedup import Sent, decide, idempotency_key
from umig_monitor.core.routing import RouteSpec, select_routes

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ROUTE = RouteSpec("critical", ("ops-mail",), repeat_interval=timedelta(hours=4))
ESC = replace(ROUTE, escalate_after=15 * MIN, escalate_sinks=("pager",))
FIRING = Alert(
    "environment_health/production/",
    "environment_unhealthy",
    "production",
    "critical",
    AlertState.FIRING,
    "down",
    T0,
    id=1,
)
RESOLVED = replace(FIRING, state=AlertState.RESOLVED, ends_at=T0 + 30 * MIN)


@pytest.mark.parametrize(
    ("alert", "route", "sent", "now", "silence", "notify", "escalate"),
    [
        (FIRING, ROUTE, None, T0, None, K.FIRING, False),
        (FIRING, ROUTE, Sent(K.FIRING, T0), T0 + MIN, None, None, False),
        (FIRING, ROUTE, Sent(K.FIRING, T0), T0 + 239 * MIN, None, None, False),
        (FIRING, ROUTE, Sent(K.FIRING, T0), T0 + 240 * MIN, None, K.REPEAT, False),
        (FIRING, ROUTE, Sent(K.REPEAT, T0 + 240 * MIN, 2), T0 + 300 * MIN, None, None, False),
        (FIRING, ROUTE, Sent(K.REPEAT, T0 + 240 * MIN, 2), T0 + 480 * MIN, None, K.REPEAT, False),
        (RESOLVED, ROUTE, Sent(K.FIRING, T0), T0 + 31 * MIN, None, K.RESOLVED, False),
        (RESOLVED, ROUTE, Sent(K.REPEAT, T0), T0 + 31 * MIN, None, K.RESOLVED, False),
        (RESOLVED, ROUTE, Sent(K.RESOLVED, T0 + 31 * MIN), T0 + 32 * MIN, None, None, False),
        (RESOLVED, ROUTE, None, T0 + 31 * MIN, None, None, False),  # never notified: nothing to retract
        (RESOLVED, replace(ROUTE, send_resolved=False), Sent(K.FIRING, T0), T0 + 31 * MIN, None, None, False),
        (FIRING, ROUTE, None, T0, "maint-1", None, False),
        (FIRING, ROUTE, Sent(K.FIRING, T0), T0 + 300 * MIN, "maint-1", None, False),
        (RESOLVED, ROUTE, Sent(K.FIRING, T0), T0 + 31 * MIN, "maint-1", None, False),
        (
            FIRING,
            replace(ROUTE, group_wait=30 * timedelta(seconds=1)),
            None,
            T0 + timedelta(seconds=10),
            None,
            None,
            False,
        ),
        (
            FIRING,
            replace(ROUTE, group_wait=30 * timedelta(seconds=1)),
            None,
            T0 + timedelta(seconds=30),
            None,
            K.FIRING,
            False,
        ),
        (FIRING, ESC, Sent(K.FIRING, T0), T0 + 14 * MIN, None, None, False),
        (FIRING, ESC, Sent(K.FIRING, T0), T0 + 15 * MIN, None, None, True),
        (FIRING, ESC, Sent(K.FIRING, T0, escalated_at=T0 + 15 * MIN), T0 + 20 * MIN, None, None, False),
        (replace(FIRING, acked_at=T0 + 5 * MIN), ESC, Sent(K.FIRING, T0), T0 + 15 * MIN, None, None, False),
        (FIRING, ESC, Sent(K.FIRING, T0), T0 + 240 * MIN, None, K.REPEAT, True),
        (FIRING, ESC, Sent(K.FIRING, T0), T0 + 15 * MIN, "maint-1", None, False),
    ],
)
def test_decide(
    alert: Alert,
    route: RouteSpec,
    sent: Sent | None,
    now: datetime,
    silence: str | None,
    notify: K | None,
    escalate: bool,
) -> None:
    decision = decide(alert, route, sent, now, silence)
    assert (decision.notify, decision.escalate) == (notify, escalate), decision.reason


def test_flapping_gives_one_message_per_incident_not_per_poll() -> None:
    """The same alert decided every second for an hour yields one notice."""
    sent = None
    notices = []
    for second in range(3600):
        decision = decide(FIRING, ROUTE, sent, T0 + timedelta(seconds=second))
        if decision.notify:
            notices.append(decision.notify)
            sent = Sent(decision.notify, T0 + timedelta(seconds=second))
    assert notices == [K.FIRING]


ROUTES = [
    RouteSpec("crit", ("mail", "slack"), match={"severity": "critical"}),
    RouteSpec("dev", ("webhook",), match_re={"environment": re.compile("dev.*")}, continue_=True),
    RouteSpec("dev-all", ("archive",), match_re={"environment": re.compile("dev.*")}),
    RouteSpec("label", ("team-hook",), match={"team": "umig"}),
]
DEFAULT = RouteSpec("default", ("catch-all",))


@pytest.mark.parametrize(
    ("labels", "keys"),
    [
        ({"severity": "critical", "environment": "production"}, ["crit"]),
        ({"severity": "critical", "environment": "development"}, ["crit"]),  # first match wins
        ({"severity": "warning", "environment": "development"}, ["dev", "dev-all"]),  # continue
        ({"severity": "warning", "environment": "devx"}, ["dev", "dev-all"]),
        ({"severity": "warning", "environment": "xdev"}, ["default"]),  # regexes are anchored
        ({"severity": "info", "team": "umig"}, ["label"]),
        ({"severity": "info"}, ["default"]),
    ],
)
def test_routing(labels: dict[str, str], keys: list[str]) -> None:
    assert [r.key for r in select_routes(ROUTES, DEFAULT, labels)] == keys


def test_idempotency_key_is_stable_and_distinct() -> None:
    a = idempotency_key("crit", "mail", "firing", [FIRING], "firing:0")
    assert a == idempotency_key("crit", "mail", "firing", [FIRING], "firing:0")
    assert a != idempotency_key("crit", "slack", "firing", [FIRING], "firing:0")
    assert a != idempotency_key("crit", "mail", "repeat", [FIRING], "repeat:1")
    refired = replace(FIRING, starts_at=T0 + timedelta(hours=1))
    assert a != idempotency_key("crit", "mail", "firing", [refired], "firing:0")
