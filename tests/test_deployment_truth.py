"""The guide's deployment sequences end to end, against the simulator with real receivers (aiosmtpd
and a Slack-like webhook): what history, DORA, Slack and mail received. One deployment per
rollout; a watch verifies and never invents one; incidents during a deployment wait for
deployments.alert_grace and say which deployment they followed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.support import ConfigWriter, Mailbox, Slack, api, free_port, running_daemon, serving, until
from umig_monitor.app import Daemon
from umig_monitor.simulator import RunningSimulator

Receivers = tuple[Mailbox, Slack, int, str]


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    mailbox, slack = Mailbox(), Slack()
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    app = web.Application()
    app.router.add_post("/slack", slack.handle)
    try:
        async with serving(app) as base:
            yield mailbox, slack, smtp_port, f"{base}/slack"
    finally:
        controller.stop()


def config(write_config: ConfigWriter, simulator: RunningSimulator, r: Receivers, grace: str) -> Path:
    _, _, smtp, slack = r
    return write_config(
        simulator,
        ("uat",),
        poll_interval="200ms",
        extra=f"""
jobs:
  health: {{failure_threshold: 2, success_threshold: 1}}
  drift: {{enabled: false}}
  baseline: {{enabled: false}}
sinks:
  mail: {{type: mail, host: 127.0.0.1, port: {smtp}, from: m@example.com, to: [ops@example.com]}}
  slack: {{type: slack, webhook_url: '{slack}'}}
default_route: {{sinks: [mail, slack], group_wait: 0s}}
deployments:
  watch_interval: 200ms
  alert_grace: {grace}
