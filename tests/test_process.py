"""The real ``umig-monitor run`` process: start-up, SIGHUP, SIGTERM, systemd notify, bad config."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ConfigWriter, until
from umig_monitor.simulator import RunningSimulator

pytestmark = pytest.mark.slow


def http_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def wait_http(url: str, want: int = 200, within: float = 15) -> dict[str, object]:
    import asyncio

    async def answered() -> dict[str, object] | None:
        try:
            status, body = await asyncio.to_thread(http_json, url)
        except OSError:  # not listening yet
            return None
        return body if status == want else None

    return await until(answered, within=within, what=f"{url} answering {want}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    try:
        yield sock
    finally:
        sock.close()


def drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out += sock.recv(4096).decode().splitlines()
        except TimeoutError:
            return out


def start(config: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )


async def test_lifecycle_with_systemd_notify(
    simulator: RunningSimulator, write_config: ConfigWriter, notify_socket: socket.socket, tmp_path: Path
) -> None:
    import asyncio

    config = write_config(simulator, ("production", "uat"))
    port = int(config.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    base = f"http://127.0.0.1:{port}"
    proc = start(config, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="600000")
    try:
        seen: list[str] = []

        async def notified(message: str) -> bool:
            seen.extend(await asyncio.to_thread(drain, notify_socket))
            return message in seen

        await wait_http(base + "/readyz")
        await until(lambda: notified("READY=1"))
        await until(lambda: notified("WATCHDOG=1"))  # every 300 ms for WATCHDOG_USEC=600000

        # SIGHUP with an added environment: polled without a restart.
        simulator.simulator.add_environment("hotfix")
        write_config(simulator, ("production", "uat", "hotfix"), port=port)
        proc.send_signal(signal.SIGHUP)

        async def reloaded() -> bool:
            _, body = await asyncio.to_thread(http_json, base + "/api/v1/config")
            return "hotfix" in body["config"]["environments"]  # type: ignore[index]

        await until(reloaded, what="the reload took the new environment")
        await wait_http(base + "/readyz")  # the added environment has been polled
        await until(lambda: notified("RELOADING=1"))

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 10)
        assert code == 0
        assert time.monotonic() - started < 10
        assert "STOPPING=1" in await asyncio.to_thread(drain, notify_socket)
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0]
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert "daemon_started" in events
    assert "config_reloaded" in events
    assert "daemon_stopped" in events
    assert "Traceback" not in output


async def test_sigterm_while_a_poll_is_stuck(simulator: RunningSimulator, write_config: ConfigWriter) -> None:
    import asyncio

    from umig_monitor.simulator import Fault, FaultKind

    config = write_config(simulator, ("production",))
    simulator.simulator.add_fault("production", Fault(FaultKind("timeout")))
    port = int(config.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    proc = start(config)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        # The first poll is in flight, held by the simulator.
        await until(lambda: simulator.simulator.request_counts("production")["health"] >= 1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_bad_config_exits_2_with_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "environments:\n  production:\n    base_url: http://127.0.0.1:1\n    poll_interval: fast\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "umig_monitor", "run", "--config", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "environments.production.poll_interval: invalid duration 'fast'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_config_on_the_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "config" / "umig-monitor.example.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "umig_monitor", "check-config", "--config", str(example)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
