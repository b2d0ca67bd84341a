"""What this replica exports, kept in step with the shared store: the deployments any replica or
the CLI recorded are counted by the replica that polls their environment, each environment's
latest stored baseline is shown by that replica (restored at start-up and whenever an environment
arrives), and the leader shows the stored drift findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

# Recorded events are read again this far back: rows can commit out of order, and the replicas'
# clocks (which stamp them) differ a little. An event is counted once however often it is read.
OVERLAP = timedelta(minutes=1)


@dataclass
class Following:
    """Where this replica is in the stored deployments and baselines."""

    deployments_after: datetime = field(default_factory=lambda: datetime.now(UTC))
    baselines_after: int | None = None


async def refresh_exposition(daemon: Daemon) -> None:
    now = datetime.now(UTC)
    state = daemon.following
    counter = daemon.deployment_metrics
    newest = state.deployments_after
    recorded = await daemon.store.deployments_recorded_since(state.deployments_after - OVERLAP)
    for event, recorded_at in recorded:
        since = counter.counting_since(event.environment)
        if since is not None and recorded_at >= since:
            counter.count(event, recorded_at)
        newest = max(newest, recorded_at)
    state.deployments_after = min(newest, now)  # a clock ahead must not make us skip the others
    counter.forget_seen(state.deployments_after - OVERLAP)

    insights = daemon.insight_metrics
    restore = set(insights.unrestored)
    state.baselines_after, latest = await daemon.store.latest_baselines(
        None if restore else state.baselines_after
    )
    for environment, baseline in latest.items():
        insights.set_baseline(environment, baseline.endpoints)
    insights.unrestored -= restore  # those without any stored baseline have nothing to show

    if daemon.is_leader:
        insights.set_drift(await daemon.store.drift_findings())
