"""Durability on the real process: killed with SIGKILL while deliveries are pending, restarted,
every notification arrives, once per idempotency key."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support import ConfigWriter, free_port, serving, until
from umig_monitor.simulator import RunningSimulator

pytestmark = pytest.mark.slow


class FlakyReceiver:
    def __init__(self) -> None:
        self.up = False
        self.attempts: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        self.attempts[key] += 1
        if not self.up:
            return web.Response(status=503, text="down for maintenance")
        await request.read()
        self.delivered[key] += 1
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[FlakyReceiver, str]]:
    flaky = FlakyReceiver()
    app = web.Application()
    app.router.add_post("/hook", flaky.handle)
    async with serving(app) as base:
        yield flaky, f"{base}/hook"


def start(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


async def drained(base: str) -> bool:
    """The daemon answers and its outbox holds no pending delivery."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(base + "/api/v1/outbox?status=pending") as r,
        ):
            return r.status == 200 and (await r.json())["deliveries"] == []
    except aiohttp.ClientError:
        return False


async def test_sigkill_with_pending_deliveries(
    simulator: RunningSimulator, write_config: ConfigWriter, receiver: tuple[FlakyReceiver, str]
) -> None:
    flaky, url = receiver
    extra = f"""
jobs:
  health: {{failure_threshold: 2, success_threshold: 2}}
sinks:
  hook: {{type: webhook, url: '{url}', retry: {{initial_backoff: 200ms, max_backoff: 500ms}}}}
default_route: {{sinks: [hook]}}
"""
    port = free_port()
    config = write_config(simulator, poll_interval="200ms", extra=extra, port=port)
    simulator.simulator.update("production", status="unhealthy")
    simulator.simulator.update("uat", status="unhealthy")
    first = start(config)
    try:
        await until(lambda: len(flaky.attempts) >= 2 and min(flaky.attempts.values()) >= 2)
    finally:
        first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 10)
    assert not flaky.delivered
    flaky.up = True
    second = start(config)
    try:
        await until(lambda: len(flaky.delivered) >= 2)
        await until(lambda: drained(f"http://127.0.0.1:{port}"), what="nothing pending")
        # A few dispatch ticks more (polls count the daemon's time): a duplicate would be sent by now.
        served = simulator.simulator.request_counts("production")["health"]
        await until(lambda: simulator.simulator.request_counts("production")["health"] >= served + 10)
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(second.wait, 10) == 0
    assert len(flaky.delivered) == 2
    assert set(flaky.delivered.values()) == {1}, flaky.delivered
