"""The post-deployment validation's probes (the guide's validate_post_deployment): health
``healthy``, orchestrator ``active``, an API endpoint answering 200, and reading the running
version. Each check returns None when it passed, else what failed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from umig_monitor.config import Environment
from umig_monitor.probes.client import fetch_json

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
