"""What the sinks say about a notification, in the ops guide's words: one place for headlines
("UMIG Health Alert", "UMIG Connection Failure", ...), the deployment sentences, timestamps and
detail lines, so mail, Slack and webhooks describe an alert the same way. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from umig_monitor.core.alerts import Alert, AlertState, Notification, NotificationKind

# The guide's mail subjects, keyed by alert type. Unknown types read "UMIG Alert".
_HEALTH = "UMIG Health Alert"
_DRIFT = "UMIG Version Drift Alert"
HEADLINES: Mapping[str, str] = {
    "environment_unhealthy": _HEALTH,
    "high_error_rate": _HEALTH,
    "slow_response": _HEALTH,
    "high_db_connections": _HEALTH,
    "orchestrator_inactive": _HEALTH,
    "component_unhealthy": _HEALTH,
    "environment_unreachable": "UMIG Connection Failure",
    "version_drift": _DRIFT,
    "major_version_drift": _DRIFT,
    "component_drift": _DRIFT,
    "outdated_environment": _DRIFT,
    "version_churn": "UMIG Version Churn Notice",
    "version_flapping": "UMIG Version Flapping Notice",
    "performance_regression": "UMIG Performance Alert",
    "deployment_start": "UMIG Deployment Started",
    "deployment_success": "UMIG Deployment Successful",
    "deployment_failure": "UMIG Deployment Failed",
    "rollback": "UMIG Deployment Rollback Initiated",
}
DEFAULT_HEADLINE = "UMIG Alert"
DEPLOYMENT_EVENTS = ("deployment_start", "deployment_success", "deployment_failure", "rollback")
REPORT_TITLE = "UMIG Daily Status Report"
TEST_TITLE = "UMIG Test Notification"

KIND_PREFIXES: Mapping[NotificationKind, str] = {
    NotificationKind.RESOLVED: "[RESOLVED]",
    NotificationKind.REPEAT: "[REMINDER]",
    NotificationKind.ESCALATION: "[ESCALATION]",
    NotificationKind.TEST: "[TEST]",
}
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}

# Alertmanager's rendering of an unset time in webhook payloads.
ZERO_TIME = "0001-01-01T00:00:00Z"


def utc(when: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already (the convention for stored times)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def rfc3339(when: datetime | None) -> str:
    """``2024-10-25T10:15:30Z`` (fraction kept when present), Alertmanager's zero time for None."""
    if when is None:
        return ZERO_TIME
    return utc(when).isoformat().replace("+00:00", "Z")


def iso_seconds(when: datetime) -> str:
    """The guide's ``date -Iseconds`` shape, in UTC: ``2024-10-25T10:15:30+00:00``."""
    return utc(when).isoformat(timespec="seconds")


def one_line(text: str) -> str:
    return " ".join(text.split())


def headline(alert_type: str) -> str:
    return HEADLINES.get(alert_type, DEFAULT_HEADLINE)


def group_headline(alerts: Iterable[Alert]) -> str:
    heads = {headline(a.type) for a in alerts}
    if len(heads) == 1:
        return heads.pop()
    return "UMIG Alerts" if heads else DEFAULT_HEADLINE


def top_severity(alerts: Iterable[Alert]) -> str | None:
    ranked = sorted((a.severity for a in alerts), key=lambda s: _SEVERITY_RANK.get(s, 9))
    return ranked[0] if ranked else None


def environments(alerts: Iterable[Alert]) -> str:
    return ", ".join(sorted({a.environment for a in alerts if a.environment}))


def title(notification: Notification) -> str:
    """One line naming the notification: the mail subject (before the configured prefix) and
    the heading of the mail body. Reports and tests carry their own title."""
    n = notification
    if n.kind is NotificationKind.REPORT:
        return one_line(n.title or REPORT_TITLE)
    prefix = KIND_PREFIXES.get(n.kind, "")
    if n.kind is NotificationKind.TEST or not n.alerts:
        return one_line(f"{prefix} {n.title or TEST_TITLE}")
    text = group_headline(n.alerts)
    envs = environments(n.alerts)
    if envs:
        text += f" - {envs}"
    severity = top_severity(n.alerts)
    if severity:
        text += f" [{severity}]"
    if len(n.alerts) > 1:
        text += f" ({len(n.alerts)} alerts)"
    return one_line(f"{prefix} {text}")


def value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def details_lines(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Details as sorted (key, text) pairs, so output does not depend on insertion order."""
    return [(str(k), value_text(details[k])) for k in sorted(details, key=str)]


def details_text(details: Mapping[str, Any]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in details_lines(details))


def version_of(alert: Alert) -> str | None:
    """The UMIG version an alert is about: its ``version`` label, else a version detail."""
    for source in (alert.labels, alert.details):
        for key in ("version", "umigVersion", "fromVersion"):
            value = source.get(key)
            if value not in (None, ""):
                return str(value)
    return None


def event_sentence(alert: Alert) -> str:
    """The guide's Slack message for a deployment event; the alert's summary for anything else,
    or when the event lacks what the sentence needs."""
    d = alert.details
    env = alert.environment or "?"
    version = version_of(alert)
    if alert.type == "deployment_start" and version:
        return f"Deploying UMIG {version} to {env}"
    if alert.type == "deployment_success" and version:
        took = d.get("duration")
        return f"UMIG {version} successfully deployed to {env}" + (f" in {value_text(took)}" if took else "")
    if alert.type == "deployment_failure" and version:
        error = d.get("error")
        return f"UMIG {version} deployment to {env} failed" + (f": {value_text(error)}" if error else "")
    if alert.type == "rollback" and version and d.get("toVersion"):
        return f"Rolling back {env} from {version} to {value_text(d['toVersion'])}"
    return alert.summary


def status_word(alert: Alert, kind: NotificationKind) -> str:
    if kind is NotificationKind.EVENT:
        return "EVENT"
    return "RESOLVED" if alert.state is AlertState.RESOLVED else "FIRING"


def event_time(alert: Alert) -> datetime:
    """When the thing the alert reports happened: its end once resolved, else its start."""
    if alert.state is AlertState.RESOLVED and alert.ends_at is not None:
        return alert.ends_at
    return alert.starts_at
