"""The retention job: roll raw samples up into hours, then prune what is past its retention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import structlog

from umig_monitor.config import Settings
from umig_monitor.storage import Store

log = structlog.get_logger("umig_monitor.jobs.retention")


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
    log.info("retention_enforced", rolled_up_hours=rolled, deleted=str(result))
