"""What this replica exports, kept in step with the shared store: the deployments any replica or
the CLI recorded are counted by the replica that polls their environment, each environment's
latest stored baseline is shown by that replica (restored at start-up and whenever an environment
arrives), and the leader shows the stored drift findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from umig_monitor.metrics import DeploymentMetrics, InsightMetrics
from umig_monitor.storage import Store

# Recorded events are read again this far back: rows can commit out of order, and the replicas'
# clocks (which stamp them) differ a little. An event is counted once however often it is read.
OVERLAP = timedelta(minutes=1)


@dataclass
class Following:
    """Where this replica is in the stored deployments and baselines."""

    deployments_after: datetime = field(default_factory=lambda: datetime.now(UTC))
    baselines_after: int | None = None


class ExpositionContext(Protocol):
    @property
    def store(self) -> Store: ...
    @property
    def following(self) -> Following: ...
    @property
    def deployment_metrics(self) -> DeploymentMetrics: ...
    @property
    def insight_metrics(self) -> InsightMetrics: ...
    @property
    def is_leader(self) -> bool: ...


async def refresh_exposition(ctx: ExpositionContext) -> None:
    now = datetime.now(UTC)
    state = ctx.following
    counter = ctx.deployment_metrics
    newest = state.deployments_after
    recorded = await ctx.store.deployments_recorded_since(state.deployments_after - OVERLAP)
    for event, recorded_at in recorded:
        since = counter.counting_since(event.environment)
        if since is not None and recorded_at >= since:
            counter.count(event, recorded_at)
        newest = max(newest, recorded_at)
    state.deployments_after = min(newest, now)  # a clock ahead must not make us skip the others
    counter.forget_seen(state.deployments_after - OVERLAP)

    insights = ctx.insight_metrics
    restore = set(insights.unrestored)
    state.baselines_after, latest = await ctx.store.latest_baselines(
        None if restore else state.baselines_after
    )
    for environment, baseline in latest.items():
        insights.set_baseline(environment, baseline.endpoints)
    insights.unrestored -= restore  # those without any stored baseline have nothing to show

    if ctx.is_leader:
        insights.set_drift(await ctx.store.drift_findings())
