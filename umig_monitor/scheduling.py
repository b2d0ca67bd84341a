"""The schedule: a small typed facade over APScheduler 3 that runs the registry's jobs
(``jobs.spec.JobSpec``) against one context. Each run is wrapped the same way: none while the
daemon is not accepting work, none of a leader-only kind without the lease, a failure logged once
per streak for the expected ones (storage, push), and every run counted in the metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Generic, TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from umig_monitor.jobs.pushgateway import PushFailed
from umig_monitor.jobs.spec import JobSpec
from umig_monitor.logs import FailureStreak
from umig_monitor.metrics import SelfMetrics
from umig_monitor.storage import StorageError

log = structlog.get_logger("umig_monitor.scheduling")
Ctx = TypeVar("Ctx")


class Schedule(Generic[Ctx]):
    """The daemon's jobs. ``sync`` makes the scheduled ones match a list of specs (added,
    rescheduled, removed; on-demand jobs such as watches are left alone); ``add``/``remove``/
    ``has`` start, end and find single jobs. The daemon's is a ``Schedule[jobs.JobContext]``."""

    def __init__(
        self,
        context: Ctx,
        metrics: SelfMetrics,
        *,
        timezone: Any,
        misfire_grace_time: timedelta,
        accepting: Callable[[], bool],
        leading: Callable[[], bool],
    ) -> None:
        self._context = context
        self._metrics = metrics
        self._accepting = accepting
        self._leading = leading
        self._scheduler = AsyncIOScheduler(
            timezone=timezone,
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": int(misfire_grace_time.total_seconds()),
            },
        )
        self._fingerprints: dict[str, str] = {}
        self.inflight: set[asyncio.Task[Any]] = set()
        # Storage and push failures: one job_failed line per job kind when it starts failing and
        # one job_failed_recovered when it works again, not a line per poll of every environment.
        self._failures: dict[str, FailureStreak] = {}

    # --- the scheduler ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self, deadline: float) -> None:
        """No new runs; the runs in flight get until ``deadline`` (seconds), then are cancelled."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("jobs_cancelled_at_shutdown", count=len(pending))
                await asyncio.wait(pending, timeout=1)

    # --- jobs ------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Run no job until ``resume`` (runs in flight finish)."""
        self._scheduler.pause()

    def resume(self) -> None:
        self._scheduler.resume()

    def sync(self, specs: Iterable[JobSpec[Ctx]]) -> int:
        """Make the synced jobs match ``specs``: add, reschedule, remove; keep the rest. Returns how
        many there are."""
        wanted = {spec.id: spec for spec in specs}
        for job_id in set(self._fingerprints) - set(wanted):
            self._scheduler.remove_job(job_id)
            del self._fingerprints[job_id]
        for spec in wanted.values():
            known = self._fingerprints.get(spec.id)
            if known == spec.fingerprint:
                continue
            if known is None:
                self._add(spec, replace=False)
            else:
                self._scheduler.reschedule_job(spec.id, trigger=spec.trigger)
            self._fingerprints[spec.id] = spec.fingerprint
        return len(self._fingerprints)

    def add(self, spec: JobSpec[Ctx]) -> None:
        """Start an on-demand job, replacing one with its id."""
        self._add(spec, replace=True)

    def _add(self, spec: JobSpec[Ctx], *, replace: bool) -> None:
        options: dict[str, Any] = {"replace_existing": True} if replace else {}
        if spec.when.first_run is not None:
            options["next_run_time"] = spec.when.first_run
        self._scheduler.add_job(self._run, spec.trigger, args=(spec,), id=spec.id, name=spec.id, **options)

    def remove(self, job_id: str) -> None:
        job = self._scheduler.get_job(job_id)
        if job is not None:
            job.remove()

    def remove_kind(self, kind: str) -> None:
        """End every on-demand job of one kind (``kind:subject`` ids)."""
        for job in self._scheduler.get_jobs():
            if job.id.startswith(f"{kind}:") and job.id not in self._fingerprints:
                job.remove()

    def has(self, job_id: str) -> bool:
        return self._scheduler.get_job(job_id) is not None

    def ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]

    def get_job(self, job_id: str) -> Any:
        """APScheduler's own job (its trigger, its next run time), or None."""
        return self._scheduler.get_job(job_id)

    def get_jobs(self) -> list[Any]:
        return list(self._scheduler.get_jobs())

    # --- one run ---------------------------------------------------------------------------------

    async def _run(self, spec: JobSpec[Ctx]) -> None:
        if not self._accepting():
            return
        if spec.job.leader_only and not self._leading():
            # Leadership lapsed and the jobs were not taken down yet (the database may be too
            # slow to say so): never act as a leader without the lease.
            return
        task = asyncio.current_task()
        assert task is not None
        self.inflight.add(task)
        started = time.perf_counter()
        result = "success"
        try:
            await spec.run(self._context)
        except asyncio.CancelledError:
            result = "cancelled"
            if self._accepting():
                raise
            # Cancelled by shutdown after its deadline: said once in jobs_cancelled_at_shutdown;
            # not re-raised, so the scheduler does not log it as a crash.
        except (StorageError, PushFailed) as exc:
            result = "failure"
            self._streak(spec.kind).failed(str(exc), job=spec.id)
        except Exception:
            result = "failure"
            log.exception("job_failed", job=spec.id)
        finally:
            self.inflight.discard(task)
            self._metrics.job_finished(spec.kind, result, time.perf_counter() - started, time.time())
            if result == "success":
                self._streak(spec.kind).succeeded()

    def _streak(self, kind: str) -> FailureStreak:
        streak = self._failures.get(kind)
        if streak is None:
            streak = self._failures[kind] = FailureStreak(log, "job_failed", kind=kind)
        return streak
