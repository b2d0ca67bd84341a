"""The webhook sink: Alertmanager's webhook format (version 4) so existing receivers work as they
are, or, with ``format: alertmanager``, the alerts themselves posted to an Alertmanager's API v2
so it can do the routing. Payloads are plain dicts built by pure functions and encoded with json."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from umig_monitor.config.models import WebhookSink
from umig_monitor.core.alerts import Alert, AlertState, Notification, label_set_fingerprint
from umig_monitor.sinks.base import SendResult, SinkSender, classify_http
from umig_monitor.sinks.content import details_text, event_sentence, rfc3339
from umig_monitor.sinks.http import origin, post_json

JSONPayload = dict[str, Any] | list[dict[str, Any]]

# Alertmanager resolves an alert by itself once its endsAt passes, so endsAt says how long an
# alert stays active there without news from us (and bounds it if umig-monitor stops).
# An incident is re-sent at each reminder (the route's repeat_interval) and resolved when it
# clears, so it must outlast several reminders: at least FIRING_TTL, else REPEATS_COVERED times the
# route's repeat_interval. A one-off notice (deployment event, test, manual escalation) is never
# followed up, so it stays only the sink's notice_ttl: long enough to be grouped and sent.
FIRING_TTL = timedelta(hours=24)
REPEATS_COVERED = 3
ALERTS_API_PATH = "/api/v2/alerts"


def firing_ttl(repeat_interval: timedelta | None) -> timedelta:
    """How long a firing incident stays active in Alertmanager after each (re-)send."""
    if repeat_interval is None:
        return FIRING_TTL
    return max(FIRING_TTL, REPEATS_COVERED * repeat_interval)


def alert_labels(alert: Alert) -> dict[str, str]:
    """The labels routes see, plus ``alert_key``: see Alert.label_set."""
    return alert.label_set()


_LABEL_NAME_ILLEGAL = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_label_name(name: str) -> str:
    """Alertmanager refuses a whole batch over one label name outside [a-zA-Z_][a-zA-Z0-9_]*
    (a ``team-name`` label from the config, say), so such names are mended, as Prometheus does."""
    mended = _LABEL_NAME_ILLEGAL.sub("_", name) or "_"
    return f"_{mended}" if mended[0].isdigit() else mended


def alert_annotations(alert: Alert) -> dict[str, str]:
    annotations = {"summary": event_sentence(alert)}
    if alert.details:
        annotations["description"] = details_text(alert.details)
    return annotations


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return dict(sorted(common.items()))


def group_key(notification: Notification) -> str:
    """Alertmanager's shape, ``{}:{label="value", ...}``: the route (always the root here) and
    the group labels, sorted and quoted."""
    labels = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(notification.group_labels.items()))
    return f"{{}}:{{{labels}}}"


def webhook_body(notification: Notification) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4), plus ``idempotencyKey`` and ``kind`` (firing,
    repeat, resolved, escalation, event, report, test); reports add ``title`` and ``text``."""
    n = notification
    external = n.external_url or ""
    labels = [alert_labels(a) for a in n.alerts]
    annotations = [alert_annotations(a) for a in n.alerts]
    alerts = []
    for alert, alert_label_set, alert_notes in zip(n.alerts, labels, annotations, strict=True):
        alerts.append(
            {
                "status": alert.state.value,
                "labels": alert_label_set,
                "annotations": alert_notes,
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": rfc3339(alert.ends_at if alert.state is AlertState.RESOLVED else None),
                "generatorURL": external,
                # Alertmanager's, over the labels above: the same alert has the same fingerprint
                # here and in an Alertmanager's API and notifications.
                "fingerprint": label_set_fingerprint(alert_label_set),
            }
        )
    body: dict[str, Any] = {
        "version": "4",
        "groupKey": group_key(n),
        "truncatedAlerts": 0,
        "status": n.status.value,
        "receiver": n.receiver,
        "groupLabels": dict(sorted(n.group_labels.items())),
        "commonLabels": _common(labels) if labels else dict(n.group_labels),
        "commonAnnotations": _common(annotations),
        "externalURL": external,
        "alerts": alerts,
        "idempotencyKey": n.idempotency_key,
        "kind": n.kind.value,
    }
    if n.title is not None:
        body["title"] = n.title
    if n.text is not None:
        body["text"] = n.text
    return body


def postable_alerts(notification: Notification, notice_ttl: timedelta) -> list[dict[str, Any]]:
    """Alertmanager API v2 postable alerts. endsAt is always set: without it Alertmanager would
    resolve a still-firing incident after its resolve_timeout (5m), and keep a one-off notice
    active until then. A resolved alert ends when it cleared; a firing one at created_at plus
    its TTL (see FIRING_TTL). The notices this one supersedes are posted as resolved."""
    n = notification
    out = []
    for alert in n.alerts:
        if alert.state is AlertState.RESOLVED:
            ends = alert.ends_at or n.created_at
        elif n.is_one_off:
            ends = _not_before(n.created_at + notice_ttl, alert.starts_at)
        else:
            ends = _not_before(n.created_at + firing_ttl(n.repeat_interval), alert.starts_at)
        out.append(_postable(alert, ends, n.external_url))
    for earlier in n.supersedes:
        # It ends when this notice says, but not before it began (Alertmanager would refuse it).
        ends = _not_before(earlier.ends_at or n.created_at, earlier.starts_at)
        out.append(_postable(earlier, ends, n.external_url))
    return out


def _not_before(ends: datetime, starts: datetime) -> datetime:
    return max(ends, starts)


def _postable(alert: Alert, ends: datetime, external_url: str | None) -> dict[str, Any]:
    labels = {prometheus_label_name(k): v for k, v in alert_labels(alert).items()}
    item: dict[str, Any] = {
        "labels": dict(sorted(labels.items())),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(ends),
    }
    if external_url:
        item["generatorURL"] = external_url
    return item


def alerts_api_url(base: str) -> str:
    """``http://am:9093`` or ``http://am:9093/prefix/`` -> ``.../api/v2/alerts``."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + ALERTS_API_PATH))


class WebhookSinkSender(SinkSender[WebhookSink, JSONPayload]):
    sink_type = "webhook"
    config_type = WebhookSink

    def build_payload(self, notification: Notification) -> JSONPayload:
        if self.config.format == "alertmanager":
            return postable_alerts(notification, self.config.notice_ttl)
        return webhook_body(notification)

    def headers(self, notification: Notification) -> dict[str, str]:
        # Configured headers first: they may add auth, but not drop the idempotency key.
        return {**self.config.headers, "Idempotency-Key": notification.idempotency_key}

    async def deliver(self, notification: Notification) -> SendResult:
        url = self.config.read_url()
        if not url:
            return SendResult.failed("webhook sink has no URL")
        payload = self.build_payload(notification)
        if self.config.format == "alertmanager":
            if not payload:
                return SendResult.delivered("no alerts to post to Alertmanager")
            url = alerts_api_url(url)
        where = f"{'Alertmanager' if self.config.format == 'alertmanager' else 'webhook'} at {origin(url)}"
        answer = await post_json(
            self.session,
            url,
            payload,
            headers=self.headers(notification),
            time_limit=self.timeout,
            where=where,
            now=self.wall_clock(),
        )
        if isinstance(answer, SendResult):
            return answer
        return classify_http(answer.status, answer.body, answer.retry_after, where)
