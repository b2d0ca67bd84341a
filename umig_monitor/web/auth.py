"""Bearer-token guard for mutating endpoints: with no token configured they answer 403, never open."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from umig_monitor.config.types import SecretFileError

log = structlog.get_logger("umig_monitor.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TokenSource = Callable[[], str | None]


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def require_token(read_token: TokenSource) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                expected = read_token()
            except SecretFileError as exc:
                log.error("api_token_unreadable", error=str(exc))
                return error(403, "API token is not readable on the server; mutating endpoints are disabled")
            if not expected:
                return error(
                    403, "no API token configured (daemon.api_token_file); mutating endpoints are disabled"
                )
            given = request.headers.get("Authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), expected.encode()
            ):
                return web.json_response(
                    {"error": "missing or wrong bearer token"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="umig-monitor"'},
                )
            return await handler(request)

        return guarded

    return decorate
