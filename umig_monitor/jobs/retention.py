"""The retention job: roll raw samples up into hours, then prune what is past its retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from umig_monitor.config import Settings
from umig_monitor.storage import Store

log = structlog.get_logger("umig_monitor.jobs.retention")
# How far back each run recomputes the deployment day counts (today and the day before): a rolling
# upgrade's old replicas are put right within a retention interval of writing.
RECONCILE_DAYS = timedelta(days=1)


class RetentionContext(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...


async def enforce_retention(ctx: RetentionContext) -> None:
    r = ctx.settings.daemon.retention
    now = datetime.now(UTC)
    rolled = await ctx.store.rollup_health(now)
    result = await ctx.store.prune(
        now,
        raw_samples=r.raw_samples,
        hourly_rollups=r.hourly_rollups,
        alerts=r.alerts,
        outbox_sent=r.outbox_sent,
    )
    # Days a writer of an older version recorded events on without their per-day counts.
    days = await ctx.store.reconcile_deployment_days(now - RECONCILE_DAYS)
    log.info("retention_enforced", rolled_up_hours=rolled, deleted=str(result), deployment_days=days)
