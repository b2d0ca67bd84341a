"""The health poll job: probe one environment, let core classify it and decide its alerts, then
store the sample, update the metrics and raise or resolve alerts. ``HealthPoller`` owns the job's
memory: per environment its Tracker, seeded from storage on the first poll after start-up (so a
restart neither re-sends nor forgets an incident), its last outcome, the last reading of its version
and components documents (carried into the polls that read health alone), whether it was polled
since it became this replica's, and the slots bounding concurrent polls and seeding."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import structlog

from umig_monitor.config import Environment, Settings
from umig_monitor.config.types import redact_url
from umig_monitor.core.alerts import Alert, AlertEvent, NotificationKind
from umig_monitor.core.assess import Thresholds, assess
from umig_monitor.core.details import (
    Details,
    carry,
    details_needed,
    full_poll_due,
    head_start,
    mark_of,
    polled_without,
    remember,
)
from umig_monitor.core.flapping import FlapNotice, FlapPolicy, notice_alert
from umig_monitor.core.health import HealthSample, Outcome, VersionSeen
from umig_monitor.core.tracking import CHURN_WINDOW, Policy, Tracker, observe, seed
from umig_monitor.jobs.batching import Batcher
from umig_monitor.jobs.spec import PLANNED
from umig_monitor.metrics import PROBE_ENDPOINTS
from umig_monitor.probes.client import Fetch, fetch_json
from umig_monitor.probes.umig import probe_environment, read_details
from umig_monitor.storage import StorageError, Store
from umig_monitor.storage.store import RECENT_BATCH

if TYPE_CHECKING:
    from umig_monitor.jobs.samples import SampleWriter
    from umig_monitor.metrics import UmigMetrics
    from umig_monitor.ops.deployments import DeploymentRecorder
    from umig_monitor.pipeline import AlertPipeline

log = structlog.get_logger("umig_monitor.jobs.health")
ALL_OUTCOMES = tuple(o.value for o in Outcome)
ENDPOINTS = PROBE_ENDPOINTS  # in the order probe_environment returns its fetches
VersionWrites = Batcher[tuple[str, VersionSeen], None]


class HealthDeps(Protocol):
    """What a health poll uses, besides the poller's own memory."""

    @property
    def settings(self) -> Settings: ...
    @property
    def session(self) -> aiohttp.ClientSession: ...
    @property
    def store(self) -> Store: ...
    @property
    def writer(self) -> SampleWriter: ...
    @property
    def alerts(self) -> AlertPipeline: ...
    @property
    def deployments(self) -> DeploymentRecorder: ...
    @property
    def umig_metrics(self) -> UmigMetrics: ...


class HealthContext(HealthDeps, Protocol):
    """The health job's context: its dependencies and the poller holding its memory."""

    @property
    def health(self) -> HealthPoller: ...


