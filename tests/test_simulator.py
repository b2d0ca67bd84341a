"""The UMIG simulator: wire shapes against the guide's jq paths, faults, control API, lifecycle.

Pure rules (uptime text, fault choice, patches) are tested as tables; everything else against a
real simulator on a free port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from umig_monitor.simulator import (
    Endpoint,
    Fault,
    FaultError,
    FaultKind,
    PatchError,
    RunningSimulator,
    Simulator,
    UnknownEnvironmentError,
    format_uptime,
    parse_fault,
    preset,
    serve,
    start_simulator,
)
from umig_monitor.simulator.faults import FaultPlan, take
from umig_monitor.simulator.state import apply_patch

ENVIRONMENTS = ("development", "uat", "production")
T0 = datetime(2024, 10, 27, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(ENVIRONMENTS, simulator=Simulator(ENVIRONMENTS, clock=clock))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(http: aiohttp.ClientSession, url: str, method: str = "GET", **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


def jq(document: Any, expression: str) -> Any:
    """The few jq forms the guide uses: ``.a.b``, ``X | length``, ``X | keys``, ``X | to_entries[] .k``."""
    path, _, operation = (part.strip() for part in expression.partition("|"))
    value = document
    for key in filter(None, path.split(".")):
        value = value[key]
    if operation == "length":
        return len(value)
    if operation == "keys":
        return sorted(value)
    if operation.startswith("to_entries[]"):
        rest = operation.removeprefix("to_entries[]").strip()
        return [jq({"key": k, "value": v}, rest) for k, v in value.items()]
    assert not operation, operation
    return value


# --- pure rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uptime", "text"),
    [
        (timedelta(0), "0m"),
        (timedelta(seconds=59), "0m"),
        (timedelta(minutes=7), "7m"),
        (timedelta(hours=2, minutes=45), "2h 45m"),
        (timedelta(hours=3), "3h 0m"),
        (timedelta(days=1, hours=2, minutes=15), "1d 2h 15m"),
        (timedelta(days=5, hours=7, minutes=45, seconds=30), "5d 7h 45m"),
        (timedelta(days=2), "2d 0h 0m"),
    ],
)
def test_uptime_is_formatted_like_the_guide(uptime: timedelta, text: str) -> None:
    assert format_uptime(uptime) == text


HTTP_500 = Fault(FaultKind.HTTP_ERROR)
HEALTH_401 = Fault(FaultKind.AUTH_ERROR, endpoint=Endpoint.HEALTH)
SLOW = Fault(FaultKind.LATENCY, latency_ms=100)
SLOW_TWICE = Fault(FaultKind.LATENCY, latency_ms=50, count=2)
RESET_ONCE = Fault(FaultKind.CONNECTION_RESET, count=1)


@pytest.mark.parametrize(
    ("faults", "endpoint", "plan", "kept"),
    [
        ((), Endpoint.HEALTH, FaultPlan(), ()),
        ((HTTP_500,), Endpoint.TEAMS, FaultPlan(response=HTTP_500), (HTTP_500,)),
        ((HEALTH_401,), Endpoint.VERSION, FaultPlan(), (HEALTH_401,)),
        ((HEALTH_401, HTTP_500), Endpoint.HEALTH, FaultPlan(response=HEALTH_401), (HEALTH_401, HTTP_500)),
        ((RESET_ONCE, HTTP_500), Endpoint.HEALTH, FaultPlan(response=RESET_ONCE), (HTTP_500,)),
        (
            (SLOW, SLOW_TWICE, HTTP_500),
            Endpoint.USERS,
            FaultPlan(latency_ms=150, response=HTTP_500),
            (SLOW, Fault(FaultKind.LATENCY, latency_ms=50, count=1), HTTP_500),
        ),
        # A fault that did not apply is not counted down.
        ((HTTP_500, RESET_ONCE), Endpoint.HEALTH, FaultPlan(response=HTTP_500), (HTTP_500, RESET_ONCE)),
    ],
)
def test_take_chooses_and_counts_down_faults(
    faults: tuple[Fault, ...], endpoint: Endpoint, plan: FaultPlan, kept: tuple[Fault, ...]
) -> None:
    assert take(faults, endpoint) == (plan, kept)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON object"),
        ({}, "kind:"),
        ({"kind": "explode"}, "kind: expected one of latency, timeout"),
        ({"kind": "http_error", "status": 200}, "status: expected 400..599"),
        ({"kind": "http_error", "status": "500"}, "status: expected an integer"),
        ({"kind": "auth_error", "status": 500}, "status: expected 401 or 403"),
        ({"kind": "redirect", "status": 200}, "status: expected one of"),
        ({"kind": "timeout", "status": 504}, "status: not used by kind 'timeout'"),
        ({"kind": "latency"}, "latency_ms: required"),
        ({"kind": "latency", "latency_ms": 0}, "latency_ms: expected 1.."),
        ({"kind": "timeout", "latency_ms": 5}, "latency_ms: required for kind 'latency'"),
        ({"kind": "http_error", "count": 0}, "count: expected a positive integer"),
        ({"kind": "http_error", "count": True}, "count: expected an integer"),
        ({"kind": "http_error", "endpoint": "nope"}, "endpoint: expected one of health"),
        ({"kind": "huge_body", "size_bytes": 10}, "size_bytes: expected 1024.."),
        ({"kind": "login_page", "size_bytes": 4096}, "size_bytes: not used"),
        ({"kind": "http_error", "extra": 1}, "unknown field(s) extra"),
    ],
)
def test_bad_faults_are_refused_with_the_field_named(body: object, message: str) -> None:
    with pytest.raises(FaultError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_fault(body)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"bogus": 1}, "unknown field(s) bogus"),
        ({"version": ""}, "version: expected a non-empty string"),
        ({"active_users": -1}, "active_users: expected a non-negative integer"),
        ({"database_connections": "many"}, "database_connections: expected a non-negative integer"),
        ({"database_connections": True}, "database_connections: expected a non-negative integer"),
        ({"error_rate": 2}, "error_rate: expected a number between 0 and 1"),
        ({"deployed_at": "yesterday"}, "deployed_at: expected an ISO 8601 timestamp"),
        (
            {"deployed_at": "2024-10-20T09:00:00"},
            "deployed_at: expected an ISO 8601 timestamp with a timezone",
        ),
        ({"features": "x"}, "features: expected a list of strings"),
        ({"features": ["ok", 3]}, r"features\[1\]: expected a non-empty string"),
        ({"debug_enabled": "yes"}, "debug_enabled: expected true or false"),
        ({"services": ["emailService"]}, "services: expected an object"),
        ({"services": {"emailService": 1}}, "services.emailService: expected a non-empty string"),
        ({"uptime_seconds": 5, "started_at": "2024-10-20T09:00:00Z"}, "give either uptime_seconds"),
    ],
)
def test_bad_patches_are_refused_with_the_field_named(patch: dict[str, object], message: str) -> None:
    with pytest.raises(PatchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_patch(preset("production", T0), patch, T0)


def test_patch_merges_services_and_moves_uptime() -> None:
    state = apply_patch(
        preset("production", T0),
        {
            "services": {"emailService": "down", "auditService": None, "newService": "active"},
            "uptime_seconds": 90,
        },
        T0,
    )
    expected = {"authenticationService": "active", "emailService": "down", "importService": "active"}
    assert state.services == expected | {"newService": "active"}
    assert format_uptime(state.uptime(T0)) == "1m"


@pytest.mark.parametrize(
    ("name", "version", "components", "uptime"),
    [
        ("development", "1.3.0-dev+ci.1245", ("032-dev", "2.4.0-dev", "1.3.0-dev", "1.3.0-dev"), "2h 45m"),
        ("uat", "1.2.0-rc.2", ("031", "2.3.1", "1.2.0", "1.2.0"), "1d 2h 15m"),
        ("production", "1.1.2", ("030", "2.3.0", "1.1.2", "1.1.2"), "5d 7h 45m"),
        ("hotfix", "1.1.3+hotfix.1", ("030", "2.3.0", "1.1.3", "1.1.3"), "3h 10m"),
        ("staging", "1.1.2", ("030", "2.3.0", "1.1.2", "1.1.2"), "5d 7h 45m"),
    ],
)
def test_presets_follow_the_guides_environment_status(
    name: str, version: str, components: tuple[str, str, str, str], uptime: str
) -> None:
    state = preset(name, T0)
    assert state.version == version
    assert (state.database_version, state.api_version, state.ui_version, state.backend_version) == components
    assert format_uptime(state.uptime(T0)) == uptime


def test_python_api_guards_unknown_environments() -> None:
    simulator = Simulator(["uat"])
    with pytest.raises(UnknownEnvironmentError, match="unknown environment 'prod'"):
        simulator.add_fault("prod", HTTP_500)
    with pytest.raises(ValueError, match="environment name"):
        Simulator(["no spaces"])


# --- wire shapes -----------------------------------------------------------------------------------

GUIDE_PATHS = [
    ("admin/health", ".umig.status", "healthy"),
    ("admin/health", ".umig.version", "1.1.2"),
    ("admin/health", ".umig.uptime", "5d 7h 45m"),
    ("admin/health", ".components | to_entries[] .key", ["database", "api", "ui", "authentication"]),
    ("admin/health", ".components | to_entries[] .value.status", ["healthy"] * 4),
    ("admin/health", ".components.database.status", "healthy"),
    ("admin/health", ".components.database.connections", 12),
    ("admin/health", ".components.database.responseTime", 25),
    ("admin/health", ".metrics.errorRate", 0.01),
    ("admin/health", ".metrics.activeUsers", 42),
    ("admin/health", ".metrics.responseTime", 180),
    ("admin/version", ".umig.version", "1.1.2"),
    ("admin/version", ".umig.build", "1170"),
    ("admin/version", ".umig.buildDate", "2024-10-19T16:20:44Z"),
    ("admin/version", ".components.database.version", "030"),
    ("admin/version", ".components.api.version", "2.3.0"),
    ("admin/version", ".components.ui.version", "1.1.2"),
    ("admin/version", ".components.backend.version", "1.1.2"),
    ("admin/version", ".deployment.environment", "production"),
    ("admin/version", ".deployment.deployedAt", "2024-10-20T09:00:00Z"),
    ("admin/version", ".deployment.deployedBy", "deployment-automation"),
    ("admin/components", ".orchestrator.status", "active"),
    ("admin/components", ".entityManagers | length", 8),
    (
        "admin/components",
        ".services | keys",
        ["auditService", "authenticationService", "emailService", "importService"],
    ),
    ("admin/components", ".repositories.status", "healthy"),
    ("admin/dev-status", ".features | length", 0),
    ("admin/dev-status", ".testData.status", "ready"),
    ("admin/dev-status", ".debug.enabled", False),
]


@pytest.mark.parametrize(("path", "expression", "expected"), GUIDE_PATHS)
async def test_documents_answer_the_guides_jq_paths(
    sim: RunningSimulator, http: aiohttp.ClientSession, path: str, expression: str, expected: object
) -> None:
    status, body = await fetch(http, sim.api_url("production", path))
    assert status == 200
    assert jq(body, expression) == expected


@pytest.mark.parametrize("path", ["teams", "users"])
async def test_teams_and_users_are_lists_of_objects(
    sim: RunningSimulator, http: aiohttp.ClientSession, path: str
) -> None:
    status, body = await fetch(http, sim.api_url("uat", path))
    assert status == 200
    assert body
    assert all(isinstance(item, dict) and "id" in item for item in body)


async def test_uptime_advances_with_the_clock(
    sim: RunningSimulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    clock.now += timedelta(minutes=20)
    _, body = await fetch(http, sim.api_url("production", "admin/health"))
    assert jq(body, ".umig.uptime") == "5d 8h 5m"


async def test_unknown_environment_is_404(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    status, body = await fetch(http, sim.api_url("staging", "admin/health"))
    assert status == 404
    assert "staging" in body["errorMessages"][0]


async def test_environments_are_independent(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("uat", HTTP_500)
    sim.simulator.update("development", version="1.3.0-dev+ci.1300")
    results = {env: await fetch(http, sim.api_url(env, "admin/version")) for env in ENVIRONMENTS}
    assert results["uat"][0] == 500
    assert results["development"] == (200, results["development"][1])
    assert jq(results["development"][1], ".umig.version") == "1.3.0-dev+ci.1300"
    assert jq(results["production"][1], ".umig.version") == "1.1.2"
    assert jq(results["production"][1], ".deployment.environment") == "production"
    assert sim.simulator.request_counts("production")["version"] == 1
    assert sim.simulator.request_counts("development")["health"] == 0


@pytest.mark.parametrize("prefix", ["", "/custom/api/", "rest/x"])
async def test_api_prefix_is_configurable(http: aiohttp.ClientSession, prefix: str) -> None:
    async with await start_simulator(["uat"], prefix=prefix) as running:
        assert running.api_prefix == ("/" + prefix.strip("/") if prefix.strip("/") else "")
        status, body = await fetch(http, running.api_url("uat", "admin/health"))
    assert (status, jq(body, ".umig.version")) == (200, "1.2.0-rc.2")


async def test_bad_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="api prefix"):
        await start_simulator(["uat"], prefix="/{env}")


# --- faults on the wire ------------------------------------------------------------------------------


async def test_latency_delays_a_normal_answer(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("production", Fault(FaultKind.LATENCY, latency_ms=300))
    started = time.monotonic()
    status, body = await fetch(http, sim.api_url("production", "admin/health"))
    assert time.monotonic() - started >= 0.3
    assert (status, jq(body, ".umig.status")) == (200, "healthy")


async def test_timeout_outlasts_the_client(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("production", Fault(FaultKind.TIMEOUT))
    with pytest.raises(TimeoutError):
        await fetch(http, sim.api_url("production", "admin/health"), timeout=aiohttp.ClientTimeout(total=0.3))


async def test_stopping_releases_held_requests_at_once(http: aiohttp.ClientSession) -> None:
    running = await start_simulator(["production"])
    running.simulator.add_fault("production", Fault(FaultKind.TIMEOUT))
    held = asyncio.create_task(fetch(http, running.api_url("production", "admin/health")))
    for _ in range(500):  # until the server holds it
        if running.simulator.request_counts("production")["health"]:
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await running.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(aiohttp.ClientConnectionError):
        await held
    await running.stop()  # idempotent


@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [
        (Fault(FaultKind.HTTP_ERROR), 500, "application/json"),
        (Fault(FaultKind.HTTP_ERROR, status=503), 503, "application/json"),
        (Fault(FaultKind.AUTH_ERROR), 401, "application/json"),
        (Fault(FaultKind.AUTH_ERROR, status=403), 403, "application/json"),
        (Fault(FaultKind.LOGIN_PAGE), 200, "text/html"),
        (Fault(FaultKind.REDIRECT), 302, "application/octet-stream"),
        (Fault(FaultKind.REDIRECT, status=307), 307, "application/octet-stream"),
    ],
)
async def test_error_faults_answer_with_their_status(
    sim: RunningSimulator, http: aiohttp.ClientSession, fault: Fault, status: int, content_type: str
) -> None:
    sim.simulator.add_fault("uat", fault)
    async with http.get(sim.api_url("uat", "admin/health"), allow_redirects=False) as response:
        assert (response.status, response.content_type) == (status, content_type)
        text = await response.text()
    if fault.kind is FaultKind.AUTH_ERROR:
        assert ("WWW-Authenticate" in response.headers) == (status == 401)
    if content_type == "application/json":
        assert json.loads(text)["status"] == status
    if fault.kind is FaultKind.LOGIN_PAGE:
        assert 'id="loginform"' in text


async def test_redirect_leads_to_an_html_login_page(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.REDIRECT))
    async with http.get(sim.api_url("uat", "admin/health")) as response:
        assert [r.status for r in response.history] == [302]
        assert response.url.path == "/uat/login.jsp"
        assert response.url.query["os_destination"].endswith("/admin/health")
        assert (response.status, response.content_type) == (200, "text/html")
        with pytest.raises(aiohttp.ContentTypeError):
            await response.json()


async def test_malformed_json_claims_to_be_json(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.MALFORMED_JSON))
    async with http.get(sim.api_url("uat", "admin/version")) as response:
        assert (response.status, response.content_type) == (200, "application/json")
        text = await response.text()
    assert text.startswith('{"umig"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_huge_body_is_streamed_valid_json(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.HUGE_BODY))
    async with http.get(sim.api_url("uat", "admin/health")) as response:
        assert response.status == 200
        assert response.content_length is None
        assert response.headers["Transfer-Encoding"] == "chunked"
        body = await response.read()
    assert len(body) == 5 * 1024 * 1024
    assert jq(json.loads(body), ".umig.version") == "1.2.0-rc.2"


async def test_client_may_stop_reading_a_huge_body(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.HUGE_BODY, size_bytes=8 * 1024 * 1024, count=1))
    async with http.get(sim.api_url("uat", "admin/health")) as response:
        head = await response.content.read(64 * 1024)
        response.close()
    assert head.startswith(b'{"umig"')
    status, _ = await fetch(http, sim.api_url("uat", "admin/health"))
    assert status == 200


async def test_connection_reset_gives_no_response(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.CONNECTION_RESET, count=2))
    # aiohttp (3.14) retries an idempotent request once after a reset, hence two faults for one GET.
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(http, sim.api_url("uat", "admin/health"))
    assert sim.simulator.request_counts("uat")["health"] == 2
    assert (await fetch(http, sim.api_url("uat", "admin/health")))[0] == 200


async def test_connection_reset_is_a_tcp_reset(sim: RunningSimulator) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.CONNECTION_RESET))
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    try:
        path = sim.api_url("uat", "admin/health").removeprefix(sim.url)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        with pytest.raises(ConnectionResetError):
            await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_fault_restricted_to_one_endpoint(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.HTTP_ERROR, endpoint=Endpoint.TEAMS))
    assert (await fetch(http, sim.api_url("uat", "teams")))[0] == 500
    assert (await fetch(http, sim.api_url("uat", "users")))[0] == 200
    assert (await fetch(http, sim.api_url("uat", "admin/health")))[0] == 200


async def test_fault_for_the_next_n_requests(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.simulator.add_fault("uat", Fault(FaultKind.HTTP_ERROR, status=502, count=2))
    statuses = [(await fetch(http, sim.api_url("uat", "admin/health")))[0] for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert sim.simulator.faults("uat") == ()


# --- regeneration ------------------------------------------------------------------------------------


async def test_regenerate_counts_and_heals_the_database(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.simulator.update("development", database_status="unhealthy", test_data_status="stale")
    _, health = await fetch(http, sim.api_url("development", "admin/health"))
    assert jq(health, ".umig.status") == "degraded"
    assert jq(health, ".components.database.status") == "unhealthy"

    status, ack = await fetch(http, sim.api_url("development", "admin/test-data/regenerate"), method="POST")
    assert (status, ack["status"], ack["regenerations"]) == (200, "accepted", 1)

    _, health = await fetch(http, sim.api_url("development", "admin/health"))
    _, dev = await fetch(http, sim.api_url("development", "admin/dev-status"))
    assert jq(health, ".umig.status") == "healthy"
    assert jq(health, ".components.database.status") == "healthy"
    assert jq(dev, ".testData.status") == "ready"
    _, counts = await fetch(http, sim.control_url("environments/development/requests"))
    assert counts["requests"]["regenerate"] == 1
    assert counts["requests"]["health"] == 2


async def test_failed_regeneration_counts_but_does_not_heal(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.simulator.update("development", database_status="unhealthy")
    sim.simulator.add_fault("development", Fault(FaultKind.HTTP_ERROR, endpoint=Endpoint.REGENERATE, count=1))
    url = sim.api_url("development", "admin/test-data/regenerate")
    assert (await fetch(http, url, method="POST"))[0] == 500
    assert sim.simulator.state("development").database_status == "unhealthy"
    assert (await fetch(http, url, method="POST"))[1]["regenerations"] == 2
    assert sim.simulator.state("development").database_status == "healthy"


async def test_explicit_umig_status_overrides_the_derived_one(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.simulator.update("production", status="maintenance")
    _, health = await fetch(http, sim.api_url("production", "admin/health"))
    assert jq(health, ".umig.status") == "maintenance"


# --- control API -------------------------------------------------------------------------------------


async def test_control_lists_every_environment(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    status, body = await fetch(http, sim.control_url("environments"))
    assert status == 200
    assert list(body["environments"]) == list(ENVIRONMENTS)
    uat = body["environments"]["uat"]
    assert uat["state"]["version"] == "1.2.0-rc.2"
    assert uat["derived"] == {"effective_status": "healthy", "uptime": "1d 2h 15m", "uptime_seconds": 94500}
    assert uat["state"]["deployed_at"] == "2024-10-24T14:30:00Z"
    assert uat["faults"] == []
    assert uat["requests"] == {endpoint.value: 0 for endpoint in Endpoint}


async def test_control_totals_sum_every_environments_requests(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, before = await fetch(http, sim.control_url("requests"))
    assert before == {"requests": {endpoint.value: 0 for endpoint in Endpoint}}
    for env in ("uat", "uat", "production"):
        await fetch(http, sim.api_url(env, "admin/health"))
    await fetch(http, sim.api_url("production", "admin/version"))
    status, after = await fetch(http, sim.control_url("requests"))
    _, listing = await fetch(http, sim.control_url("environments"))
    summed = {
        endpoint.value: sum(e["requests"][endpoint.value] for e in listing["environments"].values())
        for endpoint in Endpoint
    }
    assert status == 200
    assert after["requests"] == summed
    assert (after["requests"]["health"], after["requests"]["version"]) == (3, 1)


async def test_control_patch_round_trips_to_the_endpoints(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    patch = {
        "version": "1.2.0",
        "build": "1201",
        "ui_version": "1.2.0",
        "backend_version": "1.2.1",
        "deployed_at": "2024-10-28T08:00:00+01:00",
        "database_connections": 95,
        "error_rate": 0.08,
        "services": {"emailService": "degraded"},
        "orchestrator_status": "inactive",
        "features": ["a", "b", "c"],
        "debug_enabled": True,
        "uptime_seconds": 300,
    }
    status, snapshot = await fetch(http, sim.control_url("environments/uat"), method="PATCH", json=patch)
    assert status == 200
    assert snapshot["state"]["deployed_at"] == "2024-10-28T07:00:00Z"
    assert snapshot["state"]["services"]["authenticationService"] == "active"

    _, health = await fetch(http, sim.api_url("uat", "admin/health"))
    _, version = await fetch(http, sim.api_url("uat", "admin/version"))
    _, components = await fetch(http, sim.api_url("uat", "admin/components"))
    _, dev = await fetch(http, sim.api_url("uat", "admin/dev-status"))
    assert (jq(health, ".umig.version"), jq(health, ".umig.uptime")) == ("1.2.0", "5m")
    assert (jq(health, ".components.database.connections"), jq(health, ".metrics.errorRate")) == (95, 0.08)
    assert (jq(version, ".umig.build"), jq(version, ".components.backend.version")) == ("1201", "1.2.1")
    assert jq(version, ".deployment.deployedAt") == "2024-10-28T07:00:00Z"
    assert jq(components, ".orchestrator.status") == "inactive"
    assert jq(components, ".services.emailService.status") == "degraded"
    assert (jq(dev, ".features | length"), jq(dev, ".debug.enabled")) == (3, True)
    _, again = await fetch(http, sim.control_url("environments/uat"))
    assert again["state"] == snapshot["state"]
    assert again["derived"]["uptime"] == "5m"


async def test_control_state_can_be_patched_back_as_is(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    _, uat = await fetch(http, sim.control_url("environments/uat"))
    status, copied = await fetch(
        http, sim.control_url("environments/production"), method="PATCH", json=uat["state"]
    )
    assert status == 200
    assert copied["state"] == uat["state"]
    assert sim.simulator.state("production") == sim.simulator.state("uat")
    _, version = await fetch(http, sim.api_url("production", "admin/version"))
    assert (jq(version, ".umig.version"), jq(version, ".deployment.environment")) == (
        "1.2.0-rc.2",
        "production",
    )


async def test_control_patch_creates_and_delete_removes(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    url = sim.control_url("environments/hotfix")
    assert (await fetch(http, url))[0] == 404
    status, created = await fetch(http, url, method="PATCH", json={"deployed_by": "alice"})
    assert (status, created["state"]["version"], created["state"]["deployed_by"]) == (
        201,
        "1.1.3+hotfix.1",
        "alice",
    )
    assert (await fetch(http, sim.api_url("hotfix", "admin/health")))[0] == 200

    status, staging = await fetch(http, sim.control_url("environments/staging"), method="PATCH", json={})
    assert (status, staging["state"]["version"]) == (201, "1.1.2")

    async with http.delete(url) as response:
        assert response.status == 204
    assert (await fetch(http, sim.api_url("hotfix", "admin/health")))[0] == 404
    assert (await fetch(http, url, method="DELETE"))[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("PATCH", "environments/uat", {"active_users": -1}, "active_users: expected a non-negative integer"),
        ("PATCH", "environments/uat", {"bogus": True}, "unknown field(s) bogus"),
        ("PATCH", "environments/uat", "not json", "request body is not valid JSON"),
        ("PATCH", "environments/uat", [1, 2], "request body must be a JSON object"),
        ("PATCH", "environments/-bad", {}, "environment name '-bad'"),
        ("POST", "environments/uat/faults", {"kind": "explode"}, "kind: expected one of"),
        ("POST", "environments/uat/faults", {"kind": "auth_error", "status": 500}, "expected 401 or 403"),
        ("POST", "environments/uat/faults", "", "request body is not valid JSON"),
    ],
)
async def test_control_refuses_bad_input_with_400(
    sim: RunningSimulator, http: aiohttp.ClientSession, method: str, path: str, body: object, message: str
) -> None:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    status, answer = await fetch(http, sim.control_url(path), method=method, data=data)
    assert status == 400
    assert message in answer["error"]
    assert sim.simulator.state("uat") == preset("uat", T0)
    assert sim.simulator.faults("uat") == ()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "environments/nowhere"),
        ("DELETE", "environments/nowhere"),
        ("GET", "environments/nowhere/faults"),
        ("POST", "environments/nowhere/faults"),
        ("DELETE", "environments/nowhere/faults"),
        ("GET", "environments/nowhere/requests"),
    ],
)
async def test_control_unknown_environment_is_404(
    sim: RunningSimulator, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    status, answer = await fetch(http, sim.control_url(path), method=method, json={"kind": "timeout"})
    assert status == 404
    assert "nowhere" in answer["error"]


async def test_control_faults_round_trip(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    faults_url = sim.control_url("environments/production/faults")
    fault = {"kind": "http_error", "status": 503, "endpoint": "health", "count": 3}
    status, added = await fetch(http, faults_url, method="POST", json=fault)
    assert (status, added["fault"], added["faults"]) == (201, fault, [fault])
    assert (await fetch(http, sim.api_url("production", "admin/health")))[0] == 503
    assert (await fetch(http, sim.api_url("production", "admin/version")))[0] == 200

    _, listed = await fetch(http, faults_url)
    assert listed["faults"] == [fault | {"count": 2}]
    assert (await fetch(http, faults_url, method="DELETE")) == (200, {"cleared": 1})
    assert (await fetch(http, sim.api_url("production", "admin/health")))[0] == 200


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"kind": "http_error"}, 500),
        ({"kind": "auth_error", "status": 403}, 403),
        ({"kind": "redirect"}, 200),  # followed to the login page
        ({"kind": "login_page"}, 200),
    ],
)
async def test_control_faults_reach_the_wire(
    sim: RunningSimulator, http: aiohttp.ClientSession, fault: dict[str, object], status: int
) -> None:
    await fetch(http, sim.control_url("environments/uat/faults"), method="POST", json=fault)
    assert (await fetch(http, sim.api_url("uat", "users")))[0] == status


async def test_control_request_counts(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    for path in ("admin/health", "admin/health", "teams", "admin/dev-status"):
        await fetch(http, sim.api_url("uat", path))
    await fetch(http, sim.api_url("uat", "admin/test-data/regenerate"), method="POST")
    status, body = await fetch(http, sim.control_url("environments/uat/requests"))
    assert status == 200
    assert body == {
        "environment": "uat",
        "requests": {
            "health": 2,
            "version": 0,
            "components": 0,
            "dev-status": 1,
            "regenerate": 1,
            "teams": 1,
            "users": 0,
        },
    }


async def test_control_reset_restores_the_starting_point(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    await fetch(http, sim.control_url("environments/uat"), method="PATCH", json={"version": "9.9.9"})
    await fetch(http, sim.control_url("environments/extra"), method="PATCH", json={})
    await fetch(
        http, sim.control_url("environments/production/faults"), method="POST", json={"kind": "timeout"}
    )
    await fetch(http, sim.api_url("uat", "admin/health"))

    status, body = await fetch(http, sim.control_url("reset"), method="POST")
    assert (status, body) == (200, {"environments": list(ENVIRONMENTS)})
    assert sim.simulator.state("uat") == preset("uat", T0)
    assert sim.simulator.faults("production") == ()
    assert sim.simulator.request_counts("uat")["health"] == 0


# --- serving -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_serve_runs_until_cancelled(http: aiohttp.ClientSession) -> None:
    port = free_port()
    task = asyncio.create_task(
        serve(["development", "uat"], "127.0.0.1", port, "/rest/scriptrunner/latest/custom")
    )
    url = f"http://127.0.0.1:{port}/uat/rest/scriptrunner/latest/custom/admin/health"
    for _ in range(200):
        try:
            status, body = await fetch(http, url)
            break
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.01)
    else:
        pytest.fail("serve() never started listening")
    assert (status, jq(body, ".umig.version")) == (200, "1.2.0-rc.2")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(http, url)


async def test_running_simulator_urls(sim: RunningSimulator) -> None:
    assert sim.url == f"http://127.0.0.1:{sim.port}"
    assert sim.base_url("uat") == f"{sim.url}/uat"
    assert (
        sim.api_url("uat", "/admin/health") == f"{sim.url}/uat/rest/scriptrunner/latest/custom/admin/health"
    )
    assert sim.control_url() == f"{sim.url}/_control"
    assert sim.control_url("reset") == f"{sim.url}/_control/reset"
