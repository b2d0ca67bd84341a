"""Deployment watches: look at the version endpoint until the expected version answers or the
timeout passes, then run the post-deployment validation (the guide's: health healthy, orchestrator
active, teams 200) and record the outcome of the deployment watched. A watch's state is in storage:
the leading daemon runs every stored watch (one job run per look) and resumes them after a
restart; ``umig-monitor watch-deploy`` follows it there, or looks itself when no daemon leads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.rollouts import VERIFIED_BY, Rollout, attach
from umig_monitor.core.watch import Step, progress, watch_step
from umig_monitor.ops.deployments import canonical
from umig_monitor.probes.validation import CHECKS, current_version
from umig_monitor.storage import Store
from umig_monitor.storage.deployments import Watch

if TYPE_CHECKING:
    from umig_monitor.ops.deployments import DeploymentRecorder

log = structlog.get_logger("umig_monitor.deployments")


async def start_watch(
    store: Store, deployment_id: str, environment: str, version: str, within: timedelta, now: datetime
) -> Watch:
    """Store a watch (the API's and the CLI's): the leading daemon runs stored watches. A watch
    already running under that id is returned as it is."""
    existing = await store.get_watch(deployment_id)
    if existing is not None and existing.state == "watching":
        return existing
    watch = Watch(
        deployment_id, environment, canonical(version) or version, now, now + within, "watching", {}
    )
    await store.save_watch(watch, now)
    return watch


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
