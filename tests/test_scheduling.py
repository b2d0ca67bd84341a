"""The schedule facade, run without a daemon: each run wrapped the same way (nothing while not
accepting work, no leader-only job without the lease, one job_failed line per failure streak, every
run counted), ``sync`` adding, rescheduling and removing jobs, and the paced jobs' one timer
(``Pacer``): each run planned a period after the last planned start, never two runs of a job at
once, a run missed past the grace skipped rather than run late, and each run told its planned
start."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from structlog.testing import capture_logs

from tests.support import until
from umig_monitor.jobs.spec import (
    PLANNED,
    JobSpec,
    Periodic,
    PerSubject,
    Planning,
    When,
    interval,
    once,
    paced,
)
from umig_monitor.metrics import SelfMetrics
from umig_monitor.scheduling import TICK_S, Planned, Schedule
from umig_monitor.storage import StorageError

T = TypeVar("T")


@dataclass
class Runs:
    """The context the test jobs run against: what they saw, and whether they should fail."""

    seen: list[str] = field(default_factory=list)
    failing: bool = False


async def note(ctx: Runs) -> None:
    ctx.seen.append("periodic")
    if ctx.failing:
        raise StorageError("database is away")


async def note_subject(ctx: Runs, subject: str) -> None:
    ctx.seen.append(subject)


def nothing(_: Planning) -> When | None:
    return None


def schedule_of(
    ctx: T, metrics: SelfMetrics, *, accepting: bool = True, leading: bool = True, grace: float = 30
) -> Schedule[T]:
    return Schedule(
        ctx,
        metrics,
        timezone=UTC,
        misfire_grace_time=timedelta(seconds=grace),
        accepting=lambda: accepting,
        leading=lambda: leading,
    )


def on_grid_after(got: Planned | None, want: Planned) -> bool:
    """A paced job's plan: the same period, and the next run on the tick grid, at most one step
    after the exact phase ``want`` gives."""
    assert got is not None
    assert got.next_run is not None
    assert want.next_run is not None
    late = got.next_run - want.next_run
    step = timedelta(seconds=TICK_S, microseconds=5)
    return got.every == want.every and -timedelta(microseconds=5) < late <= step


def steps(seconds: float) -> float:
    """How many grid steps ``seconds`` is: a whole number for two starts on the grid."""
    return seconds / TICK_S


def now_once(job: PerSubject[Runs], subject: str) -> JobSpec[Runs]:
    return job.spec(subject, once(datetime.now(UTC), UTC))


async def test_runs_are_wrapped_and_counted() -> None:
    ctx, metrics = Runs(), SelfMetrics()
    metrics.tasks({"periodic", "subject"})
    schedule = schedule_of(ctx, metrics)
    periodic = Periodic("periodic", note, nothing)
    schedule.start()
    try:
        ctx.failing = True
        with capture_logs() as logs:
            for _ in range(3):
                before = len(ctx.seen)
                schedule.add(JobSpec("periodic", periodic, None, once(datetime.now(UTC), UTC)))
                await until(lambda b=before: len(ctx.seen) > b and not schedule.inflight)
            ctx.failing = False
            schedule.add(JobSpec("periodic", periodic, None, once(datetime.now(UTC), UTC)))
            await until(lambda: len(ctx.seen) == 4 and not schedule.inflight)
        failed = [e for e in logs if e["event"] == "job_failed"]
        assert [(e["kind"], e["error"]) for e in failed] == [("periodic", "database is away")]
        [recovered] = [e for e in logs if e["event"] == "job_failed_recovered"]
        assert recovered["failures"] == 3
        runs = metrics.job_runs
        assert runs.labels("periodic", "failure")._value.get() == 3
        assert runs.labels("periodic", "success")._value.get() == 1
    finally:
        await schedule.stop(1)


async def test_no_run_while_not_accepting_or_of_a_leader_job_without_the_lease() -> None:
    ctx, metrics = Runs(), SelfMetrics()
    leader_only = PerSubject("subject", note_subject, leader_only=True)
    anyone = PerSubject("anyone", note_subject)
    follower = schedule_of(ctx, metrics, leading=False)
    stopping = schedule_of(ctx, metrics, accepting=False)
    for schedule in (follower, stopping):
        schedule.start()
    try:
        follower.add(now_once(leader_only, "not-as-follower"))
        stopping.add(now_once(anyone, "not-while-stopping"))
        follower.add(now_once(anyone, "follower-runs-this"))
        await until(lambda: ctx.seen == ["follower-runs-this"])
        await until(lambda: not follower.ids() and not stopping.ids())  # the date jobs have fired
        assert ctx.seen == ["follower-runs-this"]
    finally:
        for schedule in (follower, stopping):
            await schedule.stop(1)


async def test_sync_adds_reschedules_and_removes_but_keeps_on_demand_jobs() -> None:
    ctx, metrics = Runs(), SelfMetrics()
    schedule = schedule_of(ctx, metrics)
    health = PerSubject("health", note_subject)
    now = datetime.now(UTC) + timedelta(hours=1)  # nothing fires during the test
    one = [health.spec("uat", paced(timedelta(seconds=5), now))]
    assert schedule.sync(one) == 1
    schedule.add(health.spec("on-demand", interval(timedelta(seconds=5), now, UTC)))
    assert schedule.sync([health.spec("uat", paced(timedelta(seconds=7), now))]) == 1
    assert on_grid_after(schedule.planned("health:uat"), Planned(timedelta(seconds=7), now))
    assert schedule.planned("health:on-demand") == Planned(timedelta(seconds=5), now)
    # From paced to an APScheduler interval and back: one job under the id either way.
    assert schedule.sync([health.spec("uat", interval(timedelta(seconds=9), now, UTC))]) == 1
    assert sorted(schedule.ids()) == ["health:on-demand", "health:uat"]
    assert schedule.sync([health.spec("uat", paced(timedelta(seconds=3), now))]) == 1
    assert sorted(schedule.ids()) == ["health:on-demand", "health:uat"]
    assert schedule.sync([]) == 0
    assert schedule.ids() == ["health:on-demand"]
    assert schedule.has("health:on-demand")
    schedule.remove("health:on-demand")
    schedule.remove("health:on-demand")  # already gone: nothing to do
    assert not schedule.has("health:on-demand")


async def test_an_interval_job_planned_for_now_runs_now_not_an_interval_later() -> None:
    """A health poll planned for the moment the schedule is computed (the first spread slot) runs
    then, even though that moment is already past when the job is added: with a 600 s interval,
    the trigger alone would first fire 600 s later and /readyz would wait that long."""
    ctx, metrics = Runs(), SelfMetrics()
    metrics.tasks({"health"})
    schedule = schedule_of(ctx, metrics)
    health = PerSubject("health", note_subject)
    planned = datetime.now(UTC) - timedelta(milliseconds=50)  # computed a moment ago
    schedule.sync(
        [
            health.spec("env4", paced(timedelta(seconds=600), planned)),
            health.spec("env5", interval(timedelta(seconds=600), planned, UTC)),
        ]
    )
    assert schedule.planned("health:env5") == Planned(timedelta(seconds=600), planned)
    schedule.start()
    try:
        await until(lambda: sorted(ctx.seen) == ["env4", "env5"], what="the first polls, at once")
        every = timedelta(seconds=600)
        assert on_grid_after(schedule.planned("health:env4"), Planned(every, planned + every))
    finally:
        await schedule.stop(1.0)


@dataclass
class Paced:
    """What paced runs saw: (subject, planned start, entered) per run, how many ran at once."""

    runs: list[tuple[str, float | None, float]] = field(default_factory=list)
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    holding: set[str] = field(default_factory=set)
    running: int = 0
    most: int = 0


async def paced_body(ctx: Paced, subject: str) -> None:
    ctx.runs.append((subject, PLANNED.get(), time.monotonic()))
    ctx.running += 1
    ctx.most = max(ctx.most, ctx.running)
    try:
        if subject in ctx.holding:
            await ctx.hold.wait()
    finally:
        ctx.running -= 1


def paced_schedule(ctx: Paced, metrics: SelfMetrics, *, grace: float = 30) -> Schedule[Paced]:
    metrics.tasks({"poll"})
    return schedule_of(ctx, metrics, grace=grace)


def skipped(metrics: SelfMetrics, reason: str) -> float:
    return float(metrics.job_runs_skipped.labels("poll", reason)._value.get())


async def test_paced_runs_keep_their_phase_and_are_told_their_planned_start() -> None:
    """Runs start on one grid of TICK_S steps, so the runs planned for a step share a wake-up; a
    period of whole steps keeps every job's planned starts exactly periodic."""
    ctx, metrics = Paced(), SelfMetrics()
    schedule = paced_schedule(ctx, metrics)
    job = PerSubject("poll", paced_body)
    start = datetime.now(UTC)
    every = timedelta(seconds=2 * TICK_S)
    phase = timedelta(seconds=TICK_S / 7)
    schedule.sync([job.spec(f"env{i}", paced(every, start + i * phase)) for i in range(5)])
    schedule.start()
    try:
        await until(lambda: all(sum(r[0] == f"env{i}" for r in ctx.runs) >= 4 for i in range(5)))
    finally:
        await schedule.stop(1.0)
    first = ctx.runs[0][1]
    assert first is not None
    for i in range(5):
        planned = [p for subject, p, _ in ctx.runs if subject == f"env{i}" and p is not None]
        assert len(planned) == sum(r[0] == f"env{i}" for r in ctx.runs)
        # On the one grid, and whole periods after the last planned start (a late run moves none
        # of the later ones).
        assert all(abs(steps(p - first) - round(steps(p - first))) < 1e-6 for p in planned), planned
        gaps = [b - a for a, b in itertools.pairwise(planned)]
        assert all(round(g / 0.1) >= 1 and abs(g - round(g / 0.1) * 0.1) < 1e-6 for g in gaps), gaps
    # Five phases within one step: at most two planned starts among the first runs.
    assert len({p for _, p, _ in ctx.runs[:5]}) <= 2
    assert all(entered >= planned - 0.0021 for _, planned, entered in ctx.runs if planned is not None)


