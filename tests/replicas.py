"""Real daemon replicas as subprocesses on one PostgreSQL, and a webhook receiver that can be told
to refuse, for the cluster process tests (issue 9, section 3).

A ``Replica`` is one ``python -m umig_monitor run`` with its own config, port and JSON log file;
``/api/v1/cluster`` is how the tests see what it thinks. The ``Hook`` receiver notes every request:
its Idempotency-Key, which replica sent it (each replica's sink adds an ``X-Replica`` header) and
what it answered.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import free_port, serving
from umig_monitor.storage.engine import normalize_url


def replica_config(
    *,
    port: int,
    storage: str,
    environments: Mapping[str, str],
    poll_interval: float,
    heartbeat: float,
    lease_ttl: float,
    extra: str = "",
) -> str:
    """A replica's YAML: ``environments`` maps each name to its base URL; ``extra`` is appended."""
    lines = [
        "daemon:",
        f"  listen: 127.0.0.1:{port}",
        f"  storage: {storage}",
        "  shutdown_timeout: 3s",
        "  log_format: json",
        f"  cluster: {{heartbeat_interval: {heartbeat * 1000:.0f}ms, lease_ttl: {lease_ttl * 1000:.0f}ms}}",
        "environments:",
    ]
    for name, url in environments.items():
        lines.append(
            f"  {name}: {{base_url: '{url}', kind: production, poll_interval: {poll_interval * 1000:.0f}ms,"
            " timeout: 2s}"
        )
    return "\n".join(lines) + "\n" + extra


@dataclass
class Replica:
    name: str  # r1, r2 ...: the test's name for it (its member id is the daemon's default)
    config: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # on top of this process's environment

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "umig_monitor", "run", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM (a clean leave); the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no leave, no lease released, claims left behind."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """Whatever state it is in, make sure it is gone (for ``finally``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=3) as resp:
            return json.loads(resp.read())

    def cluster(self) -> dict[str, Any] | None:
        """Its ``/api/v1/cluster``, or None while it does not answer."""
        try:
            body: dict[str, Any] = self.get("/api/v1/cluster")
            return body
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/readyz", timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def tail(self, chars: int = 3000) -> str:
        try:
            return f"--- {self.name} ({self.log.name}) ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return f"--- {self.name}: no log ---"

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out


class Cluster:
    """N replicas of one config template; every one is stopped when the block ends."""

    def __init__(self, directory: Path, make_config: Callable[[Replica], str], count: int) -> None:
        self.replicas: list[Replica] = []
        for i in range(1, count + 1):
            name = f"r{i}"
            replica = Replica(name, directory / f"{name}.yaml", directory / f"{name}.log", free_port())
            replica.config.write_text(make_config(replica))
            self.replicas.append(replica)

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()

    def running(self) -> list[Replica]:
        return [r for r in self.replicas if r.running]

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def logs(self) -> str:
        return "\n".join(r.tail() for r in self.replicas)

    async def views(self) -> dict[str, dict[str, Any] | None]:
        """Every running replica's ``/api/v1/cluster``, fetched at once."""
        running = self.running()
        bodies = await asyncio.gather(*(asyncio.to_thread(r.cluster) for r in running))
        return {r.name: body for r, body in zip(running, bodies, strict=True)}

    def check_logs(self) -> None:
        """No traceback, no logged exception, in any replica's log."""
        for replica in self.replicas:
            text = replica.log.read_text(errors="replace")
            assert "Traceback" not in text, replica.tail(6000)
            crashed = [e for e in replica.events() if "exception" in e]
            assert not crashed, (replica.name, crashed[:3])


@asynccontextmanager
async def running_cluster(
    directory: Path, make_config: Callable[[Replica], str], count: int, within: float = 30
) -> AsyncIterator[Cluster]:
    cluster = Cluster(directory, make_config, count)
    try:
        await asyncio.to_thread(cluster.start)
        for replica in cluster.replicas:
            await until(
                replica.ready,
                within,
                f"{replica.name} ready",
                cluster,
            )
        yield cluster
    finally:
        await asyncio.to_thread(cluster.stop)


async def until(
    probe: Callable[[], Any],
    within: float,
    what: str,
    cluster: Cluster | None = None,
    interval: float = 0.05,
) -> Any:
    """The first truthy result of ``probe`` within ``within`` seconds; else an AssertionError that
    shows the last result and the replicas' logs. A synchronous probe runs in a thread, so that it
    never blocks the event loop the simulator and the receiver share with the test."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        if inspect.iscoroutinefunction(probe):
            last = await probe()
        else:
            last = await asyncio.to_thread(probe)
            if inspect.isawaitable(last):  # a lambda around a coroutine function
                last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            logs = cluster.logs() if cluster is not None else ""
            raise AssertionError(f"{what}: not within {within:g} s; last seen: {last!r}\n{logs}")
        if cluster is not None:
            for replica in cluster.replicas:
                assert replica.proc is None or replica.proc.returncode in (None, -9, 0), replica.tail()
        await asyncio.sleep(interval)


# --- the database ------------------------------------------------------------------------------------


async def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_async_engine(normalize_url(url), poolclass=sa.NullPool)
    try:
        async with engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(sa.text(sql), params)]
    finally:
        await engine.dispose()


async def sampled_since(url: str, since: datetime) -> set[str]:
    """Environments with a health sample stored after ``since``."""
    rows = await query(url, "SELECT DISTINCT environment FROM health_samples WHERE ts > :since", since=since)
    return {env for (env,) in rows}


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- the webhook receiver ----------------------------------------------------------------------------


@dataclass
class Request:
    key: str
    replica: str
    status: int
    at: float  # time.monotonic()


@dataclass
class Hook:
    """Answers 503 (Retry-After: 0) while ``refusing``, else 200; notes every request."""

    url: str = ""
    refusing: bool = False
    requests: list[Request] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        status = 503 if self.refusing else 200
        self.requests.append(
            Request(
                request.headers.get("Idempotency-Key", ""),
                request.headers.get("X-Replica", ""),
                status,
                time.monotonic(),
            )
        )
        if status == 200:
            return web.Response(text="ok")
        return web.Response(status=503, text="busy", headers={"Retry-After": "0"})

    def accepted(self) -> Counter[str]:
        """Idempotency-Key -> how many times it was answered 200."""
        return Counter(r.key for r in self.requests if r.status == 200)


@asynccontextmanager
async def hook_receiver() -> AsyncIterator[Hook]:
    hook = Hook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    async with serving(app) as base:
        hook.url = f"{base}/hook"
        yield hook
