"""The webhook sink's ``format: alertmanager`` against a real Alertmanager (Debian's
prometheus-alertmanager): alerts posted to API v2 show up active, and resolve when we say so;
incidents stay active past their reminders, one-off notices leave on their own; and the plain
webhook's fingerprint is the one Alertmanager gives the same alert."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from tests.sink_cases import CASES, GROUP, notification
from tests.support import ConfigWriter, api, cli, free_port, require_tool, running_daemon, until
from umig_monitor.config.models import WebhookSink
from umig_monitor.core.alerts import AlertState, Notification, NotificationKind
from umig_monitor.simulator import RunningSimulator
from umig_monitor.sinks import build_sink
from umig_monitor.sinks.webhook import webhook_body

pytestmark = pytest.mark.slow

AM_CONFIG = """\
route:
  receiver: "null"
  group_wait: 1h
receivers:
  - name: "null"
"""


@pytest.fixture
async def alertmanager(tmp_path: Path) -> AsyncIterator[str]:
    binary = require_tool("prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text(AM_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                if process.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/-/ready") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("alertmanager did not become ready within 10s")
        if process.returncode is not None:
            assert process.stderr is not None
            pytest.fail(f"alertmanager exited: {(await process.stderr.read()).decode()[-2000:]}")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def active_alerts(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with session.get(f"{url}/api/v2/alerts") as resp:
        assert resp.status == 200
        alerts: list[dict[str, Any]] = await resp.json()
        return alerts


def live_firing(now: datetime, **alert_changes: Any) -> Notification:
    """The firing case, started five minutes ago: Alertmanager drops alerts whose endsAt passed."""
    alert = replace(CASES["firing_critical"].alerts[0], starts_at=now - timedelta(minutes=5), **alert_changes)
    return notification(alerts=(alert,), created_at=now)


async def test_firing_then_resolved(alertmanager: str) -> None:
    config = WebhookSink(type="webhook", url=SecretStr(alertmanager), format="alertmanager")
    now = datetime.now(UTC).replace(microsecond=0)
    firing = live_firing(now)
    async with aiohttp.ClientSession() as session:
        sink = build_sink("alertmanager", config, session)
        result = await sink.send(firing)
        assert result.ok, result.detail

        (alert,) = await active_alerts(session, alertmanager)
        assert alert["labels"]["alertname"] == "environment_unhealthy"
        assert alert["labels"]["environment"] == "production"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["alert_key"] == "environment_health/production/"
        assert alert["annotations"]["summary"] == firing.alerts[0].summary
        assert "database" in alert["annotations"]["description"]
        assert alert["status"]["state"] in ("active", "unprocessed")
        assert alert["generatorURL"] == firing.external_url
        assert datetime.fromisoformat(alert["endsAt"]) > now + timedelta(hours=23)

        ended = now - timedelta(seconds=1)
        resolved = notification(
            "resolved",
            alerts=tuple(replace(a, state=AlertState.RESOLVED, ends_at=ended) for a in firing.alerts),
            created_at=now,
        )
        assert resolved.kind is NotificationKind.RESOLVED
        result = await sink.send(resolved)
        assert result.ok, result.detail
        assert await active_alerts(session, alertmanager) == []


async def test_label_names_are_mended(alertmanager: str) -> None:
    config = WebhookSink(type="webhook", url=SecretStr(alertmanager), format="alertmanager")
    firing = live_firing(datetime.now(UTC), labels={"team-name": "ops", "1st": "yes"})
    async with aiohttp.ClientSession() as session:
        result = await build_sink("alertmanager", config, session).send(firing)
        assert result.ok, result.detail
        (posted,) = await active_alerts(session, alertmanager)
    assert posted["labels"]["team_name"] == "ops"
    assert posted["labels"]["_1st"] == "yes"


async def test_rejected_alert_is_not_retryable(alertmanager: str) -> None:
    config = WebhookSink(type="webhook", url=SecretStr(alertmanager + "/"), format="alertmanager")
    # Ending before it started: Alertmanager answers 400 ("start time must be before end time").
    alert = CASES["resolved"].alerts[0]
    assert alert.ends_at is not None
    broken = notification("resolved", alerts=(replace(alert, starts_at=alert.ends_at + timedelta(hours=1)),))
    async with aiohttp.ClientSession() as session:
        result = await build_sink("alertmanager", config, session).send(broken)
    assert (result.ok, result.retryable) == (False, False)
    assert "HTTP 400" in result.detail


def ends_at(alert: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(alert["endsAt"])


async def test_webhook_fingerprint_is_alertmanagers(alertmanager: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    labels = {"team": "Ops – Zürich ✓", "kind": "production", "version": "1.1.2"}
    alerts = tuple(replace(a, starts_at=now - timedelta(minutes=5), labels=labels) for a in GROUP)
    group = notification(alerts=alerts, created_at=now)
    config = WebhookSink(type="webhook", url=SecretStr(alertmanager), format="alertmanager")
    async with aiohttp.ClientSession() as session:
        result = await build_sink("alertmanager", config, session).send(group)
        assert result.ok, result.detail
        posted = await active_alerts(session, alertmanager)
    theirs = {a["labels"]["alert_key"]: a["fingerprint"] for a in posted}
    ours = {a["labels"]["alert_key"]: a["fingerprint"] for a in webhook_body(group)["alerts"]}
    assert len(ours) == 2
    assert theirs == ours


async def test_incident_outlasts_three_reminders(alertmanager: str) -> None:
    config = WebhookSink(type="webhook", url=SecretStr(alertmanager), format="alertmanager")
    now = datetime.now(UTC).replace(microsecond=0)
    firing = replace(live_firing(now), repeat_interval=timedelta(hours=12))
    async with aiohttp.ClientSession() as session:
        assert (await build_sink("alertmanager", config, session).send(firing)).ok
        (alert,) = await active_alerts(session, alertmanager)
    assert ends_at(alert) == now + timedelta(hours=36)


NOTICE_TTL = timedelta(minutes=10)


def am_extra(url: str) -> str:
    return f"""
