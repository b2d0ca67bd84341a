"""The deployment watch jobs: each look of a stored watch is one run of ``watch:<deployment id>``
(leader only; ``ops.watches.look``), and the leader's ``watch_sync`` job runs the watches another
replica or the CLI stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp

from umig_monitor.config import Settings
from umig_monitor.jobs.spec import JobSpec, JobTable, PerSubject, repeating
from umig_monitor.ops.deployments import DeploymentRecorder
from umig_monitor.ops.watches import look, start_watch
from umig_monitor.storage import Store
from umig_monitor.storage.deployments import Watch


class WatchContext(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def session(self) -> aiohttp.ClientSession: ...
    @property
    def deployments(self) -> DeploymentRecorder: ...
    @property
    def scheduler(self) -> JobTable: ...
    @property
    def timezone(self) -> Any: ...


async def watch_deployment(ctx: WatchContext, deployment_id: str) -> None:
    """The job body: one look; the job ends with the watch."""
    watch = await ctx.store.get_watch(deployment_id)
    if watch is None or watch.state != "watching":
        ctx.scheduler.remove(WATCH.id_for(deployment_id))
        return
    watch = await look(ctx.deployments, ctx.session, watch)
    if watch.state != "watching":
        ctx.scheduler.remove(WATCH.id_for(deployment_id))


async def sync_watches(ctx: WatchContext) -> None:
    """The leader runs every deployment watch, including those another replica was asked for."""
    for watch in await ctx.store.active_watches():
        spec = watch_spec(watch.deployment_id, ctx.settings, ctx.timezone)
        if not ctx.scheduler.has(spec.id):
            ctx.scheduler.add(spec)


WATCH = PerSubject("watch", watch_deployment, leader_only=True, on_demand=lambda settings: True)


def watch_spec(deployment_id: str, settings: Settings, tz: Any) -> JobSpec[WatchContext]:
    """A watch's job: a look every ``deployments.watch_interval``, the first one now."""
    return WATCH.spec(deployment_id, repeating(settings.deployments.watch_interval, datetime.now(tz), tz))


class BeginContext(Protocol):
    """What starting a watch needs: it is stored, and run here when this replica leads."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def scheduler(self) -> JobTable: ...
    @property
    def timezone(self) -> Any: ...
    @property
    def is_leader(self) -> bool: ...


async def begin_watch(
    ctx: BeginContext, deployment_id: str, environment: str, version: str, within: timedelta | None
) -> Watch:
    """Start watching a deployment (or answer the watch already running under its id): stored
    (``ops.watches.start_watch``), and run here when this replica leads."""
    timeout = within or ctx.settings.deployments.watch_timeout
    watch = await start_watch(ctx.store, deployment_id, environment, version, timeout, datetime.now(UTC))
    if ctx.is_leader and watch.state == "watching":
        ctx.scheduler.add(watch_spec(deployment_id, ctx.settings, ctx.timezone))
    # Otherwise the leader's watch_sync job picks it up within deployments.watch_interval.
    return watch