class HealthPoller:
    """The health job's memory, owned in one place. ``keep_only`` forgets the environments that
    left the config or moved to another replica (which seeds its own memory from storage; should
    one come back here, so will this one)."""

    def __init__(self, settings: Settings, on_lag: Callable[[float], None] | None = None) -> None:
        # How late each paced poll got its slot, from its planned start (seconds).
        self.on_lag = on_lag or (lambda _: None)
        self.trackers: dict[str, Tracker] = {}
        self.last_outcome: dict[str, Outcome] = {}
        self.details: dict[str, Details] = {}  # the last reading of version and components
        self.polled: set[str] = set()  # polled since it became this replica's: /readyz
        self.newly_polled = asyncio.Event()  # set when an environment joins ``polled``
        self._concurrency = settings.daemon.max_concurrent_polls
        self.poll_slots = asyncio.Semaphore(self._concurrency)
        # What first polls ask of storage, asked together: each environment's incident memory, and
        # (on a fresh database) its first version. One batch at a time, so a replica taking over
        # hundreds of environments at once cannot take every pooled connection from sample writes
        # and the API either.
        self._batched: tuple[Store, Batcher[str, Tracker], VersionWrites] | None = None

    def reconfigure(self, settings: Settings) -> None:
        """After a reload: environments no longer configured are forgotten, the poll slots follow
        ``daemon.max_concurrent_polls`` (polls holding an old slot finish on it). Every
        environment's next poll reads all three documents: a reload may have pointed it elsewhere."""
        self.keep_only(settings.environments)
        self.details.clear()
        if settings.daemon.max_concurrent_polls != self._concurrency:
            self._concurrency = settings.daemon.max_concurrent_polls
            self.poll_slots = asyncio.Semaphore(self._concurrency)

    def keep_only(self, environments: Collection[str]) -> None:
        for gone in set(self.trackers) - set(environments):
            self.trackers.pop(gone, None)
        for gone in set(self.last_outcome) - set(environments):
            self.last_outcome.pop(gone, None)
        for gone in set(self.details) - set(environments):
            self.details.pop(gone, None)
        self.polled &= set(environments)
        self.newly_polled.set()  # fewer to wait for: the first round may be done now

    def missing(self, mine: Collection[str]) -> frozenset[str]:
        """This replica's environments not polled yet (since they became its own)."""
        return frozenset(mine) - self.polled

    def mark_polled(self, name: str) -> None:
        if name not in self.polled:
            self.polled.add(name)
            self.newly_polled.set()

    async def poll(self, ctx: HealthDeps, name: str) -> None:
        await _poll(self, ctx, name)

    def _batchers(self, store: Store) -> tuple[Batcher[str, Tracker], VersionWrites]:
        if self._batched is None or self._batched[0] is not store:

            async def seeds(names: list[str]) -> list[Tracker]:
                found = await load_trackers(store, names, datetime.now(UTC))
                return [found[name] for name in names]

            async def versions(seen: list[tuple[str, VersionSeen]]) -> list[None]:
                await store.set_versions_seen(dict(seen), datetime.now(UTC))
                return [None] * len(seen)

            self._batched = (store, Batcher(seeds, most=RECENT_BATCH), Batcher(versions))
        return self._batched[1], self._batched[2]

    async def seeded(self, store: Store, name: str) -> Tracker:
        """The environment's incident memory as storage holds it (its first poll here)."""
        return await self._batchers(store)[0](name)

    async def version_seen(self, store: Store, name: str, seen: VersionSeen) -> None:
        await self._batchers(store)[1]((name, seen))


async def poll_environment(ctx: HealthContext, name: str) -> None:
    """The job body: one poll of environment ``name``."""
    await ctx.health.poll(ctx, name)


def policy_for(settings: Settings, name: str, env: Environment) -> Policy:
    health = settings.jobs.health
    return Policy(
        environment=name,
        kind=env.kind,
        severity=env.alert_severity,
        failure_threshold=health.failure_threshold,
        success_threshold=health.success_threshold,
        regenerate_test_data=env.actions.regenerate_test_data,
        labels=env.labels,
        tls=is_https(env),
        certificate_warning=env.thresholds.certificate_warning,
        certificate_critical=env.thresholds.certificate_critical,
        flapping=FlapPolicy(health.version_flap_window, health.version_flap_changes),
    )


def is_https(env: Environment) -> bool:
    return str(env.base_url).lower().startswith("https:")


async def load_trackers(store: Store, names: Collection[str], now: datetime) -> dict[str, Tracker]:
    """Each environment's incident memory from storage, in three reads for all of them: its alerts
    still firing, the versions of its last CHURN_WINDOW samples, the version it was last seen at."""
    firing: dict[str | None, list[Alert]] = {}
    for alert in await store.active_alerts(environments=names):
        firing.setdefault(alert.environment, []).append(alert)
    recent = await store.recent_versions(names, CHURN_WINDOW)
    seen = await store.versions_seen(names)
    trackers = {}
    for name in names:
        versions = [v for v in reversed(recent.get(name, [])) if v]
        last = seen.get(name)
        trackers[name] = seed(firing.get(name, []), versions, last.version if last is not None else None, now)
    return trackers


