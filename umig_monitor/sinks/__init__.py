"""Where notifications leave the daemon: one module per sink type, each with a pure
``build_payload()`` and an ``async send()`` that answers with a SendResult instead of raising.

SINK_CLASSES is the one registry of sink implementations; a test checks it against the config's
SINK_TYPES, so adding a sink type is: a config model, a sender class, one line in each."""

from __future__ import annotations

from typing import Any

import aiohttp

from umig_monitor.config.models import MailSink, SlackSink, WebhookSink
from umig_monitor.sinks.base import PayloadError, SendResult, Sink, SinkSender, parse_retry_after
from umig_monitor.sinks.mail import MailSinkSender
from umig_monitor.sinks.ratelimit import RateGate
from umig_monitor.sinks.slack import SlackSinkSender
from umig_monitor.sinks.webhook import WebhookSinkSender

SINK_CLASSES: dict[str, type[SinkSender[Any, Any]]] = {
    "mail": MailSinkSender,
    "webhook": WebhookSinkSender,
    "slack": SlackSinkSender,
}


def build_sink(name: str, config: MailSink | WebhookSink | SlackSink, session: aiohttp.ClientSession) -> Sink:
    """The sender for one configured sink. ``session`` is the daemon's shared HTTP session
    (the mail sink does not use it)."""
    try:
        cls = SINK_CLASSES[config.type]
    except KeyError:
        raise ValueError(f"sink {name!r}: unknown type {config.type!r}") from None
    return cls(name, config, session)


__all__ = [
    "SINK_CLASSES",
    "MailSinkSender",
    "PayloadError",
    "RateGate",
    "SendResult",
    "Sink",
    "SinkSender",
    "SlackSinkSender",
    "WebhookSinkSender",
    "build_sink",
    "parse_retry_after",
]
