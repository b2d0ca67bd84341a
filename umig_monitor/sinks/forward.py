"""Forwarding of deployment events to a central logging endpoint (the guide's
``DEPLOYMENT_LOG_ENDPOINT``): the guide's JSONL record, POSTed through the outbox so it is retried
like any notification instead of the guide's fire-and-forget ``|| true``. It is a webhook sink
(the same pacing, classification and never-raise contract) whose body is the record itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import aiohttp

from umig_monitor.config.models import Deployments, WebhookSink
from umig_monitor.core.alerts import Notification
from umig_monitor.sinks.base import PayloadError
from umig_monitor.sinks.webhook import WebhookSinkSender

FORWARD_SINK = "_deployment-log"  # not a valid configured sink name, so it cannot clash
FORWARD_TIMEOUT = timedelta(seconds=10)


class ForwardSink(WebhookSinkSender):
    """POSTs ``details["record"]`` of the notification's one alert, as it is."""

    def build_payload(self, notification: Notification) -> Any:
        if not notification.alerts or "record" not in notification.alerts[0].details:
            raise PayloadError("no deployment record in the notification")
        return notification.alerts[0].details["record"]


def forward_sink(config: Deployments, session: aiohttp.ClientSession) -> ForwardSink:
    """The deployment log's sink, from ``deployments.forward_*``."""
    hook = WebhookSink(
        type="webhook",
        url=config.forward_url,
        url_file=config.forward_url_file,
        headers=dict(config.forward_headers),
        retry=config.forward_retry,
        timeout=FORWARD_TIMEOUT,
    )
    return ForwardSink(FORWARD_SINK, hook, session)
