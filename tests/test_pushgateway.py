"""The push job against a real prometheus-pushgateway: what it pushes can be read back there."""

from __future__ import annotations

import asyncio
import urllib.request

from tests.support import ConfigWriter, external_process, free_port, require_tool, running_daemon, until
from umig_monitor.simulator import RunningSimulator


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


async def pushed(gateway: str, *needles: str) -> str:
    """The gateway's metrics text once it holds every needle; empty until then."""
    text = await asyncio.to_thread(fetch, gateway + "/metrics")
    return text if all(needle in text for needle in needles) else ""


async def test_push_reads_back(simulator: RunningSimulator, write_config: ConfigWriter) -> None:
    binary = require_tool("prometheus-pushgateway")
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    command = [binary, f"--web.listen-address=127.0.0.1:{port}"]
    async with external_process(command, gateway + "/-/ready"):
        extra = f"pushgateway: {{url: '{gateway}', job: umig-deployment-tracking, interval: 500ms}}\n"
        path = write_config(simulator, extra=extra)
        async with running_daemon(path):
            both = ('umig_health_status{environment="production"', 'umig_health_status{environment="uat"')
            await until(lambda: pushed(gateway, *both), within=20, what="both environments pushed")
            simulator.simulator.update("production", version="1.1.3")
            text = await until(
                lambda: pushed(gateway, 'version="1.1.3"', both[1]), within=20, what="the new version pushed"
            )
    lines = [line for line in text.splitlines() if line.startswith("umig_version_info{")]
    prod = [line for line in lines if 'environment="production"' in line]
    assert len(prod) == 1, lines  # PUT replaced the group: the old version's series is gone
    assert 'job="umig-deployment-tracking"' in prod[0]
    assert 'version="1.1.3"' in prod[0]
    assert 'umig_health_status{environment="uat",instance="",job="umig-deployment-tracking"}' in text
