"""Forwarding of deployment events to a central logging endpoint (the guide's
``DEPLOYMENT_LOG_ENDPOINT``): the guide's JSONL record, POSTed through the outbox so it is retried
like any notification instead of the guide's fire-and-forget ``|| true``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp

from umig_monitor.config.models import Deployments
from umig_monitor.config.types import SecretFileError
from umig_monitor.core.alerts import Notification
from umig_monitor.sinks.base import PayloadError, SendResult, classify_http
from umig_monitor.sinks.http import origin, post_json

FORWARD_SINK = "_deployment-log"  # not a valid configured sink name, so it cannot clash
FORWARD_TIMEOUT = 10.0


class ForwardSink:
    def __init__(self, config: Deployments, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session

    @property
    def name(self) -> str:
        return FORWARD_SINK

    @property
    def timeout(self) -> float:
        return FORWARD_TIMEOUT

    def build_payload(self, notification: Notification) -> Any:
        if not notification.alerts or "record" not in notification.alerts[0].details:
            raise PayloadError("no deployment record in the notification")
        return notification.alerts[0].details["record"]

    async def send(self, notification: Notification) -> SendResult:
        try:
            payload = self.build_payload(notification)
            url = self.config.read_forward_url()
        except (PayloadError, SecretFileError) as exc:
            return SendResult.failed(str(exc))
        if not url:
            return SendResult.failed("deployments.forward_url is not set")
        where = f"deployment log at {origin(url)}"
        answer = await post_json(
            self.session,
            url,
            payload,
            headers={**self.config.forward_headers, "Idempotency-Key": notification.idempotency_key},
            time_limit=FORWARD_TIMEOUT,
            where=where,
            now=datetime.now(UTC),
        )
        if isinstance(answer, SendResult):
            return answer
        return classify_http(answer.status, answer.body, answer.retry_after, where)
