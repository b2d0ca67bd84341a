"""Shared fixtures: the simulator on a free loopback port, config files, and external tools; and a
guard on garbage collection around reports and after each test."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import socket
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests import pgtemplate
from umig_monitor.app import Daemon
from umig_monitor.config import load_config
from umig_monitor.simulator import RunningSimulator, start_simulator
from umig_monitor.storage.engine import normalize_url

# A PostgreSQL server where tests may create databases; each test gets a fresh one. `.ci/run`
# starts one; in CI its absence is a failure, not a silently smaller suite.
POSTGRES_URL = os.environ.get("UMIG_TEST_POSTGRES_URL")
if POSTGRES_URL is None and os.environ.get("CI") == "true":
    raise RuntimeError("UMIG_TEST_POSTGRES_URL is not set: run the suite through .ci/run")

GUIDE_ENVIRONMENTS = ("development", "uat", "production")


def free_port() -> int:
    """A loopback TCP port for a server a test starts: one no other caller had this session, and
    free when checked with a bind. It comes from below the kernel's ephemeral range, which the
    kernel never hands out itself (to a bind to port 0, or as the local port of an outgoing
    connection), so between this check and the server's own bind only an explicit bind elsewhere
    could take it. Sessions side by side (other worktrees) start at a place set by their pid."""
    state: dict[str, Any] = free_port.__dict__
    if "handed" not in state:
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
                ephemeral = int(ranges.read().split()[0])
        except (OSError, ValueError, IndexError):
            ephemeral = 49152  # the IANA dynamic range: the BSD and macOS default
        low = max(1024, ephemeral - 16384)
        state["range"] = (low, ephemeral)
        state["next"] = low + (os.getpid() * 7919) % (ephemeral - low)
        state["handed"] = set()
    low, high = state["range"]
    handed: set[int] = state["handed"]
    for _ in range(high - low):
        port: int = state["next"]
        state["next"] = low if port + 1 >= high else port + 1
        if port in handed:
            continue
        handed.add(port)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # someone has it (or it lingers in TIME_WAIT): never hand it out
        return port
    raise RuntimeError(f"no free port left in {low}-{high - 1} below the ephemeral range")


def require_tool(name: str) -> str:
    """The tool's path. Missing: skipped on a developer machine, a failure in CI (CI=true)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (bash .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(GUIDE_ENVIRONMENTS)
    try:
        yield running
    finally:
        await running.stop()


ConfigWriter = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> ConfigWriter:
    """Write a daemon config for the given simulator environments; extra YAML is appended."""

    def write(
        sim: RunningSimulator,
        envs: tuple[str, ...] = GUIDE_ENVIRONMENTS,
        *,
        port: int | None = None,
        extra: str = "",
        poll_interval: str = "1s",
        name: str = "umig-monitor.yaml",
        token: str | None = "test-token",
    ) -> Path:
        lines = [
            "daemon:",
            f"  listen: 127.0.0.1:{port or free_port()}",
            f"  storage: sqlite:///{tmp_path / 'umig-monitor.db'}",
            "  shutdown_timeout: 3s",
        ]
        if token:
            lines.append(f"  api_token: {token}")
        lines.append("environments:")
        for env in envs:
            kind = env if env in ("development", "uat", "production", "hotfix") else "production"
            lines += [
                f"  {env}:",
                f"    base_url: {sim.base_url(env)}",
                f"    kind: {kind}",
                f"    poll_interval: {poll_interval}",
                "    timeout: 2s",
            ]
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n" + textwrap.dedent(extra))
        return path

    return write


@asynccontextmanager
async def scratch_database(backend: str, sqlite_path: Path, *, empty: bool = False) -> AsyncIterator[str]:
    """The URL of a fresh database of ``backend`` (sqlite_memory, sqlite_file, postgresql), removed
    afterwards. A PostgreSQL one is a copy of this session's template, already at the latest
    schema (see tests/pgtemplate.py); SQLite ones start empty, their migrations being quick.
    ``empty=True``: no tables on any backend, for the tests of the migrations themselves."""
    if backend == "sqlite_memory":
        yield "sqlite:///:memory:"
        return
    if backend == "sqlite_file":
        yield f"sqlite:///{sqlite_path}"
        return
    assert POSTGRES_URL is not None
    server = normalize_url(POSTGRES_URL)
    name = f"umig_test_{uuid.uuid4().hex[:12]}"
    admin = pgtemplate.admin_engine(server)
    try:
        # FILE_COPY: the template's files copied whole, not page by page through the WAL; never
        # slower here, up to a quarter faster (most of what is left is copying the catalogs).
        source = "" if empty else f' TEMPLATE "{await pgtemplate.template(server, admin)}" STRATEGY FILE_COPY'
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"{source}')
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await pgtemplate.drop_database(admin, name)
        await admin.dispose()


