"""Every replica serves every environment's ``umig_*`` gauges: the environments other replicas
poll are followed through the samples they store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from umig_monitor.jobs.health import observe_state

if TYPE_CHECKING:
    from umig_monitor.app import Daemon


class SharedSamples:
    """Where this replica is in the stream of stored samples."""

    def __init__(self) -> None:
        self.after_id: int | None = None


async def follow_samples(daemon: Daemon) -> None:
    mine = daemon.mine()
    configured = daemon.settings.environments
    if mine >= set(configured):
        daemon.shared_samples.after_id = None  # alone: nothing to follow; start afresh if that changes
        return
    slowest = max((env.poll_interval for env in configured.values()), default=timedelta(minutes=1))
    since = datetime.now(UTC) - 2 * slowest
    state = daemon.shared_samples
    state.after_id, latest = await daemon.store.latest_samples_since(state.after_id, since)
    for name, sample in latest.items():
        if name in mine or name not in configured:
            continue  # our own polls set these directly (and more often)
        observe_state(daemon.umig_metrics, sample)
