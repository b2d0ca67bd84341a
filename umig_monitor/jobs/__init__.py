"""The scheduled jobs: which ones the config asks for, and when they run.

Job bodies live in their own modules and stay thin: fetch, let ``core`` decide, store and notify."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from umig_monitor.config import Settings

# First polls are spread over at most this long, so hundreds of environments do not fire at once
# while the first round (and with it /readyz) still completes quickly.
FIRST_RUN_SPREAD = timedelta(seconds=10)
SLOTS = 10


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


def _interval(every: timedelta, now: datetime, offset: timedelta, tz: Any) -> IntervalTrigger:
    return IntervalTrigger(seconds=every.total_seconds(), start_date=now + offset, timezone=tz)


def desired_jobs(settings: Settings, now: datetime, tz: Any) -> list[JobSpec]:
    specs: list[JobSpec] = []
    for name, env in settings.environments.items():
        offset = _spread(name, env.poll_interval)
        specs.append(
            JobSpec(
                id=f"health:{name}",
                kind="health",
                args=(name,),
                trigger=_interval(env.poll_interval, now, offset, tz),
                fingerprint=f"interval:{env.poll_interval.total_seconds()}",
            )
        )
    retention = settings.daemon.retention.interval
    specs.append(
        JobSpec(
            id="retention",
            kind="retention",
            args=(),
            trigger=_interval(retention, now, timedelta(seconds=60), tz),
            fingerprint=f"interval:{retention.total_seconds()}",
        )
    )
    drift = settings.jobs.drift
    if drift.enabled:
        specs.append(
            JobSpec(
                id="drift",
                kind="drift",
                args=(),
                trigger=_interval(drift.interval, now, min(drift.interval, 2 * FIRST_RUN_SPREAD), tz),
                fingerprint=f"interval:{drift.interval.total_seconds()}",
            )
        )
    baseline = settings.jobs.baseline
    if baseline.enabled:
        specs.append(
            JobSpec(
                id="baseline",
                kind="baseline",
                args=(),
                trigger=cron_trigger(baseline.cron, tz),
                fingerprint=f"cron:{baseline.cron}:{tz}",
            )
        )
    report = settings.jobs.daily_report
    if report.enabled:
        specs.append(
            JobSpec(
                id="daily_report",
                kind="daily_report",
                args=(),
                trigger=cron_trigger(report.cron, tz),
                fingerprint=f"cron:{report.cron}:{tz}",
            )
        )
    if settings.pushgateway is not None:
        every = settings.pushgateway.interval
        specs.append(
            JobSpec(
                id="pushgateway",
                kind="pushgateway",
                args=(),
                trigger=_interval(every, now, min(every, FIRST_RUN_SPREAD), tz),
                fingerprint=f"interval:{every.total_seconds()}",
            )
        )
    return specs


def cron_trigger(expression: str, tz: Any) -> CronTrigger:
    return CronTrigger.from_crontab(expression, timezone=tz)
