"""When to notify, as Alertmanager's dedup stage does it: once when an alert starts firing, a
reminder every ``repeat_interval`` while it stays active, a resolved notice when it clears, an
escalation when it stays unacknowledged too long, and nothing while it is silenced.

``decide`` is pure: the alert, the route, what was already sent for that pair, and ``now``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from umig_monitor.core.alerts import Alert, AlertState, NotificationKind
from umig_monitor.core.rollouts import held_until
from umig_monitor.core.routing import RouteSpec

_FIRING_KINDS = (NotificationKind.FIRING, NotificationKind.REPEAT)


@dataclass(frozen=True, slots=True)
class Sent:
    """The notification log of one alert on one route."""

    kind: NotificationKind  # the last of firing / repeat / resolved enqueued
    at: datetime  # when it was enqueued
    count: int = 1  # firing + repeat notices so far
    escalated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    notify: NotificationKind | None
    escalate: bool = False
    reason: str = ""


def decide(
    alert: Alert, route: RouteSpec, sent: Sent | None, now: datetime, silenced: str | None = None
) -> Decision:
    if silenced is not None:
        return Decision(None, reason=f"silenced by {silenced}")
    if alert.state is AlertState.RESOLVED:
        if sent is not None and sent.kind in _FIRING_KINDS and route.send_resolved:
            return Decision(NotificationKind.RESOLVED, reason="resolved")
        return Decision(
            None, reason="resolved; nothing to retract" if sent is None else "resolved notice not wanted"
        )
    if sent is None or sent.kind is NotificationKind.RESOLVED:
        if now < alert.starts_at + route.group_wait:
            return Decision(None, reason="waiting for group_wait")
        hold = held_until(alert.details)
        if hold is not None and now < hold:
            return Decision(None, reason="held: it started during a deployment (deployments.alert_grace)")
        return Decision(NotificationKind.FIRING, reason="new alert")
    escalate = (
        route.escalate_after is not None
        and bool(route.escalate_sinks)
        and alert.acked_at is None
        and sent.escalated_at is None
        and now - alert.starts_at >= route.escalate_after
    )
    if now - sent.at >= route.repeat_interval:
        return Decision(NotificationKind.REPEAT, escalate, reason="repeat_interval passed")
    return Decision(None, escalate, reason="already notified" if not escalate else "escalation due")


def idempotency_key(
    route_key: str, sink: str, kind: str, alerts: Iterable[Alert], sequence: int | str
) -> str:
    """Stable across retries and restarts: the same decision always gives the same key."""
    members = sorted(f"{a.key}@{a.starts_at.isoformat()}" for a in alerts)
    raw = "|".join([route_key, sink, kind, *members, str(sequence)])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
