"""Deployment tracking in a running daemon: events through the API and CLI, observed deployments,
watches (verified, failed, timed out, resumed after a restart), history export/import and DORA."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import ConfigWriter, Receiver, api, cli, running_daemon, until
from umig_monitor.app import Daemon
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.simulator import RunningSimulator


def extra(hook_url: str) -> str:
    return f"""
jobs:
  health: {{failure_threshold: 2, success_threshold: 1}}
sinks:
  hook: {{type: webhook, url: '{hook_url}'}}
default_route: {{sinks: [hook]}}
deployments:
  watch_interval: 200ms
  forward_url: '{hook_url}'
"""


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver) -> Path:
    return write_config(simulator, poll_interval="200ms", extra=extra(hook.url))


def kinds(hook: Receiver) -> list[str]:
    out = []
    for body in hook.bodies:
        if "alerts" in body:
            out.append(body["alerts"][0]["labels"]["alertname"])
        else:
            out.append("forward:" + body["type"])
    return out


async def test_events_validated_stored_notified_and_forwarded(daemon: Daemon, hook: Receiver) -> None:
    status, data = await api(
        daemon,
        "POST",
        "/api/v1/deployments/events",
        {"type": "start", "environment": "uat", "version": "1.2.0-rc.3", "initiatedBy": "ci"},
    )
    assert status == 201
    deployment_id = data["event"]["deploymentId"]
    assert data["event"]["status"] == "in_progress"
    again = await api(
        daemon,
        "POST",
        "/api/v1/deployments/events",
        {"type": "start", "environment": "uat", "version": "1.2.0-rc.3", "id": deployment_id},
    )
    assert again[0] == 200
    assert again[1]["created"] is False  # idempotent
    await until(lambda: len(hook.bodies) >= 2)
    assert sorted(kinds(hook)) == ["deployment_start", "forward:deployment_start"]
    forwarded = next(b for b in hook.bodies if "alerts" not in b)
    assert (forwarded["environment"], forwarded["version"], forwarded["initiatedBy"]) == (
        "uat",
        "1.2.0-rc.3",
        "ci",
    )

    for body, field in [
        ({"type": "start", "environment": "nowhere", "version": "1.0.0"}, "environment"),
        ({"type": "start", "environment": "uat", "version": "one.two"}, "version"),
        ({"type": "failure", "environment": "uat", "version": "1.2.0"}, "error"),
        ({"type": "explode", "environment": "uat", "version": "1.2.0"}, "type"),
        ({"type": "rollback", "environment": "uat", "version": "1.2.0"}, "toVersion"),
        ({"type": "start", "environment": "uat", "version": 123}, "version"),
        ({"type": "start", "environment": "uat", "version": "1.2.0", "id": {"a": 1}}, "id"),
    ]:
        status, data = await api(daemon, "POST", "/api/v1/deployments/events", body)
        assert status == 400, body
        assert field.lower() in data["field"].lower().replace("_", ""), data
    assert (await api(daemon, "POST", "/api/v1/deployments/events", {}, token=None))[0] == 401


async def test_success_without_start_is_flagged(daemon: Daemon) -> None:
    status, data = await api(
        daemon,
        "POST",
        "/api/v1/deployments/events",
        {"type": "success", "environment": "production", "version": "1.1.2", "duration": 90},
    )
    assert status == 201
    [event] = await daemon.store.events_of_deployment(data["event"]["deploymentId"])
    assert "success_without_start" in event.flags


async def test_observed_deployment_and_status(daemon: Daemon, simulator: RunningSimulator) -> None:
    await until(daemon.first_round_done)
    simulator.simulator.update("uat", version="1.2.0-rc.5")
    await until(lambda: daemon.store.deployment_events(environment="uat", types=["observed"]))
    [event] = await daemon.store.deployment_events(environment="uat", types=["observed"])
    assert event.version == "1.2.0-rc.5"
    assert event.metadata["previousVersion"] == "1.2.0-rc.2"
    await daemon.writer.flush()
    _, data = await api(daemon, "GET", "/api/v1/environments")
    uat = data["environments"]["uat"]
    assert uat["umigVersion"] == "1.2.0-rc.5"
    assert uat["deployedAt"] is not None


async def test_watch_verifies_a_deployment(
    daemon: Daemon, simulator: RunningSimulator, hook: Receiver
) -> None:
    await until(daemon.first_round_done)
    _, started = await api(
        daemon,
        "POST",
        "/api/v1/deployments/events",
        {"type": "start", "environment": "uat", "version": "1.2.0"},
    )
    deployment_id = started["event"]["deploymentId"]
    status, _ = await api(
        daemon,
        "POST",
        f"/api/v1/deployments/{deployment_id}/watch",
        {"environment": "uat", "version": "1.2.0", "timeout": "30s"},
    )
    assert status == 202
    await until(lambda: watch_progress(daemon, deployment_id), what="the watch's first check")
    _, detail = await api(daemon, "GET", f"/api/v1/deployments/{deployment_id}")
    assert detail["watch"]["progress"] == "current version: 1.2.0-rc.2, expecting: 1.2.0"
    simulator.simulator.update("uat", version="1.2.0")
    await until(lambda: watch_state(daemon, deployment_id, "verified"))
    events = await daemon.store.events_of_deployment(deployment_id)
    assert [e.type.value for e in events] == ["deployment_start", "deployment_success"]
    assert events[1].duration_seconds is not None
    await until(lambda: "deployment_success" in kinds(hook))
    assert not await daemon.store.deployment_events(environment="uat", types=["observed"])  # it was reported
    _, history = await api(daemon, "GET", "/api/v1/deployments?environment=uat")
    assert history["summary"]["successful"] == 1
    assert history["total"] == 2


async def watch_progress(daemon: Daemon, deployment_id: str) -> str:
    """What the watch's last check found; empty before its first."""
    watch = await daemon.store.get_watch(deployment_id)
    return str(watch.result.get("progress", "")) if watch else ""


