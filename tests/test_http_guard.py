"""The daemon's HTTP server protects itself from clients that hold connections: a header deadline,
an idle keep-alive timeout and a connection cap that evicts the longest-waiting connection, so
/healthz answers under a slowloris of thousands of connections (a real daemon process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import free_port
from umig_monitor.web.guard import ConnectionGuard

PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "


@contextlib.asynccontextmanager
async def guarded(
    max_connections: int, header_timeout: float, keepalive: float = 15.0
) -> AsyncIterator[tuple[int, ConnectionGuard]]:
    async def hello(request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    guard = ConnectionGuard(max_connections, header_timeout)
    handler = web.Server(hello, keepalive_timeout=keepalive)
    server = await asyncio.get_running_loop().create_server(guard.factory(handler), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], guard
    finally:
        server.close()
        await handler.shutdown(1)
        await server.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except (TimeoutError, ConnectionError):
        return isinstance(reader.exception(), ConnectionError)


async def get(port: int, within: float = 5.0) -> int:
    """/healthz on a new connection."""
    conn = aiohttp.TCPConnector(force_close=True)
    limit = aiohttp.ClientTimeout(total=within)
    async with (
        aiohttp.ClientSession(connector=conn, timeout=limit) as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as resp,
    ):
        return resp.status


async def test_headers_split_across_reads_are_one_request() -> None:
    async with guarded(8, header_timeout=5) as (port, _guard):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")


async def test_a_client_that_never_finishes_its_headers_is_cut_off() -> None:
    async with guarded(8, header_timeout=0.5) as (port, guard):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PARTIAL)
        started = time.monotonic()

        # trickling bytes does not extend the deadline
        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    await asyncio.sleep(0.1)
                    writer.write(b"a")
                    await writer.drain()

        trickler = asyncio.create_task(trickle())
        assert await closed_by_server(reader, within=10)
        trickler.cancel()
        assert time.monotonic() - started < 10
        assert guard.timed_out == 1
        assert guard.open == 0
        writer.close()


async def test_idle_keep_alive_connections_are_closed() -> None:
    async with guarded(8, header_timeout=5, keepalive=0.5) as (port, guard):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader, within=10)
        writer.close()
        assert guard.timed_out == 0


async def test_at_the_cap_the_longest_waiting_connection_makes_room() -> None:
    async with guarded(4, header_timeout=60) as (port, guard):
        slow = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(PARTIAL)
            await writer.drain()
            slow.append((reader, writer))
        # the fourth is admitted once the server has seen it
        for _ in range(200):
            if guard.open == 4:
                break
            await asyncio.sleep(0.01)
        assert guard.open == 4
        assert await get(port) == 200
        assert guard.evicted == 1
        assert await closed_by_server(slow[0][0], within=5)  # the oldest went first
        for _, writer in slow:
            writer.close()


def _raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_daemon(tmp_path: Path, port: int, http: str, fd_limit: int) -> subprocess.Popen[bytes]:
    config = tmp_path / "umig-monitor.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        daemon:
          listen: 127.0.0.1:{port}
          storage: sqlite:///{tmp_path / "umig-monitor.db"}
          shutdown_timeout: 3s
          log_format: json
          http: {http}
        environments:
          prod: {{base_url: 'http://127.0.0.1:{free_port()}/', kind: production}}
        """)
    )
    with (tmp_path / "daemon.log").open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ},
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit)),
        )


async def answering(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, aiohttp.ClientError, asyncio.TimeoutError):
            if await get(port, within=1) == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the daemon's /healthz never answered")


async def attack(port: int, connections: int) -> tuple[list[asyncio.StreamWriter], int]:
    """Open up to ``connections`` connections that send half a request's headers and wait."""
    held: list[asyncio.StreamWriter] = []
    refused = 0
    for _ in range(connections):
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (TimeoutError, OSError):
            refused += 1
            if refused > 20:  # the server stopped accepting: no point waiting 2 s for each
                break
            continue
        writer.write(PARTIAL)
        held.append(writer)
    return held, refused


@pytest.mark.slow
async def test_healthz_answers_under_a_slowloris_of_thousands(tmp_path: Path) -> None:
    attackers = min(3000, _raise_fd_limit(4096) - 200)
    assert attackers >= 1500, "this test needs file descriptors for 1,500 connections"
    port = free_port()
    # systemd's default soft limit of 1024: more attackers than the daemon has descriptors
    proc = start_daemon(tmp_path, port, "{max_connections: 256, header_timeout: 30s}", fd_limit=1024)
    held: list[asyncio.StreamWriter] = []
    try:
        await answering(port)
        held, refused = await attack(port, attackers)
        opened = len(held)
        assert opened >= attackers * 0.9, f"{refused} connections refused outright"
        answers = [await get(port, within=3) for _ in range(5)]
        assert answers == [200] * 5
        text = (tmp_path / "daemon.log").read_text()
        assert "Traceback" not in text
        assert "out of system resource" not in text
        assert text.count("http_connections_full") == 1  # once per burst
    finally:
        for writer in held:
            writer.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.slow
async def test_out_of_descriptors_is_one_log_line_per_burst_and_the_daemon_recovers(tmp_path: Path) -> None:
    """A cap above what the process may open: accept() fails with EMFILE. asyncio's line for
    each failed accept is logged once per burst (uvloop sheds them silently), and the daemon
    answers again afterwards."""
    _raise_fd_limit(1024)
    port = free_port()
    proc = start_daemon(tmp_path, port, "{max_connections: 5000, header_timeout: 60s}", fd_limit=128)
    held: list[asyncio.StreamWriter] = []
    try:
        await answering(port)
        held, _refused = await attack(port, 400)
        log = tmp_path / "daemon.log"
        # On uvloop, libuv sheds what it cannot accept itself (accepted and closed on a descriptor
        # it keeps in reserve): the clients see the connection closed, and nothing is logged.
        on_uvloop = '"loop": "uvloop"' in log.read_text()
        deadline = time.monotonic() + (0 if on_uvloop else 30)
        while "out of system resource" not in log.read_text() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        for writer in held:
            writer.close()
        held = []
        await answering(port)
        text = log.read_text()
        assert text.count("out of system resource") == (0 if on_uvloop else 1)
        assert "Traceback" not in text
    finally:
        for writer in held:
            writer.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
