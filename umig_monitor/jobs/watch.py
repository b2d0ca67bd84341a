"""Deployment watches: look at the version endpoint until the expected version answers or the
timeout passes, then run the post-deployment validation (the guide's: health healthy, orchestrator
active, teams 200) and record success or failure naming the failed check. Each look is one run of
an APScheduler job (``watch:<deployment id>``, leader only); a watch's state is in storage, so a
restarted daemon resumes it, and the leader's ``watch_sync`` job runs those another replica began."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import structlog

from umig_monitor.config import Environment, Settings
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.rollouts import VERIFIED_BY, Rollout, attach
from umig_monitor.core.watch import Step, progress, watch_step
from umig_monitor.jobs.deployments import canonical
from umig_monitor.jobs.spec import JobSpec, JobTable, PerSubject, repeating
from umig_monitor.probes.client import fetch_json
from umig_monitor.storage import Store
from umig_monitor.storage.deployments import Watch

if TYPE_CHECKING:
    from umig_monitor.jobs.deployments import DeploymentRecorder

log = structlog.get_logger("umig_monitor.deployments")
Check = Callable[[aiohttp.ClientSession, Environment], Awaitable[str | None]]  # None = passed


async def _health(session: aiohttp.ClientSession, env: Environment) -> str | None:
    f = await fetch_json(session, env, "/admin/health")
    status = (f.body or {}).get("umig", {}).get("status") if isinstance(f.body, dict) else None
    if not f.ok:
        return f"health check failed: {f.detail}"
    return None if status == "healthy" else f"health check failed: {status}"


async def _orchestrator(session: aiohttp.ClientSession, env: Environment) -> str | None:
    f = await fetch_json(session, env, "/admin/components")
    if not f.ok:
        return f"components check failed: {f.detail}"
    orchestrator = f.body.get("orchestrator") if isinstance(f.body, dict) else None
    status = orchestrator.get("status") if isinstance(orchestrator, dict) else None
    return None if status == "active" else f"component orchestrator not active: {status}"


def _endpoint(path: str) -> Check:
    async def check(session: aiohttp.ClientSession, env: Environment) -> str | None:
        f = await fetch_json(session, env, path)
        return (
            None if f.status == 200 else f"API functionality test failed: {path} HTTP {f.status or f.detail}"
        )

    return check


CHECKS: dict[str, Check] = {
    "health": _health,
    "orchestrator": _orchestrator,
    "teams": _endpoint("/teams"),
    "users": _endpoint("/users"),
}


async def current_version(session: aiohttp.ClientSession, env: Environment) -> str | None:
    f = await fetch_json(session, env, "/admin/version")
    if not f.ok or not isinstance(f.body, dict):
        return None
    umig = f.body.get("umig")
    version = umig.get("version") if isinstance(umig, dict) else None
    return str(version) if version is not None else None


async def look(
    recorder: DeploymentRecorder, session: aiohttp.ClientSession, watch: Watch, now: datetime | None = None
) -> Watch:
    """One look. Returns the watch as it now stands (``state`` leaves "watching" when finished)."""
    settings = recorder.settings
    now = now or datetime.now(UTC)
    env = settings.environments.get(watch.environment)
    if env is None:
        return await _finish(
            recorder, watch, "failed", f"environment '{watch.environment}' is no longer configured", now, None
        )
    current = canonical(await current_version(session, env))
    watch = replace(
        watch,
        result={
            # What ran when the watch began: a version already running was not deployed by it.
            "initial": watch.result.get("initial", current),
            **{k: v for k, v in watch.result.items() if k != "initial"},
            "looks": int(watch.result.get("looks", 0)) + 1,
        },
    )
    expected = canonical(watch.expected_version) or watch.expected_version
    step = watch_step(expected, current, now, watch.deadline)
    message = progress(watch.expected_version, current)
    if step is Step.TIMED_OUT:
        timeout = int((watch.deadline - watch.started_at).total_seconds())
        return await _finish(
            recorder,
            watch,
            "timeout",
            f"deployment monitoring timeout after {timeout}s (last seen: {current or 'no answer'})",
            now,
            current,
        )
    if step is not Step.ARRIVED:
        updated = replace(watch, result={**watch.result, "progress": message, "current": current})
        await recorder.store.save_watch(updated, now)
        log.info(
            "deployment_watch_progress",
            env=watch.environment,
            deployment_id=watch.deployment_id,
            version=current,
            expected=watch.expected_version,
            detail=message,
        )
        return updated
    failures: list[str] = []
    checks: dict[str, Any] = {}
    for name in settings.deployments.validation:
        problem = await CHECKS[name](session, env)
        checks[name] = problem or "passed"
        if problem:
            failures.append(problem)
    if failures:
        return await _finish(recorder, watch, "failed", failures[0], now, current, checks)
    return await _finish(
        recorder, watch, "verified", "post-deployment validation passed", now, current, checks
    )


async def _deployment(recorder: DeploymentRecorder, watch: Watch, now: datetime) -> list[DeploymentEvent]:
    """The deployment this watch verifies: the one with its id, else the open one (started or
    observed, no outcome yet) of its environment and version in the window."""
    events = await recorder.store.events_of_deployment(watch.deployment_id)
    if events:
        return events
    window = recorder.settings.deployments.window
    known = await recorder.store.deployment_events(environment=watch.environment, since=now - window)
    expected = canonical(watch.expected_version) or watch.expected_version
    found = attach(EventType.START, watch.environment, expected, now, known, window)
    return [e for e in known if e.deployment_id == found] if found is not None else []


async def _finish(
    recorder: DeploymentRecorder,
    watch: Watch,
    state: str,
    message: str,
    now: datetime,
    current: str | None,
    checks: dict[str, Any] | None = None,
) -> Watch:
    """Record the outcome of the deployment the watch verified, and only of one that exists: a
    started or observed one, or the version change the watch itself saw. A version that was
    already running when the watch began, or one that never appeared, records nothing."""
    events = await _deployment(recorder, watch, now)
    expected = canonical(watch.expected_version) or watch.expected_version
    arrived_during = current == expected and watch.result.get("initial") != expected
    recorded: str | None = None
    if events or arrived_during:
        rollout = Rollout(events[0].deployment_id, tuple(events)) if events else None
        start_ts = next((e.ts for e in events if e.type is EventType.START), watch.started_at)
        common: dict[str, Any] = {
            "version": watch.expected_version,
            "deployment_id": rollout.deployment_id if rollout is not None else None,
            "duration": max((now - start_ts).total_seconds(), 0.0),
            "metadata": {VERIFIED_BY: "watch"},
        }
        if state == "verified":
            event, _ = await recorder.record(EventType.SUCCESS, watch.environment, now, **common)
            if recorder.on_verified is not None:
                recorder.on_verified(watch.environment)
        else:
            event, _ = await recorder.record(
                EventType.FAILURE, watch.environment, now, error=message, **common
            )
        recorded = event.deployment_id
    elif current == expected:
        message = f"{message}; version {expected} was already running when the watch began: nothing recorded"
    else:
        message = f"{message}; no deployment of {expected} is recorded: nothing recorded"
    done = replace(
        watch,
        state=state,
        result={
            **watch.result,
            "progress": message,
            "current": current,
            "checks": checks or {},
            "finishedAt": now.isoformat(),
            "recordedDeployment": recorded,
        },
    )
    await recorder.store.save_watch(done, now)
    log.info(
        "deployment_watch_finished",
        env=watch.environment,
        deployment_id=watch.deployment_id,
        recorded=recorded,
        status=state,
        detail=message,
    )
    return done


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
    """Start watching a deployment (or answer the watch already running under its id)."""
    now = datetime.now(UTC)
    existing = await ctx.store.get_watch(deployment_id)
    if existing is not None and existing.state == "watching":
        return existing
    watch = Watch(
        deployment_id,
        environment,
        canonical(version) or version,
        now,
        now + (within or ctx.settings.deployments.watch_timeout),
        "watching",
        {},
    )
    await ctx.store.save_watch(watch, now)
    if ctx.is_leader:
        ctx.scheduler.add(watch_spec(deployment_id, ctx.settings, ctx.timezone))
    # Otherwise the leader's watch_sync job picks it up within deployments.watch_interval.
    return watch
