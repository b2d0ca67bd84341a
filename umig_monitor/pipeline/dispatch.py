"""The notify stage: route every alert, let core decide what is due (first notice, reminder,
resolved notice, escalation), group what goes out together, and write it to the outbox with the
dedup memory in one transaction. Nothing is sent from here: delivery reads the outbox."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from umig_monitor.core.alerts import Alert, AlertState, Notification, NotificationKind, notification_to_dict
from umig_monitor.core.dedup import Sent, decide, idempotency_key
from umig_monitor.core.routing import RouteSpec, select_routes
from umig_monitor.core.silences import Silence, WeeklyWindow, silenced_by
from umig_monitor.storage import Store
from umig_monitor.storage.records import LogUpdate, OutboxEntry

log = structlog.get_logger("umig_monitor.pipeline")
_FIRING = (NotificationKind.FIRING, NotificationKind.REPEAT)


@dataclass(frozen=True, slots=True)
class Policy:
    routes: list[RouteSpec]
    default: RouteSpec
    silences: list[Silence] = field(default_factory=list)  # from config; the store adds the API's
    windows: list[WeeklyWindow] = field(default_factory=list)
    deadlines: dict[str, timedelta] = field(default_factory=dict)  # per sink: retry deadline
    external_url: str | None = None


@dataclass(slots=True)
class Plan:
    """One evaluation's result, before it is stored."""

    entries: list[OutboxEntry] = field(default_factory=list)
    log: dict[tuple[int, str], LogUpdate] = field(default_factory=dict)
    suppressed: dict[str, str] = field(default_factory=dict)  # alert key -> silence id


def plan(
    alerts: list[Alert],
    sent_log: dict[tuple[int, str], Sent],
    silences: list[Silence],
    policy: Policy,
    now: datetime,
) -> Plan:
    """Pure: what to enqueue now for these alerts."""
    out = Plan()
    groups: dict[tuple[str, tuple[tuple[str, str], ...], NotificationKind, tuple[str, ...]], list[Alert]] = (
        defaultdict(list)
    )
    sequences: dict[tuple[str, tuple[tuple[str, str], ...], NotificationKind, tuple[str, ...]], int] = {}
    routes_by_key = {r.key: r for r in (*policy.routes, policy.default)}
    for alert in alerts:
        assert alert.id is not None
        labels = alert.all_labels()
        silence = silenced_by(labels, now, silences, policy.windows)
        if silence is not None:
            out.suppressed[alert.key] = silence
        for route in select_routes(policy.routes, policy.default, labels):
            sent = sent_log.get((alert.id, route.key))
            decision = decide(alert, route, sent, now, silence)
            group = route.group_key(labels)
            count = sent.count if sent else 0
            escalated = sent.escalated_at if sent else None
            kind = decision.notify
            if kind is not None:
                key = (route.key, group, kind, route.sinks)
                groups[key].append(alert)
                sequences[key] = max(sequences.get(key, 0), count)
                if kind in _FIRING:
                    count += 1
            if decision.escalate:
                key = (route.key, group, NotificationKind.ESCALATION, route.escalate_sinks)
                groups[key].append(alert)
                escalated = now
            if kind is None and not decision.escalate:
                if (
                    alert.state is AlertState.RESOLVED
                    and sent is not None
                    and sent.kind in _FIRING
                    and not silence
                ):
                    kind = NotificationKind.RESOLVED  # send_resolved is off: close the log all the same
                else:
                    continue
            last_kind = kind if kind is not None else (sent.kind if sent else NotificationKind.FIRING)
            last_at = now if kind is not None else (sent.at if sent else now)
            out.log[(alert.id, route.key)] = LogUpdate(
                alert.id, route.key, last_kind.value, last_at, count, escalated
            )
    for (route_key, group, kind, sinks), members in groups.items():
        route = routes_by_key[route_key]
        if not sinks:
            log.info(
                "notification_dropped",
                route=route_key,
                kind=kind.value,
                alerts=len(members),
                reason="route has no sinks",
            )
            continue
        sequence = f"{kind.value}:{sequences.get((route_key, group, kind, sinks), 0)}"
        for sink in sinks:
            notification = Notification(
                idempotency_key=idempotency_key(route_key, sink, kind.value, members, sequence),
                kind=kind,
                receiver=route.key,
                alerts=tuple(members),
                created_at=now,
                group_labels=dict(group),
                external_url=policy.external_url,
                repeat_interval=route.repeat_interval,
            )
            out.entries.append(
                outbox_entry(notification, sink, policy, members[0].id if len(members) == 1 else None)
            )
    return out


def outbox_entry(notification: Notification, sink: str, policy: Policy, alert_id: int | None) -> OutboxEntry:
    """The outbox row that delivers ``notification`` through ``sink``, by the sink's deadline."""
    now = notification.created_at
    return OutboxEntry(
        sink=sink,
        kind=notification.kind.value,
        idempotency_key=notification.idempotency_key,
        payload=notification_to_dict(notification),
        created_at=now,
        deadline=now + policy.deadlines.get(sink, timedelta(hours=24)),
        alert_id=alert_id,
    )


class Dispatcher:
    def __init__(self, store: Store, policy: Policy) -> None:
        self._store = store
        self.policy = policy
        self._suppressed: dict[str, str] = {}

    async def evaluate(self, now: datetime) -> int:
        """One pass over the alerts; returns how many notifications were enqueued."""
        alerts = await self._store.alerts_for_dispatch()
        if not alerts:
            self._suppressed.clear()
            return 0
        sent = await self._store.notification_log([a.id for a in alerts if a.id is not None])
        silences = [*self.policy.silences, *await self._store.list_silences(now)]
        result = plan(alerts, sent, silences, self.policy, now)
        for key, silence in result.suppressed.items():
            if self._suppressed.get(key) != silence:
                log.info("notification_suppressed", alert_key=key, silence=silence)
        self._suppressed = result.suppressed
        inserted = await self._store.enqueue(result.entries, list(result.log.values()))
        for entry in result.entries:
            log.info(
                "notification_enqueued",
                sink=entry.sink,
                kind=entry.kind,
                alert_key=entry.payload["alerts"][0]["key"] if entry.payload["alerts"] else None,
                idempotency_key=entry.idempotency_key,
            )
        return inserted

    async def refresh_suppressed(self, now: datetime) -> None:
        """Which firing alerts a silence holds back, without dispatching: a replica that is not
        the leader still shows it in the API and on the status page."""
        silences = [*self.policy.silences, *await self._store.list_silences(now)]
        self._suppressed = {
            alert.key: silence
            for alert in await self._store.active_alerts()
            if (silence := silenced_by(alert.all_labels(), now, silences, self.policy.windows)) is not None
        }

    def suppressed_by(self, key: str) -> str | None:
        return self._suppressed.get(key)
