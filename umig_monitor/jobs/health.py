"""The health poll job: probe one environment, classify it in core, hand the sample to the writer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from umig_monitor.config.types import redact_url
from umig_monitor.core.assess import Thresholds, assess
from umig_monitor.probes.umig import probe_environment

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

log = structlog.get_logger("umig_monitor.jobs.health")


async def poll_environment(daemon: Daemon, name: str) -> None:
    env = daemon.settings.environments.get(name)
    if env is None:  # removed by a reload while this run was queued
        return
    async with daemon.poll_slots:
        docs, _ = await probe_environment(daemon.session, env)
    t = env.thresholds
    sample, checks = assess(
        name, datetime.now(UTC), docs, Thresholds(t.error_rate, t.response_time_ms, t.db_connections)
    )
    daemon.writer.add(sample)
    daemon.polled.add(name)
    log.info(
        "probe_completed",
        env=name,
        url=redact_url(env.endpoint("/admin/health")),
        status=sample.outcome.value,
        version=sample.version,
        duration_ms=sample.response_ms,
        checks=[c.name for c in checks] or None,
        error=sample.error,
    )
