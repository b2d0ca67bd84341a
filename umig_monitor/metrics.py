"""Prometheus metrics of the daemon itself, in a registry per daemon (tests run several)."""

from __future__ import annotations

import contextlib
import platform
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from umig_monitor import __version__


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        build = Gauge(
            "umig_monitor_build_info", "umig-monitor build information.", ["version", "python"], registry=r
        )
        build.labels(__version__, platform.python_version()).set(1)
        self.job_runs = Counter(
            "umig_monitor_job_runs", "Scheduled job runs by job and result.", ["job", "result"], registry=r
        )
        self.job_duration = Histogram(
            "umig_monitor_job_duration_seconds",
            "Wall time of scheduled job runs.",
            ["job"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.job_last_success = Gauge(
            "umig_monitor_job_last_success_timestamp_seconds",
            "Unix time of the last successful run of each job.",
            ["job"],
            registry=r,
        )
        self.config_reloads = Counter(
            "umig_monitor_config_reloads", "Config reloads by result.", ["result"], registry=r
        )
        self.config_last_reload_success = Gauge(
            "umig_monitor_config_last_reload_successful",
            "1 when the last config reload succeeded, 0 when the old config was kept.",
            registry=r,
        )
        self.config_last_reload_success.set(1)
        self.scheduled_jobs = Gauge("umig_monitor_scheduled_jobs", "Jobs in the scheduler.", registry=r)


PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class UmigMetrics:
    """The guide's UMIG metrics, per environment, in their own registry so the pushgateway job
    can push exactly these."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.version_info = Gauge(
            "umig_version_info", "UMIG version information.", ["environment", "version", "build"], registry=r
        )
        self.health_status = Gauge(
            "umig_health_status", "UMIG health status (1=healthy, 0=unhealthy).", ["environment"], registry=r
        )
        self.uptime = Gauge("umig_uptime_seconds", "UMIG uptime in seconds.", ["environment"], registry=r)
        self.environment_status = Gauge(
            "umig_environment_status",
            "1 for the outcome of the environment's last poll, 0 for the others.",
            ["environment", "status"],
            registry=r,
        )
        self.probe_duration = Histogram(
            "umig_probe_duration_seconds",
            "Time to fetch one admin endpoint.",
            ["environment", "endpoint"],
            buckets=PROBE_BUCKETS,
            registry=r,
        )
        self.probe_failures = Counter(
            "umig_probe_failures", "Failed polls by reason (outcome).", ["environment", "reason"], registry=r
        )
        self._version_labels: dict[str, tuple[str, str]] = {}
        self._outcomes: dict[str, str] = {}
        # Labelled children per environment: .labels() costs a lock and a tuple build per call,
        # and a poll touches several series. Dropped whenever their series is removed.
        self._health_children: dict[str, Gauge] = {}
        self._uptime_children: dict[str, Gauge] = {}
        self._duration_children: dict[tuple[str, str], Histogram] = {}

    def observe(
        self,
        environment: str,
        outcome: str,
        umig_status: str | None,
        version: str | None,
        build: str | None,
        uptime_seconds: int | None,
        all_outcomes: tuple[str, ...],
    ) -> None:
        if version is not None:
            labels = (version, build or "")
            old = self._version_labels.get(environment)
            if old != labels:
                if old is not None:
                    self.version_info.remove(environment, *old)  # the old version's series goes away
                self.version_info.labels(environment, *labels).set(1)
                self._version_labels[environment] = labels
        health = self._health_children.get(environment)
        if health is None:
            health = self._health_children[environment] = self.health_status.labels(environment)
        if outcome in ("healthy", "degraded", "unhealthy"):
            health.set(1 if umig_status == "healthy" else 0)
        else:
            health.set(0)
        if uptime_seconds is not None:
            uptime = self._uptime_children.get(environment)
            if uptime is None:
                uptime = self._uptime_children[environment] = self.uptime.labels(environment)
            uptime.set(uptime_seconds)
        else:
            self._uptime_children.pop(environment, None)
            self._remove(self.uptime, environment)
        previous = self._outcomes.get(environment)
        if previous is None:
            for status in all_outcomes:
                self.environment_status.labels(environment, status).set(1 if status == outcome else 0)
        elif previous != outcome:
            self.environment_status.labels(environment, previous).set(0)
            self.environment_status.labels(environment, outcome).set(1)
        self._outcomes[environment] = outcome

    def observe_duration(self, environment: str, endpoint: str, seconds: float) -> None:
        """umig_probe_duration_seconds{environment,endpoint}."""
        key = (environment, endpoint)
        child = self._duration_children.get(key)
        if child is None:
            child = self._duration_children[key] = self.probe_duration.labels(environment, endpoint)
        child.observe(seconds)

    @staticmethod
    def _remove(metric: Gauge, *labels: str) -> None:
        with contextlib.suppress(KeyError):
            metric.remove(*labels)

    def forget(self, environment: str) -> None:
        """Drop every series of an environment removed from the config."""
        for metric in (
            self.version_info,
            self.health_status,
            self.uptime,
            self.environment_status,
            self.probe_duration,
            self.probe_failures,
        ):
            for sample_labels in list(getattr(metric, "_metrics", {})):
                if sample_labels and sample_labels[0] == environment:
                    metric.remove(*sample_labels)
        self._version_labels.pop(environment, None)
        self._outcomes.pop(environment, None)
        self._health_children.pop(environment, None)
        self._uptime_children.pop(environment, None)
        for key in [k for k in self._duration_children if k[0] == environment]:
            del self._duration_children[key]


class AlertMetrics:
    """The alerting pipeline's metrics; registered in the daemon's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.firing = Gauge(
            "umig_alerts_firing", "Alerts currently firing.", ["severity", "type"], registry=r
        )
        self.notifications = Counter(
            "umig_notifications",
            "Delivery attempts by sink and result (sent, retry, failed).",
            ["sink", "result"],
            registry=r,
        )
        self.pending = Gauge(
            "umig_outbox_pending", "Notifications waiting in the outbox.", ["sink"], registry=r
        )
        self.latency = Histogram(
            "umig_notification_latency_seconds",
            "From enqueueing a notification to its delivery.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )

    def set_firing(self, counts: dict[tuple[str, str], int]) -> None:
        self.firing.clear()
        for (severity, kind), n in counts.items():
            self.firing.labels(severity, kind).set(n)

    def set_pending(self, counts: dict[str, int], sinks: list[str]) -> None:
        for sink in sinks:
            self.pending.labels(sink).set(counts.get(sink, 0))


class DeploymentMetrics:
    """Deployments as they are recorded (counters restart at zero with the process, as usual)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "umig_deployment",
            "Deployment events by environment and result.",
            ["environment", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "umig_deployment_duration_seconds",
            "Reported durations of successful deployments.",
            ["environment"],
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200),
            registry=registry,
        )

    def observe(self, event: Any) -> None:
        result = {
            "deployment_start": "started",
            "deployment_success": "success",
            "deployment_failure": "failure",
            "rollback": "rollback",
            "observed": "observed",
        }
        self.total.labels(event.environment, result.get(event.type.value, event.type.value)).inc()
        if event.type.value == "deployment_success" and event.duration_seconds is not None:
            self.duration.labels(event.environment).observe(event.duration_seconds)


class InsightMetrics:
    """Drift findings and performance baselines."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.drift = Gauge(
            "umig_version_drift",
            "Active version drift findings (1 per finding type and environment).",
            ["type", "environment"],
            registry=registry,
        )
        self.baseline = Gauge(
            "umig_baseline_latency_seconds",
            "Latest performance baseline per endpoint and quantile.",
            ["environment", "endpoint", "quantile"],
            registry=registry,
        )

    def set_drift(self, findings: Any) -> None:
        self.drift.clear()
        for f in findings:
            self.drift.labels(f.type, f.environment or "all").set(1)

    def set_baseline(self, environment: str, endpoints: dict[str, Any]) -> None:
        for endpoint, stats in endpoints.items():
            for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("1", "max_ms")):
                value = stats.get(key)
                if value is not None:
                    self.baseline.labels(environment, endpoint, quantile).set(value / 1000)
