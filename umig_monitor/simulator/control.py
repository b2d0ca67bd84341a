"""The ``/_control/`` HTTP API: change a running simulator's state and faults from outside the process.

The demo and any out-of-process test use it to deploy a new version, break a database or inject a
fault while umig-monitor watches. Input is untrusted: every failure is a 400 with a message that
names the field, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from umig_monitor.simulator.faults import FaultError, fault_to_json, parse_fault
from umig_monitor.simulator.keys import SIMULATOR_KEY
from umig_monitor.simulator.registry import Simulator
from umig_monitor.simulator.state import PatchError, validate_environment_name

CONTROL_PREFIX = "/_control"


def add_control_routes(app: web.Application) -> None:
    environment = f"{CONTROL_PREFIX}/environments/{{env}}"
    app.router.add_get(f"{CONTROL_PREFIX}/environments", _list_environments)
    app.router.add_get(environment, _get_environment)
    app.router.add_patch(environment, _patch_environment)
    app.router.add_delete(environment, _delete_environment)
    app.router.add_get(f"{environment}/faults", _list_faults)
    app.router.add_post(f"{environment}/faults", _add_fault)
    app.router.add_delete(f"{environment}/faults", _clear_faults)
    app.router.add_get(f"{environment}/requests", _request_counts)
    app.router.add_get(f"{CONTROL_PREFIX}/requests", _request_totals)
    app.router.add_post(f"{CONTROL_PREFIX}/reset", _reset)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request body as a JSON object, or the 400 to answer instead."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return _error(400, f"request body must be a JSON object, got {type(body).__name__}")
    return body


def _served(request: web.Request) -> tuple[Simulator, str] | web.Response:
    simulator = request.app[SIMULATOR_KEY]
    environment = request.match_info["env"]
    if environment not in simulator:
        return _error(404, f"unknown environment {environment!r}")
    return simulator, environment


async def _list_environments(request: web.Request) -> web.Response:
    simulator = request.app[SIMULATOR_KEY]
    return web.json_response(
        {"environments": {name: simulator.snapshot(name) for name in simulator.environments}}
    )


async def _get_environment(request: web.Request) -> web.Response:
    served = _served(request)
    if isinstance(served, web.Response):
        return served
    simulator, environment = served
    return web.json_response(simulator.snapshot(environment))


async def _patch_environment(request: web.Request) -> web.Response:
    """Merge fields into the environment's state, creating it from its preset if it is new."""
    simulator = request.app[SIMULATOR_KEY]
    environment = request.match_info["env"]
    try:
        validate_environment_name(environment)
    except ValueError as exc:
        return _error(400, str(exc))
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    created = environment not in simulator
    try:
        simulator.patch(environment, body)
    except PatchError as exc:
        return _error(400, str(exc))
    return web.json_response(simulator.snapshot(environment), status=201 if created else 200)


async def _delete_environment(request: web.Request) -> web.Response:
    served = _served(request)
    if isinstance(served, web.Response):
        return served
    simulator, environment = served
    simulator.remove(environment)
    return web.Response(status=204)


async def _list_faults(request: web.Request) -> web.Response:
    served = _served(request)
    if isinstance(served, web.Response):
        return served
    simulator, environment = served
    return web.json_response({"faults": [fault_to_json(f) for f in simulator.faults(environment)]})


async def _add_fault(request: web.Request) -> web.Response:
    served = _served(request)
    if isinstance(served, web.Response):
        return served
    simulator, environment = served
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        fault = parse_fault(body)
    except FaultError as exc:
        return _error(400, str(exc))
    simulator.add_fault(environment, fault)
    faults = [fault_to_json(f) for f in simulator.faults(environment)]
    return web.json_response({"fault": fault_to_json(fault), "faults": faults}, status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    served = _served(request)
    if isinstance(served, web.Response):
        return served
    simulator, environment = served
    return web.json_response({"cleared": simulator.clear_faults(environment)})


async def _request_counts(request: web.Request) -> web.Response:
    served = _served(request)
    if isinstance(served, web.Response):
        return served
    simulator, environment = served
    return web.json_response({"environment": environment, "requests": simulator.request_counts(environment)})


async def _request_totals(request: web.Request) -> web.Response:
    """Requests per endpoint over all environments: a few bytes where the listing of 10,000
    environments is 13 MB (a load generator asks it before and after its window)."""
    return web.json_response({"requests": request.app[SIMULATOR_KEY].request_totals()})


async def _reset(request: web.Request) -> web.Response:
    simulator = request.app[SIMULATOR_KEY]
    simulator.reset()
    return web.json_response({"environments": list(simulator.environments)})
