"""Drift and baseline endpoints of the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from umig_monitor.core.status import iso
from umig_monitor.ops.drift import drift_view
from umig_monitor.pipeline.actions import ActionError
from umig_monitor.web import params
from umig_monitor.web.auth import error
from umig_monitor.web.keys import DAEMON_KEY, WebContext


def _daemon(request: web.Request) -> WebContext:
    return request.app[DAEMON_KEY]


async def get_drift(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    return web.json_response(await drift_view(daemon.store, daemon.settings, datetime.now(UTC)))


def baseline_document(b: Any) -> dict[str, Any]:
    return {
        "id": b.id,
        "environment": b.environment,
        "version": b.version,
        "timestamp": iso(b.ts),
        "endpoints": b.endpoints,
        "figures": b.figures,
    }


async def get_baselines(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    q = request.query
    try:
        limit = params.integer(q, "limit", 50, 1, 1000)
        environment, version = params.text(q, "environment"), params.text(q, "version")
    except ActionError as exc:
        return error(400, str(exc))
    found = await daemon.store.baselines(environment=environment, version=version, limit=limit)
    return web.json_response({"baselines": [baseline_document(b) for b in found]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/drift", get_drift)
    app.router.add_get("/api/v1/baselines", get_baselines)
