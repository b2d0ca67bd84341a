"""Composition root: storage, the shared HTTP client, the scheduler and the web server, built in one
place; signals, reload and an orderly shutdown."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp
import structlog

from umig_monitor import eventloop, gcpolicy
from umig_monitor.cluster import Coordinator, default_member_id
from umig_monitor.config import ConfigError, Settings, load_config, secret_file_warnings
from umig_monitor.jobs import JobContext, desired_jobs, implied_tasks, running_kinds
from umig_monitor.jobs.baseline import baseline_soon
from umig_monitor.jobs.exposition import Following, refresh_exposition
from umig_monitor.jobs.health import HealthPoller
from umig_monitor.jobs.pushgateway import delete_group
from umig_monitor.jobs.samples import SampleWriter
from umig_monitor.jobs.watch import WATCH, begin_watch
from umig_monitor.liveness import check_storage, feed_watchdog
from umig_monitor.logs import FailureStreak
from umig_monitor.metrics import (
    AlertMetrics,
    ClusterMetrics,
    DeploymentMetrics,
    InsightMetrics,
    SelfMetrics,
    UmigMetrics,
)
from umig_monitor.ops.deployments import DeploymentRecorder
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.probes.client import make_session
from umig_monitor.scheduling import Schedule
from umig_monitor.sdnotify import SystemdNotifier
from umig_monitor.storage import StorageError, Store
from umig_monitor.storage.deployments import Watch
from umig_monitor.web.server import WebServer

log = structlog.get_logger("umig_monitor.app")
T = TypeVar("T")


class Daemon:
    """One running umig-monitor. ``start()``/``stop()`` for tests, ``async_run()`` for the CLI."""

    def __init__(
        self,
        settings: Settings,
        config_path: Path | None = None,
        *,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.metrics = SelfMetrics()
        self.notifier = notifier or SystemdNotifier()
        self.started_at = datetime.now(UTC)
        self.health = HealthPoller(settings, on_lag=self.metrics.poll_lag.observe)
        registry = self.metrics.registry
        self.umig_metrics = UmigMetrics(registry)
        self.alert_metrics = AlertMetrics(registry, leading=lambda: self.is_leader)
        self.deployment_metrics = DeploymentMetrics(registry)
        self.insight_metrics = InsightMetrics(registry, leading=lambda: self.is_leader)
        self.cluster_metrics = ClusterMetrics(registry)
        self.following = Following()
        self._cluster: Coordinator | None = None
        self._cluster_store: Store | None = None
        self._deployments: DeploymentRecorder | None = None
        self.last_reload: dict[str, Any] = {"ok": True, "at": self.started_at.isoformat(), "error": None}
        self._store: Store | None = None
        self._session: aiohttp.ClientSession | None = None
        self._writer: SampleWriter | None = None
        self._alerts: AlertPipeline | None = None
        self._scheduler: Schedule[JobContext] | None = None
        self._web: WebServer | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._gc_tuned = False  # gcpolicy started by this daemon (after its first round)
        self._storage_check = FailureStreak(log, "storage_unhealthy")
        self._reload_lock = asyncio.Lock()
        self._stop_requested = asyncio.Event()
        self._accepting = False

    # --- accessors used by jobs and the web server -------------------------------------------

    @property
    def store(self) -> Store:
        return _started(self._store)

    @property
    def session(self) -> aiohttp.ClientSession:
        return _started(self._session)

    @property
    def writer(self) -> SampleWriter:
        return _started(self._writer)

    @property
    def alerts(self) -> AlertPipeline:
        return _started(self._alerts)

    @property
    def deployments(self) -> DeploymentRecorder:
        return _started(self._deployments)

    @property
    def cluster(self) -> Coordinator:
        return _started(self._cluster)

    def mine(self) -> frozenset[str]:
        """The environments this replica polls (all of them when it runs alone)."""
        return self._cluster.mine() if self._cluster is not None else frozenset()

    @property
    def is_leader(self) -> bool:
        return self._cluster is not None and self._cluster.is_leader

    @property
    def scheduler(self) -> Schedule[JobContext]:
        return _started(self._scheduler)

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.daemon.timezone)

    @property
    def listen_url(self) -> str:
        return _started(self._web).url

    def settings_token(self) -> str | None:
        return self.settings.daemon.read_api_token()

    @property
    def accepting(self) -> bool:
        """Started and not stopping: jobs run and the API has everything it needs."""
        return self._accepting

    def alive(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    @property
    def polled(self) -> set[str]:
        return self.health.polled

    def first_round_done(self) -> bool:
        return not self.health.missing(self.mine())

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        _warn_about(self.settings)
        self._store = await Store.open(
            self.settings.daemon.storage, pool_size=self.settings.daemon.storage_pool_size
        )
        self._session = make_session(self.settings)
        self._writer = SampleWriter(self._store)
        self._writer.start()
        self._scheduler = Schedule[JobContext](
            self,
            self.metrics,
            timezone=self.timezone,
            misfire_grace_time=self.settings.jobs.misfire_grace_time,
            accepting=lambda: self._accepting,
            leading=lambda: self.is_leader,
        )
        host, port = self.settings.daemon.listen_address
        self._web = WebServer(self)
        await self._web.start(host, port)  # first: the default member id is host:bound port
        cluster = self.settings.daemon.cluster
        member_id = cluster.member_id or default_member_id(self._web.port)
        self._alerts = AlertPipeline(
            self._store,
            self.alert_metrics,
            owner=member_id,
            active=lambda: self.is_leader,
            claim_for=cluster.lease_ttl,
        )
        self._alerts.configure(self.settings, self._session)
        self._alerts.start()
        self._deployments = DeploymentRecorder(
            self._store, self._alerts, self.settings, self.deployment_metrics, on_verified=self.baseline_soon
        )
        # Its own connection: a heartbeat queued behind a busy pool would arrive stale and get this
        # replica declared dead (measured at 3,000 environments on a pool of 5).
        self._cluster_store = await self._store.companion()
        self._cluster = Coordinator(
            self._cluster_store,
            cluster,
            member_id,
            str(cluster.advertise_url) if cluster.advertise_url else self._web.url,
            self.cluster_metrics,
            environments=lambda: self.settings.environments,
            on_change=self._cluster_changed,
        )
        await self._cluster.join()
        self._sync_jobs()
        try:
            await refresh_exposition(self)  # baselines restored before the first scrape
        except StorageError as exc:
            log.warning("job_failed", job="exposition", error=str(exc))
        self._scheduler.start()
        self._accepting = True
        self._spawn(self._cluster.run())
        self._spawn(check_storage(lambda: self.store, lambda: self.settings, self._storage_check))
        if self.notifier.watchdog_interval:
            self._spawn(feed_watchdog(self.notifier, self.alive, self.notifier.watchdog_interval))
        # Everything built so far (modules, config, pools) lives as long as the process: keep it
        # out of the cyclic collector's generations. Measured: about a tenth of a poll's CPU.
        gc.freeze()
        self._spawn(self._after_first_round())
        self.notifier.ready()
        log.info(
            "daemon_started",
            listen=self._web.url,
            environments=len(self.settings.environments),
            storage=self._store.redacted_url,
            member=member_id,
            polling=len(self.mine()),
            leader=self.is_leader,
            loop=eventloop.loop_name(),
        )

    async def stop(self) -> None:
        """Stop taking work, let jobs in flight finish up to the deadline, close everything."""
        self.notifier.stopping()
        self._accepting = False
        deadline = self.settings.daemon.shutdown_timeout.total_seconds()
        inflight = len(self._scheduler.inflight) if self._scheduler is not None else 0
        log.info("daemon_stopping", inflight_jobs=inflight, deadline_s=deadline)
        try:
            if self._scheduler is not None:
                await self._scheduler.stop(deadline)
            for task in self._background:
                task.cancel()
            if self._background:
                await asyncio.wait(set(self._background), timeout=1)
            if self._session is not None and self._cluster is not None:
                # This replica's group must not outlive it there (another replica pushes its share).
                await delete_group(self, self._cluster.member_id)
        finally:
            if self._gc_tuned:  # first: a close below that raises must not leave the hook behind
                self._gc_tuned = False
                gcpolicy.stop()
            if self._web is not None:
                await self._web.stop()
            if self._alerts is not None:
                await self._alerts.close()
            if self._cluster is not None:
                await self._cluster.leave()
            if self._cluster_store is not None and self._cluster_store is not self._store:
                await self._cluster_store.close()
            if self._session is not None:
                await self._session.close()
            if self._writer is not None:
                await self._writer.close()
            if self._store is not None:
                await self._store.close()
        log.info("daemon_stopped")

    async def reload(self) -> tuple[bool, str]:
        """Re-read the config file. A bad file is reported and the running config kept."""
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                if self.config_path is None:
                    return False, "no config file to reload from"
                try:
                    new = await asyncio.to_thread(load_config, self.config_path)
                except ConfigError as exc:
                    message = "; ".join(str(i) for i in exc.issues)
                    self.metrics.config_reloads.labels("failure").inc()
                    self.metrics.config_last_reload_success.set(0)
                    self.last_reload = {"ok": False, "at": _now_iso(), "error": message}
                    log.error("config_reload_failed", path=str(self.config_path), error=message)
                    return False, message
                self._apply(new)
                self.metrics.config_reloads.labels("success").inc()
                self.metrics.config_last_reload_success.set(1)
                self.last_reload = {"ok": True, "at": _now_iso(), "error": None}
                log.info("config_reloaded", path=str(self.config_path), environments=len(new.environments))
                return True, "reloaded"
            finally:
                self.notifier.ready()

    def _apply(self, new: Settings) -> None:
        old = self.settings
        self.settings = new
        _warn_about(new)
        if (
            old.daemon.storage != new.daemon.storage
            or old.daemon.listen != new.daemon.listen
            or old.daemon.cluster != new.daemon.cluster
        ):
            log.warning("config_change_needs_restart", keys="daemon.storage/daemon.listen/daemon.cluster")
        self.alerts.configure(new, self.session)
        self.deployments.settings = new
        self.health.reconfigure(new)
        self.cluster.environments_changed()
        self._sync_jobs()

    def _cluster_changed(self) -> None:
        """Leadership or this replica's share of environments changed."""
        if self._scheduler is None:
            return
        self.health.keep_only(self.mine())
        if not self.is_leader:
            self.scheduler.remove_kind(WATCH.kind)
            self.insight_metrics.set_drift([])  # not stale should it lead again
        self._sync_jobs()

    def _sync_jobs(self) -> None:
        """Make the scheduler's jobs match the config: add, reschedule, remove; keep the rest."""
        now = datetime.now(self.timezone)
        specs = desired_jobs(self.settings, now, self.timezone, mine=self.mine(), leader=self.is_leader)
        self._sync_exposition()
        self.metrics.scheduled_jobs.set(self.scheduler.sync(specs))
        self.metrics.running(running_kinds(specs, self.is_leader))

    def _sync_exposition(self) -> None:
        """The series this replica exports: its environments' (added at 0, or removed when they
        moved away or left the config), and every task the config implies at 0."""
        mine = self.mine()
        self.umig_metrics.track(mine)
        self.deployment_metrics.track(mine, datetime.now(UTC))
        self.insight_metrics.track(mine)
        self.metrics.tasks(implied_tasks(self.settings))

    def baseline_soon(self, environment: str) -> None:
        baseline_soon(self.scheduler, self.settings, self.timezone, environment)

    async def start_watch(
        self, deployment_id: str, environment: str, version: str, within: timedelta | None
    ) -> Watch:
        return await begin_watch(self, deployment_id, environment, version, within)

    async def _after_first_round(self) -> None:
        """Once every environment here was polled, what lives as long as the daemon exists (each
        environment's incident memory, last documents and metric series): one collection, then
        frozen out of the cyclic collector too. Measured at 10,000 environments: without it the
        collector took a fifth to a third of all CPU and each full collection stalled the loop
        for most of a second."""
        began = time.monotonic()
        while not self.first_round_done():
            self.health.newly_polled.clear()
            await self.health.newly_polled.wait()
        collecting = time.perf_counter()
        gc.collect()
        gc.freeze()
        collect_s = round(time.perf_counter() - collecting, 3)
        if not self._gc_tuned:  # from now on, the survivors of each full collection are frozen too
            self._gc_tuned = True
            gcpolicy.start()
            self._spawn(gcpolicy.refresh_every())
        seconds = round(time.monotonic() - began, 1)
        log.info("first_round_done", seconds=seconds, environments=len(self.mine()), collect_s=collect_s)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def request_stop(self) -> None:
        self._stop_requested.set()

    def request_reload(self) -> None:
        self._spawn(self.reload())

    def request_reload_when_started(self) -> None:
        if self._accepting:
            self.request_reload()
        else:
            log.warning("reload_ignored", reason="still starting")

    async def wait_for_stop(self) -> None:
        await self._stop_requested.wait()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _started(part: T | None) -> T:
    assert part is not None, "daemon not started"
    return part


def _warn_about(settings: Settings) -> None:
    for warning in secret_file_warnings(settings):
        log.warning("secret_file_unreadable", detail=warning)
    for warning in settings.alertmanager_warnings():
        log.warning("config_warning", detail=warning)


async def async_run(settings: Settings, config_path: Path | None) -> int:
    daemon = Daemon(settings, config_path)
    loop = asyncio.get_running_loop()
    # Handlers first: a SIGTERM that arrives while storage opens still ends in an orderly exit 0.
    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop)
    loop.add_signal_handler(signal.SIGINT, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload_when_started)
    try:
        try:
            await daemon.start()
        except StorageError as exc:
            log.error("startup_failed", error=str(exc))
            await daemon.stop()
            return 2
        except OSError as exc:
            log.error(
                "startup_failed", error=f"cannot listen on {settings.daemon.listen}: {exc.strerror or exc}"
            )
            await daemon.stop()
            return 2
        try:
            await daemon.wait_for_stop()
        finally:
            await daemon.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0


def run(settings: Settings, config_path: Path | None) -> int:
    """The daemon until a signal stops it, on uvloop where it is available (see eventloop)."""
    return eventloop.run(async_run(settings, config_path))
