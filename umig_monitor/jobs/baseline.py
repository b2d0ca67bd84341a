"""The baseline jobs: ``ops.baselines.run_baseline`` for every environment on the cron, and for one
environment right after a verified deployment."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import structlog

from umig_monitor.config import Settings
from umig_monitor.jobs.spec import JobTable, PerSubject, once
from umig_monitor.metrics import InsightMetrics
from umig_monitor.ops.baselines import BaselineContext, BaselineRun, run_baseline
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.storage import Store

if TYPE_CHECKING:
    from umig_monitor.jobs.health import HealthPoller

log = structlog.get_logger("umig_monitor.baseline")


class BaselineJobContext(Protocol):
    """What the daemon's baseline jobs use: its own store, session and pipeline, the baseline
    gauge, and the health poller's slots (baselines and polls share the bound on requests)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def session(self) -> aiohttp.ClientSession: ...
    @property
    def alerts(self) -> AlertPipeline: ...
    @property
    def insight_metrics(self) -> InsightMetrics: ...
    @property
    def health(self) -> HealthPoller: ...


def context_of(ctx: BaselineJobContext) -> BaselineContext:
    return BaselineContext(
        ctx.settings,
        ctx.store,
        ctx.session,
        ctx.alerts,
        ctx.insight_metrics,
        ctx.health.poll_slots,
    )


async def baseline_environment(ctx: BaselineJobContext, name: str) -> BaselineRun | None:
    """The daemon's job body for one environment (None: no longer configured)."""
    if name not in ctx.settings.environments:
        return None
    return await run_baseline(context_of(ctx), name)


async def baseline_one(ctx: BaselineJobContext, name: str) -> None:
    """The on-demand job: one environment's baseline, e.g. right after a verified deployment."""
    await baseline_environment(ctx, name)


async def baseline_all(ctx: BaselineJobContext) -> None:
    results = await asyncio.gather(
        *(baseline_environment(ctx, n) for n in list(ctx.settings.environments)), return_exceptions=True
    )
    for name, result in zip(list(ctx.settings.environments), results, strict=False):
        if isinstance(result, BaseException):
            log.error("job_failed", job="baseline", env=name, error=repr(result))


BASELINE_ENV = PerSubject(
    "baseline_env", baseline_one, leader_only=True, on_demand=lambda settings: settings.jobs.baseline.enabled
)


def baseline_soon(jobs: JobTable, settings: Settings, tz: Any, environment: str) -> None:
    """A verified deployment gets its performance baseline right away (not at the next cron)."""
    if not settings.jobs.baseline.enabled:
        return
    jobs.add(BASELINE_ENV.spec(environment, once(datetime.now(tz), tz)))
