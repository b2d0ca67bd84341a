"""The baseline jobs: ``ops.baselines.run_baseline`` for every environment on the cron, and for one
environment right after a verified deployment."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from umig_monitor.ops.baselines import BaselineContext, BaselineRun, run_baseline

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

log = structlog.get_logger("umig_monitor.baseline")


def context_of(daemon: Daemon) -> BaselineContext:
    return BaselineContext(
        daemon.settings,
        daemon.store,
        daemon.session,
        daemon.alerts,
        daemon.insight_metrics,
        daemon.poll_slots,
    )


async def baseline_environment(daemon: Daemon, name: str) -> BaselineRun | None:
    """The daemon's job body for one environment (None: no longer configured)."""
    if name not in daemon.settings.environments:
        return None
    return await run_baseline(context_of(daemon), name)


async def baseline_all(daemon: Daemon) -> None:
    results = await asyncio.gather(
        *(baseline_environment(daemon, n) for n in list(daemon.settings.environments)), return_exceptions=True
    )
    for name, result in zip(list(daemon.settings.environments), results, strict=False):
        if isinstance(result, BaseException):
            log.error("job_failed", job="baseline", env=name, error=repr(result))
