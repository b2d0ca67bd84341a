"""The daemon's exposition: every labelled counter at 0 from start-up for every label combination
the config implies (and after a reload), no ``_created`` series, no ``job`` label of its own, gauges
that read 0, exactly the series the calls imply once series are removed, and ``promtool check
metrics`` clean on a real daemon's /metrics with a baseline recorded."""

from __future__ import annotations

import asyncio
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest

from tests.support import ConfigWriter, Receiver, require_tool, until
from umig_monitor.app import Daemon
from umig_monitor.config import load_config
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.jobs import implied_tasks
from umig_monitor.jobs.health import ALL_OUTCOMES
from umig_monitor.metrics import (
    ALERT_TYPES,
    DEPLOYMENT_RESULTS,
    FAILURE_REASONS,
    JOB_RESULTS,
    SKIP_REASONS,
    AlertMetrics,
    DeploymentMetrics,
    InsightMetrics,
    SelfMetrics,
    UmigMetrics,
)
from umig_monitor.simulator import RunningSimulator

T0 = datetime(2024, 10, 25, 12, 0, tzinfo=UTC)


def series(registry: CollectorRegistry) -> set[str]:
    text = generate_latest(registry).decode()
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def observe(metrics: UmigMetrics, env: str, outcome: str = "healthy", uptime: int | None = 60) -> None:
    metrics.observe(env, outcome, "healthy", "1.1.2", "b1", uptime, ALL_OUTCOMES)


