"""The shape of a job kind: its typed body, whether only the leader runs it, and when it runs; and
the scheduler entries (``JobSpec``) built from it. Knows nothing of the scheduler that runs them.

A body takes the narrow context it uses (a Protocol listing a few attributes), so a job can be
run against a real store and pipeline without a daemon. The type parameter is contravariant: an
entry for a body needing little is an entry for any context that has more, and mypy checks that
the daemon's context has everything every registered body uses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from umig_monitor.config import Settings

C = TypeVar("C", contravariant=True)

# Inside a paced run: when it was planned to start (``time.monotonic()`` seconds), so the body can
# tell how late it got going, waiting for a free slot included (the health poll's lag figure).
PLANNED: ContextVar[float | None] = ContextVar("planned", default=None)


@dataclass(frozen=True, slots=True)
class When:
    """An APScheduler trigger, or (``every`` set, no trigger) a paced job: run every ``every`` from
    ``first_run`` by the schedule's own timer, many jobs on one timer (the health polls). What
    identifies it is ``fingerprint``: it changes exactly when the job must be rescheduled.
    ``first_run`` overrides a trigger's first fire time (run right away)."""

    trigger: Any
    fingerprint: str = ""
    first_run: datetime | None = None
    every: timedelta | None = None

    @property
    def paced(self) -> bool:
        return self.trigger is None


def paced(every: timedelta, start: datetime) -> When:
    """Every ``every``, the first run at ``start`` (run at once when already past), on the
    schedule's own timer rather than an APScheduler job each."""
    return When(None, f"paced:{every.total_seconds()}", first_run=start, every=every)


def interval(every: timedelta, start: datetime, tz: Any) -> When:
    """Every ``every`` from ``start``, the first run at ``start`` itself. (Left to the trigger, a
    ``start`` already a moment past when the job is added, such as "now", fires first a whole
    interval later: with a 600 s interval /readyz stayed 503 that long.)"""
    trigger = IntervalTrigger(seconds=every.total_seconds(), start_date=start, timezone=tz)
    return When(trigger, f"interval:{every.total_seconds()}", first_run=start)


def cron(expression: str, tz: Any) -> When:
    return When(cron_trigger(expression, tz), f"cron:{expression}:{tz}")


def cron_trigger(expression: str, tz: Any) -> CronTrigger:
    return CronTrigger.from_crontab(expression, timezone=tz)


def repeating(every: timedelta, now: datetime, tz: Any) -> When:
    """Every ``every``, the first run now."""
    return When(IntervalTrigger(seconds=every.total_seconds(), timezone=tz), first_run=now)


def once(at: datetime, tz: Any) -> When:
    return When(DateTrigger(run_date=at, timezone=tz))


@dataclass(frozen=True, slots=True)
class Planning:
    """What a schedule is computed from: the config, the time, and the environments polled here."""

    settings: Settings
    now: datetime
    tz: Any
    mine: frozenset[str]


@dataclass(frozen=True, slots=True)
class Periodic(Generic[C]):
    """A job kind with one scheduler entry, its id the kind. ``schedule`` answers None when the
    config does not ask for it."""

    kind: str
    body: Callable[[C], Awaitable[None]]
    schedule: Callable[[Planning], When | None]
    leader_only: bool = False

    def specs(self, planning: Planning) -> list[JobSpec[C]]:
        when = self.schedule(planning)
        return [] if when is None else [JobSpec(self.kind, self, None, when)]


@dataclass(frozen=True, slots=True)
class PerSubject(Generic[C]):
    """A job kind with one entry per subject (an environment, a deployment), ids ``kind:subject``.
    Without a ``schedule`` it is started on demand; ``on_demand`` says whether the config can make
    it run at all."""

    kind: str
    body: Callable[[C, str], Awaitable[None]]
    schedule: Callable[[Planning], Iterable[tuple[str, When]]] | None = None
    leader_only: bool = False
    on_demand: Callable[[Settings], bool] | None = None

    def id_for(self, subject: str) -> str:
        return f"{self.kind}:{subject}"

    def spec(self, subject: str, when: When) -> JobSpec[C]:
        return JobSpec(self.id_for(subject), self, subject, when)

    def specs(self, planning: Planning) -> list[JobSpec[C]]:
        if self.schedule is None:
            return []
        return [self.spec(subject, when) for subject, when in self.schedule(planning)]


@dataclass(frozen=True, slots=True)
class JobSpec(Generic[C]):
    """One scheduler entry: a job kind, the subject it runs for, and when."""

    id: str
    job: Periodic[C] | PerSubject[C]
    subject: str | None
    when: When

    @property
    def kind(self) -> str:
        return self.job.kind

    @property
    def trigger(self) -> Any:
        return self.when.trigger

    @property
    def fingerprint(self) -> str:
        return self.when.fingerprint

    def run(self, ctx: C) -> Awaitable[None]:
        if isinstance(self.job, PerSubject):
            assert self.subject is not None
            return self.job.body(ctx, self.subject)
        return self.job.body(ctx)


class JobTable(Protocol):
    """What a job body may do to the schedule: start, end and look up jobs by id."""

    def add(self, spec: JobSpec[Any]) -> None: ...

    def remove(self, job_id: str) -> None: ...

    def has(self, job_id: str) -> bool: ...
