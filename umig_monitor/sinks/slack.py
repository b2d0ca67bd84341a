"""The Slack sink (incoming webhook), in the guide's layout: one attachment per alert with a
colour, a title, the message and Environment / Version / Timestamp fields.

Colours: deployment events as in the guide; other alerts by state and severity (resolved
"good", critical "danger", warning "warning", info Slack's own blue ``#439FE0``, which is also
used for reports and test messages, as they are neither good nor bad news). The webhook URL is
the secret (its path is the token), so details name only its origin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from umig_monitor.config.models import SlackSink
from umig_monitor.core.alerts import Alert, AlertState, Notification, NotificationKind
from umig_monitor.sinks.base import SendResult, SinkSender, classify_http, snippet
from umig_monitor.sinks.content import (
    KIND_PREFIXES,
    details_text,
    event_sentence,
    event_time,
    headline,
    iso_seconds,
    one_line,
    title,
    version_of,
)
from umig_monitor.sinks.http import origin, post_json

INFO_COLOR = "#439FE0"
MAX_ATTACHMENTS = 20  # Slack's advice; more is cut with an "and N more" line
MAX_TEXT = 3000  # Slack truncates long attachment text anyway; we cut it visibly

# The guide's slack-deployment-notification.sh, verbatim.
EVENT_STYLES: Mapping[str, tuple[str, str]] = {
    "deployment_start": ("🚀 Deployment Started", "warning"),
    "deployment_success": ("✅ Deployment Successful", "good"),
    "deployment_failure": ("❌ Deployment Failed", "danger"),
    "rollback": ("🔄 Rollback Initiated", "warning"),
}
# The guide's console markers for its checks: 🚨 high error rate, ⚠️ slow, ℹ️ informational.
SEVERITY_STYLES: Mapping[str, tuple[str, str]] = {
    "critical": ("🚨", "danger"),
    "warning": ("⚠️", "warning"),
    "info": ("ℹ️", INFO_COLOR),
}


def escape(text: str) -> str:
    """Slack's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _field(name: str, value: str) -> dict[str, Any]:
    return {"title": name, "value": escape(value), "short": True}


def alert_attachment(alert: Alert, notification: Notification) -> dict[str, Any]:
    prefix = KIND_PREFIXES.get(notification.kind, "")
    is_event = alert.type in EVENT_STYLES
    if alert.state is AlertState.RESOLVED:
        heading, color = f"✅ [RESOLVED] {headline(alert.type)}", "good"
    elif is_event:
        text, color = EVENT_STYLES[alert.type]
        heading = f"{prefix} {text}" if prefix else text
    else:
        emoji, color = SEVERITY_STYLES.get(alert.severity, ("ℹ️", INFO_COLOR))
        heading = " ".join(part for part in (emoji, prefix, headline(alert.type)) if part)
    message = event_sentence(alert)
    if alert.details and not is_event:
        message += "\n" + details_text(alert.details)
    fields = [_field("Environment", alert.environment or "-")]
    version = version_of(alert)
    if version:
        fields.append(_field("Version", version))
    if not is_event:
        fields.append(_field("Severity", alert.severity))
    fields.append(_field("Timestamp", iso_seconds(event_time(alert))))
    attachment: dict[str, Any] = {
        "color": color,
        "fallback": escape(one_line(f"{heading}: {message}")),
        "title": escape(heading),
        "text": escape(_cut(message)),
        "fields": fields,
    }
    if notification.external_url:
        attachment["title_link"] = notification.external_url
    return attachment


def _notice_attachment(notification: Notification) -> dict[str, Any]:
    """Reports and tests: a title and preformatted text, in the neutral colour."""
    heading = title(notification)
    text = notification.text or (
        "umig-monitor can post to this Slack webhook." if notification.kind is NotificationKind.TEST else ""
    )
    attachment: dict[str, Any] = {
        "color": INFO_COLOR,
        "fallback": escape(heading),
        "title": escape(heading),
        "text": f"```{escape(_cut(text))}```" if text else "",
        "mrkdwn_in": ["text"],
    }
    if notification.external_url:
        attachment["title_link"] = notification.external_url
    return attachment


def slack_message(notification: Notification, *, channel: str | None, username: str | None) -> dict[str, Any]:
    alerts = notification.alerts
    if notification.kind is NotificationKind.REPORT or not alerts:
        attachments = [_notice_attachment(notification)]
    elif len(alerts) <= MAX_ATTACHMENTS:
        attachments = [alert_attachment(a, notification) for a in alerts]
    else:
        shown = alerts[: MAX_ATTACHMENTS - 1]
        attachments = [alert_attachment(a, notification) for a in shown]
        rest = len(alerts) - len(shown)
        attachments.append(
            {"color": INFO_COLOR, "fallback": f"and {rest} more", "text": f"… and {rest} more"}
        )
    message: dict[str, Any] = {"attachments": attachments}
    if channel:
        message["channel"] = channel
    if username:
        message["username"] = username
    return message


class SlackSinkSender(SinkSender[SlackSink, dict[str, Any]]):
    sink_type = "slack"
    config_type = SlackSink

    def build_payload(self, notification: Notification) -> dict[str, Any]:
        return slack_message(notification, channel=self.config.channel, username=self.config.username)

    async def deliver(self, notification: Notification) -> SendResult:
        url = self.config.read_url()
        if not url:
            return SendResult.failed("slack sink has no webhook URL")
        where = f"Slack webhook at {origin(url)}"
        answer = await post_json(
            self.session,
            url,
            self.build_payload(notification),
            headers={"Idempotency-Key": notification.idempotency_key},
            time_limit=self.timeout,
            where=where,
            now=self.wall_clock(),
        )
        if isinstance(answer, SendResult):
            return answer
        if answer.status == 200:
            if answer.body == b"ok":
                return SendResult.delivered(f"HTTP 200 ok from {where}")
            # Some failures come back as 200 with an error word; resending the same payload
            # would get the same answer.
            return SendResult.failed(f"{where} answered HTTP 200 {snippet(answer.body)!r} instead of 'ok'")
        return classify_http(answer.status, answer.body, answer.retry_after, where)
