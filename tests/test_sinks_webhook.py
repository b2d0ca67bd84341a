"""The webhook sink against a real aiohttp receiver: Alertmanager v4 body, headers, and how each
kind of failure is classified."""

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

from tests.sink_cases import (
    CASES,
    EXTERNAL_URL,
    FIRING,
    Receiver,
    Reply,
    check_golden,
    golden_json,
    notification,
    serve,
)
from tests.support import free_port
from umig_monitor.config.models import WebhookSink
from umig_monitor.core.alerts import AlertState, NotificationKind, label_set_fingerprint
from umig_monitor.sinks import WebhookSinkSender, build_sink
from umig_monitor.sinks.content import rfc3339
from umig_monitor.sinks.webhook import postable_alerts, webhook_body


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def webhook(url: str, **kwargs: Any) -> WebhookSink:
    return WebhookSink(type="webhook", url=SecretStr(url), **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fmt", ["webhook", "alertmanager"])
async def test_payload_matches_golden(session: aiohttp.ClientSession, case: str, fmt: str) -> None:
    sink = WebhookSinkSender("hook", webhook("http://127.0.0.1:1/hook", format=fmt), session)
    payload = sink.build_payload(CASES[case])
    assert payload == sink.build_payload(CASES[case])  # deterministic
    check_golden(f"{fmt}_{case}.json", golden_json(payload))


def test_body_has_alertmanager_v4_shape() -> None:
    body = webhook_body(CASES["group"])
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["truncatedAlerts"] == 0
    assert body["receiver"] == "ops-group"
    assert body["idempotencyKey"] == CASES["group"].idempotency_key
    assert body["groupLabels"] == {"environment": "production"}
    assert body["groupKey"] == '{}:{environment="production"}'
    # the two alerts differ in alertname, severity and key; these they share:
    assert body["commonLabels"] == {"kind": "production", "version": "1.1.2", "environment": "production"}
    assert body["externalURL"] == EXTERNAL_URL
    first, second = body["alerts"]
    assert first["labels"]["alertname"] == "high_error_rate"
    assert first["labels"]["severity"] == "critical"
    assert second["labels"]["severity"] == "warning"
    assert first["annotations"]["summary"] == "error rate 0.12 above 0.05"
    assert first["annotations"]["description"] == "errorRate: 0.12; limit: 0.05"
    assert first["startsAt"] == "2024-10-25T10:15:30Z"
    assert first["endsAt"] == "0001-01-01T00:00:00Z"
    assert len(first["fingerprint"]) == 16

    resolved = webhook_body(CASES["resolved"])
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2024-10-25T10:27:30Z"


NOTICE_TTL = timedelta(minutes=10)


def test_alertmanager_alerts_always_expire() -> None:
    firing = postable_alerts(CASES["firing_critical"], NOTICE_TTL)[0]
    assert firing["endsAt"] == "2024-10-26T10:17:00Z"  # created_at + 24h: expires if we stop
    assert firing["generatorURL"] == EXTERNAL_URL
    resolved = postable_alerts(CASES["resolved"], NOTICE_TTL)[0]
    assert resolved["endsAt"] == "2024-10-25T10:27:30Z"
    assert postable_alerts(CASES["report"], NOTICE_TTL) == []


CREATED = CASES["firing_critical"].created_at


@pytest.mark.parametrize(
    ("case", "changes", "active_for"),
    [
        # Incidents: renewed at every reminder, so they outlast three of them, and 24 h at least.
        ("firing_critical", {}, timedelta(hours=24)),  # from an outbox row without repeat_interval
        ("firing_critical", {"repeat_interval": timedelta(hours=4)}, timedelta(hours=24)),
        ("repeat", {"repeat_interval": timedelta(hours=12)}, timedelta(hours=36)),
        ("firing_critical", {"repeat_interval": timedelta(days=2)}, timedelta(days=6)),
        # One-off notices: nothing follows them, so they leave on their own after notice_ttl.
        ("deployment_start", {}, NOTICE_TTL),
        ("deployment_failure", {}, NOTICE_TTL),
        ("firing_critical", {"kind": NotificationKind.TEST}, NOTICE_TTL),
        ("firing_critical", {"one_off": True}, NOTICE_TTL),  # a manual escalation
        ("firing_critical", {"one_off": True, "repeat_interval": timedelta(hours=4)}, NOTICE_TTL),
    ],
)
def test_alertmanager_ttl(case: str, changes: dict[str, Any], active_for: timedelta) -> None:
    note = replace(CASES[case], **changes)
    (posted,) = postable_alerts(note, NOTICE_TTL)
    assert posted["endsAt"] == rfc3339(note.created_at + active_for)


def test_alertmanager_notice_never_ends_before_it_starts() -> None:
    # An event reported with a timestamp ahead of the enqueue: Alertmanager refuses endsAt < startsAt.
    later = CREATED + timedelta(hours=1)
    event = CASES["deployment_start"]
    note = replace(event, alerts=(replace(event.alerts[0], starts_at=later),))
    (posted,) = postable_alerts(note, NOTICE_TTL)
    assert posted["startsAt"] == posted["endsAt"] == rfc3339(later)


def test_alertmanager_outcome_resolves_the_start() -> None:
    start = CASES["deployment_start"].alerts[0]
    ended = replace(start, state=AlertState.RESOLVED, ends_at=CREATED)
    note = replace(CASES["deployment_success"], supersedes=(ended,))
    success, closed = postable_alerts(note, NOTICE_TTL)
    assert success["labels"]["alertname"] == "deployment_success"
    assert success["endsAt"] == rfc3339(CREATED + NOTICE_TTL)
    assert closed["labels"] == postable_alerts(CASES["deployment_start"], NOTICE_TTL)[0]["labels"]
    assert closed["endsAt"] == rfc3339(CREATED)
    # the plain webhook says what happened, once: the success, not the start again
    assert [a["labels"]["alertname"] for a in webhook_body(note)["alerts"]] == ["deployment_success"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_webhook_fingerprint_is_alertmanagers(case: str) -> None:
    body = webhook_body(CASES[case])
    for alert, posted in zip(CASES[case].alerts, body["alerts"], strict=True):
        assert posted["fingerprint"] == label_set_fingerprint(posted["labels"]) == alert.fingerprint


async def test_delivers_with_headers_and_idempotency_key(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver()) as rx:
        config = webhook(f"{rx.url}/hook?token=abc", headers={"Authorization": "Bearer t0k", "X-Team": "ops"})
        sink = build_sink("hook", config, session)
        result = await sink.send(CASES["firing_critical"])
    assert result.ok, result.detail
    assert not result.retryable
    assert "abc" not in result.detail
    (request,) = rx.requests
    assert request.path == "/hook?token=abc"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.headers["X-Team"] == "ops"
    assert request.headers["Idempotency-Key"] == CASES["firing_critical"].idempotency_key
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == sink.build_payload(CASES["firing_critical"])


async def test_configured_headers_cannot_replace_idempotency_key(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver()) as rx:
        sink = build_sink("hook", webhook(rx.url, headers={"Idempotency-Key": "mine"}), session)
        assert (await sink.send(CASES["resolved"])).ok
    assert rx.requests[0].headers["Idempotency-Key"] == CASES["resolved"].idempotency_key


async def test_server_error_is_retryable_then_succeeds(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver(Reply(500, "boom"), Reply(200))) as rx:
        sink = build_sink("hook", webhook(rx.url), session)
        first = await sink.send(CASES["firing_critical"])
        second = await sink.send(CASES["firing_critical"])
    assert (first.ok, first.retryable) == (False, True)
    assert "HTTP 500" in first.detail
    assert "boom" in first.detail
    assert (second.ok, second.retryable) == (True, False)
    assert [r.headers["Idempotency-Key"] for r in rx.requests] == [
        CASES["firing_critical"].idempotency_key
    ] * 2


async def test_too_many_requests_with_delta_seconds(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver(Reply(429, "slow down", {"Retry-After": "2"}))) as rx:
        result = await build_sink("hook", webhook(rx.url), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable, result.retry_after) == (False, True, 2.0)


async def test_unavailable_with_http_date(session: aiohttp.ClientSession) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    async with serve(Receiver(Reply(503, "", {"Retry-After": later}))) as rx:
        result = await build_sink("hook", webhook(rx.url), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, True)
    assert result.retry_after is not None
    assert 2.0 <= result.retry_after <= 5.0


async def test_receiver_hold_applies_to_later_sends(session: aiohttp.ClientSession) -> None:
    now = [100.0]
    async with serve(Receiver(Reply(429, "", {"Retry-After": "30"}), Reply(200))) as rx:
        sink = WebhookSinkSender("hook", webhook(rx.url), session, clock=lambda: now[0])
        first = await sink.send(CASES["firing_critical"])
        held = await sink.send(CASES["resolved"])
        now[0] += 31
        after = await sink.send(CASES["resolved"])
    assert first.retry_after == 30.0
    assert (held.ok, held.retryable) == (False, True)
    assert held.retry_after == pytest.approx(30.0)
    assert after.ok
    assert len(rx.requests) == 2  # the held send never reached the receiver


async def test_timeout_is_retryable(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver(Reply(200, held=True))) as rx:
        sink = build_sink("hook", webhook(rx.url, timeout="200ms"), session)
        result = await sink.send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, True)
    assert "within 0.2s" in result.detail


async def test_client_error_is_not_retryable(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver(Reply(400, '{"error": "bad alert"}'))) as rx:
        result = await build_sink("hook", webhook(rx.url), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, False)
    assert "HTTP 400" in result.detail
    assert "bad alert" in result.detail


async def test_redirect_is_not_followed(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver(Reply(302, "", {"Location": "http://elsewhere.example/"}))) as rx:
        result = await build_sink("hook", webhook(rx.url), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, False)
    assert "redirect" in result.detail


async def test_connection_refused_is_retryable(session: aiohttp.ClientSession) -> None:
    url = f"http://user:pw@127.0.0.1:{free_port()}/hook"
    result = await build_sink("hook", webhook(url), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, True)
    assert "cannot connect" in result.detail
    assert "pw" not in result.detail


async def test_unreadable_url_file_is_not_retryable(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    config = WebhookSink(type="webhook", url_file=tmp_path / "missing")
    result = await build_sink("hook", config, session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, False)
    assert "missing" in result.detail


async def test_invalid_url_is_not_retryable(session: aiohttp.ClientSession) -> None:
    result = await build_sink("hook", webhook("not a url/s3cret"), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, False)
    assert "s3cret" not in result.detail
    assert "invalid URL" in result.detail


async def test_unserialisable_details_are_rendered_as_text(session: aiohttp.ClientSession) -> None:
    alert = replace(FIRING, details={"when": datetime(2024, 1, 1, tzinfo=UTC), "ratio": float("nan")})
    async with serve(Receiver()) as rx:
        result = await build_sink("hook", webhook(rx.url), session).send(notification(alerts=(alert,)))
    assert result.ok, result.detail
    assert "2024-01-01" in rx.requests[0].body["alerts"][0]["annotations"]["description"]
