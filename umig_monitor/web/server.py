"""Routes and lifecycle of the aiohttp server."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from umig_monitor.storage import StorageError
from umig_monitor.web.auth import require_token

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

log = structlog.get_logger("umig_monitor.web")
DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("daemon")


def build_app(daemon: Daemon) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[DAEMON_KEY] = daemon
    guarded = require_token(daemon.settings_token)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/config", config)
    app.router.add_post("/-/reload", guarded(reload))
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
    missing = sorted(set(daemon.settings.environments) - daemon.polled)
    checks["first_poll_round"] = "ok" if not missing else f"waiting for {', '.join(missing)}"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    body = await asyncio.to_thread(
        lambda: generate_latest(daemon.metrics.registry) + generate_latest(daemon.umig_metrics.registry)
    )
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def config(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    return web.json_response({"config": daemon.settings.redacted(), "last_reload": daemon.last_reload})


async def reload(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    ok, message = await daemon.reload()
    return web.json_response({"reloaded": ok, "message": message}, status=200 if ok else 422)


class WebServer:
    def __init__(self, daemon: Daemon) -> None:
        self._app = build_app(daemon)
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        self.url = ""

    async def start(self, host: str, port: int) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        bound = sockets[0].getsockname() if sockets else (host, port)
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.url = f"http://{shown}:{bound[1]}"

    async def stop(self) -> None:
        await self._runner.cleanup()
