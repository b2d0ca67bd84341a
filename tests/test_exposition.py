"""jobs/exposition.py with a real daemon: deployments recorded by someone else (another replica,
the CLI) are counted once by the replica that polls their environment, an imported history is not
a burst of deployments, the baseline gauge is restored from storage at start-up and follows the
baselines `umig-monitor baseline` stores, and the leader shows the stored drift findings."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import ConfigWriter, cli, metrics_text, running_daemon
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.jobs.exposition import OVERLAP, refresh_exposition
from umig_monitor.simulator import RunningSimulator
from umig_monitor.storage import Store
from umig_monitor.storage.insights import FindingRow

# Followed each heartbeat; an hour here, so only the refreshes a test runs happen.
SLOW_FOLLOW = "  cluster: {heartbeat_interval: 1h, lease_ttl: 2h}\n"


def with_slow_follow(path: Path) -> Path:
    text = path.read_text()
    path.write_text(text.replace("  shutdown_timeout: 3s\n", "  shutdown_timeout: 3s\n" + SLOW_FOLLOW))
    return path


def value(text: str, series: str) -> float | None:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def event(event_id: str, env: str, kind: EventType, at: datetime) -> DeploymentEvent:
    return DeploymentEvent(
        id=event_id, deployment_id=f"d-{event_id}", environment=env, type=kind, ts=at, version="1.1.3"
    )


async def test_deployments_recorded_elsewhere_are_counted_once(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    path = with_slow_follow(write_config(simulator))
    async with running_daemon(path) as daemon:
        other = await Store.open(daemon.settings.daemon.storage)  # another replica's writes
        try:
            now = datetime.now(UTC)
            await other.add_deployment_event(event("e1", "production", EventType.SUCCESS, now), now)
            await other.add_deployment_event(event("e2", "uat", EventType.FAILURE, now), now)
            # Before this daemon counted anything (it started later than this was recorded): not
            # a deployment of its time.
            early = daemon.started_at - timedelta(seconds=5)
            await other.add_deployment_event(event("e0", "uat", EventType.SUCCESS, early), early)
            # A history import: past events, stored as of their own time.
            past = now - timedelta(days=3)
            await other.add_deployment_events(
                [event(f"h{i}", "production", EventType.SUCCESS, past) for i in range(5)], now, history=True
            )
        finally:
            await other.close()
        # This daemon's own recording counts at once.
        await daemon.deployments.record(EventType.SUCCESS, "production", datetime.now(UTC), version="1.1.4")
        success = 'umig_deployment_total{environment="production",result="success"}'
        assert value(metrics_text(daemon), success) == 1.0
        for _ in range(3):  # the overlap reads the same rows again: still counted once
            await refresh_exposition(daemon)
        text = metrics_text(daemon)
        assert value(text, success) == 2.0
        assert value(text, 'umig_deployment_total{environment="uat",result="failure"}') == 1.0
        assert value(text, 'umig_deployment_total{environment="uat",result="success"}') == 0.0
        assert daemon.following.deployments_after <= datetime.now(UTC)
        assert daemon.following.deployments_after >= now - OVERLAP


async def test_the_baseline_gauge_is_restored_at_start_up_and_follows_the_cli(
    simulator: RunningSimulator, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    path = with_slow_follow(write_config(simulator, extra="jobs: {baseline: {samples: 2}}\n"))
    # No daemon runs: the CLI measures and stores.
    assert await cli("baseline", "uat", "--json", "--config", str(path)) == 0
    first = json.loads(capsys.readouterr().out)
    p95 = 'umig_baseline_latency_seconds{endpoint="teams",environment="uat",stat="p95"}'
    async with running_daemon(path) as daemon:
        # There from the start, not from the next hourly baseline.
        assert value(metrics_text(daemon), p95) == pytest.approx(first["endpoints"]["teams"]["p95_ms"] / 1000)
        assert value(metrics_text(daemon), p95.replace("uat", "production")) is None  # none taken
        # With the daemon running, the CLI still measures in-process; the daemon's next refresh
        # from storage shows it.
        assert await cli("baseline", "production", "--json", "--config", str(path)) == 0
        second = json.loads(capsys.readouterr().out)
        await refresh_exposition(daemon)
        text = metrics_text(daemon)
        assert value(text, p95.replace("uat", "production")) == pytest.approx(
            second["endpoints"]["teams"]["p95_ms"] / 1000
        )
        for stat, key in (("p50", "p50_ms"), ("max", "max_ms")):
            series = (
                f'umig_baseline_latency_seconds{{endpoint="health",environment="production",stat="{stat}"}}'
            )
            assert value(text, series) == pytest.approx(second["endpoints"]["health"][key] / 1000)


async def test_the_leader_shows_the_stored_drift_findings(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    path = with_slow_follow(write_config(simulator))
    async with running_daemon(path) as daemon:
        now = datetime.now(UTC)
        # Another leader's drift job found these before this one ran its own.
        await daemon.store.sync_findings(
            [FindingRow("pattern/uat", "pattern", "uat", "warning", "uat: odd version", {})], now
        )
        await refresh_exposition(daemon)
        assert value(metrics_text(daemon), 'umig_version_drift{environment="uat",type="pattern"}') == 1.0
        await daemon.store.sync_findings([], now + timedelta(seconds=1))
        await refresh_exposition(daemon)
        assert "umig_version_drift{" not in metrics_text(daemon)
