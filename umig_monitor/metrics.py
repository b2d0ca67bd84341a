"""Prometheus collectors of one daemon, all in one registry per daemon (tests run several).

Two rules shape them. Every labelled counter and histogram exists at 0 for every label combination
the config implies, from start-up, so an event is always an increase that ``increase()`` and
``rate()`` see, the first one included. And across a cluster every fact is exported once: an
environment's series only by the replica that polls it (``track``: created when it arrives,
removed when it moves away), the cluster-wide ones read from the shared store (alerts firing,
outbox, drift) only by the leader (``LeaderOnly``). Deliveries are each replica's own doing and
counted where they happen, exported by every replica from start-up: a new leader's series is
already at 0 when it delivers, so its first deliveries are an increase too (a series appearing
with the lead would first be scraped at whatever it had delivered by then, and ``increase()``
would miss that). The daemon's own ``umig_monitor_*`` series describe each replica. The guide's
``umig_*`` names are kept for UMIG facts."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from umig_monitor import __version__
from umig_monitor.core.alerts import SEVERITIES
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.health import Outcome
from umig_monitor.core.tracking import RAISED_TYPES
from umig_monitor.series import Family, HistogramFamily

# A `_created` series per counter and histogram doubles what is scraped and pushed for nothing
# the dashboard or the rules read. Checked by prometheus_client at collection time.
disable_created_metrics()  # type: ignore[no-untyped-call]

JOB_RESULTS = ("success", "failure", "cancelled")
# A planned run not started: its previous run still going, or its time missed past the grace.
SKIP_REASONS = ("still_running", "late")
FAILURE_REASONS = tuple(o.value for o in Outcome if not o.answered)
PROBE_ENDPOINTS = ("health", "version", "components")
DELIVERY_RESULTS = ("sent", "retry", "failed")
DEPLOYMENT_RESULTS = {
    EventType.START: "started",
    EventType.SUCCESS: "success",
    EventType.FAILURE: "failure",
    EventType.ROLLBACK: "rollback",
    EventType.OBSERVED: "observed",
}
# umig_alerts_firing reads 0 for each severity and each alert type the daemon raises itself
# (manual escalations may add others while they fire).
ALERT_TYPES = (*RAISED_TYPES, "version_drift", "performance_regression")
BASELINE_STATS = (("p50", "p50_ms"), ("p95", "p95_ms"), ("max", "max_ms"))
# One latency histogram per environment, of the request every poll makes: three (one per endpoint)
# with 11 buckets were 42 series and ~17 KB per environment, most of /metrics at 1,000 of them. The
# version and components requests are not read on every poll; their latency is in the baselines.
TIMED_ENDPOINTS = ("health",)
PROBE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

M = TypeVar("M", bound=MetricWrapperBase)


class LeaderOnly(Collector):
    """Metrics collected only while ``leading()`` says so: a follower exports none of them, and
    they come back with their values when it leads again."""

    def __init__(self, registry: CollectorRegistry, leading: Callable[[], bool]) -> None:
        self.leading = leading
        self._metrics: list[MetricWrapperBase] = []
        self._registry = registry

    def add(self, metric: M) -> M:
        self._metrics.append(metric)
        return metric

    def register(self) -> None:
        self._registry.register(self)

    def describe(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield from metric.describe()

    def collect(self) -> Iterator[Metric]:
        if self.leading():
            for metric in self._metrics:
                yield from metric.collect()


def _remove(metric: MetricWrapperBase, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


def _remove_where(metric: MetricWrapperBase, keep: Callable[[tuple[str, ...]], bool]) -> None:
    for labels in list(getattr(metric, "_metrics", {})):
        if not keep(labels):
            _remove(metric, *labels)


class SelfMetrics:
    """The daemon's own metrics (``umig_monitor_*``), per replica; owner of the registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        r = self.registry
        build = Gauge(
            "umig_monitor_build_info", "umig-monitor build information.", ["version", "python"], registry=r
        )
        build.labels(__version__, platform.python_version()).set(1)
        # `task`, not `job`: Prometheus's own `job` label would turn it into `exported_job`.
        self.job_runs = Counter(
            "umig_monitor_job_runs", "Scheduled job runs by task and result.", ["task", "result"], registry=r
        )
        self.job_duration = Histogram(
            "umig_monitor_job_duration_seconds",
            "Wall time of scheduled job runs.",
            ["task"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.job_last_success = Gauge(
            "umig_monitor_job_last_success_timestamp_seconds",
            "Unix time of the last successful run of each task this replica runs.",
            ["task"],
            registry=r,
        )
        self.config_reloads = Counter(
            "umig_monitor_config_reloads", "Config reloads by result.", ["result"], registry=r
        )
        for result in ("success", "failure"):
            self.config_reloads.labels(result)
        self.config_last_reload_success = Gauge(
            "umig_monitor_config_last_reload_successful",
            "1 when the last config reload succeeded, 0 when the old config was kept.",
            registry=r,
        )
        self.config_last_reload_success.set(1)
        self.page_builds = Counter(
            "umig_monitor_page_builds",
            "Builds of a document served from memory between builds (status page, environments).",
            ["page"],
            registry=r,
        )
        for page in ("status", "environments"):
            self.page_builds.labels(page)
        self.scheduled_jobs = Gauge("umig_monitor_scheduled_jobs", "Jobs in the scheduler.", registry=r)
        self.job_runs_skipped = Counter(
            "umig_monitor_job_runs_skipped",
            "Planned job runs not started, by task and reason: still_running (the previous run of "
            "the same job had not finished) or late (missed by more than jobs.misfire_grace_time).",
            ["task", "reason"],
            registry=r,
        )
        self.poll_lag = Histogram(
            "umig_monitor_poll_lag_seconds",
            "How late health polls got going: from the planned start to holding a poll slot "
            "(daemon.max_concurrent_polls), the wait for a slot included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self._tasks: frozenset[str] = frozenset()

    def tasks(self, implied: Collection[str]) -> None:
        """The tasks the config implies: each at 0 for every result; a task the config no longer
        has loses its series."""
        implied = frozenset(implied)
        for task in implied - self._tasks:
            for result in JOB_RESULTS:
                self.job_runs.labels(task, result)
            for reason in SKIP_REASONS:
                self.job_runs_skipped.labels(task, reason)
            self.job_duration.labels(task)
        for task in self._tasks - implied:
            for result in JOB_RESULTS:
                _remove(self.job_runs, task, result)
            for reason in SKIP_REASONS:
                _remove(self.job_runs_skipped, task, reason)
            _remove(self.job_duration, task)
            _remove(self.job_last_success, task)
        self._tasks = implied

    def running(self, scheduled: Collection[str]) -> None:
        """The tasks scheduled here now: a replica that stopped running one (its environments
        moved, it lost the lead) must not look stalled on it."""
        _remove_where(self.job_last_success, lambda labels: labels[0] in scheduled)

    def run_skipped(self, task: str, reason: str) -> None:
        if task in self._tasks:
            self.job_runs_skipped.labels(task, reason).inc()

    def job_finished(self, task: str, result: str, seconds: float, now: float) -> None:
        if task not in self._tasks:
            return  # a run that outlived a reload removing its task
        self.job_runs.labels(task, result).inc()
        self.job_duration.labels(task).observe(seconds)
        if result == "success":
            self.job_last_success.labels(task).set(now)


class ClusterMetrics:
    """This replica's place in the cluster."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.leader = Gauge("umig_monitor_cluster_leader", "1 while this replica is the leader.", registry=r)
        self.members = Gauge("umig_monitor_cluster_members", "Live replicas in the cluster.", registry=r)
        self.assigned = Gauge(
            "umig_monitor_cluster_assigned_environments", "Environments this replica polls.", registry=r
        )
        self.heartbeat_failures = Gauge(
            "umig_monitor_cluster_heartbeat_failing", "1 while heartbeats cannot be written.", registry=r
        )
        self.leader_changes = Counter(
            "umig_monitor_cluster_leader_changes",
            "Times this replica became or stopped being leader.",
            registry=r,
        )


class UmigMetrics:
    """The guide's UMIG metrics, for the environments this replica polls (``track``). Compact
    families (``series``): these are the series kept per environment, thousands of them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.version_info = Family(
            "umig_version_info", "UMIG version information.", ["environment", "version", "build"], r, "gauge"
        )
        self.health_status = Family(
            "umig_health_status", "UMIG health status (1=healthy, 0=unhealthy).", ["environment"], r, "gauge"
        )
        self.uptime = Family("umig_uptime_seconds", "UMIG uptime in seconds.", ["environment"], r, "gauge")
        self.environment_status = Family(
            "umig_environment_status",
            "1 for the outcome of the environment's last poll, 0 for the others.",
            ["environment", "status"],
            r,
            "gauge",
        )
        self.probe_duration = HistogramFamily(
            "umig_probe_duration_seconds",
            "Time to fetch the health endpoint, each poll.",
            ["environment", "endpoint"],
            r,
            PROBE_BUCKETS,
        )
        self.probe_failures = Family(
            "umig_probe_failures",
            "Failed polls by reason (outcome).",
            ["environment", "reason"],
            r,
            "counter",
        )
        self.tls_cert_expiry = Family(
            "umig_tls_cert_expiry_timestamp_seconds",
            "Unix time when the earliest certificate an https environment presented expires.",
            ["environment"],
            r,
            "gauge",
        )
        self._families = (
            self.version_info,
            self.health_status,
            self.uptime,
            self.environment_status,
            self.probe_duration,
            self.probe_failures,
            self.tls_cert_expiry,
        )
        self._tracked: frozenset[str] = frozenset()
        self._version_labels: dict[str, tuple[str, str]] = {}
        self._outcomes: dict[str, str] = {}

    def track(self, environments: Collection[str]) -> None:
        """Export exactly these environments: new ones get their counters and histograms at 0,
        the others lose every series (another replica polls them, or the config dropped them)."""
        wanted = frozenset(environments)
        for env in wanted - self._tracked:
            for reason in FAILURE_REASONS:
                self.probe_failures.ensure((env, reason))
            for endpoint in TIMED_ENDPOINTS:
                self.probe_duration.ensure((env, endpoint))
        for env in self._tracked - wanted:
            self.forget(env)
        self._tracked = wanted

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
        if environment not in self._tracked:
            return  # a poll that finished after its environment moved away
        if version is not None:
            labels = (version, build or "")
            old = self._version_labels.get(environment)
            if old != labels:
                if old is not None:
                    self.version_info.remove((environment, *old))  # the old version's series goes away
                self.version_info.set((environment, *labels), 1)
                self._version_labels[environment] = labels
        healthy = outcome in ("healthy", "degraded", "unhealthy") and umig_status == "healthy"
        self.health_status.set((environment,), 1 if healthy else 0)
        if uptime_seconds is not None:
            self.uptime.set((environment,), uptime_seconds)
        else:
            self.uptime.remove((environment,))
        previous = self._outcomes.get(environment)
        if previous is None:
            for status in all_outcomes:
                self.environment_status.set((environment, status), 1 if status == outcome else 0)
        elif previous != outcome:
            self.environment_status.set((environment, previous), 0)
            self.environment_status.set((environment, outcome), 1)
        self._outcomes[environment] = outcome

    def observe_duration(self, environment: str, endpoint: str, seconds: float) -> None:
        """umig_probe_duration_seconds{environment,endpoint}: the endpoints of TIMED_ENDPOINTS."""
        key = (environment, endpoint)
        if key in self.probe_duration.values:  # else not timed, or not tracked (moved away meanwhile)
            self.probe_duration.observe(key, seconds)

    def certificate(self, environment: str, expires_at: float | None, https: bool) -> None:
        """umig_tls_cert_expiry_timestamp_seconds{environment}: set from a poll that connected;
        kept through polls that did not; removed when the environment is not https."""
        if environment not in self._tracked:
            return
        if expires_at is not None:
            self.tls_cert_expiry.set((environment,), expires_at)
        elif not https:
            self.tls_cert_expiry.remove((environment,))

    def failed(self, environment: str, reason: str) -> None:
        """umig_probe_failures_total{environment,reason}: a poll without a usable answer."""
        if environment in self._tracked:
            self.probe_failures.inc((environment, reason))

    def forget(self, environment: str) -> None:
        """Drop every series of an environment."""
        for family in self._families:
            family.remove_where(lambda labels: labels[0] == environment)
        self._version_labels.pop(environment, None)
        self._outcomes.pop(environment, None)


class AlertMetrics:
    """The alerting pipeline's metrics: what is firing and pending (cluster-wide facts from the
    store, exported by the leader only) and this replica's own deliveries (by every replica)."""

    def __init__(self, registry: CollectorRegistry, leading: Callable[[], bool] = lambda: True) -> None:
        only = LeaderOnly(registry, leading)
        self.firing = only.add(
            Gauge("umig_alerts_firing", "Alerts currently firing.", ["severity", "type"], registry=None)
        )
        self.pending = only.add(
            Gauge("umig_outbox_pending", "Notifications waiting in the outbox.", ["sink"], registry=None)
        )
        only.register()
        self.notifications = Counter(
            "umig_notifications",
            "Delivery attempts by this replica, by sink and result (sent, retry, failed).",
            ["sink", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "umig_notification_latency_seconds",
            "From enqueueing a notification to its delivery by this replica.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )
        self._sinks: frozenset[str] = frozenset()
        self._firing: set[tuple[str, str]] = set()
        self.set_firing({})

    def set_sinks(self, sinks: Iterable[str]) -> None:
        """The sinks deliveries can go to: each at 0 for every result; a removed sink's series go."""
        wanted = frozenset(sinks)
        for sink in wanted - self._sinks:
            for result in DELIVERY_RESULTS:
                self.notifications.labels(sink, result)
            self.pending.labels(sink).set(0)
        for sink in self._sinks - wanted:
            for result in DELIVERY_RESULTS:
                _remove(self.notifications, sink, result)
            _remove(self.pending, sink)
        self._sinks = wanted

    def delivered(self, sink: str, result: str) -> None:
        self.notifications.labels(sink, result).inc()

    def set_firing(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Alerts firing per (severity, type); every severity and known type reads 0 when none fire.
        Set in place, never cleared first: a scrape in between must not see the series missing."""
        values: dict[tuple[str, str], int] = {(s, kind): 0 for s in SEVERITIES for kind in ALERT_TYPES}
        values.update(counts)
        for gone in self._firing - set(values):
            _remove(self.firing, *gone)
        for (severity, kind), n in values.items():
            self.firing.labels(severity, kind).set(n)
        self._firing = set(values)

    def set_pending(self, counts: Mapping[str, int]) -> None:
        """Pending notifications per sink: every configured sink, and any other with rows left."""
        sinks = self._sinks | set(counts)
        _remove_where(self.pending, lambda labels: labels[0] in sinks)
        for sink in sinks:
            self.pending.labels(sink).set(counts.get(sink, 0))


class DeploymentMetrics:
    """Deployments as they are recorded, for the environments this replica polls: counted once per
    event, whichever replica recorded it (its own at once, the others' as it follows storage).
    Counters restart at zero with the process, as usual."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Family(
            "umig_deployment",
            "Deployment events by environment and result.",
            ["environment", "result"],
            registry,
            "counter",
        )
        self.duration = HistogramFamily(
            "umig_deployment_duration_seconds",
            "Reported durations of successful deployments.",
            ["environment"],
            registry,
            (30, 60, 120, 300, 600, 900, 1800, 3600, 7200),
        )
        self._since: dict[str, datetime] = {}  # environment -> when this replica began counting it
        self._seen: dict[str, datetime] = {}  # event id -> when it was recorded

    def track(self, environments: Collection[str], now: datetime) -> None:
        wanted = set(environments)
        for env in wanted - set(self._since):
            self._since[env] = now
            for result in DEPLOYMENT_RESULTS.values():
                self.total.ensure((env, result))
            self.duration.ensure((env,))
        for env in set(self._since) - wanted:
            del self._since[env]
            for result in DEPLOYMENT_RESULTS.values():
                self.total.remove((env, result))
            self.duration.remove((env,))

    def counting_since(self, environment: str) -> datetime | None:
        return self._since.get(environment)

    def count(self, event: DeploymentEvent, recorded_at: datetime) -> bool:
        """Count an event once (True when it was counted now)."""
        if event.environment not in self._since or event.id in self._seen:
            return False
        self._seen[event.id] = recorded_at
        self.total.inc((event.environment, DEPLOYMENT_RESULTS[event.type]))
        if event.type is EventType.SUCCESS and event.duration_seconds is not None:
            self.duration.observe((event.environment,), event.duration_seconds)
        return True

    def forget_seen(self, before: datetime) -> None:
        """Event ids recorded before this can no longer be read again by the follower."""
        for event_id in [k for k, at in self._seen.items() if at < before]:
            del self._seen[event_id]


class InsightMetrics:
    """Drift findings (cluster-wide: the leader's) and performance baselines (per environment:
    its poller's, restored from storage)."""

    def __init__(self, registry: CollectorRegistry, leading: Callable[[], bool] = lambda: True) -> None:
        only = LeaderOnly(registry, leading)
        self.drift = only.add(
            Gauge(
                "umig_version_drift",
                "Active version drift findings (1 per finding type and environment).",
                ["type", "environment"],
                registry=None,
            )
        )
        only.register()
        self.baseline = Gauge(
            "umig_baseline_latency_seconds",
            "Latest performance baseline per endpoint: p50, p95 and max.",
            ["environment", "endpoint", "stat"],
            registry=registry,
        )
        self._tracked: frozenset[str] = frozenset()
        self.unrestored: set[str] = set()  # tracked, latest stored baseline not read yet

    def set_drift(self, findings: Iterable[Any]) -> None:
        wanted = {(f.type, f.environment or "all") for f in findings}
        _remove_where(self.drift, lambda labels: (labels[0], labels[1]) in wanted)
        for kind, env in wanted:
            self.drift.labels(kind, env).set(1)

    def track(self, environments: Collection[str]) -> None:
        wanted = frozenset(environments)
        self.unrestored |= wanted - self._tracked
        self.unrestored &= wanted
        _remove_where(self.baseline, lambda labels: labels[0] in wanted)
        self._tracked = wanted

    def set_baseline(self, environment: str, endpoints: Mapping[str, Mapping[str, Any]]) -> None:
        """The environment's latest baseline replaces whatever was shown before."""
        if environment not in self._tracked:
            return
        self.unrestored.discard(environment)
        shown = set()
        for endpoint, stats in endpoints.items():
            for stat, key in BASELINE_STATS:
                value = stats.get(key)
                if isinstance(value, int | float):
                    self.baseline.labels(environment, endpoint, stat).set(value / 1000)
                    shown.add((endpoint, stat))
        _remove_where(self.baseline, lambda labels: labels[0] != environment or labels[1:] in shown)
