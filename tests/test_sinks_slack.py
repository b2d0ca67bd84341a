"""The Slack sink: the guide's attachment layout, and a Slack-like receiver that answers ``ok``,
429 with Retry-After, or 200 with an error word."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from tests.sink_cases import (
    CASES,
    EVENTS,
    FIRING,
    Receiver,
    Reply,
    check_golden,
    golden_json,
    notification,
    serve,
)
from umig_monitor.config.models import SlackSink
from umig_monitor.core.alerts import NotificationKind
from umig_monitor.sinks import SlackSinkSender, build_sink
from umig_monitor.sinks.slack import MAX_ATTACHMENTS, slack_message


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def slack(url: str, **kwargs: Any) -> SlackSink:
    return SlackSink(type="slack", webhook_url=SecretStr(url), **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_payload_matches_golden(session: aiohttp.ClientSession, case: str) -> None:
    config = slack("https://hooks.slack.test/services/T0/B0/x", channel="#umig-ops", username="umig-monitor")
    sink = SlackSinkSender("slack", config, session)
    check_golden(f"slack_{case}.json", golden_json(sink.build_payload(CASES[case])))


@pytest.mark.parametrize(
    ("event", "title", "color"),
    [
        ("deployment_start", "🚀 Deployment Started", "warning"),
        ("deployment_success", "✅ Deployment Successful", "good"),
        ("deployment_failure", "❌ Deployment Failed", "danger"),
        ("rollback", "🔄 Rollback Initiated", "warning"),
    ],
)
def test_deployment_events_use_the_guides_titles(event: str, title: str, color: str) -> None:
    (attachment,) = slack_message(CASES[event], channel=None, username=None)["attachments"]
    assert (attachment["title"], attachment["color"]) == (title, color)
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Environment"] == "production"
    assert fields["Timestamp"] == "2024-10-25T10:15:30+00:00"
    assert all(f["short"] is True for f in attachment["fields"])
    assert fields["Version"] == "1.2.0"


def test_guide_sentences() -> None:
    def text(name: str) -> str:
        return str(slack_message(CASES[name], channel=None, username=None)["attachments"][0]["text"])

    assert text("deployment_start") == "Deploying UMIG 1.2.0 to production"
    assert text("deployment_success") == "UMIG 1.2.0 successfully deployed to production in 4m 12s"
    assert text("deployment_failure") == "UMIG 1.2.0 deployment to production failed: migration 031 failed"
    assert text("rollback") == "Rolling back production from 1.2.0 to 1.1.2"
    bare = notification("deployment_start", alerts=(replace(EVENTS["deployment_start"], details={}),))
    assert slack_message(bare, channel=None, username=None)["attachments"][0]["text"] == (
        "deployment of 1.2.0 started"  # no version known: the summary
    )


@pytest.mark.parametrize(
    ("name", "changes", "color"),
    [
        ("firing_critical", {}, "danger"),
        ("firing_critical", {"severity": "warning"}, "warning"),
        ("firing_critical", {"severity": "info"}, "#439FE0"),
        ("resolved", {}, "good"),
    ],
)
def test_alert_colours(name: str, changes: dict[str, Any], color: str) -> None:
    n = CASES[name]
    n = replace(n, alerts=tuple(replace(a, **changes) for a in n.alerts))
    assert slack_message(n, channel=None, username=None)["attachments"][0]["color"] == color


def test_titles_by_kind() -> None:
    def title(n: Any) -> str:
        return str(slack_message(n, channel=None, username=None)["attachments"][0]["title"])

    assert title(CASES["firing_critical"]) == "🚨 UMIG Health Alert"
    assert title(CASES["repeat"]) == "🚨 [REMINDER] UMIG Health Alert"
    assert title(notification(kind=NotificationKind.ESCALATION)) == "🚨 [ESCALATION] UMIG Health Alert"
    assert title(CASES["resolved"]) == "✅ [RESOLVED] UMIG Health Alert"
    unreachable = replace(FIRING, type="environment_unreachable")
    assert title(notification(alerts=(unreachable,))) == "🚨 UMIG Connection Failure"


def test_text_is_escaped_for_slack() -> None:
    n = notification(alerts=(replace(FIRING, summary="<!channel> a & b > c", details={}),))
    text = slack_message(n, channel=None, username=None)["attachments"][0]["text"]
    assert text == "&lt;!channel&gt; a &amp; b &gt; c"


def test_large_groups_are_cut() -> None:
    alerts = tuple(replace(FIRING, key=f"k{i}") for i in range(MAX_ATTACHMENTS + 5))
    attachments = slack_message(notification(alerts=alerts), channel=None, username=None)["attachments"]
    assert len(attachments) == MAX_ATTACHMENTS
    assert attachments[-1]["text"] == "… and 6 more"


async def test_ok_is_delivered(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver(Reply(200, "ok"))) as rx:
        sink = build_sink("slack", slack(f"{rx.url}/services/T0/B0/s3cret", channel="#ops"), session)
        result = await sink.send(CASES["deployment_success"])
    assert result.ok, result.detail
    assert "s3cret" not in result.detail
    (request,) = rx.requests
    assert request.headers["Idempotency-Key"] == CASES["deployment_success"].idempotency_key
    assert request.body["channel"] == "#ops"
    assert request.body["attachments"][0]["title"] == "✅ Deployment Successful"


async def test_too_many_requests_honours_retry_after(session: aiohttp.ClientSession) -> None:
    async with serve(Receiver(Reply(429, "rate_limited", {"Retry-After": "7"}))) as rx:
        sink = build_sink("slack", slack(f"{rx.url}/services/x"), session)
        result = await sink.send(CASES["firing_critical"])
        held = await sink.send(CASES["firing_critical"])
    assert (result.ok, result.retryable, result.retry_after) == (False, True, 7.0)
    assert (held.ok, held.retryable) == (False, True)
    assert held.retry_after is not None
    assert 6.0 < held.retry_after <= 7.0
    assert len(rx.requests) == 1


@pytest.mark.parametrize(
    ("reply", "retryable", "said"),
    [
        (Reply(200, "invalid_payload"), False, "invalid_payload"),
        (Reply(200, ""), False, "instead of 'ok'"),
        (Reply(400, "invalid_payload"), False, "HTTP 400"),
        (Reply(404, "channel_not_found"), False, "channel_not_found"),
        (Reply(500, "rollup_error"), True, "HTTP 500"),
    ],
)
async def test_failures(session: aiohttp.ClientSession, reply: Reply, retryable: bool, said: str) -> None:
    async with serve(Receiver(reply)) as rx:
        result = await build_sink("slack", slack(f"{rx.url}/services/x"), session).send(
            CASES["firing_critical"]
        )
    assert (result.ok, result.retryable) == (False, retryable)
    assert said in result.detail


async def test_rate_limit_with_injected_clock(session: aiohttp.ClientSession) -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async with serve(Receiver(Reply(200, "ok"))) as rx:
        sink = SlackSinkSender("slack", slack(f"{rx.url}/x"), session, clock=lambda: now[0], sleep=sleep)
        for _ in range(3):
            assert (await sink.send(CASES["firing_critical"])).ok
    assert slept == [1.0, 1.0]  # Slack's default: one message per second
