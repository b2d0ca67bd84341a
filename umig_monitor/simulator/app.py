"""The simulator's HTTP face: UMIG admin endpoints for several environments, with faults applied.

Each environment lives under its own path, ``/{env}{prefix}/admin/health`` and so on, so one port
serves development, UAT and production side by side. Faults are decided by the pure ``faults.take``;
this module only carries them out on the wire.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from aiohttp import web

from umig_monitor.simulator.control import add_control_routes
from umig_monitor.simulator.documents import (
    LOGIN_PAGE_HTML,
    TEAMS,
    USERS,
    components_document,
    dev_status_document,
    error_document,
    health_document,
    huge_body,
    malformed_body,
    regenerate_document,
    version_document,
)
from umig_monitor.simulator.faults import Endpoint, Fault, FaultKind
from umig_monitor.simulator.keys import RELEASE_KEY, SIMULATOR_KEY
from umig_monitor.simulator.registry import Simulator

DEFAULT_PREFIX = "/rest/scriptrunner/latest/custom"

# Longer than any sane client timeout; shutdown releases held requests long before this.
TIMEOUT_HOLD_S = 3600.0
_CHUNK_BYTES = 64 * 1024
_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)*")

_ROUTES: Mapping[Endpoint, tuple[str, str]] = MappingProxyType(
    {
        Endpoint.HEALTH: ("GET", "/admin/health"),
        Endpoint.VERSION: ("GET", "/admin/version"),
        Endpoint.COMPONENTS: ("GET", "/admin/components"),
        Endpoint.DEV_STATUS: ("GET", "/admin/dev-status"),
        Endpoint.REGENERATE: ("POST", "/admin/test-data/regenerate"),
        Endpoint.TEAMS: ("GET", "/teams"),
        Endpoint.USERS: ("GET", "/users"),
    }
)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def normalise_prefix(prefix: str) -> str:
    """``rest/x/`` -> ``/rest/x``; ``""`` or ``/`` means the endpoints sit right under the environment."""
    stripped = prefix.strip("/")
    normalised = f"/{stripped}" if stripped else ""
    if not _PREFIX.fullmatch(normalised):
        raise ValueError(
            f"api prefix {prefix!r} may only hold path segments of letters, digits, '.', '_', '~', '-'"
        )
    return normalised


def build_app(simulator: Simulator, prefix: str = DEFAULT_PREFIX) -> web.Application:
    app = web.Application()
    app[SIMULATOR_KEY] = simulator
    app[RELEASE_KEY] = asyncio.Event()
    app.on_shutdown.append(_release_held_requests)
    add_control_routes(app)
    api_prefix = normalise_prefix(prefix)
    for endpoint, (method, path) in _ROUTES.items():
        app.router.add_route(method, f"/{{env}}{api_prefix}{path}", _endpoint_handler(endpoint))
    app.router.add_get("/{env}/login.jsp", _login_page, name="login")
    return app


async def _release_held_requests(app: web.Application) -> None:
    # Held (timeout / latency) requests wait on this, so stopping never waits out a fault.
    app[RELEASE_KEY].set()


def _endpoint_handler(endpoint: Endpoint) -> _Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        simulator = request.app[SIMULATOR_KEY]
        environment = request.match_info["env"]
        if environment not in simulator:
            return _json_error(404, f"no simulated environment {environment!r}")
        simulator.record_request(environment, endpoint)
        plan = simulator.take_faults(environment, endpoint)
        if plan.latency_ms and await _hold(request, plan.latency_ms / 1000):
            return _reset(request)
        if plan.response is not None:
            return await _fault_response(request, environment, endpoint, plan.response)
        if endpoint is Endpoint.REGENERATE:
            simulator.regenerate_test_data(environment)
        return web.json_response(_document(simulator, environment, endpoint))

    return handle


def _document(simulator: Simulator, environment: str, endpoint: Endpoint) -> Any:
    """The endpoint's normal answer. No side effects: faulted requests build it too."""
    state = simulator.state(environment)
    now = simulator.now()
    match endpoint:
        case Endpoint.HEALTH:
            return health_document(state, now)
        case Endpoint.VERSION:
            return version_document(environment, state)
        case Endpoint.COMPONENTS:
            return components_document(state)
        case Endpoint.DEV_STATUS:
            return dev_status_document(state)
        case Endpoint.REGENERATE:
            regenerations = simulator.request_counts(environment)[Endpoint.REGENERATE.value]
            return regenerate_document(environment, regenerations, now)
        case Endpoint.TEAMS:
            return list(TEAMS)
        case Endpoint.USERS:
            return list(USERS)


async def _fault_response(
    request: web.Request, environment: str, endpoint: Endpoint, fault: Fault
) -> web.StreamResponse:
    simulator = request.app[SIMULATOR_KEY]
    match fault.kind:
        case FaultKind.TIMEOUT:
            if await _hold(request, TIMEOUT_HOLD_S):
                return _reset(request)
            return _json_error(504, "simulated timeout elapsed")
        case FaultKind.HTTP_ERROR:
            return _json_error(fault.http_status, f"simulated HTTP {fault.http_status}")
        case FaultKind.AUTH_ERROR:
            headers = {"WWW-Authenticate": 'Basic realm="UMIG"'} if fault.http_status == 401 else {}
            reason = "authentication required" if fault.http_status == 401 else "permission denied"
            return _json_error(fault.http_status, reason, headers)
        case FaultKind.LOGIN_PAGE:
            return web.Response(text=LOGIN_PAGE_HTML, content_type="text/html")
        case FaultKind.MALFORMED_JSON:
            body = malformed_body(_document(simulator, environment, endpoint))
            return web.Response(body=body, content_type="application/json")
        case FaultKind.HUGE_BODY:
            body = huge_body(_document(simulator, environment, endpoint), fault.body_bytes)
            return await _stream(request, body)
        case FaultKind.CONNECTION_RESET:
            return _reset(request)
        case FaultKind.REDIRECT:
            login = request.app.router["login"].url_for(env=environment)
            location = login.with_query(os_destination=request.path_qs)
            return web.Response(status=fault.http_status, headers={"Location": str(location)})
        case FaultKind.LATENCY:  # pragma: no cover - take() never makes latency the response
            raise AssertionError("latency is applied as a delay, not a response")


async def _hold(request: web.Request, seconds: float) -> bool:
    """Wait ``seconds``; True if the simulator started stopping meanwhile."""
    try:
        await asyncio.wait_for(request.app[RELEASE_KEY].wait(), seconds)
    except TimeoutError:
        return False
    return True


def _reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection with a TCP reset and no response, as a crashed backend or proxy would."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns close() into an RST instead of an orderly FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # aiohttp needs a response object; writing it to the aborted transport is a no-op.
    return web.Response(status=500)


async def _stream(request: web.Request, body: bytes) -> web.StreamResponse:
    """Send ``body`` chunked, so a client only learns its size by reading it."""
    response = web.StreamResponse()
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for start in range(0, len(body), _CHUNK_BYTES):
            await response.write(body[start : start + _CHUNK_BYTES])
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped reading at its body limit, which is what this fault tests
    return response


async def _login_page(request: web.Request) -> web.Response:
    return web.Response(text=LOGIN_PAGE_HTML, content_type="text/html")


def _json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(error_document(status, message), status=status, headers=headers)
