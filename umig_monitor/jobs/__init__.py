"""The scheduled jobs: one registry of job kinds, each with its typed body, whether only the
cluster's leader runs it, and when the config says it runs.

Job bodies live in their own modules and stay thin: fetch, let ``core`` decide, store and notify.
Each takes the narrow context it uses; ``JobContext`` is all of them together, what the daemon
provides, and mypy checks every registered body against it."""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from umig_monitor.config import Settings
from umig_monitor.jobs.baseline import BASELINE_ENV, BaselineJobContext, baseline_all
from umig_monitor.jobs.drift import DriftContext, detect_drift
from umig_monitor.jobs.exposition import ExpositionContext, refresh_exposition
from umig_monitor.jobs.health import HealthContext, poll_environment
from umig_monitor.jobs.pushgateway import PushContext, push_metrics
from umig_monitor.jobs.report import ReportContext, daily_report
from umig_monitor.jobs.retention import RetentionContext, enforce_retention
from umig_monitor.jobs.spec import JobSpec, Periodic, PerSubject, Planning, When, cron, interval, paced
from umig_monitor.jobs.watch import WATCH, WatchContext, sync_watches

__all__ = ["JOBS", "JobContext", "JobSpec", "desired_jobs", "implied_tasks", "running_kinds"]

# The periodic jobs' first runs come at most this long after start-up.
FIRST_RUN_SPREAD = timedelta(seconds=10)
# Health polls are spread over their interval, but over no more than this: the first round (and
# with it /readyz) is done within min(poll_interval, 30 s) of start-up, plus a poll's time...
POLL_SPREAD = timedelta(seconds=30)
# ...and no wider than it takes to start them at this many a second: a few environments are all
# polled within milliseconds of start-up; 10,000 every 30 s are spread over the whole interval.
POLL_RATE = 200


class JobContext(
    HealthContext,
    WatchContext,
    DriftContext,
    ReportContext,
    RetentionContext,
    ExpositionContext,
    PushContext,
    BaselineJobContext,
    Protocol,
):
    """Everything the registered job bodies use."""


def _spread(name: str, window: timedelta) -> timedelta:
    """A stable phase for the environment's polls, evenly over the spread window (at 10,000
    environments every 30 s, 333 polls a second rather than 1,000 a second for 10 s and then
    none: measured, bunched first polls were what made polls wait seconds for a slot)."""
    # crc32, not hash(): stable across processes, so a restart keeps each environment's phase.
    return window * (zlib.crc32(name.encode()) / 2**32)


def _health(p: Planning) -> Iterable[tuple[str, When]]:
    """Health polls for the environments this replica polls (``mine``), paced on one timer."""
    widest = min(POLL_SPREAD, timedelta(seconds=len(p.mine) / POLL_RATE))
    for name, env in p.settings.environments.items():
        if name in p.mine:
            start = p.now + _spread(name, min(env.poll_interval, widest))
            yield name, paced(env.poll_interval, start)


def _exposition(p: Planning) -> When:
    # Every replica: its exported series in step with the shared store (deployments recorded
    # elsewhere, stored baselines; the leader's drift findings).
    follow = p.settings.daemon.cluster.heartbeat_interval
    return interval(follow, p.now + min(follow, FIRST_RUN_SPREAD), p.tz)


def _retention(p: Planning) -> When:
    return interval(p.settings.daemon.retention.interval, p.now + timedelta(seconds=60), p.tz)


def _watch_sync(p: Planning) -> When:
    return interval(p.settings.deployments.watch_interval, p.now, p.tz)


def _drift(p: Planning) -> When | None:
    drift = p.settings.jobs.drift
    if not drift.enabled:
        return None
    return interval(drift.interval, p.now + min(drift.interval, 2 * FIRST_RUN_SPREAD), p.tz)


def _baseline(p: Planning) -> When | None:
    baseline = p.settings.jobs.baseline
    return cron(baseline.cron, p.tz) if baseline.enabled else None


def _daily_report(p: Planning) -> When | None:
    report = p.settings.jobs.daily_report
    return cron(report.cron, p.tz) if report.enabled else None


def _pushgateway(p: Planning) -> When | None:
    if p.settings.pushgateway is None:  # every replica pushes its own share
        return None
    every = p.settings.pushgateway.interval
    return interval(every, p.now + min(every, FIRST_RUN_SPREAD), p.tz)


# In the order the scheduler is given them; the last two are started on demand (a watch begun,
# a deployment verified).
JOBS: tuple[Periodic[JobContext] | PerSubject[JobContext], ...] = (
    PerSubject("health", poll_environment, _health),
    Periodic("exposition", refresh_exposition, _exposition),
    Periodic("retention", enforce_retention, _retention, leader_only=True),
    Periodic("watch_sync", sync_watches, _watch_sync, leader_only=True),
    Periodic("drift", detect_drift, _drift, leader_only=True),
    Periodic("baseline", baseline_all, _baseline, leader_only=True),
    Periodic("daily_report", daily_report, _daily_report, leader_only=True),
    Periodic("pushgateway", push_metrics, _pushgateway),
    WATCH,
    BASELINE_ENV,
)


def desired_jobs(
    settings: Settings, now: datetime, tz: Any, *, mine: Collection[str], leader: bool
) -> list[JobSpec[JobContext]]:
    """The scheduled jobs the config asks of this replica; the leader-only ones only on the leader."""
    planning = Planning(settings, now, tz, frozenset(mine))
    return [spec for job in JOBS if leader or not job.leader_only for spec in job.specs(planning)]


def running_kinds(specs: Iterable[JobSpec[Any]], leader: bool) -> frozenset[str]:
    """The kinds this replica runs: those scheduled, and those it starts on demand."""
    on_demand = {
        job.kind
        for job in JOBS
        if isinstance(job, PerSubject) and job.schedule is None and (leader or not job.leader_only)
    }
    return frozenset({spec.kind for spec in specs} | on_demand)


def implied_tasks(settings: Settings) -> frozenset[str]:
    """Every task kind the config can make a replica run (leading, and polling something)."""
    everything = desired_jobs(settings, datetime.now(UTC), UTC, mine=settings.environments, leader=True)
    kinds = {spec.kind for spec in everything}
    kinds |= {
        job.kind
        for job in JOBS
        if isinstance(job, PerSubject) and job.on_demand is not None and job.on_demand(settings)
    }
    return frozenset(kinds)