""",
    )


async def event(daemon: Daemon, type: str, **fields: Any) -> dict[str, Any]:
    status, data = await api(
        daemon, "POST", "/api/v1/deployments/events", {"type": type, "environment": "uat", **fields}
    )
    assert status in (200, 201), data
    return dict(data["event"])


async def settled(daemon: Daemon) -> bool:
    """Every notice due is decided and delivered: nothing pending in the outbox."""
    await daemon.alerts.evaluate()
    counts = await daemon.store.outbox_counts()
    return not any(n for (_, status), n in counts.items() if status == "pending")


async def history(daemon: Daemon) -> dict[str, Any]:
    status, data = await api(daemon, "GET", "/api/v1/deployments?environment=uat")
    assert status == 200
    return dict(data)


async def watch_state(daemon: Daemon, watch_id: str) -> str | None:
    watch = await daemon.store.get_watch(watch_id)
    return watch.state if watch is not None and watch.state != "watching" else None


async def test_start_watch_success_is_one_deployment(
    simulator: RunningSimulator, write_config: ConfigWriter, receivers: Receivers
) -> None:
    mailbox, slack, _, _ = receivers
    async with running_daemon(config(write_config, simulator, receivers, "0s")) as daemon:
        started = await event(daemon, "start", version="1.2.0-rc.3", initiatedBy="ci")
        status, _ = await api(
            daemon, "POST", "/api/v1/deployments/w-1/watch", {"environment": "uat", "version": "1.2.0-rc.3"}
        )
        assert status == 202
        simulator.simulator.update("uat", version="1.2.0-rc.3")
        assert await until(lambda: watch_state(daemon, "w-1")) == "verified"
        success = await event(daemon, "success", version="1.2.0-rc.3", duration="4m30s")
        assert success["deploymentId"] == started["deploymentId"]
        assert success["duration"] == 270  # the pipeline's figure replaces the watch's measurement
        await until(lambda: settled(daemon), what="every notice delivered")
        data = await history(daemon)
        assert data["summary"]["total"] == 1
        assert data["summary"]["successful"] == 1
        assert {e["deploymentId"] for e in data["events"]} == {started["deploymentId"]}
        assert [e["type"] for e in data["events"]] == ["deployment_success", "deployment_start"]
        _, dora = await api(daemon, "GET", "/api/v1/dora?days=1&environment=uat")
        assert dora["environments"]["uat"]["deployments"] == 1
        titles = slack.titles()
        assert len(titles) == 2, titles  # the start and the success: not a second success
        assert sum("Success" in t for t in titles) == 1, titles
        assert len(mailbox.messages) == 2, mailbox.subjects()


async def test_a_watch_of_what_already_runs_records_nothing(
    simulator: RunningSimulator, write_config: ConfigWriter, receivers: Receivers
) -> None:
    mailbox, slack, _, _ = receivers
    async with running_daemon(config(write_config, simulator, receivers, "0s")) as daemon:
        body = {"environment": "uat", "version": "1.2.0-rc.2"}  # what the simulator runs
        await api(daemon, "POST", "/api/v1/deployments/w-2/watch", body)
        assert await until(lambda: watch_state(daemon, "w-2")) == "verified"
        body = {"environment": "uat", "version": "9.9.9", "timeout": "1s"}  # never appears
        await api(daemon, "POST", "/api/v1/deployments/w-3/watch", body)
        assert await until(lambda: watch_state(daemon, "w-3")) == "timeout"
        await until(lambda: settled(daemon), what="every notice delivered")
        assert (await history(daemon))["summary"]["total"] == 0
        assert slack.payloads == []
        assert mailbox.messages == []


async def test_an_outage_inside_the_grace_pages_nobody(
    simulator: RunningSimulator, write_config: ConfigWriter, receivers: Receivers
) -> None:
    mailbox, slack, _, _ = receivers
    async with running_daemon(config(write_config, simulator, receivers, "1h")) as daemon:
        started = await event(daemon, "start", version="1.2.0-rc.3", initiatedBy="ci")
        simulator.simulator.update("uat", status="unhealthy")  # the restart during the rollout
        incident = await until(lambda: daemon.store.active_alerts("uat"), what="the incident")
        assert incident[0].details["deployment"]["id"] == started["deploymentId"]
        assert "after deployment" in incident[0].summary
        await until(lambda: settled(daemon), what="the start notice delivered")
        simulator.simulator.update("uat", status="healthy", version="1.2.0-rc.3")
        await until(lambda: _no_active(daemon), what="the incident resolved")
        await until(lambda: settled(daemon), what="every notice delivered")
        # Only the deployment's own notices: start, then success (polling verified it).
        assert slack.titles() == ["🚀 Deployment Started", "✅ Deployment Successful"]
        assert mailbox.subjects() == [
            "UMIG Deployment Started - uat [info]",
            "UMIG Deployment Successful - uat [info]",
        ]
        [resolved] = await daemon.store.list_alerts(environment="uat")
        assert resolved.details["deployment"]["inProgress"] is True  # "during deployment X"
        events = (await history(daemon))["events"]
        assert {e["type"] for e in events} == {"deployment_start", "deployment_success"}
        assert {e["deploymentId"] for e in events} == {started["deploymentId"]}


async def _no_active(daemon: Daemon) -> bool:
    return not await daemon.store.active_alerts("uat")


async def test_an_outage_past_the_grace_pages_naming_the_deployment(
    simulator: RunningSimulator, write_config: ConfigWriter, receivers: Receivers
) -> None:
    mailbox, slack, _, _ = receivers
    async with running_daemon(config(write_config, simulator, receivers, "1s")) as daemon:
        started = await event(daemon, "start", version="1.2.0-rc.3", initiatedBy="ci")
        await until(lambda: settled(daemon), what="the start notice delivered")
        before = len(slack.payloads)
        simulator.simulator.update("uat", status="unhealthy")
        await until(lambda: daemon.store.active_alerts("uat"), what="the incident")
        await until(lambda: len(slack.payloads) > before, what="the page, once the grace is over")
        assert slack.titles()[before:] == ["⚠️ UMIG Health Alert"]
        text = str(slack.payloads[before])
        assert f"after deployment {started['deploymentId']} of 1.2.0-rc.3 by ci" in text, text
        await until(lambda: len(mailbox.messages) > before, what="the mail")
        mail = mailbox.messages[before]
        plain = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
        assert f"after deployment {started['deploymentId']}" in plain.get_payload(decode=True).decode()
