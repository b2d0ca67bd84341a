"""Deployment watches: look at the version endpoint until the expected version answers or the
timeout passes, then run the post-deployment validation (the guide's: health healthy, orchestrator
active, teams 200) and record success or failure naming the failed check. Each look is one run of
an APScheduler job; a watch's state is in storage, so a restarted daemon resumes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from umig_monitor.config import Environment
from umig_monitor.core.deployments import EventType
from umig_monitor.core.watch import Step, progress, watch_step
from umig_monitor.jobs.deployments import canonical
from umig_monitor.probes.client import fetch_json
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
    expected = canonical(watch.expected_version) or watch.expected_version
    step = watch_step(expected, current, now, watch.deadline)
    message = progress(watch.expected_version, current)
    if step is Step.TIMED_OUT:
        waited = int((now - watch.started_at).total_seconds())
        return await _finish(
            recorder,
            watch,
            "timeout",
            f"deployment monitoring timeout after {waited}s (last seen: {current or 'no answer'})",
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


async def _finish(
    recorder: DeploymentRecorder,
    watch: Watch,
    state: str,
    message: str,
    now: datetime,
    current: str | None,
    checks: dict[str, Any] | None = None,
) -> Watch:
    started = await recorder.store.events_of_deployment(watch.deployment_id)
    start_ts = next((e.ts for e in started if e.type is EventType.START), watch.started_at)
    duration = max((now - start_ts).total_seconds(), 0.0)
    if state == "verified":
        await recorder.record(
            EventType.SUCCESS,
            watch.environment,
            now,
            version=watch.expected_version,
            deployment_id=watch.deployment_id,
            duration=duration,
            metadata={"verifiedBy": "watch"},
        )
        if recorder.on_verified is not None:
            recorder.on_verified(watch.environment)
    else:
        await recorder.record(
            EventType.FAILURE,
            watch.environment,
            now,
            version=watch.expected_version,
            deployment_id=watch.deployment_id,
            duration=duration,
            error=message,
            metadata={"verifiedBy": "watch"},
        )
    done = replace(
        watch,
        state=state,
        result={
            **watch.result,
            "progress": message,
            "current": current,
            "checks": checks or {},
            "finishedAt": now.isoformat(),
        },
    )
    await recorder.store.save_watch(done, now)
    log.info(
        "deployment_watch_finished",
        env=watch.environment,
        deployment_id=watch.deployment_id,
        status=state,
        detail=message,
    )
    return done
