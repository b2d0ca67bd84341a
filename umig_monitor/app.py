"""Composition root: storage, the shared HTTP client, the scheduler and the web server, built in one
place; signals, reload and an orderly shutdown."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from umig_monitor.cluster import Coordinator, default_member_id
from umig_monitor.config import ConfigError, Settings, load_config, secret_file_warnings
from umig_monitor.core.health import Outcome
from umig_monitor.core.tracking import Tracker
from umig_monitor.jobs import LEADER_KINDS, JobSpec, desired_jobs, implied_tasks
from umig_monitor.jobs.baseline import baseline_all, baseline_environment
from umig_monitor.jobs.drift import detect_drift
from umig_monitor.jobs.exposition import Following, refresh_exposition
from umig_monitor.jobs.health import poll_environment
from umig_monitor.jobs.pushgateway import PushFailed, delete_group, push_metrics
from umig_monitor.jobs.report import daily_report
from umig_monitor.jobs.retention import enforce_retention
from umig_monitor.jobs.samples import SampleWriter
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
from umig_monitor.ops.watches import look, start_watch
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.probes.client import make_session
from umig_monitor.sdnotify import SystemdNotifier
from umig_monitor.storage import StorageError, Store
from umig_monitor.storage.deployments import Watch
from umig_monitor.web.server import WebServer

log = structlog.get_logger("umig_monitor.app")

JobBody = Callable[..., Awaitable[None]]


async def watch_deployment(daemon: Daemon, deployment_id: str) -> None:
    watch = await daemon.store.get_watch(deployment_id)
    if watch is None or watch.state != "watching":
        daemon.end_watch_job(deployment_id)
        return
    watch = await look(daemon.deployments, daemon.session, watch)
    if watch.state != "watching":
        daemon.end_watch_job(deployment_id)


async def baseline_one(daemon: Daemon, environment: str) -> None:
    await baseline_environment(daemon, environment)


async def sync_watches(daemon: Daemon) -> None:
    """The leader runs every deployment watch, including those another replica was asked for."""
    for watch in await daemon.store.active_watches():
        if daemon.scheduler.get_job(f"watch:{watch.deployment_id}") is None:
            daemon.add_watch_job(watch.deployment_id)


JOB_BODIES: dict[str, JobBody] = {
    "health": poll_environment,
    "watch": watch_deployment,
    "retention": enforce_retention,
    "pushgateway": push_metrics,
    "drift": detect_drift,
    "baseline": baseline_all,
    "baseline_env": baseline_one,
    "watch_sync": sync_watches,
    "exposition": refresh_exposition,
    "daily_report": daily_report,
}


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
        self.polled: set[str] = set()
        self.trackers: dict[str, Tracker] = {}
        self.last_outcome: dict[str, Outcome] = {}
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
        self.poll_slots = asyncio.Semaphore(settings.daemon.max_concurrent_polls)
        # Environments seeding their incident memory from storage at once (first polls).
        self.seed_slots = asyncio.Semaphore(max(1, settings.daemon.storage_pool_size // 2))
        self._scheduler: AsyncIOScheduler | None = None
        self._web: WebServer | None = None
        self._fingerprints: dict[str, str] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        # Storage and push failures: one job_failed line per job kind when it starts failing and
        # one job_failed_recovered when it works again, not a line per poll of every environment.
        self._job_failures: dict[str, FailureStreak] = {}
        self._storage_check = FailureStreak(log, "storage_unhealthy")
        self._reload_lock = asyncio.Lock()
        self._stop_requested = asyncio.Event()
        self._accepting = False

    # --- accessors used by jobs and the web server -------------------------------------------

    @property
    def store(self) -> Store:
        assert self._store is not None, "daemon not started"
        return self._store

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "daemon not started"
        return self._session

    @property
    def writer(self) -> SampleWriter:
        assert self._writer is not None, "daemon not started"
        return self._writer

    @property
    def alerts(self) -> AlertPipeline:
        assert self._alerts is not None, "daemon not started"
        return self._alerts

    @property
    def deployments(self) -> DeploymentRecorder:
        assert self._deployments is not None, "daemon not started"
        return self._deployments

    @property
    def cluster(self) -> Coordinator:
        assert self._cluster is not None, "daemon not started"
        return self._cluster

    def mine(self) -> frozenset[str]:
        """The environments this replica polls (all of them when it runs alone)."""
        return self._cluster.mine() if self._cluster is not None else frozenset()

    @property
    def is_leader(self) -> bool:
        return self._cluster is not None and self._cluster.is_leader

    @property
    def scheduler(self) -> AsyncIOScheduler:
        assert self._scheduler is not None, "daemon not started"
        return self._scheduler

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.daemon.timezone)

    @property
    def listen_url(self) -> str:
        assert self._web is not None
        return self._web.url

    def settings_token(self) -> str | None:
        return self.settings.daemon.read_api_token()

    @property
    def accepting(self) -> bool:
        """Started and not stopping: jobs run and the API has everything it needs."""
        return self._accepting

    def alive(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def first_round_done(self) -> bool:
        return self.mine() <= self.polled

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for warning in secret_file_warnings(self.settings):
            log.warning("secret_file_unreadable", detail=warning)
        for warning in self.settings.alertmanager_warnings():
            log.warning("config_warning", detail=warning)
        self._store = await Store.open(
            self.settings.daemon.storage, pool_size=self.settings.daemon.storage_pool_size
        )
        self._session = make_session(self.settings)
        self._writer = SampleWriter(self._store)
        self._writer.start()
        self._scheduler = AsyncIOScheduler(
            timezone=self.timezone,
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": int(self.settings.jobs.misfire_grace_time.total_seconds()),
            },
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
        self._spawn(self._storage_check_loop())
        if self.notifier.watchdog_interval:
            self._spawn(self._watchdog_loop(self.notifier.watchdog_interval))
        # Everything built so far (modules, config, pools) lives as long as the process: keep it
        # out of the cyclic collector's generations. Measured: about a tenth of a poll's CPU.
        gc.freeze()
        self.notifier.ready()
        log.info(
            "daemon_started",
            listen=self._web.url,
            environments=len(self.settings.environments),
            storage=self._store.redacted_url,
            member=member_id,
            polling=len(self.mine()),
            leader=self.is_leader,
        )

    async def stop(self) -> None:
        """Stop taking work, let jobs in flight finish up to the deadline, close everything."""
        self.notifier.stopping()
        self._accepting = False
        deadline = self.settings.daemon.shutdown_timeout.total_seconds()
        log.info("daemon_stopping", inflight_jobs=len(self._inflight), deadline_s=deadline)
        try:
            if self._scheduler is not None and self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            if self._inflight:
                _, pending = await asyncio.wait(set(self._inflight), timeout=deadline)
                for task in pending:
                    task.cancel()
                if pending:
                    log.warning("jobs_cancelled_at_shutdown", count=len(pending))
                    await asyncio.wait(pending, timeout=1)
            for task in self._background:
                task.cancel()
            if self._background:
                await asyncio.wait(set(self._background), timeout=1)
            if self._session is not None and self._cluster is not None:
                # This replica's group must not outlive it there (another replica pushes its share).
                await delete_group(self, self._cluster.member_id)
        finally:
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
        for warning in secret_file_warnings(new):
            log.warning("secret_file_unreadable", detail=warning)
        for warning in new.alertmanager_warnings():
            log.warning("config_warning", detail=warning)
        if (
            old.daemon.storage != new.daemon.storage
            or old.daemon.listen != new.daemon.listen
            or old.daemon.cluster != new.daemon.cluster
        ):
            log.warning("config_change_needs_restart", keys="daemon.storage/daemon.listen/daemon.cluster")
        self.alerts.configure(new, self.session)
        self.deployments.settings = new
        for gone in set(old.environments) - set(new.environments):
            self.trackers.pop(gone, None)
        if old.daemon.max_concurrent_polls != new.daemon.max_concurrent_polls:
            self.poll_slots = asyncio.Semaphore(new.daemon.max_concurrent_polls)
        self.cluster.environments_changed()
        self._sync_jobs()

    def _cluster_changed(self) -> None:
        """Leadership or this replica's share of environments changed."""
        if self._scheduler is None:
            return
        mine = self.mine()
        for gone in set(self.trackers) - mine:
            # Another replica polls it now and seeds its own memory from storage; if it comes back
            # here, so will this one.
            self.trackers.pop(gone, None)
            self.last_outcome.pop(gone, None)
        self.polled &= mine
        if not self.is_leader:
            for job in self.scheduler.get_jobs():
                if job.id.startswith("watch:"):
                    job.remove()
            self.insight_metrics.set_drift([])  # not stale should it lead again
        self._sync_jobs()

    def _sync_jobs(self) -> None:
        """Make the scheduler's jobs match the config: add, reschedule, remove; keep the rest."""
        scheduler = self.scheduler
        specs = {
            s.id: s
            for s in desired_jobs(
                self.settings,
                datetime.now(self.timezone),
                self.timezone,
                mine=self.mine(),
                leader=self.is_leader,
            )
        }
        self._sync_exposition()
        for job_id in set(self._fingerprints) - set(specs):
            scheduler.remove_job(job_id)
            del self._fingerprints[job_id]
        for spec in specs.values():
            known = self._fingerprints.get(spec.id)
            if known == spec.fingerprint:
                continue
            if known is None:
                scheduler.add_job(self._run_job, spec.trigger, args=(spec,), id=spec.id, name=spec.id)
            else:
                scheduler.reschedule_job(spec.id, trigger=spec.trigger)
            self._fingerprints[spec.id] = spec.fingerprint
        self.metrics.scheduled_jobs.set(len(self._fingerprints))
        kinds = {spec.kind for spec in specs.values()}
        self.metrics.running(kinds | ({"watch", "baseline_env"} if self.is_leader else set()))

    def _sync_exposition(self) -> None:
        """The series this replica exports: its environments' (added at 0, or removed when they
        moved away or left the config), and every task the config implies at 0."""
        mine = self.mine()
        self.umig_metrics.track(mine)
        self.deployment_metrics.track(mine, datetime.now(UTC))
        self.insight_metrics.track(mine)
        self.metrics.tasks(implied_tasks(self.settings))

    def add_watch_job(self, deployment_id: str) -> None:
        every = self.settings.deployments.watch_interval.total_seconds()
        spec = JobSpec(f"watch:{deployment_id}", "watch", (deployment_id,), None, "")
        self.scheduler.add_job(
            self._run_job,
            "interval",
            seconds=every,
            args=(spec,),
            id=spec.id,
            name=spec.id,
            next_run_time=datetime.now(self.timezone),
            replace_existing=True,
        )

    def baseline_soon(self, environment: str) -> None:
        """A verified deployment gets its performance baseline right away (not at the next cron)."""
        if not self.settings.jobs.baseline.enabled:
            return
        spec = JobSpec(f"baseline:{environment}", "baseline_env", (environment,), None, "")
        self.scheduler.add_job(
            self._run_job,
            "date",
            run_date=datetime.now(self.timezone),
            args=(spec,),
            id=spec.id,
            name=spec.id,
            replace_existing=True,
        )

    def end_watch_job(self, deployment_id: str) -> None:
        job = self.scheduler.get_job(f"watch:{deployment_id}")
        if job is not None:
            job.remove()

    async def start_watch(
        self, deployment_id: str, environment: str, version: str, within: timedelta | None
    ) -> Watch:
        timeout = within or self.settings.deployments.watch_timeout
        watch = await start_watch(self.store, deployment_id, environment, version, timeout, datetime.now(UTC))
        if self.is_leader:
            self.add_watch_job(deployment_id)
        # Otherwise the leader's watch_sync job picks it up within deployments.watch_interval.
        return watch

    async def _run_job(self, spec: JobSpec) -> None:
        if not self._accepting:
            return
        if spec.kind in LEADER_KINDS and not self.is_leader:
            # Leadership lapsed and the jobs were not taken down yet (the database may be too
            # slow to say so): never act as a leader without the lease.
            return
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        started = time.perf_counter()
        result = "success"
        try:
            await JOB_BODIES[spec.kind](self, *spec.args)
        except asyncio.CancelledError:
            result = "cancelled"
            if self._accepting:
                raise
            # Cancelled by shutdown after its deadline: said once in jobs_cancelled_at_shutdown;
            # not re-raised, so the scheduler does not log it as a crash.
        except (StorageError, PushFailed) as exc:
            result = "failure"
            self._job_streak(spec.kind).failed(str(exc), job=spec.id)
        except Exception:
            result = "failure"
            log.exception("job_failed", job=spec.id)
        finally:
            self._inflight.discard(task)
            self.metrics.job_finished(spec.kind, result, time.perf_counter() - started, time.time())
            if result == "success":
                self._job_streak(spec.kind).succeeded()

    def _job_streak(self, kind: str) -> FailureStreak:
        streak = self._job_failures.get(kind)
        if streak is None:
            streak = self._job_failures[kind] = FailureStreak(log, "job_failed", kind=kind)
        return streak

    async def _storage_check_loop(self) -> None:
        """Storage is checked on its own, not only when something asks /readyz: an outage, or a
        SQLite file deleted or replaced under the daemon, is one clear line when it starts."""
        while True:
            await asyncio.sleep(self.settings.daemon.storage_check_interval.total_seconds())
            try:
                async with asyncio.timeout(10):
                    await self.store.ping()
            except (StorageError, TimeoutError) as exc:
                self._storage_check.failed(str(exc) or "no answer within 10 s")
            else:
                self._storage_check.succeeded()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _watchdog_loop(self, interval: float) -> None:
        while True:
            if self.alive():
                self.notifier.watchdog()
            await asyncio.sleep(interval)

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
    return asyncio.run(async_run(settings, config_path))
