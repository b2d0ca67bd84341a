"""Every fault the simulator can inject gives the right outcome, and nothing raises."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from tests.support import free_port, serving, until
from umig_monitor.config import Environment, parse_config
from umig_monitor.core.assess import Thresholds, assess
from umig_monitor.core.health import Outcome
from umig_monitor.probes.client import fetch_json, make_session
from umig_monitor.probes.umig import probe_environment
from umig_monitor.simulator import Fault, FaultKind, RunningSimulator


def environment(base_url: str, **extra: str) -> Environment:
    lines = "".join(f"    {k}: {v}\n" for k, v in {"timeout": "1s", **extra}.items())
    return parse_config(f"environments:\n  e:\n    base_url: {base_url}\n{lines}").environments["e"]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = make_session(parse_config(""))
    try:
        yield s
    finally:
        await s.close()


async def poll(session: aiohttp.ClientSession, env: Environment) -> tuple[Outcome, str | None]:
    docs, _ = await probe_environment(session, env)
    sample, _ = assess("e", datetime.now(UTC), docs, Thresholds())
    return sample.outcome, sample.error


@pytest.mark.parametrize(
    ("fault", "outcome", "detail"),
    [
        (Fault(FaultKind("latency"), latency_ms=200), Outcome.HEALTHY, None),
        (Fault(FaultKind("timeout")), Outcome.TIMEOUT, "no answer within 1s"),
        (Fault(FaultKind("http_error"), status=503), Outcome.HTTP_ERROR, "HTTP 503"),
        (Fault(FaultKind("http_error"), status=500), Outcome.HTTP_ERROR, "HTTP 500"),
        (Fault(FaultKind("auth_error"), status=401), Outcome.AUTH_ERROR, "HTTP 401"),
        (Fault(FaultKind("auth_error"), status=403), Outcome.AUTH_ERROR, "HTTP 403"),
        (Fault(FaultKind("login_page")), Outcome.INVALID_RESPONSE, "HTML page"),
        (Fault(FaultKind("malformed_json")), Outcome.INVALID_RESPONSE, "malformed JSON"),
        (Fault(FaultKind("huge_body")), Outcome.INVALID_RESPONSE, "exceeds 1048576 bytes"),
        (Fault(FaultKind("connection_reset")), Outcome.UNREACHABLE, None),
        (Fault(FaultKind("redirect")), Outcome.AUTH_ERROR, "redirect to"),
    ],
    ids=lambda v: v.kind.value if isinstance(v, Fault) else None,
)
async def test_fault_outcomes(
    simulator: RunningSimulator,
    session: aiohttp.ClientSession,
    fault: Fault,
    outcome: Outcome,
    detail: str | None,
) -> None:
    simulator.simulator.add_fault("production", fault)
    got, error = await poll(session, environment(simulator.base_url("production")))
    assert got is outcome, error
    if detail:
        assert error is not None
        assert detail in error
    # The other environments are not affected.
    assert (await poll(session, environment(simulator.base_url("uat"))))[0] is Outcome.HEALTHY


async def test_unhealthy_status(simulator: RunningSimulator, session: aiohttp.ClientSession) -> None:
    simulator.simulator.update("production", status="unhealthy")
    assert (await poll(session, environment(simulator.base_url("production"))))[0] is Outcome.UNHEALTHY


async def test_degraded_component(simulator: RunningSimulator, session: aiohttp.ClientSession) -> None:
    simulator.simulator.update("production", status="healthy", api_status="degraded")
    outcome, error = await poll(session, environment(simulator.base_url("production")))
    assert outcome is Outcome.DEGRADED
    assert error is not None
    assert "api" in error


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    outcome, error = await poll(session, environment(f"http://127.0.0.1:{free_port()}/production"))
    assert outcome is Outcome.UNREACHABLE
    assert error is not None
    assert "connection failed" in error


async def test_tls_failure_is_unreachable(
    simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    # TLS spoken to a plain-HTTP port fails the handshake.
    env = environment(simulator.base_url("production").replace("http://", "https://"))
    outcome, error = await poll(session, env)
    assert outcome is Outcome.UNREACHABLE
    assert error is not None
    assert "TLS" in error or "SSL" in error or "connection" in error


async def test_body_limit_is_configurable(
    simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    env = environment(simulator.base_url("production"), max_body_bytes="2048")
    simulator.simulator.add_fault("production", Fault(FaultKind("huge_body"), size_bytes=4096))
    outcome, error = await poll(session, env)
    assert outcome is Outcome.INVALID_RESPONSE
    assert error is not None
    assert "2048" in error


async def test_auth_headers_are_sent(tmp_path: object) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"umig": {"status": "healthy", "version": "1.1.2"}})

    app = web.Application()
    app.router.add_get("/p/admin/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = make_session(parse_config(""))
    try:
        basic = environment(
            f"http://127.0.0.1:{port}",
            api_prefix="/p",
            auth="{type: basic, username: monitor, password: s3cret}",
        )
        assert (await poll(session, basic))[0] is Outcome.HEALTHY
        bearer = environment(f"http://127.0.0.1:{port}", api_prefix="/p", auth="{type: bearer, token: tok}")
        await fetch_json(session, bearer, "/admin/health")
    finally:
        await session.close()
        await runner.cleanup()
    assert seen[0] == "Basic " + base64.b64encode(b"monitor:s3cret").decode()
    assert seen[-1] == "Bearer tok"


async def test_unreadable_password_file_is_auth_error(
    session: aiohttp.ClientSession, tmp_path: object
) -> None:
    env = environment("http://127.0.0.1:1", auth="{type: basic, username: u, password_file: /nonexistent/pw}")
    outcome, error = await poll(session, env)
    assert outcome is Outcome.AUTH_ERROR
    assert error is not None
    assert "cannot read secret file" in error


async def test_many_concurrent_polls_do_not_raise(
    simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    faults = ["timeout", "malformed_json", "connection_reset", "login_page", "huge_body"]
    for i, kind in enumerate(faults):
        simulator.simulator.add_environment(f"f{i}")
        simulator.simulator.add_fault(f"f{i}", Fault(FaultKind(kind)))
    envs = [environment(simulator.base_url(f"f{i}")) for i in range(len(faults))]
    results = await asyncio.gather(*(poll(session, e) for e in envs))
    assert all(not o.ok for o, _ in results)


def test_ssl_module_available() -> None:
    assert ssl.OPENSSL_VERSION


@dataclass
class SlowVersion:
    """A UMIG whose health and components answer at once while version is held until released."""

    base_url: str
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def slow_version_server() -> AsyncIterator[SlowVersion]:
    """Version is held until the test ends: a held handler would otherwise keep the server's
    shutdown waiting for it."""
    server = SlowVersion("")

    async def handler(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        server.started.append(name)
        if name == "version":
            await server.release.wait()
        server.finished.append(name)
        return web.json_response({"umig": {"status": "healthy", "version": "1.1.2"}})

    app = web.Application()
    app.router.add_get("/p/admin/{name}", handler)
    async with serving(app) as base:
        server.base_url = base
        try:
            yield server
        finally:
            server.release.set()


async def test_one_deadline_times_out_only_the_slow_request(session: aiohttp.ClientSession) -> None:
    async with slow_version_server() as server:
        env = environment(server.base_url, api_prefix="/p", timeout="300ms")
        docs, (health, version, components) = await probe_environment(session, env)
    assert health.ok
    assert components.ok
    assert version.failure is Outcome.TIMEOUT
    assert version.detail == "no answer within 0.3s"
    assert 250 <= version.elapsed_ms < 2000
    assert docs.health_failure is None
    assert docs.version is None


def requests_running() -> int:
    """The probe's requests still running: each is a task running fetch_json."""
    return sum("fetch" in getattr(task.get_coro(), "__qualname__", "") for task in asyncio.all_tasks())


async def test_cancelled_poll_cancels_its_requests(session: aiohttp.ClientSession) -> None:
    async with slow_version_server() as server:
        env = environment(server.base_url, api_prefix="/p", timeout="5s")
        task = asyncio.ensure_future(probe_environment(session, env))
        await until(lambda: sorted(server.finished) == ["components", "health"])
        await until(lambda: "version" in server.started, what="the version request held by the server")
        await until(lambda: requests_running() == 1, what="only the version request still running")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert requests_running() == 0  # the cancellation reached it, and was waited for


async def test_a_reloaded_environment_uses_its_new_settings(
    simulator: RunningSimulator, session: aiohttp.ClientSession
) -> None:
    simulator.simulator.add_fault("production", Fault(FaultKind("huge_body"), size_bytes=4096))
    url = simulator.base_url("production")
    assert (await poll(session, environment(url, max_body_bytes="2048")))[0] is Outcome.INVALID_RESPONSE
    assert (await poll(session, environment(url, max_body_bytes="8192")))[0] is Outcome.HEALTHY
    moved = environment(url.replace("production", "uat"), max_body_bytes="2048")
    assert (await poll(session, moved))[0] is Outcome.HEALTHY
