"""The drift job in a running daemon: the guide's versions give no drift, a -dev build in UAT
raises a version_drift alert that resolves when fixed; the drift CLI and API and the metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ConfigWriter, Receiver, api, cli, metrics_text, until
from umig_monitor.app import Daemon
from umig_monitor.simulator import RunningSimulator


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
