"""The retention job: roll raw samples up into hours, then prune what is past its retention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

log = structlog.get_logger("umig_monitor.jobs.retention")


async def enforce_retention(daemon: Daemon) -> None:
    r = daemon.settings.daemon.retention
    now = datetime.now(UTC)
    rolled = await daemon.store.rollup_health(now)
    result = await daemon.store.prune(
        now,
        raw_samples=r.raw_samples,
        hourly_rollups=r.hourly_rollups,
        alerts=r.alerts,
        outbox_sent=r.outbox_sent,
    )
    log.info("retention_enforced", rolled_up_hours=rolled, deleted=str(result))