async def planned_starts(every: float, runs: int) -> list[float]:
    """One paced job of period ``every`` s, run ``runs`` times: the planned start each was told."""
    ctx, metrics = Paced(), SelfMetrics()
    schedule = paced_schedule(ctx, metrics, grace=5)
    job = PerSubject("poll", paced_body)
    schedule.sync([job.spec("env", paced(timedelta(seconds=every), datetime.now(UTC)))])
    schedule.start()
    try:
        await until(lambda: len(ctx.runs) >= runs)
    finally:
        await schedule.stop(1.0)
    planned = [p for _, p, _ in ctx.runs if p is not None]
    assert len(planned) == len(ctx.runs)
    return planned


def whole_gaps(planned: list[float], unit: float) -> list[int]:
    """The gaps between successive starts in ``unit`` s, each asserted a whole number (≥ 1)."""
    gaps = [(b - a) / unit for a, b in itertools.pairwise(planned)]
    assert all(abs(g - round(g)) < 1e-6 and round(g) >= 1 for g in gaps), gaps
    return [round(g) for g in gaps]


async def test_a_period_of_no_whole_number_of_steps_keeps_its_rate() -> None:
    """70 ms on a 50 ms grid: each planned start is the grid point at or after the exact phase,
    so the gaps are whole steps, the phase does not creep, and n runs span n periods."""
    every = 1.4 * TICK_S
    planned = await planned_starts(every, 11)
    whole_gaps(planned, TICK_S)
    # Ten periods after the first: 700 ms, the grid moving it by less than one step either way.
    assert abs((planned[10] - planned[0]) - 10 * every) < TICK_S, planned


