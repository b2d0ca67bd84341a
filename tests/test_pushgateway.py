"""The push job against a real prometheus-pushgateway: by default every family the shipped
dashboard and rules read arrives, in this replica's group (job, instance = its member id, and the
configured grouping labels); PUT replaces the group; the group goes when the daemon stops."""

from __future__ import annotations

import asyncio
import base64
import re
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.support import (
    ConfigWriter,
    Receiver,
    external_process,
    free_port,
    require_tool,
    running_daemon,
    until,
)
from umig_monitor.config.models import PUSHED_METRICS, Pushgateway
from umig_monitor.core.deployments import EventType
from umig_monitor.jobs.baseline import baseline_environment
from umig_monitor.jobs.pushgateway import group_url
from umig_monitor.simulator import RunningSimulator


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


async def pushed(gateway: str, *needles: str) -> str:
    """The gateway's metrics text once it holds every needle; empty until then."""
    text = await asyncio.to_thread(fetch, gateway + "/metrics")
    return text if all(needle in text for needle in needles) else ""


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels."""
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series[len(name) :]))
            if found == labels:
                return float(value)
    return None


def families(text: str, member: str) -> set[str]:
    """The families of the samples in this replica's group (by their exposed name)."""
    names = set()
    for line in text.splitlines():
        if not line.startswith("#") and f'instance="{member}"' in line:
            name = line.split("{", 1)[0]
            names.add(re.sub(r"_(bucket|sum|count)$", "", name) if "_seconds_" in name else name)
    return names - {"push_time_seconds", "push_failure_time_seconds"}


async def test_push_reads_back(
    simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver, tmp_path: Path
) -> None:
    binary = require_tool("prometheus-pushgateway")
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    # Debian's build keeps its groups in /var/lib/prometheus/pushgateway.data by default, shared
    # with every other run on the machine: this one starts empty.
    command = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={tmp_path / 'pushgateway.data'}",
    ]
    async with external_process(command, gateway + "/-/ready"):
        extra = (
            f"pushgateway: {{url: '{gateway}', job: umig-deployment-tracking, interval: 300ms,"
            " grouping_key: {site: dc-1/a}}\n"
            "jobs: {drift: {interval: 300ms}, baseline: {samples: 2}}\n"
            f"sinks: {{hook: {{type: webhook, url: '{hook.url}'}}}}\n"
            "routes: [{match: {type: never}, sinks: [hook]}]\n"
        )
        path = write_config(simulator, extra=extra, poll_interval="300ms")
        async with running_daemon(path) as daemon:
            member = daemon.cluster.member_id
            group = f'instance="{member}",job="umig-deployment-tracking",site="dc-1/a"'
            key = {"instance": member, "job": "umig-deployment-tracking", "site": "dc-1/a"}
            both = (
                f'umig_health_status{{environment="production",{group}}}',
                f'umig_health_status{{environment="uat",{group}}}',
            )
            await until(lambda: pushed(gateway, *both), within=20, what="both environments pushed")
            # Everything the dashboard and the rules read: deployments, a baseline, drift (the
            # guide's development and uat are ahead of production), the leader's gauges.
            await daemon.deployments.record(EventType.SUCCESS, "uat", datetime.now(UTC), version="1.2.0")
            await baseline_environment(daemon, "uat")
            await until(
                lambda: pushed(gateway, "umig_baseline_latency_seconds{", "umig_version_drift{"),
                within=20,
                what="baseline and drift pushed",
            )
            text = await asyncio.to_thread(fetch, gateway + "/metrics")
            # Exactly what was asked for: not the process or build figures.
            assert families(text, member) == set(PUSHED_METRICS), families(text, member) ^ set(PUSHED_METRICS)

            async def deployed() -> str:
                text = await asyncio.to_thread(fetch, gateway + "/metrics")
                counted = sample(text, "umig_deployment_total", environment="uat", result="success", **key)
                return text if counted == 1 else ""

            text = await until(deployed, within=20, what="the deployment pushed")
            assert sample(text, "umig_notifications_total", result="failed", sink="hook", **key) == 0
            assert "_created" not in text

            simulator.simulator.update("production", version="1.1.3")
            text = await until(
                lambda: pushed(gateway, 'version="1.1.3"', both[1]), within=20, what="the new version pushed"
            )
            lines = [line for line in text.splitlines() if line.startswith("umig_version_info{")]
            prod = [line for line in lines if 'environment="production"' in line]
            assert len(prod) == 1, lines  # PUT replaced the group: the old version's series is gone
            assert group in prod[0]
            assert 'version="1.1.3"' in prod[0]
        # Stopped: its group is gone, so nothing of it lingers as if it were still current.
        assert member not in await asyncio.to_thread(fetch, gateway + "/metrics")


def test_group_url_encodes_every_label() -> None:
    config = Pushgateway.model_validate({"url": "http://gw.example:9091/", "job": "umig deploy"})
    url = group_url(config, "host-a:9464")
    assert url == (
        f"http://gw.example:9091/metrics/job@base64/{b64('umig deploy')}/instance@base64/{b64('host-a:9464')}"
    )
    pinned = Pushgateway.model_validate(
        {"url": "http://gw.example:9091", "grouping_key": {"instance": "umig-prod", "site": "dc/1"}}
    )
    assert group_url(pinned, "host-a:9464").endswith(
        f"/instance@base64/{b64('umig-prod')}/site@base64/{b64('dc/1')}"
    )


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grouping_key": {"job": "x"}}, "'job' is pushgateway.job"),
        ({"grouping_key": {"bad-name": "x"}}, "not a Prometheus label name"),
        ({"grouping_key": {"__name__": "x"}}, "not a Prometheus label name"),
        ({"grouping_key": {"site": ""}}, "needs a value"),
        ({"metrics": []}, "at least one metric"),
        ({"metrics": ["umig_health_status", "not a name"]}, "not metric names: not a name"),
        ({"job": ""}, "must not be empty"),
    ],
)
def test_pushgateway_config_is_checked(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Pushgateway.model_validate({"url": "http://gw.example:9091", **fields})