jobs:
  health: {{failure_threshold: 1, success_threshold: 1}}
sinks:
  am: {{type: webhook, url: '{url}', format: alertmanager}}
default_route: {{sinks: [am]}}
"""


async def test_notices_do_not_linger(
    alertmanager: str, simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    """notify-test and a deployment's start and success reach Alertmanager as alerts that end
    within notice_ttl; the start ends with the success; an incident stays active for 24 h."""
    config = write_config(simulator, poll_interval="200ms", extra=am_extra(alertmanager))

    async def alerts_named(session: aiohttp.ClientSession, *names: str) -> dict[str, dict[str, Any]]:
        """Active alerts of these names, once the first name is among them."""
        found = {
            a["labels"]["alertname"]: a
            for a in await active_alerts(session, alertmanager)
            if a["labels"]["alertname"] in names
        }
        return found if names[0] in found else {}

    async with running_daemon(config) as daemon, aiohttp.ClientSession() as session:
        sent = datetime.now(UTC)
        status, _ = await api(
            daemon,
            "POST",
            "/api/v1/deployments/events",
            {"type": "start", "environment": "uat", "version": "1.2.0-rc.3", "id": "uat-rc3"},
        )
        assert status == 201
        start = (await until(lambda: alerts_named(session, "deployment_start")))["deployment_start"]
        assert sent < ends_at(start) <= datetime.now(UTC) + NOTICE_TTL

        status, _ = await api(
            daemon,
            "POST",
            "/api/v1/deployments/events",
            {"type": "success", "environment": "uat", "version": "1.2.0-rc.3", "id": "uat-rc3"},
        )
        assert status == 201
        after = await until(lambda: alerts_named(session, "deployment_success", "deployment_start"))
        assert list(after) == ["deployment_success"]  # the start ended with it, in the same post
        assert ends_at(after["deployment_success"]) <= datetime.now(UTC) + NOTICE_TTL

        assert await cli("notify-test", "am", "--config", str(config)) == 0
        test = (await until(lambda: alerts_named(session, "notify_test")))["notify_test"]
        assert ends_at(test) <= datetime.now(UTC) + NOTICE_TTL

        simulator.simulator.update("production", status="unhealthy")
        incident = await until(lambda: alerts_named(session, "environment_unhealthy"))
        assert ends_at(incident["environment_unhealthy"]) >= datetime.now(UTC) + timedelta(hours=23)

        horizon = datetime.now(UTC) + NOTICE_TTL
        lingering = [
            a["labels"]["alertname"]
            for a in await active_alerts(session, alertmanager)
            if ends_at(a) > horizon
        ]
        assert lingering == ["environment_unhealthy"]
