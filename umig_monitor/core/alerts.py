"""Alerts and the notifications that carry them: plain values shared by jobs, routing and sinks."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from umig_monitor.core.timetext import parse_timestamp

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


class AlertState(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def alert_key(kind: str, environment: str | None, subject: str = "") -> str:
    """The stable identity of an alert: one incident of one kind, in one environment, about one subject."""
    return f"{kind}/{environment or '-'}/{subject}"


def key_kind(key: str) -> str:
    """The kind an ``alert_key`` was made with: the one place that reads a key apart."""
    return key.partition("/")[0]


_FNV64_OFFSET = 14695981039346656037
_FNV64_PRIME = 1099511628211
_MASK64 = (1 << 64) - 1
_SEPARATOR = 0xFF  # cannot occur in UTF-8, so name/value boundaries are unambiguous


def label_set_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint (prometheus/common ``model.LabelSet.Fingerprint``): FNV-1a
    64 over each label name and value in name order, each followed by the byte 0xff, as 16 hex
    digits. A receiver can match our alerts with the ones Alertmanager shows for the same labels."""
    h = _FNV64_OFFSET
    for name in sorted(labels):  # code point order is UTF-8 byte order, Go's string order
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * _FNV64_PRIME) & _MASK64
            h = ((h ^ _SEPARATOR) * _FNV64_PRIME) & _MASK64
    return f"{h:016x}"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """What a job raises. ``firing=False`` clears the alert with the same key."""

    key: str
    type: str
    environment: str | None
    severity: Severity
    summary: str
    at: datetime
    firing: bool = True
    details: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as stored: its current state and when it started and ended."""

    key: str
    type: str
    environment: str | None
    severity: Severity
    state: AlertState
    summary: str
    starts_at: datetime
    ends_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    id: int | None = None
    last_notified_at: datetime | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None

    @property
    def fingerprint(self) -> str:
        """Alertmanager's fingerprint of ``label_set()``."""
        return label_set_fingerprint(self.label_set())

    @property
    def kind(self) -> str:
        """The kind of incident the key names (``alert_key``'s first part), e.g. ``environment_health``
        for an outage whatever its ``type`` (unreachable or unhealthy)."""
        return key_kind(self.key)

    def all_labels(self) -> dict[str, str]:
        """Labels routes match on: the alert's own plus alertname/type/severity/environment."""
        out = dict(self.labels)
        out.update(alertname=self.type, type=self.type, severity=self.severity)
        if self.environment:
            out["environment"] = self.environment
        return out

    def label_set(self) -> dict[str, str]:
        """What tells this alert apart for Alertmanager, which knows alerts by their labels alone:
        the routing labels plus ``alert_key`` (two unhealthy components of one environment differ
        only in the key). Sorted by name."""
        return dict(sorted({**self.all_labels(), "alert_key": self.key}.items()))


class NotificationKind(enum.StrEnum):
    FIRING = "firing"  # an alert started
    REPEAT = "repeat"  # still firing after repeat_interval
    RESOLVED = "resolved"  # it cleared
    ESCALATION = "escalation"  # still firing and unacknowledged after escalate.after
    EVENT = "event"  # a one-off notice (deployment events)
    REPORT = "report"  # the daily report
    TEST = "test"  # notify-test


# Kinds that are one-off by nature: nothing follows them (no reminder, no resolved notice).
ONE_OFF_KINDS = frozenset({NotificationKind.EVENT, NotificationKind.REPORT, NotificationKind.TEST})


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one sink. ``idempotency_key`` is stable across retries and restarts, so a
    receiver can drop duplicates.

    Receivers that keep alerts active until told otherwise (Alertmanager) need to know what comes
    next: nothing, for a one-off (``is_one_off``: an event, a report, a test, or a notice marked
    ``one_off`` such as a manual escalation); else ``repeat_interval`` is how long until the
    route's next reminder while the alerts still fire.
    ``supersedes`` are earlier one-off notices this one ends (a deployment's start, once the
    deployment succeeded or failed); sinks without such state ignore them."""

    idempotency_key: str
    kind: NotificationKind
    receiver: str
    alerts: tuple[Alert, ...]
    created_at: datetime
    group_labels: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None
    text: str | None = None
    html: str | None = None
    external_url: str | None = None
    one_off: bool = False
    repeat_interval: timedelta | None = None
    supersedes: tuple[Alert, ...] = ()

    @property
    def is_one_off(self) -> bool:
        return self.one_off or self.kind in ONE_OFF_KINDS

    @property
    def status(self) -> AlertState:
        """Alertmanager's group status: firing while any alert in the group fires."""
        if any(a.state is AlertState.FIRING for a in self.alerts):
            return AlertState.FIRING
        return AlertState.RESOLVED


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    return parse_timestamp(value, naive_is_utc=True) if isinstance(value, str) else None


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return {
        "key": alert.key,
        "type": alert.type,
        "environment": alert.environment,
        "severity": alert.severity,
        "state": alert.state.value,
        "summary": alert.summary,
        "starts_at": _ts(alert.starts_at),
        "ends_at": _ts(alert.ends_at),
        "details": dict(alert.details),
        "labels": dict(alert.labels),
        "id": alert.id,
        "acked_at": _ts(alert.acked_at),
        "acked_by": alert.acked_by,
    }


def alert_from_dict(data: Mapping[str, Any]) -> Alert:
    starts = _dt(data["starts_at"])
    assert starts is not None
    return Alert(
        key=data["key"],
        type=data["type"],
        environment=data.get("environment"),
        severity=data["severity"],
        state=AlertState(data["state"]),
        summary=data["summary"],
        starts_at=starts,
        ends_at=_dt(data.get("ends_at")),
        details=data.get("details") or {},
        labels=data.get("labels") or {},
        id=data.get("id"),
        acked_at=_dt(data.get("acked_at")),
        acked_by=data.get("acked_by"),
    )


def notification_to_dict(n: Notification) -> dict[str, Any]:
    """The outbox payload: everything a sink needs to build its message, as JSON."""
    return {
        "idempotency_key": n.idempotency_key,
        "kind": n.kind.value,
        "receiver": n.receiver,
        "alerts": [alert_to_dict(a) for a in n.alerts],
        "created_at": n.created_at.isoformat(),
        "group_labels": dict(n.group_labels),
        "title": n.title,
        "text": n.text,
        "html": n.html,
        "external_url": n.external_url,
        "one_off": n.one_off,
        "repeat_interval": n.repeat_interval.total_seconds() if n.repeat_interval is not None else None,
        "supersedes": [alert_to_dict(a) for a in n.supersedes],
    }


def notification_from_dict(data: Mapping[str, Any]) -> Notification:
    created = _dt(data["created_at"])
    assert created is not None
    repeat = data.get("repeat_interval")
    return Notification(
        idempotency_key=data["idempotency_key"],
        kind=NotificationKind(data["kind"]),
        receiver=data["receiver"],
        alerts=tuple(alert_from_dict(a) for a in data.get("alerts", [])),
        created_at=created,
        group_labels=data.get("group_labels") or {},
        title=data.get("title"),
        text=data.get("text"),
        html=data.get("html"),
        external_url=data.get("external_url"),
        # Rows written before these fields existed have neither: repeat_interval is then unknown.
        one_off=bool(data.get("one_off", False)),
        repeat_interval=timedelta(seconds=repeat) if isinstance(repeat, int | float) else None,
        supersedes=tuple(alert_from_dict(a) for a in data.get("supersedes") or ()),
    )