async def test_a_period_shorter_than_a_step_is_not_put_on_the_grid() -> None:
    """10 ms on a 50 ms grid would run once a step (four runs in five dropped, uncounted): such a
    job keeps its exact phase instead, whole periods apart."""
    gaps = whole_gaps(await planned_starts(TICK_S / 5, 20), TICK_S / 5)
    # Mostly one period apart (a loaded machine may stall the loop past a few of them).
    assert sum(g == 1 for g in gaps) >= len(gaps) // 2, gaps


async def test_a_paced_run_still_going_is_not_started_again() -> None:
    ctx, metrics = Paced(holding={"slow"}), SelfMetrics()
    schedule = paced_schedule(ctx, metrics)
    job = PerSubject("poll", paced_body)
    now = datetime.now(UTC)
    every = timedelta(milliseconds=30)
    schedule.sync([job.spec("slow", paced(every, now)), job.spec("quick", paced(every, now))])
    schedule.start()
    try:
        await until(lambda: skipped(metrics, "still_running") >= 3, what="starts of slow skipped")
        await until(lambda: sum(r[0] == "quick" for r in ctx.runs) >= 3, what="quick keeps its pace")
        assert [r[0] for r in ctx.runs].count("slow") == 1
        ctx.hold.set()
        await until(lambda: [r[0] for r in ctx.runs].count("slow") >= 2, what="slow runs again once done")
    finally:
        await schedule.stop(1.0)
    assert ctx.most <= 2  # never two runs of one job at once
    assert skipped(metrics, "late") == 0


