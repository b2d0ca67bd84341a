"""Alerts and the notifications that carry them: plain values shared by jobs, routing and sinks."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


class AlertState(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def alert_key(kind: str, environment: str | None, subject: str = "") -> str:
    """The stable identity of an alert: one incident of one kind, in one environment, about one subject."""
    return f"{kind}/{environment or '-'}/{subject}"


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
        return hashlib.sha256(self.key.encode()).hexdigest()[:16]

    def all_labels(self) -> dict[str, str]:
        """Labels routes match on: the alert's own plus alertname/type/severity/environment."""
        out = dict(self.labels)
        out.update(alertname=self.type, type=self.type, severity=self.severity)
        if self.environment:
            out["environment"] = self.environment
        return out


class NotificationKind(enum.StrEnum):
    FIRING = "firing"  # an alert started
    REPEAT = "repeat"  # still firing after repeat_interval
    RESOLVED = "resolved"  # it cleared
    ESCALATION = "escalation"  # still firing and unacknowledged after escalate.after
    EVENT = "event"  # a one-off notice (deployment events)
    REPORT = "report"  # the daily report
    TEST = "test"  # notify-test


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one sink. ``idempotency_key`` is stable across retries and restarts, so a
    receiver can drop duplicates."""

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

    @property
    def status(self) -> AlertState:
        """Alertmanager's group status: firing while any alert in the group fires."""
        if any(a.state is AlertState.FIRING for a in self.alerts):
            return AlertState.FIRING
        return AlertState.RESOLVED

    def common_labels(self) -> dict[str, str]:
        if not self.alerts:
            return dict(self.group_labels)
        common = self.alerts[0].all_labels()
        for alert in self.alerts[1:]:
            labels = alert.all_labels()
            common = {k: v for k, v in common.items() if labels.get(k) == v}
        return common
