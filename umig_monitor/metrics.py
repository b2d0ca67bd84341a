"""Prometheus metrics of the daemon itself, in a registry per daemon (tests run several)."""

from __future__ import annotations

import platform

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
