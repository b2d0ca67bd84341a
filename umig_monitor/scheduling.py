"""The schedule: a small typed facade that runs the registry's jobs (``jobs.spec.JobSpec``) against
one context. The cron-like and periodic jobs are APScheduler 3 jobs; the paced ones (the health
polls, one per environment: thousands) share one timer of our own, ``Pacer``, instead of an
APScheduler job run each. Each run is wrapped the same way: none while the daemon is not accepting
work, none of a leader-only kind without the lease, a failure logged once per streak for the
expected ones (storage, push), and every run counted in the metrics."""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from umig_monitor.jobs.pushgateway import PushFailed
from umig_monitor.jobs.spec import PLANNED, JobSpec
from umig_monitor.logs import FailureStreak
from umig_monitor.metrics import SelfMetrics
from umig_monitor.storage import StorageError

log = structlog.get_logger("umig_monitor.scheduling")
Ctx = TypeVar("Ctx")
# Paced runs start on a grid of this step (monotonic time): every run planned for one step starts in
# one wake-up of the timer. On a VM a wake-up of the loop costs tens of microseconds of CPU, a
# sizeable share of a poll; measured (bench/poll.py, 200 environments at 1 s): 1.1-1.4 CPU-ms per
# poll with a wake-up per poll, 0.36-0.69 ms on a 50 ms grid. A run is planned at most one step
# after its exact phase, and the lag is measured from that planned start. A job whose period is
# shorter than one step is not put on the grid (it would run once a step).
TICK_S = 0.05
# How early the loop's timer may fire (its clock resolution): runs planned this close start now.
BATCH_S = 0.002


@dataclass(frozen=True, slots=True)
class Planned:
    """A job's pace as the schedule holds it: its period (None for a cron or one-off job) and its
    next planned run (None while paused at APScheduler's side, or when it will not run again)."""

    every: timedelta | None
    next_run: datetime | None


@dataclass(slots=True)
class _Paced(Generic[Ctx]):
    spec: JobSpec[Ctx]
    every: float  # seconds
    due: float  # the next run's exact phase, time.monotonic()
    start: float  # the next planned start: ``due`` on the tick grid (at or after it)
    generation: int  # heap entries of an older generation are stale