async def test_paced_runs_missed_past_the_grace_are_skipped_not_run_in_a_burst() -> None:
    ctx, metrics = Paced(), SelfMetrics()
    schedule = paced_schedule(ctx, metrics, grace=0.05)
    job = PerSubject("poll", paced_body)
    schedule.sync([job.spec("env", paced(timedelta(milliseconds=100), datetime.now(UTC)))])
    schedule.start()
    try:
        await until(lambda: len(ctx.runs) >= 1)
        schedule.pause()
        paused_at = time.monotonic()
        await asyncio.sleep(0.5)  # five planned runs go by while paused
        runs = len(ctx.runs)
        schedule.resume()
        await until(lambda: len(ctx.runs) >= runs + 1, what="the next planned run after resume")
    finally:
        await schedule.stop(1.0)
    # The missed starts are said (at least the one found due on resume: a loaded machine may stall
    # the loop past the grace at other times too), and none of them is run late in a burst: no run
    # was planned for a moment of the pause; the first after it is a planned start ahead.
    assert skipped(metrics, "late") >= 1
    planned = [p for _, p, _ in ctx.runs]
    assert all(p is not None and not paused_at <= p <= paused_at + 0.5 for p in planned), planned
    first_after = planned[runs]
    assert first_after is not None
    assert first_after > paused_at + 0.5


async def test_removed_paced_jobs_stop_and_the_timer_follows_the_earliest() -> None:
    ctx, metrics = Paced(), SelfMetrics()
    schedule = paced_schedule(ctx, metrics)
    job = PerSubject("poll", paced_body)
    now = datetime.now(UTC)
    far = job.spec("far", paced(timedelta(hours=1), now + timedelta(minutes=30)))
    schedule.sync([far])
    schedule.start()
    try:
        # Added after the timer was armed for "far": the earlier one re-arms it.
        schedule.sync([far, job.spec("near", paced(timedelta(milliseconds=20), now))])
        await until(lambda: len(ctx.runs) >= 2)
        schedule.sync([far])
        settled = len(ctx.runs)
        await asyncio.sleep(0.1)  # five periods of the removed job
        assert len(ctx.runs) == settled
        assert schedule.ids() == ["poll:far"]
    finally:
        await schedule.stop(1.0)
