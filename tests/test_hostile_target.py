"""A real daemon process against a hostile UMIG server on loopback: JSON nested 100,000 deep, an
uptime beyond 2**63 seconds, a megabyte version string, a 300 KB status. Each is classified
(invalid_response, unknown uptime, a cut string), storage keeps writing every environment, the
API, /metrics and the log stay small, and SIGTERM still exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from tests.support import free_port, serving, until
from umig_monitor.core.assess import MAX_TEXT

pytestmark = pytest.mark.slow
PREFIX = "/rest/scriptrunner/latest/custom"
T = TypeVar("T")


def health(**umig: Any) -> bytes:
    doc = {"umig": {"status": "healthy", "version": "1.2.0", "uptime": "5d 2h", **umig}, "components": {}}
    return json.dumps(doc).encode()


BODIES: dict[str, bytes] = {
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "shallowdeep": b'{"umig": {"status": "healthy"}, "x": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}",
    "absurd": health(uptime="99999999999999999999w"),
    "huge": health(version="9" * 1_000_000),
    "loud": health(status="x" * 300_000),
    "good": health(),
}


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        env = request.match_info["env"]
        if request.match_info["doc"] == "health":
            return web.Response(body=BODIES[env], content_type="application/json")
        return web.json_response({})

    app = web.Application(client_max_size=1)
    app.router.add_get(f"/{{env}}{PREFIX}/admin/{{doc}}", answer)
    async with serving(app) as base:
        yield base


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


async def in_threads(check: Callable[[], T], what: str) -> T:
    """until() for a check that blocks (urllib): each try in a thread, with a loaded machine's margin."""
    return await until(lambda: asyncio.to_thread(check), within=45, what=what)


async def test_hostile_documents_are_classified_and_storage_goes_on(hostile: str, tmp_path: Path) -> None:
    port = free_port()
    envs = "".join(
        f"""
          {name}:
            base_url: {hostile}/{name}
            kind: production
            poll_interval: 500ms
            timeout: 3s"""
        for name in BODIES
    )
    config = tmp_path / "umig-monitor.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        daemon:
          listen: 127.0.0.1:{port}
          storage: sqlite:///{tmp_path / "umig-monitor.db"}
          shutdown_timeout: 3s
          log_format: json
        jobs:
          health: {{failure_threshold: 2}}
        environments:""")
        + envs
        + "\n"
    )
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    base = f"http://127.0.0.1:{port}"

    def environments() -> dict[str, Any]:
        status, body = fetch(base + "/api/v1/environments")
        return json.loads(body)["environments"] if status == 200 else {}

    try:
        await in_threads(lambda: fetch(base + "/readyz")[0] == 200, "ready")

        def all_polled() -> dict[str, Any]:
            seen = environments()
            return seen if seen and all(seen[n]["lastCheck"] for n in BODIES) else {}

        first = await in_threads(all_polled, "all polled")
        assert first["deep"]["health"] == "invalid_response"
        assert "nested too deep" in first["deep"]["error"]
        assert first["shallowdeep"]["health"] == "invalid_response"
        assert first["absurd"]["health"] == "healthy"
        assert first["absurd"]["uptimeSeconds"] is None
        assert len(first["huge"]["umigVersion"]) == MAX_TEXT
        assert first["good"]["health"] == "healthy"
        # Storage keeps writing every environment: the last check moves on, for all of them.
        await in_threads(
            lambda: all(environments()[n]["lastCheck"] > first[n]["lastCheck"] for n in BODIES), "new samples"
        )

        # The bad answers open incidents like any other bad answer.
        def incidents() -> set[str]:
            return {e for e, v in environments().items() if v["status"] == "incident"}

        await in_threads(lambda: {"deep", "shallowdeep"} <= incidents(), "incidents for the invalid answers")
        status, body = fetch(base + "/api/v1/environments")
        assert len(body) < 64 * 1024
        status, metrics = fetch(base + "/metrics")
        assert max(len(line) for line in metrics.splitlines()) < 1024
        status, page = fetch(base + "/")
        assert status == 200
        assert len(page) < 256 * 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text
    assert max(len(line) for line in text.splitlines()) < 16 * 1024
    assert "job_failed" not in text