async def _poll(poller: HealthPoller, ctx: HealthDeps, name: str) -> None:
    env = ctx.settings.environments.get(name)
    if env is None:  # removed by a reload while this run was queued
        return
    t = env.thresholds
    limits = Thresholds(t.error_rate, t.response_time_ms, t.db_connections)
    async with poller.poll_slots:
        planned = PLANNED.get()
        if planned is not None:  # a paced run (not one started by hand)
            poller.on_lag(max(0.0, time.monotonic() - planned))
        details = poller.details.get(name)
        full = full_poll_due(details, env.full_poll_every, poller.last_outcome.get(name))
        docs, fetches = await probe_environment(ctx.session, env, full=full)
        sample, checks = assess(name, datetime.now(UTC), docs, limits)
        mark = mark_of(docs.health)
        if details is not None and not full and details_needed(sample, mark, details):
            docs, fetches = await read_details(ctx.session, env, fetches)
            sample, checks = assess(name, datetime.now(UTC), docs, limits)
            full = True
        dev_status = None
        if env.kind == "development" and docs.health_failure is None:
            dev_status = await fetch_json(ctx.session, env, "/admin/dev-status")
    now = sample.ts
    if not full and details is not None:
        sample = carry(sample, details)
        poller.details[name] = polled_without(details)
    elif sample.outcome.answered:
        # The first reading here: a head start staggers the environments' full polls.
        start = head_start(name, env.full_poll_every) if details is None else 0
        poller.details[name] = remember(sample, mark, start)
    if dev_status is not None and dev_status.ok:
        sample = replace(sample, metrics={**sample.metrics, **dev_figures(dev_status.body)})

    previous_outcome = poller.last_outcome.get(name)
    poller.last_outcome[name] = sample.outcome
    tracker = poller.trackers.get(name)
    if tracker is None:
        try:
            tracker = await poller.seeded(ctx.store, name)
        except StorageError as exc:
            # No memory of this environment yet and storage cannot give it now: the sample is
            # still kept; its alerts are decided from the next poll, once the memory is seeded.
            ctx.writer.add(sample)
            poller.mark_polled(name)
            record_metrics(ctx.umig_metrics, sample, fetches, is_https(env))
            log.warning("incident_memory_unavailable", env=name, status=sample.outcome.value, error=str(exc))
            return
    tracker, outcomes = observe(tracker, sample, checks, policy_for(ctx.settings, name, env))

    if outcomes.regenerate_test_data:
        result = await fetch_json(ctx.session, env, "/admin/test-data/regenerate", method="POST")
        action = f"regenerate_test_data: {'ok' if result.ok else result.detail}"
        sample = replace(sample, metrics={**sample.metrics, "actions": [action]})
        log.warning("test_data_regeneration_requested", env=name, status=result.status, error=result.detail)

    ctx.writer.add(sample)
    poller.mark_polled(name)
    record_metrics(ctx.umig_metrics, sample, fetches, is_https(env))
    if outcomes.version_changed is not None:
        previous, current = outcomes.version_changed
        await poller.version_seen(ctx.store, name, VersionSeen(current, now))
        log.info("version_changed", env=name, version=current, previous=previous)
        if outcomes.announce_version:  # else folded into a flapping notice
            await ctx.deployments.observed(name, previous, current, now, healthy=sample.outcome.ok)
    elif ctx.deployments.awaiting:
        await ctx.deployments.polled(name, sample.version, sample.outcome.ok, now)
    if outcomes.flapping is not None:
        await notify_flapping(
            ctx.alerts, name, env, outcomes.flapping, sample.version or tracker.last_version
        )
    for event in outcomes.events:
        if event.firing:
            event = await with_deployment(ctx.deployments, event, now)
        await ctx.alerts.submit(event)
    # Only now: if storing an alert or a version change failed, the next poll decides it again
    # (submits are idempotent per key) instead of having forgotten it.
    poller.trackers[name] = tracker
    if env.health_log is not None:
        await asyncio.to_thread(append_health_log, env.health_log, sample)
    # Every poll at debug; at info only what ops want in the journal: failures and changes.
    quiet = sample.outcome is Outcome.HEALTHY and previous_outcome is Outcome.HEALTHY
    if quiet and not log.is_enabled_for(logging.DEBUG):
        return  # not even the line's fields: most polls, at the default level
    (log.debug if quiet else log.info)(
        "probe_completed",
        env=name,
        url=redacted(env.endpoint("/admin/health")),
        status=sample.outcome.value,
        version=sample.version,
        duration_ms=sample.response_ms,
        checks=[c.name for c in checks] or None,
        error=sample.error,
    )


