"""The scheduled jobs: which ones the config asks for, and when they run.

Job bodies live in their own modules and stay thin: fetch, let ``core`` decide, store and notify."""

from __future__ import annotations

import zlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from umig_monitor.config import Settings

# First polls are spread over at most this long, so hundreds of environments do not fire at once
# while the first round (and with it /readyz) still completes quickly.
FIRST_RUN_SPREAD = timedelta(seconds=10)
SLOTS = 10
# Job kinds only the cluster's leader runs.
LEADER_KINDS = frozenset(
    {"retention", "watch", "watch_sync", "drift", "baseline", "baseline_env", "daily_report"}
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One scheduler entry. ``fingerprint`` changes exactly when the job must be rescheduled."""

    id: str
    kind: str
    args: tuple[str, ...]
    trigger: Any
    fingerprint: str


def _spread(name: str, interval: timedelta) -> timedelta:
    """A stable phase for the environment's polls, in one of SLOTS slots of the spread window:
    environments sharing a slot are started by one scheduler wake-up, not one each (measured:
    about a quarter of a poll's CPU at 200 environments), while the slots still spread the load."""
    window = min(interval, FIRST_RUN_SPREAD).total_seconds()
    # crc32, not hash(): stable across processes, so a restart keeps each environment's phase.
    slot = zlib.crc32(name.encode()) % SLOTS
    return timedelta(seconds=slot * window / SLOTS)


def _every(kind: str, every: timedelta, now: datetime, offset: timedelta, tz: Any, *args: str) -> JobSpec:
    trigger = IntervalTrigger(seconds=every.total_seconds(), start_date=now + offset, timezone=tz)
    job_id = ":".join((kind, *args))
    return JobSpec(job_id, kind, args, trigger, f"interval:{every.total_seconds()}")


def _cron(kind: str, expression: str, tz: Any) -> JobSpec:
    return JobSpec(kind, kind, (), cron_trigger(expression, tz), f"cron:{expression}:{tz}")


def desired_jobs(
    settings: Settings, now: datetime, tz: Any, *, mine: Collection[str], leader: bool
) -> list[JobSpec]:
    """Health polls for the environments this replica polls (``mine``); the cluster-wide jobs
    (``LEADER_KINDS``) only on the leader."""
    specs = [
        _every("health", env.poll_interval, now, _spread(name, env.poll_interval), tz, name)
        for name, env in settings.environments.items()
        if name in mine
    ]
    # Every replica: its exported series in step with the shared store (deployments recorded
    # elsewhere, stored baselines; the leader's drift findings).
    follow = settings.daemon.cluster.heartbeat_interval
    specs.append(_every("exposition", follow, now, min(follow, FIRST_RUN_SPREAD), tz))
    specs.append(_every("retention", settings.daemon.retention.interval, now, timedelta(seconds=60), tz))
    watch_every = settings.deployments.watch_interval
    specs.append(_every("watch_sync", watch_every, now, timedelta(0), tz))
    jobs = settings.jobs
    if jobs.drift.enabled:
        specs.append(
            _every("drift", jobs.drift.interval, now, min(jobs.drift.interval, 2 * FIRST_RUN_SPREAD), tz)
        )
    if jobs.baseline.enabled:
        specs.append(_cron("baseline", jobs.baseline.cron, tz))
    if jobs.daily_report.enabled:
        specs.append(_cron("daily_report", jobs.daily_report.cron, tz))
    if settings.pushgateway is not None:  # every replica pushes its own share
        every = settings.pushgateway.interval
        specs.append(_every("pushgateway", every, now, min(every, FIRST_RUN_SPREAD), tz))
    return [spec for spec in specs if leader or spec.kind not in LEADER_KINDS]


def implied_tasks(settings: Settings) -> frozenset[str]:
    """Every task kind the config can make a replica run (leading, and polling something)."""
    everything = desired_jobs(settings, datetime.now(UTC), UTC, mine=settings.environments, leader=True)
    kinds = {spec.kind for spec in everything}
    kinds.add("watch")
    if settings.jobs.baseline.enabled:
        kinds.add("baseline_env")
    return frozenset(kinds)


def cron_trigger(expression: str, tz: Any) -> CronTrigger:
    return CronTrigger.from_crontab(expression, timezone=tz)
