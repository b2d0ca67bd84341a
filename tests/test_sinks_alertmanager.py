"""The webhook sink's ``format: alertmanager`` against a real Alertmanager (Debian's
prometheus-alertmanager): alerts posted to API v2 show up active, and resolve when we say so."""

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

from tests.sink_cases import CASES, notification
from tests.support import free_port, require_tool
from umig_monitor.config.models import WebhookSink
from umig_monitor.core.alerts import AlertState, Notification, NotificationKind
from umig_monitor.sinks import build_sink

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
