"""Alerts, acknowledgements, silences, manual escalation and notify-test, through the API and the
CLI, with a daemon polling the simulator and a real webhook receiver."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ConfigWriter, Receiver, api, cli, free_port, until
from umig_monitor.app import Daemon
from umig_monitor.simulator import RunningSimulator


def extra(hook_url: str) -> str:
    return f"""
jobs:
  health: {{failure_threshold: 2, success_threshold: 1}}
sinks:
  hook: {{type: webhook, url: '{hook_url}'}}
  dead: {{type: webhook, url: 'http://127.0.0.1:{free_port()}/', retry: {{deadline: 1m}}}}
default_route: {{sinks: [hook]}}
"""


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver) -> Path:
    return write_config(simulator, poll_interval="200ms", extra=extra(hook.url))


async def test_alerts_listed_filtered_and_acknowledged(
    daemon: Daemon, simulator: RunningSimulator, hook: Receiver
) -> None:
    simulator.simulator.update("uat", status="unhealthy")
    await until(lambda: hook.bodies)
    status, data = await api(daemon, "GET", "/api/v1/alerts?active=true")
    assert status == 200
    [alert] = data["alerts"]
    assert (alert["type"], alert["environment"], alert["severity"]) == (
        "environment_unhealthy",
        "uat",
        "warning",
    )
    assert (await api(daemon, "GET", "/api/v1/alerts?environment=production"))[1]["alerts"] == []
    assert (await api(daemon, "GET", "/api/v1/alerts?since=1h&type=environment_unhealthy"))[1]["alerts"]
    assert (await api(daemon, "GET", "/api/v1/alerts?since=yesterday"))[0] == 400
    assert (await api(daemon, "POST", f"/api/v1/alerts/{alert['id']}/ack", {"by": "x"}, token=None))[0] == 401
    status, data = await api(daemon, "POST", f"/api/v1/alerts/{alert['id']}/ack", {"by": "alice"})
    assert (status, data["alert"]["ackedBy"]) == (200, "alice")
    assert (await api(daemon, "POST", "/api/v1/alerts/999999/ack", {}))[0] == 404


async def test_silence_suppresses_but_records(
    daemon: Daemon, simulator: RunningSimulator, hook: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert daemon.config_path is not None
    config = str(daemon.config_path)
    assert (
        await cli(
            "silence",
            "add",
            "-m",
            "environment=production",
            "--duration",
            "1h",
            "--comment",
            "maintenance",
            "--author",
            "bob",
            "--config",
            config,
        )
        == 0
    )
    assert "silence" in capsys.readouterr().out
    simulator.simulator.update("production", status="unhealthy")
    await until(lambda: daemon.store.active_alerts("production"))
    assert await daemon.alerts.evaluate() == 0  # a dispatch step: the silence holds the notice back
    assert await daemon.store.list_deliveries() == []
    assert hook.bodies == []
    _, data = await api(daemon, "GET", "/api/v1/alerts?active=true")
    assert data["alerts"][0]["silencedBy"]
    _, data = await api(daemon, "GET", "/api/v1/silences")
    [silence] = data["silences"]
    assert silence["matchers"] == ['environment="production"']
    assert (silence["createdBy"], silence["state"]) == ("bob", "active")
    assert await cli("silence", "expire", silence["id"], "--config", config) == 0
    await until(lambda: hook.bodies)  # released: the alert is still firing, so it is notified now
    assert hook.bodies[0]["alerts"][0]["labels"]["environment"] == "production"


async def test_silence_input_is_validated(daemon: Daemon) -> None:
    status, data = await api(
        daemon, "POST", "/api/v1/silences", {"matchers": ["env~x"], "duration": "1h", "author": "a"}
    )
    assert status == 400
    assert "matchers" in data["error"]
    status, data = await api(daemon, "POST", "/api/v1/silences", {"matchers": ["env=x"], "author": "a"})
    assert (status, "duration" in data["error"]) == (400, True)
    for matchers in (["environment="], ['type=~".*"'], ['environment="uat'], ['environment=uat"']):
        status, data = await api(
            daemon, "POST", "/api/v1/silences", {"matchers": matchers, "duration": "1h", "author": "a"}
        )
        assert status == 400, (matchers, data)
        assert data["error"].startswith("matchers:"), data
    assert await cli("silence", "add", "-m", "environment=uat", "--config", str(daemon.config_path)) == 2


async def test_a_second_acknowledgement_says_who_was_first(
    daemon: Daemon, simulator: RunningSimulator, hook: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    simulator.simulator.update("uat", status="unhealthy")
    await until(lambda: hook.bodies)
    [alert] = (await api(daemon, "GET", "/api/v1/alerts?active=true"))[1]["alerts"]
    status, data = await api(daemon, "POST", f"/api/v1/alerts/{alert['id']}/ack", {"by": "alice"})
    assert (status, data["acknowledged"], data["alert"]["ackedBy"]) == (200, True, "alice")
    status, data = await api(daemon, "POST", f"/api/v1/alerts/{alert['id']}/ack", {"by": "bob"})
    assert (status, data["acknowledged"], data["alert"]["ackedBy"]) == (200, False, "alice")
    config = str(daemon.config_path)
    capsys.readouterr()
    assert await cli("ack", str(alert["id"]), "--by", "carol", "--config", config) == 1
    assert "already acknowledged by alice" in capsys.readouterr().out


async def test_escalate_through_the_daemon(
    daemon: Daemon, hook: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert daemon.config_path is not None
    code = await cli(
        "escalate",
        "deployment_failure",
        "production",
        "critical",
        "-m",
        "rollout stuck",
        "--config",
        str(daemon.config_path),
    )
    assert code == 0
    assert "queued: the running daemon" in capsys.readouterr().out
    await until(lambda: hook.bodies)
    alert = hook.bodies[0]["alerts"][0]
    assert alert["labels"]["alertname"] == "deployment_failure"
    assert alert["labels"]["severity"] == "critical"
    assert "rollout stuck" in json.dumps(hook.bodies[0])
    status, _ = await api(
        daemon, "POST", "/api/v1/alerts", {"type": "x", "environment": "nowhere", "severity": "critical"}
    )
    assert status == 400


async def test_an_escalation_fires_until_resolved(
    daemon: Daemon, hook: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """escalate raises an active alert: it can be acked, and it ends only with resolve (CLI or
    API), which sends its resolved notice. An alert a check raised is not resolved by hand."""
    assert daemon.config_path is not None
    config = str(daemon.config_path)
    assert (
        await cli("escalate", "deployment_failure", "uat", "warning", "-m", "stuck", "--config", config) == 0
    )
    [alert] = [a for a in await daemon.store.active_alerts("uat") if a.type == "deployment_failure"]
    assert "resolve" in capsys.readouterr().out
    await until(lambda: hook.bodies, what="the firing notice")
    assert hook.bodies[0]["status"] == "firing"
    status, data = await api(daemon, "POST", f"/api/v1/alerts/{alert.id}/ack", {"by": "alice"})
    assert status == 200
    assert data["alert"]["state"] == "firing"  # acked, still active
    assert await cli("resolve", str(alert.id), "--config", config) == 0
    await until(lambda: [b for b in hook.bodies if b["status"] == "resolved"], what="the resolved notice")
    assert alert.id is not None
    stored = await daemon.store.get_alert(alert.id)
    assert stored is not None
    assert stored.state.value == "resolved"
    status, data = await api(daemon, "POST", f"/api/v1/alerts/{alert.id}/resolve", {})
    assert status == 200  # resolving again changes nothing
    assert (await api(daemon, "POST", "/api/v1/alerts/999999/resolve", {}))[0] == 404


async def test_escalate_without_a_daemon(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    hook: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(write_config(simulator, extra=extra(hook.url)))
    assert await cli("escalate", "deployment_failure", "uat", "warning", "--config", config) == 0
    assert "hook: sent" in capsys.readouterr().out
    assert len(hook.bodies) == 1


async def test_notify_test(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    hook: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(write_config(simulator, extra=extra(hook.url)))
    assert await cli("notify-test", "hook", "--config", config) == 0
    assert "hook: ok" in capsys.readouterr().out
    assert hook.bodies[0]["kind"] == "test"
    assert await cli("notify-test", "--config", config) == 1  # the dead sink fails
    out = capsys.readouterr().out
    assert "dead: failed (retryable)" in out
    assert await cli("notify-test", "nope", "--config", config) == 2


async def test_alerts_cli(
    daemon: Daemon, simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert daemon.config_path is not None
    simulator.simulator.update("development", status="unhealthy")
    await until(lambda: daemon.store.active_alerts("development"))
    capsys.readouterr()
    assert await cli("alerts", "--active", "--json", "--config", str(daemon.config_path)) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["environment"] for a in data["alerts"]] == ["development"]
    assert await cli("alerts", "--since", "24h", "--config", str(daemon.config_path)) == 0
    assert "environment_unhealthy" in capsys.readouterr().out