class Pacer(Generic[Ctx]):
    """One timer for every paced job: a heap of (planned start, job) and a single ``call_later``
    for the earliest. Planned starts fall on a grid of ``tick`` seconds (the first grid point at or
    after the run's exact phase), so the runs planned for one step share one wake-up. Each wake-up
    starts the runs now due, each planned anew one period after its last exact phase (its phase
    kept: a late run does not push the next one back; a period that is a whole number of steps
    keeps the planned starts exactly periodic). A run still
    going when its next is due is not started twice (that start is skipped and counted, as
    APScheduler's max_instances=1 does); runs missed by more than ``grace`` (the loop stalled, the
    machine slept, the schedule paused) are skipped to the next planned start, and counted, not
    run in a burst. Times are monotonic: a wall clock step does not move the polls."""

    def __init__(
        self,
        start: Callable[[JobSpec[Ctx], float], None],
        *,
        grace: float,
        skipped: Callable[[str, str], None],
        tick: float = TICK_S,
    ) -> None:
        self._start = start
        self._grace = grace
        self._tick = tick
        self._skipped = skipped
        self._jobs: dict[str, _Paced[Ctx]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._generation = 0
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._running = False
        self._paused = False
        self.busy: set[str] = set()  # ids with a run in flight
        # Planned times arrive and are told as wall-clock datetimes, and are kept as monotonic ones.
        self._wall_origin = time.time()
        self._mono_origin = time.monotonic()

    def put(self, spec: JobSpec[Ctx]) -> None:
        """Add the job, or replace the one with its id (planned anew from the spec)."""
        when = spec.when
        assert when.every is not None
        assert when.first_run is not None
        due = self._mono_origin + (when.first_run.timestamp() - self._wall_origin)
        self._generation += 1
        every = when.every.total_seconds()
        job = _Paced(spec, every, due, self._on_grid(due, every), self._generation)
        self._jobs[spec.id] = job
        self._push(job.start, self._generation, spec.id)

    def _on_grid(self, t: float, every: float) -> float:
        """The first grid point at or after ``t`` (less than a microsecond before it counts as on
        it: float rounding); ``t`` itself for a period shorter than one step."""
        if self._tick <= 0 or every < self._tick:
            return t
        return math.ceil((t - 1e-6) / self._tick) * self._tick

    def drop(self, job_id: str) -> None:
        if self._jobs.pop(job_id, None) is not None and len(self._heap) > 2 * len(self._jobs) + 64:
            self._compact()

    def has(self, job_id: str) -> bool:
        return job_id in self._jobs

    def ids(self) -> list[str]:
        return list(self._jobs)

    def planned(self, job_id: str) -> Planned | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        wall = datetime.fromtimestamp(self._wall_origin + (job.start - self._mono_origin), UTC)
        return Planned(timedelta(seconds=job.every), wall)

    def start(self) -> None:
        self._running = True
        self._arm()

    def stop(self) -> None:
        self._running = False
        self._disarm()

    def pause(self) -> None:
        self._paused = True
        self._disarm()

    def resume(self) -> None:
        self._paused = False
        self._arm()

    # --- the timer -------------------------------------------------------------------------------

    def _push(self, due: float, generation: int, job_id: str) -> None:
        heapq.heappush(self._heap, (due, generation, job_id))
        if due < self._armed_for:
            self._arm()

    def _compact(self) -> None:
        self._heap = [(j.start, j.generation, i) for i, j in self._jobs.items()]
        heapq.heapify(self._heap)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = math.inf

    def _arm(self) -> None:
        self._disarm()
        if not self._running or self._paused or not self._heap:
            return
        due = self._heap[0][0]
        self._armed_for = due
        self._timer = asyncio.get_running_loop().call_later(max(0.0, due - time.monotonic()), self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._armed_for = math.inf
        now = time.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now + BATCH_S:
            start, generation, job_id = heapq.heappop(heap)
            job = self._jobs.get(job_id)
            if job is None or job.generation != generation:
                continue  # removed or replaced since
            if now - start > self._grace:
                self._skipped(job.spec.kind, "late")
            elif job_id in self.busy:
                self._skipped(job.spec.kind, "still_running")
            else:
                self._start(job.spec, start)
            job.due += job.every
            if job.due <= now:  # behind by more than a period: the next planned start ahead
                job.due += job.every * math.ceil((now - job.due) / job.every + 1e-9)
            job.start = self._on_grid(job.due, job.every)
            heapq.heappush(heap, (job.start, generation, job_id))
        self._arm()


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
        self._scheduler.add_listener(self._not_run, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._pacer = Pacer[Ctx](
            self._start_paced, grace=misfire_grace_time.total_seconds(), skipped=metrics.run_skipped
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
        self._pacer.start()

    async def stop(self, deadline: float) -> None:
        """No new runs; the runs in flight get until ``deadline`` (seconds), then are cancelled."""
        self._pacer.stop()
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
        self._pacer.pause()

    def resume(self) -> None:
        self._scheduler.resume()
        self._pacer.resume()

    def sync(self, specs: Iterable[JobSpec[Ctx]]) -> int:
        """Make the synced jobs match ``specs``: add, reschedule, remove; keep the rest. Returns how
        many there are."""
        wanted = {spec.id: spec for spec in specs}
        for job_id in set(self._fingerprints) - set(wanted):
            self.remove(job_id)
            del self._fingerprints[job_id]
        for spec in wanted.values():
            known = self._fingerprints.get(spec.id)
            if known == spec.fingerprint:
                continue
            if known is None or spec.when.paced or self._pacer.has(spec.id):
                self.remove(spec.id)
                self._add(spec, replace=False)
            else:
                self._scheduler.reschedule_job(spec.id, trigger=spec.trigger)
            self._fingerprints[spec.id] = spec.fingerprint
        return len(self._fingerprints)

    def add(self, spec: JobSpec[Ctx]) -> None:
        """Start an on-demand job, replacing one with its id."""
        self._add(spec, replace=True)

    def _add(self, spec: JobSpec[Ctx], *, replace: bool) -> None:
        if spec.when.paced:
            if replace:
                self.remove(spec.id)
            self._pacer.put(spec)
            return
        if replace:
            self._pacer.drop(spec.id)
        options: dict[str, Any] = {"replace_existing": True} if replace else {}
        if spec.when.first_run is not None:
            options["next_run_time"] = spec.when.first_run
        self._scheduler.add_job(self._run, spec.trigger, args=(spec,), id=spec.id, name=spec.id, **options)

    def remove(self, job_id: str) -> None:
        self._pacer.drop(job_id)
        job = self._scheduler.get_job(job_id)
        if job is not None:
            job.remove()

    def remove_kind(self, kind: str) -> None:
        """End every on-demand job of one kind (``kind:subject`` ids)."""
        for job_id in self.ids():
            if job_id.startswith(f"{kind}:") and job_id not in self._fingerprints:
                self.remove(job_id)

    def has(self, job_id: str) -> bool:
        return self._pacer.has(job_id) or self._scheduler.get_job(job_id) is not None

    def ids(self) -> list[str]:
        return self._pacer.ids() + [job.id for job in self._scheduler.get_jobs()]

    def planned(self, job_id: str) -> Planned | None:
        """The job's period and next planned run, or None when there is no such job."""
        paced = self._pacer.planned(job_id)
        if paced is not None:
            return paced
        job = self._scheduler.get_job(job_id)
        if job is None:
            return None
        every = getattr(job.trigger, "interval", None)
        return Planned(every if isinstance(every, timedelta) else None, job.next_run_time)

    # --- one run ---------------------------------------------------------------------------------

    def _not_run(self, event: JobEvent) -> None:
        reason = "late" if event.code == EVENT_JOB_MISSED else "still_running"
        self._metrics.run_skipped(str(event.job_id).split(":", 1)[0], reason)

    def _start_paced(self, spec: JobSpec[Ctx], planned: float) -> None:
        self._pacer.busy.add(spec.id)
        asyncio.get_running_loop().create_task(self._run(spec, planned))

    async def _run(self, spec: JobSpec[Ctx], planned: float | None = None) -> None:
        if planned is not None:
            PLANNED.set(planned)  # this task's own context
        try:
            await self._wrapped(spec)
        finally:
            if planned is not None:
                self._pacer.busy.discard(spec.id)

    async def _wrapped(self, spec: JobSpec[Ctx]) -> None:
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
