"""The sink contract: the registry agrees with the config, Retry-After parsing, the HTTP status
classes, and ``send()`` answering instead of raising."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from tests.sink_cases import CASES
from tests.support import free_port
from umig_monitor.config.models import SINK_TYPES, MailSink, SlackSink, WebhookSink
from umig_monitor.config.types import SecretFileError
from umig_monitor.core.alerts import Notification, NotificationKind
from umig_monitor.sinks import (
    SINK_CLASSES,
    MailSinkSender,
    PayloadError,
    SendResult,
    SinkSender,
    SlackSinkSender,
    WebhookSinkSender,
    build_sink,
    parse_retry_after,
)
from umig_monitor.sinks.base import classify_http

NOW = datetime(2024, 10, 25, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def test_registry_matches_config_sink_types() -> None:
    assert SINK_CLASSES.keys() == SINK_TYPES.keys()
    for kind, cls in SINK_CLASSES.items():
        assert cls.sink_type == kind
        assert cls.config_type is SINK_TYPES[kind]


async def test_build_sink_picks_the_class_by_type(session: aiohttp.ClientSession) -> None:
    configs: list[tuple[Any, type]] = [
        (
            MailSink.model_validate({"type": "mail", "host": "h", "from": "a@b", "to": ["c@d"]}),
            MailSinkSender,
        ),
        (WebhookSink(type="webhook", url=SecretStr("http://h/")), WebhookSinkSender),
        (SlackSink(type="slack", webhook_url=SecretStr("http://h/")), SlackSinkSender),
    ]
    for config, cls in configs:
        sink = build_sink("s", config, session)
        assert type(sink) is cls
        assert sink.name == "s"


async def test_a_sender_refuses_another_types_config(session: aiohttp.ClientSession) -> None:
    with pytest.raises(TypeError, match="needs SlackSink"):
        # The wrong config on purpose: the check is at run time, for configs built from YAML.
        SlackSinkSender("s", WebhookSink(type="webhook", url=SecretStr("http://h/")), session)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("2", 2.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-3", None),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Fri, 25 Oct 2024 10:00:45 GMT", 45.0),
        ("Fri, 25 Oct 2024 09:59:00 GMT", 0.0),  # already past: go ahead
        ("Fri, 25 Oct 2024 10:01:00 -0000", 60.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (301, False, False),
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (408, False, True),
        (413, False, False),
        (429, False, True),
        (500, False, True),
        (502, False, True),
        (503, False, True),
    ],
)
def test_http_status_classes(status: int, ok: bool, retryable: bool) -> None:
    result = classify_http(status, b"why", None, "receiver")
    assert (result.ok, result.retryable) == (ok, retryable)
    assert f"HTTP {status}" in result.detail


class Exploding(SinkSender[WebhookSink, None]):
    """A sender whose delivery raises whatever the test asks for."""

    sink_type = "webhook"
    config_type = WebhookSink
    error: BaseException = RuntimeError("boom")

    def build_payload(self, notification: Notification) -> None:
        return None

    async def deliver(self, notification: Notification) -> SendResult:
        raise self.error


@pytest.mark.parametrize(
    ("error", "retryable", "said"),
    [
        (
            SecretFileError("cannot read secret file /run/secrets/hook: No such file"),
            False,
            "/run/secrets/hook",
        ),
        (PayloadError("too big"), False, "cannot build the message: too big"),
        (ConnectionResetError("reset by peer"), True, "reset by peer"),
        (RuntimeError("boom"), False, "unexpected RuntimeError: boom"),
        (KeyError("x"), False, "unexpected KeyError"),
    ],
)
async def test_send_never_raises(
    session: aiohttp.ClientSession, error: Exception, retryable: bool, said: str
) -> None:
    sink = Exploding("x", WebhookSink(type="webhook", url=SecretStr("http://h/")), session)
    sink.error = error
    result = await sink.send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, retryable)
    assert said in result.detail


async def test_secret_file_is_read_at_send_time(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """A missing file is a failed send, not a failed start-up; once the file exists it is used."""
    secret = tmp_path / "url"
    sink = build_sink("hook", WebhookSink(type="webhook", url_file=secret), session)
    first = await sink.send(CASES["firing_critical"])
    assert (first.ok, first.retryable) == (False, False)
    secret.write_text(f"http://127.0.0.1:{free_port()}/\n")
    second = await sink.send(CASES["firing_critical"])
    assert "cannot connect" in second.detail


@pytest.mark.parametrize("kind", list(NotificationKind))
@pytest.mark.parametrize("alerts", ["none", "one", "group"])
async def test_every_kind_renders_in_every_sink(
    session: aiohttp.ClientSession, kind: NotificationKind, alerts: str
) -> None:
    chosen = {"none": (), "one": CASES["firing_critical"].alerts, "group": CASES["group"].alerts}[alerts]
    n = replace(CASES["firing_critical"], kind=kind, alerts=chosen)
    configs: list[Any] = [
        MailSink.model_validate({"type": "mail", "host": "h", "from": "a@b", "to": ["c@d"]}),
        WebhookSink(type="webhook", url=SecretStr("http://h/")),
        WebhookSink(type="webhook", url=SecretStr("http://h/"), format="alertmanager"),
        SlackSink(type="slack", webhook_url=SecretStr("http://h/")),
    ]
    for config in configs:
        sink = build_sink("s", config, session)
        assert sink.build_payload(n) is not None
