"""Deployment endpoints: events in (token), history out (paginated), watches, DORA figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from umig_monitor.core import timetext
from umig_monitor.core.deployments import EventError, EventType
from umig_monitor.core.history import event_to_record
from umig_monitor.core.rollouts import EventConflict
from umig_monitor.core.status import iso
from umig_monitor.ops.deployments import Recorded, history, parse_event_type
from umig_monitor.ops.views import dora_figures
from umig_monitor.pipeline.actions import ActionError
from umig_monitor.web import params
from umig_monitor.web.auth import error
from umig_monitor.web.keys import DAEMON_KEY, WebContext

if TYPE_CHECKING:
    from umig_monitor.storage.deployments import Watch


def _daemon(request: web.Request) -> WebContext:
    return request.app[DAEMON_KEY]


def parse_timestamp(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return timetext.parse_timestamp(value)
    except ValueError as exc:
        raise EventError(name, str(exc)) from None


def _text(body: dict[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` present, which must be a string (a number or an object is a 400)."""
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise EventError(key, f"must be a string, got {type(value).__name__}")
        return value
    return None


async def post_event(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    try:
        body = await params.json_object(request)
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise EventError("metadata", "must be an object of strings")
        event, recorded = await daemon.deployments.record(
            parse_event_type(body.get("type")),
            _text(body, "environment") or "",
            datetime.now(UTC),
            version=_text(body, "version"),
            to_version=_text(body, "toVersion"),
            deployment_id=_text(body, "id", "deploymentId"),
            event_id=_text(body, "eventId"),
            initiated_by=_text(body, "initiatedBy"),
            duration=body.get("duration")
            if isinstance(body.get("duration"), int | float)
            else _text(body, "duration"),
            error=_text(body, "error"),
            metadata={str(k): str(v) for k, v in metadata.items()},
            timestamp=parse_timestamp(body.get("timestamp"), "timestamp"),
        )
    except ActionError as exc:
        return error(400, str(exc))
    except EventError as exc:
        return web.json_response({"error": str(exc), "field": exc.field}, status=400)
    except EventConflict as exc:
        return web.json_response({"error": str(exc), "fields": list(exc.fields)}, status=409)
    created = recorded is Recorded.CREATED
    return web.json_response(
        {"event": event_to_record(event), "created": created, "recorded": recorded.value},
        status=201 if created else 200,
    )


async def list_deployments(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    q = request.query
    now = datetime.now(UTC)
    try:
        since = params.instant(q.get("since"), now, "since")
        until = params.instant(q.get("until"), now, "until")
        limit = params.integer(q, "limit", 100, 1, 1000)
        offset = params.integer(q, "offset", 0, 0, 10**9)
        wanted = q.getall("type", [])
        if len(wanted) > len(EventType):
            raise ActionError(f"type: at most {len(EventType)} values, got {len(wanted)}")
        types = [parse_event_type(t[: params.MAX_VALUE]).value for t in wanted] or None
        environment = params.text(q, "environment")
    except (ValueError, ActionError) as exc:
        return error(400, str(exc))
    window = await history(
        daemon.store,
        environment=environment,
        since=since,
        until=until,
        types=types,
        limit=limit,
        offset=offset,
    )
    return web.json_response(
        {
            "events": [event_to_record(e) for e in window.events],
            "total": window.total,
            "limit": limit,
            "offset": offset,
            "summary": window.summary.to_record(),
        }
    )


def watch_document(w: Watch) -> dict[str, Any]:
    return {
        "deploymentId": w.deployment_id,
        "environment": w.environment,
        "expectedVersion": w.expected_version,
        "startedAt": iso(w.started_at),
        "deadline": iso(w.deadline),
        "state": w.state,
        **w.result,
    }


async def get_deployment(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    deployment_id = request.match_info["id"]
    events = await daemon.store.events_of_deployment(deployment_id)
    watch = await daemon.store.get_watch(deployment_id)
    if not events and watch is None:
        return error(404, f"no deployment '{deployment_id}'")
    return web.json_response(
        {
            "deploymentId": deployment_id,
            "events": [event_to_record(e) for e in events],
            "watch": watch_document(watch) if watch else None,
        }
    )


async def post_watch(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    deployment_id = request.match_info["id"]
    try:
        body = await params.json_object(request)
        environment = str(body.get("environment") or "")
        if environment not in daemon.settings.environments:
            raise EventError("environment", f"unknown environment '{environment}'")
        version = str(body.get("version") or "")
        if not version:
            raise EventError("version", "required")
        timeout: timedelta | None = None
        if body.get("timeout") is not None:
            try:
                timeout = timetext.parse_duration(body["timeout"])
            except ValueError as exc:
                raise EventError("timeout", str(exc)) from None
    except ActionError as exc:
        return error(400, str(exc))
    except EventError as exc:
        return web.json_response({"error": str(exc), "field": exc.field}, status=400)
    watch = await daemon.start_watch(deployment_id, environment, version, timeout)
    return web.json_response({"watch": watch_document(watch)}, status=202)


async def get_dora(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    try:
        days = params.number(request.query, "days", 90, 0, 3650)
        environment = params.text(request.query, "environment")
    except ActionError as exc:
        return error(400, str(exc))
    return web.json_response(await dora_figures(daemon.store, daemon.settings, days, environment))


def add_routes(app: web.Application, guarded: Any) -> None:
    app.router.add_post("/api/v1/deployments/events", guarded(post_event))
    app.router.add_get("/api/v1/deployments", list_deployments)
    app.router.add_get("/api/v1/deployments/{id}", get_deployment)
    app.router.add_post("/api/v1/deployments/{id}/watch", guarded(post_watch))
    app.router.add_get("/api/v1/dora", get_dora)
