"""Routes and lifecycle of the aiohttp server."""

from __future__ import annotations

import asyncio
import json

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from umig_monitor.ops.views import environment_detail, environments_view
from umig_monitor.pipeline.actions import ActionError
from umig_monitor.promtext import exposition
from umig_monitor.storage import StorageError
from umig_monitor.web import alerts as alerts_api
from umig_monitor.web import deployments as deployments_api
from umig_monitor.web import insights as insights_api
from umig_monitor.web import page as status_page
from umig_monitor.web import params
from umig_monitor.web.auth import Handler, error, require_token
from umig_monitor.web.guard import ConnectionGuard
from umig_monitor.web.keys import DAEMON_KEY, WebContext
from umig_monitor.web.rendered import Rendered, respond

log = structlog.get_logger("umig_monitor.web")
# Answered while starting up and shutting down too; everything else is a 503 then.
# asyncio accepts up to this many connections per event-loop turn, before the guard sees any of
# them: kept small so a flood cannot take more descriptors than the cap plus one turn's worth.
ACCEPT_BACKLOG = 100
ALWAYS_SERVED = frozenset({"/healthz", "/readyz", "/metrics"})
ENVIRONMENTS_KEY: web.AppKey[Rendered] = web.AppKey("environments", Rendered)
# Max age 0: never served from memory, but scrapes that arrive during one exposition share it, so
# concurrent scrapers cost one exposition's CPU, not one each (which starved the polls).
METRICS_KEY: web.AppKey[Rendered] = web.AppKey("metrics", Rendered)


@web.middleware
async def storage_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A database outage is a 503 with the reason, never a traceback."""
    if not request.app[DAEMON_KEY].accepting and request.path not in ALWAYS_SERVED:
        return error(503, "not serving: starting up or shutting down")
    try:
        return await handler(request)
    except StorageError as exc:
        log.error("api_storage_error", path=request.path, error=str(exc))
        return error(503, f"storage unavailable: {exc}")


def build_app(daemon: WebContext) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024, middlewares=[storage_errors])
    app[DAEMON_KEY] = daemon
    app[ENVIRONMENTS_KEY] = Rendered(
        lambda: build_environments(daemon), lambda: daemon.settings.daemon.http.page_max_age.total_seconds()
    )
    app[METRICS_KEY] = Rendered(lambda: asyncio.to_thread(exposition, daemon.metrics.registry), lambda: 0.0)
    guarded = require_token(daemon.settings_token)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/config", config)
    app.router.add_get("/api/v1/environments", environments)
    app.router.add_get("/api/v1/environments/{name}", environment)
    app.router.add_get("/api/v1/cluster", cluster)
    app.router.add_post("/-/reload", guarded(reload))
    alerts_api.add_routes(app, guarded)
    deployments_api.add_routes(app, guarded)
    insights_api.add_routes(app)
    status_page.register(app)
    return app


async def healthz(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    if daemon.alive():
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "scheduler not running"}, status=503)


async def readyz(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    checks: dict[str, str] = {"config": "ok"}
    try:
        async with asyncio.timeout(2):
            await daemon.store.ping()
        checks["storage"] = (
            "ok" if daemon.writer.healthy else f"writes failing, {daemon.writer.pending} buffered"
        )
    except (StorageError, TimeoutError) as exc:
        checks["storage"] = f"unreachable: {exc or 'timeout'}"
    missing = sorted(daemon.mine() - daemon.polled)
    checks["first_poll_round"] = "ok" if not missing else f"waiting for {', '.join(missing[:20])}"
    if not daemon.accepting:
        checks["started"] = "starting up"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = (await request.app[METRICS_KEY].get(None)).body
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def cluster(request: web.Request) -> web.Response:
    return web.json_response(request.app[DAEMON_KEY].cluster.snapshot())


async def config(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    return web.json_response({"config": daemon.settings.redacted(), "last_reload": daemon.last_reload})


async def build_environments(daemon: WebContext) -> bytes:
    daemon.metrics.page_builds.labels("environments").inc()
    return json.dumps(await environments_view(daemon.store, daemon.settings)).encode()


async def environments(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    built = await request.app[ENVIRONMENTS_KEY].get(daemon.settings)
    return respond(request, built, "application/json", {"Cache-Control": "no-cache"})


async def environment(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    name = request.match_info["name"]
    if name not in daemon.settings.environments:
        return error(404, f"unknown environment '{name}'")
    try:
        limit = params.integer(request.query, "limit", 50, 1, 1000)
    except ActionError as exc:
        return error(400, str(exc))
    return web.json_response(await environment_detail(daemon.store, daemon.settings, name, limit))


async def reload(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    ok, message = await daemon.reload()
    return web.json_response({"reloaded": ok, "message": message}, status=200 if ok else 422)


class WebServer:
    """aiohttp's request handling behind a ConnectionGuard: a cap on connections, a header
    deadline and aiohttp's own keep-alive timeout (settings under ``daemon.http``)."""

    def __init__(self, daemon: WebContext) -> None:
        http = daemon.settings.daemon.http
        self._app = build_app(daemon)
        self._runner = web.AppRunner(
            self._app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=http.keepalive_timeout.total_seconds(),
        )
        self.guard = ConnectionGuard(http.max_connections, http.header_timeout.total_seconds())
        self._server: asyncio.Server | None = None
        self.url = ""
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        await self._runner.setup()
        handler = self._runner.server
        assert handler is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.factory(handler), host, port, reuse_address=True, backlog=ACCEPT_BACKLOG
        )
        bound = self._server.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"http://{shown}:{bound[1]}"
        self.port = int(bound[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections; aiohttp's shutdown drains the open ones
        await self._runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