def pytest_sessionfinish() -> None:
    pgtemplate.drop_template()


@asynccontextmanager
async def external_process(command: list[str], ready_url: str, within: float = 20.0) -> AsyncIterator[None]:
    """Run a real server binary (pushgateway, alertmanager, ...) until ``ready_url`` answers 200."""
    import asyncio
    import subprocess
    import urllib.error
    import urllib.request

    proc = await asyncio.to_thread(
        subprocess.Popen, command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    def ready() -> bool:
        try:
            with urllib.request.urlopen(ready_url, timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await asyncio.to_thread(ready):
            if proc.poll() is not None or loop.time() > deadline:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise RuntimeError(f"{command[0]} did not become ready: {output[-2000:]}")
            await asyncio.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """Logs go to stderr, so an in-process daemon's log lines never mix with a command's output on
    stdout; commands configure logging globally, so each test starts afresh."""
    import sys

    import structlog

    from umig_monitor.logs import configure_logging

    configure_logging("info", "console", sys.stderr)
    yield
    structlog.reset_defaults()


# -- the cyclic garbage collector and asyncio tasks ------------------------------------------
# A pending task that becomes garbage is reported by its finalizer ("Task was destroyed but it is
# pending!"). When the collector runs that finalizer inside ast.parse, as pytest formats a failure,
# CPython 3.11 raises "SystemError: AST constructor recursion depth mismatch": an INTERNALERROR
# where the failure should be. So the collector runs at a safe point before a failure's report is
# built and is off while it is; and it runs after every test, so a task the test leaked fails it.

_DESTROYED_PENDING = "Task was destroyed but it is pending"


class _TaskGuard(logging.Filter):
    """Notes asyncio's report of every pending task destroyed (and passes the record on)."""

    def __init__(self) -> None:
        super().__init__()
        self.destroyed: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_DESTROYED_PENDING):
            self.destroyed.append(message)
        return True

    def take(self) -> list[str]:
        taken, self.destroyed = self.destroyed, []
        return taken


_task_guard = _TaskGuard()


def pytest_configure() -> None:
    logging.getLogger("asyncio").addFilter(_task_guard)


def pytest_collection_finish() -> None:
    # Modules, fixtures and collected tests live as long as the session: frozen, out of the
    # collector's way, the collection after each test takes milliseconds, not tens of them. (An
    # in-process Daemon freezes what exists when it starts, too; frozen garbage is never
    # finalized, so it cannot crash a report either.)
    gc.collect()
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    call: pytest.CallInfo[None],
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    if call.excinfo is None:  # nothing to format
        return (yield)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return (yield)
    finally:
        if enabled:
            gc.enable()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown() -> Generator[None, None, None]:
    try:
        yield  # every fixture finalized, the event loop closed
    finally:
        gc.collect()
        destroyed = _task_guard.take()
    if destroyed:
        pytest.fail(
            f"{len(destroyed)} asyncio task(s) destroyed while still pending: something this test "
            "ran left a task waiting on what never happens\n" + "\n".join(destroyed),
            pytrace=False,
        )


@dataclass
class Receiver:
    """An aiohttp webhook receiver; ``script`` gives the status of each request in turn."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        status = self.script.pop(0) if self.script else 200
        if status == 200:
            self.bodies.append(await request.json())
            self.keys.append(request.headers.get("Idempotency-Key", ""))
            return web.Response(text="ok")
        return web.Response(status=status, text="nope", headers={"Retry-After": "0"})


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


class Slack:
    """Answers ``ok`` like Slack's incoming webhooks; ``throttle`` answers 429 with Retry-After once."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.throttle = False
        self.throttled_at: float | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.throttle:
            self.throttle = False
            self.throttled_at = time.monotonic()
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": "2"})
        self.payloads.append(body)
        self.arrivals.append(time.monotonic())
        return web.Response(text="ok")

    def titles(self) -> list[str]:
        return [p["attachments"][0]["title"] for p in self.payloads]


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port for the duration; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    async with serving(app) as base:
        receiver.url = f"{base}/hook"
        yield receiver


@asynccontextmanager
async def running_daemon(config: Path) -> AsyncIterator[Daemon]:
    """A daemon in this process, started on the config file; stopped on the way out."""
    daemon = Daemon(load_config(config), config)
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter) -> Path:
    """The config the ``daemon`` fixture starts on: the guide's environments on the simulator. A
    module whose daemon needs more (sinks, jobs, faster polls) overrides this fixture."""
    return write_config(simulator)


@pytest.fixture
async def daemon(daemon_config: Path) -> AsyncIterator[Daemon]:
    async with running_daemon(daemon_config) as running:
        yield running