async def with_deployment(deployments: DeploymentRecorder, event: AlertEvent, now: datetime) -> AlertEvent:
    """An incident that started during or soon after a deployment says so and is linked to it;
    during one, it is held for deployments.alert_grace before it pages (core.dedup)."""
    if event.environment is None:
        return event
    context = await deployments.incident_context(event.environment, event.starts_at or now)
    if context is None:
        return event
    return replace(
        event,
        summary=f"{event.summary} ({context['text']})",
        details={**event.details, "deployment": context},
    )


async def notify_flapping(
    alerts: AlertPipeline, name: str, env: Environment, notice: FlapNotice, version: str | None
) -> None:
    """One window of version flapping, as one notice through routing (idempotent per window)."""
    alert = notice_alert(name, env.kind, notice, version, dict(env.labels))
    queued = await alerts.notify(alert, NotificationKind.EVENT, alert.key)
    log.warning(
        "version_flapping",
        env=name,
        changes=notice.changes,
        total=notice.total,
        since=notice.start.isoformat(),
        version=version,
        notifications=queued,
    )


@lru_cache(maxsize=4096)
def redacted(url: str) -> str:
    """redact_url, remembered: every poll logs its environment's health URL, and parsing it again
    each time cost more than the rest of the log call."""
    return redact_url(url)


def dev_figures(body: Any) -> dict[str, Any]:
    """The guide's dev-status summary: activeFeatures, testData status and the debug flag."""
    if not isinstance(body, dict):
        return {}
    out: dict[str, Any] = {}
    if isinstance(body.get("features"), list):
        out["activeFeatures"] = len(body["features"])
    test_data = body.get("testData")
    if isinstance(test_data, dict) and test_data.get("status") is not None:
        out["testDataStatus"] = str(test_data["status"])
    debug = body.get("debug")
    if isinstance(debug, dict) and isinstance(debug.get("enabled"), bool):
        out["debugMode"] = debug["enabled"]
    return out


def observe_state(metrics: UmigMetrics, sample: HealthSample) -> None:
    """The environment's gauges (version, health, uptime, outcome) from one sample."""
    metrics.observe(
        sample.environment,
        sample.outcome.value,
        sample.umig_status,
        sample.version,
        sample.build,
        sample.uptime_seconds,
        ALL_OUTCOMES,
    )


def record_metrics(m: UmigMetrics, sample: HealthSample, fetches: list[Fetch], https: bool) -> None:
    env = sample.environment
    observe_state(m, sample)
    expiry = sample.tls_cert_expiry
    m.certificate(env, expiry.timestamp() if expiry is not None else None, https)
    for endpoint, fetch in zip(ENDPOINTS, fetches, strict=False):
        m.observe_duration(env, endpoint, fetch.elapsed_ms / 1000)
    if not sample.outcome.answered:
        m.failed(env, sample.outcome.value)


def health_log_line(sample: HealthSample) -> str:
    """The guide's health-log line, `timestamp|status|version|uptime`; failures as the guide wrote them."""
    timestamp = sample.ts.astimezone(UTC).isoformat(timespec="seconds")
    if not sample.outcome.answered:
        return f"{timestamp}|unhealthy|unknown|connection_failed"
    fields = (sample.umig_status, sample.version, sample.uptime_text)
    return "|".join([timestamp, *(f or "unknown" for f in fields)])


def append_health_log(path: Path, sample: HealthSample) -> None:
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(health_log_line(sample) + "\n")
    except OSError as exc:
        log.error("health_log_write_failed", path=str(path), error=exc.strerror or str(exc))
