"""The drift job in a running daemon: the guide's versions give no drift, a -dev build in UAT
raises a version_drift alert that resolves when fixed; the drift CLI and API and the metric; an
outage of an environment neither resolves nor raises its drift again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ConfigWriter, Receiver, api, cli, metrics_text, running_daemon, until
from umig_monitor.app import Daemon
from umig_monitor.jobs.drift import detect_drift
from umig_monitor.jobs.health import poll_environment
from umig_monitor.simulator import Fault, FaultKind, RunningSimulator


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver) -> Path:
    extra = f"""
jobs:
  drift: {{interval: 500ms}}
sinks:
  hook: {{type: webhook, url: '{hook.url}'}}
routes:
  - match: {{type: version_drift}}
    sinks: [hook]
"""
    return write_config(simulator, poll_interval="200ms", extra=extra)


async def test_drift_alert_raised_and_resolved(
    daemon: Daemon, simulator: RunningSimulator, hook: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert daemon.config_path is not None
    config = str(daemon.config_path)
    await until(daemon.first_round_done)
    await daemon.writer.flush()
    capsys.readouterr()
    assert await cli("drift", "--json", "--config", config) == 0  # ahead of production is info only
    data = json.loads(capsys.readouterr().out)
    assert {r["environment"]: r["version"] for r in data["matrix"]} == {
        "development": "1.3.0-dev+ci.1245",
        "uat": "1.2.0-rc.2",
        "production": "1.1.2",
    }
    assert {f["type"] for f in data["findings"]} <= {"ahead"}

    simulator.simulator.update(
        "uat", version="1.3.0-dev+ci.7", ui_version="1.3.0-dev", backend_version="1.3.0-dev"
    )
    await until(lambda: any(b["alerts"][0]["labels"]["environment"] == "uat" for b in hook.bodies))
    assert {b["alerts"][0]["annotations"].get("description", "") for b in hook.bodies}
    body = hook.bodies[-1]
    assert body["alerts"][0]["labels"]["alertname"] == "version_drift"
    assert "uat" in json.dumps(body)
    assert 'umig_version_drift{environment="uat",type="pattern"} 1.0' in metrics_text(daemon)
    status, data = await api(daemon, "GET", "/api/v1/drift")
    assert status == 200
    assert any(f["type"] == "pattern" and f["environment"] == "uat" for f in data["findings"])
    capsys.readouterr()
    assert await cli("drift", "--config", config) == 1
    assert "pattern" in capsys.readouterr().out

    simulator.simulator.update("uat", version="1.2.0-rc.3", ui_version="1.2.0", backend_version="1.2.0")
    await until(lambda: any(b["status"] == "resolved" for b in hook.bodies))
    assert not [
        f for f in await daemon.store.drift_findings() if f.environment == "uat" and f.type == "pattern"
    ]


STEPPED = """
jobs:
  drift: {{enabled: false}}
sinks:
  hook: {{type: webhook, url: '{url}'}}
default_route: {{sinks: [hook]}}
"""
MAJOR = "version_drift/-/major:umig"


def sent(hook: Receiver, alertname: str) -> list[str]:
    """The statuses of the webhook notifications about ``alertname``, in order."""
    return [
        b["status"] for b in hook.bodies if any(a["labels"]["alertname"] == alertname for a in b["alerts"])
    ]


async def step(daemon: Daemon, env: str | None = None) -> None:
    """One poll of ``env`` (if given), stored, then one drift run and one dispatch step."""
    if env is not None:
        await poll_environment(daemon, env)
    await daemon.writer.flush()
    await detect_drift(daemon)
    await daemon.alerts.evaluate()


async def test_an_outage_neither_resolves_nor_raises_drift_again(
    simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver
) -> None:
    """The issue's case: UAT on a new major, then unreachable for a few polls, then back."""
    simulator.simulator.update("uat", version="2.0.0-rc.1", ui_version="2.0.0", backend_version="2.0.0")
    path = write_config(simulator, poll_interval="1h", extra=STEPPED.format(url=hook.url))
    async with running_daemon(path) as d:
        await until(d.first_round_done)
        await step(d)
        await until(lambda: sent(hook, "major_version_drift"), what="the drift alert")
        [before] = [f for f in await d.store.drift_findings() if f.key == MAJOR]

        simulator.simulator.add_fault("uat", Fault(FaultKind.CONNECTION_RESET))
        for _ in range(4):  # past the failure threshold: the outage is an incident of its own
            await step(d, "uat")
        await until(lambda: sent(hook, "environment_unreachable"), what="the outage alert")
        [during] = [f for f in await d.store.drift_findings() if f.key == MAJOR]
        assert during.first_seen == before.first_seen
        assert during.summary.startswith(f"{before.summary} (uat last seen ")
        status, data = await api(d, "GET", "/api/v1/drift")
        assert status == 200
        [uat] = [r for r in data["matrix"] if r["environment"] == "uat"]
        assert (uat["version"], uat["last_seen"] is not None) == ("2.0.0-rc.1", True)

        simulator.simulator.clear_faults("uat")
        for _ in range(3):
            await step(d, "uat")
        await until(lambda: "resolved" in sent(hook, "environment_unreachable"), what="the recovery")
        await until(lambda: no_pending(d))
        [after] = [f for f in await d.store.drift_findings() if f.key == MAJOR]
        assert (after.first_seen, after.summary) == (before.first_seen, before.summary)
        # One drift alert all along: fired once, never resolved, never fired again.
        assert sent(hook, "major_version_drift") == ["firing"]
        assert [(a.key, a.state.value) for a in await d.store.list_alerts() if a.key == MAJOR] == [
            (MAJOR, "firing")
        ]


async def no_pending(daemon: Daemon) -> bool:
    return not await daemon.store.list_deliveries(status="pending")
