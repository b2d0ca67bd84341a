"""Alert, silence and outbox endpoints of the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from umig_monitor.core.alerts import AlertState
from umig_monitor.core.status import alert_document, iso, silence_document
from umig_monitor.ops.alerts import alerts_view, silences_view
from umig_monitor.pipeline.actions import ActionError, NotFound, acknowledge, add_silence, escalate, resolve
from umig_monitor.web import params
from umig_monitor.web.auth import error
from umig_monitor.web.keys import DAEMON_KEY, WebContext


def _daemon(request: web.Request) -> WebContext:
    return request.app[DAEMON_KEY]


async def list_alerts(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    q = request.query
    try:
        state_text = params.text(q, "state")
        try:
            state = AlertState(state_text) if state_text else None
        except ValueError:
            raise ActionError(f"state: one of {', '.join(s.value for s in AlertState)}") from None
        if q.get("active") in ("1", "true"):
            state = AlertState.FIRING
        since = params.instant(q.get("since"), datetime.now(UTC), "since")
        limit = params.integer(q, "limit", 500, 1, 5000)
        environment, type_ = params.text(q, "environment"), params.text(q, "type")
    except ActionError as exc:
        return error(400, str(exc))
    view = await alerts_view(
        daemon.store,
        daemon.settings,
        datetime.now(UTC),
        state=state,
        environment=environment,
        type=type_,
        since=since,
        limit=limit,
    )
    return web.json_response(view)


async def create_alert(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    try:
        body = await params.json_object(request)
        alert = await escalate(
            daemon.store,
            daemon.alerts,
            str(body.get("type", "")),
            str(body.get("environment", "")),
            str(body.get("severity", "")),
            body.get("message"),
            now=datetime.now(UTC),
            known_environments=list(daemon.settings.environments),
        )
    except ActionError as exc:
        return error(400, str(exc))
    return web.json_response({"alert": alert_document(alert)}, status=201)


async def resolve_alert(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    try:
        alert_id = params.integer(request.match_info, "id", 0, 0, 2**63 - 1)
        alert = await resolve(daemon.store, daemon.alerts, alert_id, datetime.now(UTC))
    except NotFound as exc:
        return error(404, str(exc))
    except ActionError as exc:
        return error(400, str(exc))
    return web.json_response({"alert": alert_document(alert)})


async def ack_alert(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    try:
        alert_id = params.integer(request.match_info, "id", 0, 0, 2**63 - 1)
        if alert_id == 0:
            return error(404, f"no alert {request.match_info['id']}")
        body = await params.json_object(request) if request.can_read_body else {}
    except (ValueError, ActionError) as exc:
        return error(400, str(exc))
    try:
        alert, acked = await acknowledge(
            daemon.store, alert_id, str(body.get("by") or "api"), datetime.now(UTC)
        )
    except ActionError:
        return error(404, f"no alert {alert_id}")
    return web.json_response({"alert": alert_document(alert), "acknowledged": acked})


async def list_silences(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    include_all = request.query.get("all") in ("1", "true")
    return web.json_response(
        await silences_view(daemon.store, daemon.settings, datetime.now(UTC), include_all)
    )


async def create_silence(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    now = datetime.now(UTC)
    try:
        body = await params.json_object(request)
        matchers = body.get("matchers")
        if not isinstance(matchers, list) or not all(isinstance(m, str) for m in matchers):
            raise ActionError('matchers: a list of strings such as ["environment=uat"]')
        duration: timedelta | None = None
        if body.get("duration") is not None:
            duration = params.duration(body["duration"], "duration")
        starts = params.instant(body.get("startsAt"), now, "startsAt")
        ends = params.instant(body.get("endsAt"), now, "endsAt")
        silence = await add_silence(
            daemon.store,
            matchers,
            now=now,
            duration=duration,
            starts_at=starts,
            ends_at=ends,
            author=str(body.get("author") or body.get("createdBy") or ""),
            comment=str(body.get("comment") or ""),
        )
    except ActionError as exc:
        return error(400, str(exc))
    return web.json_response({"silence": silence_document(silence, now)}, status=201)


async def expire_silence(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    if not await daemon.store.expire_silence(request.match_info["id"], datetime.now(UTC)):
        return error(404, f"no active silence {request.match_info['id']}")
    return web.json_response({"expired": request.match_info["id"]})


async def list_outbox(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    try:
        status = params.text(request.query, "status")
    except ActionError as exc:
        return error(400, str(exc))
    deliveries = await daemon.store.list_deliveries(status=status, limit=500)
    return web.json_response(
        {
            "deliveries": [
                {
                    "id": d.id,
                    "sink": d.sink,
                    "kind": d.kind,
                    "status": d.status,
                    "attempts": d.attempts,
                    "idempotencyKey": d.idempotency_key,
                    "createdAt": iso(d.created_at),
                    "sentAt": iso(d.sent_at),
                    "nextAttemptAt": iso(d.next_attempt_at),
                    "lastError": d.last_error,
                    "alertId": d.alert_id,
                }
                for d in deliveries
            ]
        }
    )


def add_routes(app: web.Application, guarded: Any) -> None:
    app.router.add_get("/api/v1/alerts", list_alerts)
    app.router.add_post("/api/v1/alerts", guarded(create_alert))
    app.router.add_post("/api/v1/alerts/{id}/ack", guarded(ack_alert))
    app.router.add_post("/api/v1/alerts/{id}/resolve", guarded(resolve_alert))
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_post("/api/v1/silences", guarded(create_silence))
    app.router.add_delete("/api/v1/silences/{id}", guarded(expire_silence))
    app.router.add_get("/api/v1/outbox", list_outbox)
