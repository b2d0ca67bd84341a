"""One implementation per ops command: every command works on storage, the bus the daemon reads
too, so it gives the same answer with the daemon up and with it down; writes made with the daemon
down are picked up by the daemon when it starts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ConfigWriter, Receiver, cli, free_port, running_daemon, until
from umig_monitor.app import Daemon
from umig_monitor.simulator import RunningSimulator

READS: tuple[tuple[str, ...], ...] = (
    ("status", "--json"),
    ("alerts", "--json"),
    ("alerts", "--active", "--since", "2026-01-01T00:00:00+01:00", "--json"),  # '+' in a query once broke it
    ("silence", "list", "--json"),
    ("history", "--json"),
    ("history", "production", "--days", "7", "--json"),
    ("dora", "--days", "7", "--json"),
    ("drift", "--json"),
)


def config(write_config: ConfigWriter, simulator: RunningSimulator, hook: Receiver) -> Path:
    return write_config(
        simulator,
        poll_interval="200ms",
        extra=f"""
jobs:
  health: {{failure_threshold: 2, success_threshold: 1}}
  drift: {{interval: 1s}}
sinks:
  hook: {{type: webhook, url: '{hook.url}'}}
default_route: {{sinks: [hook]}}
silences:
  - matchers: ['environment=development']
    starts_at: '2024-01-01T00:00:00Z'
    ends_at: '2099-01-01T00:00:00Z'
    comment: from the config
""",
    )


def _normalised(args: tuple[str, ...], data: Any) -> Any:
    if args[0] == "drift":
        data.pop("generatedAt", None)
    if args[0] == "dora":
        for figures in data["environments"].values():
            figures.pop("window_days", None)
    return data


async def answers(capsys: pytest.CaptureFixture[str], path: Path) -> dict[tuple[str, ...], tuple[int, Any]]:
    out: dict[tuple[str, ...], tuple[int, Any]] = {}
    for args in READS:
        capsys.readouterr()
        code = await cli(*args, "--config", str(path))
        text = capsys.readouterr().out
        out[args] = (code, _normalised(args, json.loads(text)))
    return out


async def test_every_command_answers_the_same_with_the_daemon_up_or_down(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    hook: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = config(write_config, simulator, hook)
    async with running_daemon(path) as daemon:
        await until(daemon.first_round_done)
        assert (
            await cli("deploy-event", "start", "--env", "uat", "--version", "1.2.0", "--config", str(path))
            == 0
        )
        assert (
            await cli("silence", "add", "-m", "environment=uat", "--duration", "1h", "--config", str(path))
            == 0
        )
        simulator.simulator.update("production", status="unhealthy")
        await until(lambda: daemon.store.active_alerts("production"), what="an incident")
        await daemon.writer.flush()
        simulator.simulator.update("production", status=None)
        await until(lambda: _no_incident(daemon), what="the incident resolved")
        daemon.scheduler.pause()  # hold the facts still: no poll or drift run between the answers
        await until(lambda: _settled(daemon), what="every notice delivered")
        await daemon.writer.flush()
        up = await answers(capsys, path)
    down = await answers(capsys, path)
    for args in READS:
        assert up[args] == down[args], args
    # and the answers hold what happened
    alerts = up[("alerts", "--json")][1]["alerts"]
    assert any(a["environment"] == "production" for a in alerts)
    silences = up[("silence", "list", "--json")][1]["silences"]
    assert {s["createdBy"] for s in silences} >= {"config"}
    assert len(silences) == 2
    assert up[("history", "--json")][1]["summary"]["inProgress"] == 1


async def _settled(daemon: Daemon) -> bool:
    await daemon.alerts.evaluate()
    counts = await daemon.store.outbox_counts()
    return not any(n for (_, status), n in counts.items() if status == "pending")


async def _no_incident(daemon: Daemon) -> bool:
    return not await daemon.store.active_alerts("production")


async def test_a_write_with_the_daemon_down_is_delivered_by_the_command(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    hook: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No daemon leads: the command routes and delivers its own notices; a daemon that starts
    later sends nothing twice."""
    path = config(write_config, simulator, hook)
    args = ("deploy-event", "success", "--env", "uat", "--version", "1.2.0", "--config", str(path))
    assert await cli(*args) == 0
    assert [b["alerts"][0]["labels"]["alertname"] for b in hook.bodies] == ["deployment_success"]
    async with running_daemon(path) as daemon:
        await until(daemon.first_round_done)
        await until(lambda: _settled(daemon), what="nothing pending")
    assert len(hook.bodies) == 1


async def test_commands_behave_as_ops_engineers_expect(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    hook: Receiver,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = str(config(write_config, simulator, hook))
    # an unknown environment is a usage error in every command, not an empty answer
    for args in (("history", "prod"), ("check", "prod"), ("alerts", "--env", "prod"), ("baseline", "prod")):
        capsys.readouterr()
        assert await cli(*args, "--config", path) == 2, args
        assert "unknown environment 'prod'" in capsys.readouterr().err, args
    # the guide's own form: history ENV DAYS, and `all`
    assert (
        await cli("deploy-event", "success", "--env", "production", "--version", "1.1.3", "--config", path)
        == 0
    )
    capsys.readouterr()
    assert await cli("history", "production", "7", "--json", "--config", path) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["total"] == 1
    assert await cli("history", "all", "7", "--config", path) == 0
    assert "Last 7 days" in capsys.readouterr().out
    assert await cli("history", "production", "7", "--days", "3", "--config", path) == 2
    # a missing file is a clear error
    assert await cli("import-history", str(tmp_path / "nope.jsonl"), "--config", path) == 2
    assert "cannot read it" in capsys.readouterr().err
    # a missing config says how to point at one
    assert await cli("status", "--config", str(tmp_path / "missing.yaml")) == 2
    assert "--config FILE" in capsys.readouterr().err


def test_a_closed_pipe_is_no_traceback(
    simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver
) -> None:
    """`umig-monitor history | head -1`: the reader goes away; the command ends quietly."""
    path = str(config(write_config, simulator, hook))
    read, write = os.pipe()
    os.close(read)  # every write now fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "umig_monitor", "history", "--config", path],
            stdout=write,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert done.returncode == 0


async def test_the_demo_tells_how_to_run_the_ops_commands(tmp_path: Path) -> None:
    """A newcomer's first two minutes: `umig-monitor demo`, then in another terminal the command
    its banner prints, which reads the demo's storage."""
    port = free_port()
    demo = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "umig_monitor", "demo", "--port", str(port), "--data-dir", str(tmp_path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert demo.stdout is not None
        lines: list[str] = []

        async def banner() -> str | None:
            line = (await demo.stdout.readline()).decode()  # type: ignore[union-attr]
            lines.append(line)
            return line if "API token" in line else None

        token = await until(banner, within=60, what="the demo's banner")
        assert "demo-token" in token
        [shown] = [x for x in lines if "ops commands" in x]
        command = shown.split("ops commands", 1)[1].strip().split()
        assert command[:2] == ["umig-monitor", "status"]
        config = command[command.index("--config") + 1]

        async def status() -> dict[str, Any] | None:
            run = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "umig_monitor", "status", "--json", "--config", config),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            out, _ = await run.communicate()
            data: dict[str, Any] = json.loads(out) if run.returncode == 0 else {}
            envs = data.get("environments", {})
            return data if envs and all(e["lastCheck"] for e in envs.values()) else None

        data = await until(status, within=60, what="status from the demo's storage")
        assert set(data["environments"]) == {"development", "uat", "production"}
    finally:
        demo.terminate()
        await demo.wait()