async def watch_state(daemon: Daemon, deployment_id: str, state: str) -> bool:
    watch = await daemon.store.get_watch(deployment_id)
    return watch is not None and watch.state == state


async def start(daemon: Daemon, deployment_id: str, version: str) -> None:
    status, _ = await api(
        daemon,
        "POST",
        "/api/v1/deployments/events",
        {"type": "start", "environment": "production", "version": version, "id": deployment_id},
    )
    assert status == 201


async def test_watch_names_the_failed_check(daemon: Daemon, simulator: RunningSimulator) -> None:
    await start(daemon, "d-1", "1.1.3")
    simulator.simulator.update("production", version="1.1.3", orchestrator_status="stopped")
    status, _ = await api(
        daemon, "POST", "/api/v1/deployments/d-1/watch", {"environment": "production", "version": "1.1.3"}
    )
    assert status == 202
    await until(lambda: watch_state(daemon, "d-1", "failed"))
    _, event = await daemon.store.events_of_deployment("d-1")
    assert event.type.value == "deployment_failure"
    assert event.error == "component orchestrator not active: stopped"


async def test_watch_timeout_is_the_started_deployments_failure(daemon: Daemon) -> None:
    await start(daemon, "d-2", "9.9.9")
    await api(
        daemon,
        "POST",
        "/api/v1/deployments/d-2/watch",
        {"environment": "production", "version": "9.9.9", "timeout": "1s"},
    )
    await until(lambda: watch_state(daemon, "d-2", "timeout"))
    _, event = await daemon.store.events_of_deployment("d-2")
    assert event.type.value == "deployment_failure"
    assert "timeout after 1s" in (event.error or "")


async def test_a_watch_records_no_deployment_that_never_happened(daemon: Daemon) -> None:
    """A watch verifies: of a version that was already running, or one that never appeared, it
    records nothing (no deployment, no success or failure notice)."""
    body = {"environment": "production", "version": "9.9.9", "timeout": "1s"}
    await api(daemon, "POST", "/api/v1/deployments/w-1/watch", body)
    await until(lambda: watch_state(daemon, "w-1", "timeout"))
    running = {"environment": "production", "version": "1.1.2"}  # what the simulator runs
    await api(daemon, "POST", "/api/v1/deployments/w-2/watch", running)
    await until(lambda: watch_state(daemon, "w-2", "verified"))
    status, doc = await api(daemon, "GET", "/api/v1/deployments/w-2")
    assert status == 200
    assert doc["watch"]["recordedDeployment"] is None, doc
    assert "already running" in doc["watch"]["progress"]
    assert await daemon.store.deployment_events(environment="production") == []


async def test_watch_resumes_after_restart(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    hook: Receiver,
) -> None:
    path = write_config(simulator, poll_interval="200ms", extra=extra(hook.url))
    async with running_daemon(path) as first:
        await first.start_watch("d-3", "production", "1.1.4", None)
        await until(lambda: watch_progress(first, "d-3"), what="the watch's first check")
    simulator.simulator.update("production", version="1.1.4")
    async with running_daemon(path) as second:
        await until(lambda: watch_state(second, "d-3", "verified"))