def umig(*environments: str) -> tuple[UmigMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = UmigMetrics(registry)
    metrics.track(environments)
    return metrics, registry


# --- the collectors ---------------------------------------------------------------------------------


def test_uptime_series_goes_and_comes_back() -> None:
    m, r = umig("uat")
    observe(m, "uat", uptime=60)
    assert 'umig_uptime_seconds{environment="uat"} 60.0' in series(r)
    observe(m, "uat", outcome="timeout", uptime=None)
    assert not any(s.startswith("umig_uptime_seconds") for s in series(r))
    assert 'umig_health_status{environment="uat"} 0.0' in series(r)
    observe(m, "uat", uptime=120)
    assert 'umig_uptime_seconds{environment="uat"} 120.0' in series(r)
    assert 'umig_health_status{environment="uat"} 1.0' in series(r)


def test_a_tracked_environment_starts_at_zero_and_an_untracked_one_has_no_series() -> None:
    m, r = umig("uat", "production")
    exposed = series(r)
    for env in ("uat", "production"):
        for reason in FAILURE_REASONS:
            assert f'umig_probe_failures_total{{environment="{env}",reason="{reason}"}} 0.0' in exposed
        assert f'umig_probe_duration_seconds_count{{endpoint="health",environment="{env}"}} 0.0' in exposed
        # one latency histogram per environment: its series stay bounded
        assert not any("umig_probe_duration" in s and 'endpoint="version"' in s for s in exposed)
        bucket = "umig_probe_duration_seconds_bucket"
        assert len([s for s in exposed if s.startswith(bucket) and f'"{env}"' in s]) == 10
    m.failed("uat", "timeout")
    m.observe_duration("uat", "version", 0.2)  # not timed: no series of its own
    assert 'umig_probe_failures_total{environment="uat",reason="timeout"} 1.0' in series(r)
    assert not any('endpoint="version"' in s for s in series(r))
    # Another replica polls development: a poll of it here (one that finished after it moved
    # away) leaves no series behind.
    observe(m, "development")
    m.failed("development", "timeout")
    m.observe_duration("development", "health", 0.1)
    assert not any('environment="development"' in s for s in series(r))


def test_an_environment_that_moves_away_loses_every_series_and_comes_back_at_zero() -> None:
    m, r = umig("uat", "production")
    observe(m, "uat")
    m.observe_duration("uat", "health", 0.02)
    m.observe_duration("uat", "health", 0.03)
    m.failed("uat", "timeout")
    assert 'umig_probe_duration_seconds_count{endpoint="health",environment="uat"} 2.0' in series(r)
    m.track(["production"])
    assert not any('environment="uat"' in s for s in series(r))
    assert 'umig_health_status{environment="production"}' not in " ".join(series(r))  # never polled
    m.track(["production", "uat"])
    exposed = series(r)
    assert 'umig_probe_failures_total{environment="uat",reason="timeout"} 0.0' in exposed
    assert 'umig_probe_duration_seconds_count{endpoint="health",environment="uat"} 0.0' in exposed
    assert not any(s.startswith("umig_health_status") for s in exposed)  # until its next poll
    observe(m, "uat")
    m.observe_duration("uat", "health", 0.02)
    exposed = series(r)
    assert 'umig_health_status{environment="uat"} 1.0' in exposed
    assert 'umig_uptime_seconds{environment="uat"} 60.0' in exposed
    assert 'umig_probe_duration_seconds_count{endpoint="health",environment="uat"} 1.0' in exposed


def test_job_runs_by_task_at_zero_and_removed_with_the_task() -> None:
    m = SelfMetrics()
    m.tasks(["health", "daily_report"])
    exposed = series(m.registry)
    for task in ("health", "daily_report"):
        for result in JOB_RESULTS:
            assert f'umig_monitor_job_runs_total{{result="{result}",task="{task}"}} 0.0' in exposed
        assert f'umig_monitor_job_duration_seconds_count{{task="{task}"}} 0.0' in exposed
        for reason in SKIP_REASONS:
            assert f'umig_monitor_job_runs_skipped_total{{reason="{reason}",task="{task}"}} 0.0' in exposed
    assert 'umig_monitor_config_reloads_total{result="failure"} 0.0' in exposed
    m.job_finished("daily_report", "failure", 0.5, 1000.0)
    m.job_finished("health", "success", 0.01, 1000.0)
    m.job_finished("pushgateway", "success", 0.01, 1000.0)  # not implied (any more): not counted
    m.run_skipped("pushgateway", "late")
    m.run_skipped("health", "still_running")
    exposed = series(m.registry)
    assert 'umig_monitor_job_runs_total{result="failure",task="daily_report"} 1.0' in exposed
    assert 'umig_monitor_job_last_success_timestamp_seconds{task="health"} 1000.0' in exposed
    assert 'umig_monitor_job_runs_skipped_total{reason="still_running",task="health"} 1.0' in exposed
    assert not any('task="pushgateway"' in s for s in exposed)
    # The replica stops polling (its environments moved): it must not look stalled on health.
    m.running(["daily_report"])
    assert not any(s.startswith("umig_monitor_job_last_success") for s in series(m.registry))
    m.tasks(["health"])
    assert not any('task="daily_report"' in s for s in series(m.registry))


def test_alerts_firing_reads_zero_per_severity_and_type() -> None:
    registry = CollectorRegistry()
    m = AlertMetrics(registry)
    zeros = {
        f'umig_alerts_firing{{severity="{severity}",type="{kind}"}} 0.0'
        for severity in ("critical", "warning", "info")
        for kind in ALERT_TYPES
    }
    assert zeros <= series(registry)
    m.set_firing({("critical", "environment_unhealthy"): 2, ("warning", "manual_check"): 1})
    exposed = series(registry)
    assert 'umig_alerts_firing{severity="critical",type="environment_unhealthy"} 2.0' in exposed
    assert 'umig_alerts_firing{severity="warning",type="manual_check"} 1.0' in exposed
    m.set_firing({})
    assert {s for s in series(registry) if s.startswith("umig_alerts_firing")} == zeros


def test_sinks_at_zero_and_a_removed_sink_gone() -> None:
    registry = CollectorRegistry()
    m = AlertMetrics(registry)
    m.set_sinks(["hook", "mail"])
    exposed = series(registry)
    for sink in ("hook", "mail"):
        for result in ("sent", "retry", "failed"):
            assert f'umig_notifications_total{{result="{result}",sink="{sink}"}} 0.0' in exposed
        assert f'umig_outbox_pending{{sink="{sink}"}} 0.0' in exposed
    m.delivered("hook", "failed")
    m.set_pending({"hook": 3, "gone": 1})
    m.set_sinks(["hook"])
    exposed = series(registry)
    assert 'umig_notifications_total{result="failed",sink="hook"} 1.0' in exposed
    assert not any('sink="mail"' in s for s in exposed)
    assert 'umig_outbox_pending{sink="gone"} 1.0' in exposed  # rows left for a removed sink
    m.set_pending({"hook": 0})
    assert {s for s in series(registry) if s.startswith("umig_outbox_pending")} == {
        'umig_outbox_pending{sink="hook"} 0.0'
    }


def test_leader_only_families_vanish_on_a_follower_and_return_with_their_values() -> None:
    registry = CollectorRegistry()
    leading = [True]
    alerts = AlertMetrics(registry, leading=lambda: leading[0])
    insights = InsightMetrics(registry, leading=lambda: leading[0])
    alerts.set_sinks(["hook"])
    alerts.delivered("hook", "sent")
    insights.set_drift([DriftLike("pattern", "uat")])
    families = ("umig_alerts_firing", "umig_outbox_pending", "umig_version_drift")
    text = generate_latest(registry).decode()
    assert all(f"# TYPE {f}" in text for f in families)
    leading[0] = False
    text = generate_latest(registry).decode()
    assert not any(f in text for f in families)
    # Its own deliveries stay: a follower that leads next is already at 0 when it delivers.
    assert 'umig_notifications_total{result="sent",sink="hook"} 1.0' in text
    assert 'umig_notifications_total{result="failed",sink="hook"} 0.0' in text
    assert "umig_notification_latency_seconds_count 0.0" in text
    leading[0] = True
    assert 'umig_notifications_total{result="sent",sink="hook"} 1.0' in series(registry)


class DriftLike:
    def __init__(self, type: str, environment: str | None) -> None:
        self.type = type
        self.environment = environment


def test_deployments_at_zero_counted_once_and_removed_with_the_environment() -> None:
    registry = CollectorRegistry()
    m = DeploymentMetrics(registry)
    m.track(["production", "uat"], T0)
    exposed = series(registry)
    for env in ("production", "uat"):
        for result in DEPLOYMENT_RESULTS.values():
            assert f'umig_deployment_total{{environment="{env}",result="{result}"}} 0.0' in exposed
        assert f'umig_deployment_duration_seconds_count{{environment="{env}"}} 0.0' in exposed
    event = DeploymentEvent(
        id="e1",
        deployment_id="d1",
        environment="production",
        type=EventType.SUCCESS,
        ts=T0,
        version="1.1.2",
        duration_seconds=90,
    )
    assert m.count(event, T0)
    assert not m.count(event, T0)  # read again by the follower
    exposed = series(registry)
    assert 'umig_deployment_total{environment="production",result="success"} 1.0' in exposed
    assert 'umig_deployment_duration_seconds_count{environment="production"} 1.0' in exposed
    elsewhere = DeploymentEvent(id="e2", deployment_id="d2", environment="dev", type=EventType.START, ts=T0)
    assert not m.count(elsewhere, T0)  # another replica polls it
    m.track(["uat"], T0)
    assert not any('environment="production"' in s for s in series(registry))


def test_baseline_stats_replace_the_previous_baseline() -> None:
    registry = CollectorRegistry()
    m = InsightMetrics(registry)
    m.track(["uat"])
    assert m.unrestored == {"uat"}
    m.set_baseline("uat", {"health": {"p50_ms": 10.0, "p95_ms": 20.0, "max_ms": 30.0}, "teams": {}})
    assert not m.unrestored
    assert {s for s in series(registry) if s.startswith("umig_baseline")} == {
        'umig_baseline_latency_seconds{endpoint="health",environment="uat",stat="p50"} 0.01',
        'umig_baseline_latency_seconds{endpoint="health",environment="uat",stat="p95"} 0.02',
        'umig_baseline_latency_seconds{endpoint="health",environment="uat",stat="max"} 0.03',
    }
    # Every request failed this time: nothing measured, nothing shown (not the old figures).
    m.set_baseline("uat", {"health": {"p50_ms": None, "p95_ms": None, "max_ms": None}})
    assert not any(s.startswith("umig_baseline") for s in series(registry))
    m.set_baseline("production", {"health": {"p50_ms": 1.0}})  # not ours
    assert not any(s.startswith("umig_baseline") for s in series(registry))


# --- a real daemon ------------------------------------------------------------------------------------

CONFIG = """
sinks:
  hook: {{type: webhook, url: '{url}'}}
  spare: {{type: webhook, url: '{url}'}}
default_route: {{sinks: [hook]}}
jobs:
  baseline: {{samples: 2}}
"""


async def metrics_of(daemon: Daemon) -> str:
    async with aiohttp.ClientSession() as session, session.get(daemon.listen_url + "/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


def zero_series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line.endswith(" 0.0")}


async def test_every_counter_the_config_implies_is_exported_at_zero_from_start_up(
    simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver, tmp_path: Path
) -> None:
    path = write_config(simulator, extra=CONFIG.format(url=hook.url))
    daemon = Daemon(load_config(path), path)
    await daemon.start()
    try:
        text = await metrics_of(daemon)
        zeros = zero_series(text)
        envs = ("development", "uat", "production")
        for env in envs:
            for result in DEPLOYMENT_RESULTS.values():
                assert f'umig_deployment_total{{environment="{env}",result="{result}"}}' in zeros
            for reason in FAILURE_REASONS:
                assert f'umig_probe_failures_total{{environment="{env}",reason="{reason}"}}' in zeros
        for sink in ("hook", "spare"):
            for result in ("sent", "retry", "failed"):
                assert f'umig_notifications_total{{result="{result}",sink="{sink}"}}' in zeros
        tasks = implied_tasks(daemon.settings)
        assert {"health", "exposition", "retention", "drift", "baseline", "daily_report"} <= tasks
        for task in tasks:
            assert f'umig_monitor_job_runs_total{{result="failure",task="{task}"}}' in zeros
        for severity in ("critical", "warning", "info"):
            assert f'umig_alerts_firing{{severity="{severity}",type="environment_unhealthy"}}' in zeros
        # No _created series, and no label called job (it would clash with the scrape's).
        assert "_created" not in text
        assert not re.search(r'[{,]job="', text)
        assert "umig_cluster_" not in text.replace("umig_monitor_cluster_", "")

        # A reload adds an environment and drops one, adds a sink and drops one.
        config = path.read_text()
        config = config.replace("  spare: {type: webhook", "  extra: {type: webhook")
        config = config.replace(
            "  development:\n",
            f"  hotfix:\n    base_url: {simulator.base_url('development')}\n    kind: hotfix\n"
            "    poll_interval: 1s\n  development:\n",
        )
        config = re.sub(r"  uat:\n(    .*\n)+?(?=  production:)", "", config)
        path.write_text(config)
        assert await daemon.reload() == (True, "reloaded")
        text = await metrics_of(daemon)
        zeros = zero_series(text)
        assert 'umig_deployment_total{environment="hotfix",result="success"}' in zeros
        assert 'umig_probe_failures_total{environment="hotfix",reason="timeout"}' in zeros
        assert 'umig_notifications_total{result="failed",sink="extra"}' in zeros
        assert 'environment="uat"' not in text
        assert 'sink="spare"' not in text
    finally:
        await daemon.stop()


async def test_promtool_check_metrics_is_clean_with_a_baseline(
    simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver
) -> None:
    from umig_monitor.jobs.baseline import baseline_environment

    promtool = require_tool("promtool")
    path = write_config(simulator, extra=CONFIG.format(url=hook.url), poll_interval="200ms")
    daemon = Daemon(load_config(path), path)
    await daemon.start()
    try:
        await until(daemon.first_round_done)
        await baseline_environment(daemon, "uat")
        await daemon.deployments.record(EventType.SUCCESS, "uat", datetime.now(UTC), version="1.1.2")
        text = await metrics_of(daemon)
        assert 'umig_baseline_latency_seconds{endpoint="health",environment="uat",stat="p95"}' in text
        check = await asyncio.to_thread(
            subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert not (check.stdout + check.stderr).strip(), check.stdout + check.stderr
    finally:
        await daemon.stop()
