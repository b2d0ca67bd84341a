"""Operator actions shared by the API and the CLI (which uses them directly when no daemon runs):
silences, acknowledgements and manual escalation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from umig_monitor.core.alerts import Alert, AlertEvent, AlertState, Severity, alert_key
from umig_monitor.core.silences import Silence, matches_nothing_specific, parse_matcher
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.storage import Store

SEVERITIES = ("critical", "warning", "info")
MAX_MATCHERS = 16


class ActionError(ValueError):
    """Bad operator input; the message names the field."""


class NotFound(ActionError):
    """What the action names does not exist (a 404)."""


async def add_silence(
    store: Store,
    matchers: list[str],
    *,
    now: datetime,
    duration: timedelta | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    author: str,
    comment: str,
) -> Silence:
    if not matchers:
        raise ActionError("matchers: at least one matcher is required (e.g. environment=uat)")
    if len(matchers) > MAX_MATCHERS:
        raise ActionError(f"matchers: at most {MAX_MATCHERS}")
    try:
        parsed = tuple(parse_matcher(m) for m in matchers)
    except ValueError as exc:
        raise ActionError(f"matchers: {exc}") from None
    if matches_nothing_specific(parsed):
        raise ActionError(
            "matchers: at least one must not match an empty label (these would silence every alert)"
        )
    if not author.strip():
        raise ActionError("author: required")
    start = starts_at or now
    if ends_at is None:
        if duration is None or duration <= timedelta(0):
            raise ActionError("duration: a positive duration (or endsAt) is required")
        ends_at = start + duration
    if ends_at <= start:
        raise ActionError("endsAt: must be after startsAt")
    silence = Silence(uuid.uuid4().hex[:12], parsed, start, ends_at, author.strip(), comment)
    await store.add_silence(silence, now)
    return silence


async def acknowledge(store: Store, alert_id: int, by: str, now: datetime) -> tuple[Alert, bool]:
    """Acknowledge an alert: (the alert, True) when this call acknowledged it; (the alert, False)
    when someone had already, whose name and time the alert carries. No alert: ActionError."""
    by = by.strip()[:100] or "unknown"
    alert, acked = await store.ack_alert(alert_id, by, now)
    if alert is None:
        raise NotFound(f"id: no alert {alert_id}")
    return alert, acked


MANUAL = "manual"  # the label of an alert an operator raised (escalate); only those are resolved by hand


async def escalate(
    store: Store,
    pipeline: AlertPipeline,
    kind: str,
    environment: str,
    severity: str,
    message: str | None,
    *,
    now: datetime,
    known_environments: list[str],
) -> Alert:
    """The guide's escalate-alert.sh, as an incident: a manual alert that fires through routing
    like any other (its route's escalation, repeats and acknowledgement apply) until someone
    resolves it (``resolve``). The dispatcher sends its first notice on its next pass."""
    if severity not in SEVERITIES:
        raise ActionError(f"severity: must be one of {', '.join(SEVERITIES)}, got '{severity}'")
    if environment not in known_environments:
        raise ActionError(f"environment: unknown environment '{environment}'")
    if not kind or len(kind) > 64 or not kind.replace("_", "").replace("-", "").isalnum():
        raise ActionError(f"type: 1-64 letters, digits, '_' or '-', got '{kind[:80]}'")
    if message is not None and (not isinstance(message, str) or len(message) > 4096):
        raise ActionError("message: a string of at most 4096 characters")
    sev: Severity = severity  # type: ignore[assignment]
    summary = message or f"{kind} in {environment} escalated manually"
    event = AlertEvent(
        alert_key(kind, environment, f"{MANUAL}-{uuid.uuid4().hex[:12]}"),
        kind,
        environment,
        sev,
        summary,
        now,
        labels={MANUAL: "true"},
        details={"message": message or ""},
        starts_at=now,
    )
    await pipeline.submit(event)
    alert = next((a for a in await store.active_alerts(environment) if a.key == event.key), None)
    if alert is None:
        raise ActionError("the alert could not be recorded")  # pragma: no cover - storage raised first
    return alert


async def resolve(store: Store, pipeline: AlertPipeline, alert_id: int, now: datetime) -> Alert:
    """Resolve a manual alert (``escalate``); its routes send their resolved notice. An alert a
    check raised resolves itself when the check passes: it is refused here (ack or silence it)."""
    alert = await store.get_alert(alert_id)
    if alert is None:
        raise NotFound(f"id: no alert {alert_id}")
    if alert.labels.get(MANUAL) != "true":
        raise ActionError(
            f"id: alert {alert_id} ({alert.type}) resolves itself when its check passes; "
            "acknowledge or silence it instead"
        )
    if alert.state is AlertState.RESOLVED:
        return alert
    await pipeline.submit(
        AlertEvent(alert.key, alert.type, alert.environment, alert.severity, alert.summary, now, False)
    )
    return await store.get_alert(alert_id) or alert