async def test_cli_events_history_export_import(
    daemon: Daemon,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    simulator: RunningSimulator,
) -> None:
    assert daemon.config_path is not None
    config = str(daemon.config_path)
    capsys.readouterr()
    assert (
        await cli(
            "deploy-event",
            "start",
            "--env",
            "production",
            "--version",
            "1.1.3",
            "--config",
            config,
            "--print",
            "deployment",
        )
        == 0
    )
    deployment_id = capsys.readouterr().out.strip()
    assert deployment_id.startswith("deploy-production-")
    assert (
        await cli(
            "deploy-event",
            "success",
            "--env",
            "production",
            "--version",
            "1.1.3",
            "--duration",
            "4m30s",
            "--config",
            config,
        )
        == 0
    )
    assert (
        await cli("deploy-event", "failure", "--env", "production", "--version", "1.1.4", "--config", config)
        == 2
    )
    assert "error" in capsys.readouterr().err
    [success] = await daemon.store.deployment_events(types=["deployment_success"])
    assert success.deployment_id == deployment_id  # matched to the open start
    assert success.duration_seconds == 270

    assert await cli("history", "production", "--days", "7", "--config", config) == 0
    out = capsys.readouterr().out
    assert "Total deployments: 1" in out
    assert "Success rate: 100%" in out
    assert await cli("history", "--export", "jsonl", "--config", config) == 0
    exported = capsys.readouterr().out
    lines = [json.loads(line) for line in exported.splitlines()]
    assert [r["type"] for r in lines] == ["deployment_start", "deployment_success"]

    dump = tmp_path / "history.jsonl"
    dump.write_text(exported + "not json\n" + '{"type": "deployment_start"}\n')
    other = write_config(simulator, name="other.yaml", extra=extra("http://127.0.0.1:1/"))
    other.write_text(other.read_text().replace("umig-monitor.db", "other.db"))
    assert await cli("import-history", str(dump), "--config", str(other)) == 0
    captured = capsys.readouterr()
    assert "imported 2 new event(s)" in captured.out
    assert ":3: skipped" in captured.err
    assert ":4: skipped" in captured.err
    assert await cli("import-history", str(dump), "--config", str(other)) == 0
    assert "imported 0 new event(s), 2 already known" in capsys.readouterr().out


async def test_history_command_and_api_summarise_a_window_alike(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deployment that failed before the window and was rolled back in it counts with its
    failure, in the API and in the command alike: both read the window through
    ops.deployments.history (the command once summarised only the window's own events)."""
    now = datetime.now(UTC)
    day = timedelta(days=1)
    events = [
        DeploymentEvent("e1", "d1", "production", EventType.START, now - 8 * day, version="1.1.3"),
        DeploymentEvent("e2", "d1", "production", EventType.FAILURE, now - 7.5 * day, version="1.1.3"),
        DeploymentEvent("e3", "d1", "production", EventType.ROLLBACK, now - 6.9 * day, version="1.1.3"),
        DeploymentEvent("e4", "d2", "production", EventType.START, now - day, version="1.1.4"),
        DeploymentEvent("e5", "d2", "production", EventType.SUCCESS, now - 0.9 * day, version="1.1.4"),
    ]
    assert await daemon.store.add_deployment_events(events, now) == 5
    _, answer = await api(daemon, "GET", "/api/v1/deployments?environment=production&since=7d")
    assert daemon.config_path is not None
    capsys.readouterr()
    assert (
        await cli("history", "production", "--days", "7", "--json", "--config", str(daemon.config_path)) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"] == answer["summary"]
    got = answer["summary"]
    assert (got["total"], got["successful"], got["failed"], got["rollbacks"], answer["total"]) == (
        2,
        1,
        1,
        1,
        3,
    )
    assert [e["id"] for e in printed["events"]] == [e["id"] for e in answer["events"]]


async def test_dora_endpoint(daemon: Daemon) -> None:
    for body in (
        {"type": "start", "environment": "production", "version": "1.1.3", "id": "a"},
        {"type": "failure", "environment": "production", "version": "1.1.3", "id": "a", "error": "boom"},
        {"type": "start", "environment": "production", "version": "1.1.4", "id": "b"},
        {"type": "success", "environment": "production", "version": "1.1.4", "id": "b"},
    ):
        assert (await api(daemon, "POST", "/api/v1/deployments/events", body))[0] == 201
    status, data = await api(daemon, "GET", "/api/v1/dora?days=30")
    assert status == 200
    prod: dict[str, Any] = data["environments"]["production"]
    assert prod["deployments"] == 1
    assert prod["change_failure_rate"] == 0.5
    assert prod["restores"] == 1
    assert (await api(daemon, "GET", "/api/v1/dora?days=-1"))[0] == 400
