"""The schedule facade over APScheduler, run without a daemon: each run wrapped the same way
(nothing while not accepting work, no leader-only job without the lease, one job_failed line per
failure streak, every run counted), and ``sync`` adding, rescheduling and removing jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from tests.support import until
from umig_monitor.jobs.spec import JobSpec, Periodic, PerSubject, Planning, When, interval, once
from umig_monitor.metrics import SelfMetrics
from umig_monitor.scheduling import Schedule
from umig_monitor.storage import StorageError


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
    ctx: Runs, metrics: SelfMetrics, *, accepting: bool = True, leading: bool = True
) -> Schedule[Runs]:
    return Schedule(
        ctx,
        metrics,
        timezone=UTC,
        misfire_grace_time=timedelta(seconds=30),
        accepting=lambda: accepting,
        leading=lambda: leading,
    )


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
    one = [health.spec("uat", interval(timedelta(seconds=5), now, UTC))]
    assert schedule.sync(one) == 1
    schedule.add(health.spec("on-demand", interval(timedelta(seconds=5), now, UTC)))
    assert schedule.sync([health.spec("uat", interval(timedelta(seconds=7), now, UTC))]) == 1
    assert schedule.get_job("health:uat").trigger.interval == timedelta(seconds=7)
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
    schedule.sync([health.spec("env4", interval(timedelta(seconds=600), planned, UTC))])
    assert schedule.get_job("health:env4").next_run_time == planned
    schedule.start()
    try:
        await until(lambda: ctx.seen == ["env4"], what="the first poll, at once")
    finally:
        await schedule.stop(1.0)
