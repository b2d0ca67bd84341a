"""Database loss (issue 9, section 1): PostgreSQL is stopped and restarted under the real daemon.

While the database is away the daemon keeps polling, buffers its samples, stays alive and says so on
``/readyz``; once it is back the buffered samples are written and the daemon is ready again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.pgserver import PgServer
from tests.support import ConfigWriter, until
from umig_monitor.simulator import RunningSimulator
from umig_monitor.storage.engine import normalize_url

pytestmark = pytest.mark.slow

ENVIRONMENTS = ("development", "uat", "production")
POLL_INTERVAL = 0.5
OUTAGE = 4.0  # seconds without PostgreSQL


@pytest.fixture
def pg_server() -> Iterator[PgServer]:
    server = PgServer.create()
    try:
        yield server
    finally:
        server.cleanup()


def http_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def get(url: str) -> tuple[int, Any]:
    return await asyncio.to_thread(http_json, url)


def tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:]


async def wait_for_status(
    url: str, want: int, within: float, proc: subprocess.Popen[bytes], log_path: Path
) -> Any:
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the daemon exited with {proc.returncode}:\n{tail(log_path)}"
        try:
            status, body = await get(url)
            if status == want:
                return body
            last = (status, body)
        except OSError as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered {want} within {within}s: {last}\n{tail(log_path)}")


async def sample_times(url: str) -> dict[str, list[datetime]]:
    """Every health sample's timestamp, per environment, read straight from PostgreSQL."""
    engine = create_async_engine(normalize_url(url), poolclass=sa.NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT environment, ts FROM health_samples ORDER BY environment, ts")
            )
            times: dict[str, list[datetime]] = {env: [] for env in ENVIRONMENTS}
            for env, ts in rows:
                times.setdefault(env, []).append(ts if ts.tzinfo else ts.replace(tzinfo=UTC))
            return times
    finally:
        await engine.dispose()


def log_events(log_path: Path) -> list[dict[str, Any]]:
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


async def test_postgresql_stopped_and_restarted_under_the_daemon(
    simulator: RunningSimulator, write_config: ConfigWriter, pg_server: PgServer, tmp_path: Path
) -> None:
    config = write_config(simulator, ENVIRONMENTS, poll_interval=f"{POLL_INTERVAL}s")
    text = config.read_text()
    sqlite_line = next(line for line in text.splitlines() if line.strip().startswith("storage:"))
    config.write_text(text.replace(sqlite_line, f"  storage: {pg_server.url}"))
    port = int(text.split("listen: 127.0.0.1:")[1].split()[0])
    base = f"http://127.0.0.1:{port}"

    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        await wait_for_status(base + "/readyz", 200, 20, proc, log_path)

        async def written_twice() -> dict[str, list[datetime]]:
            times = await sample_times(pg_server.url)
            return times if all(len(times[env]) >= 2 for env in ENVIRONMENTS) else {}

        before = await until(written_twice, what="two samples of each environment before the outage")

        # The database goes away while polls go on.
        await asyncio.to_thread(pg_server.stop)
        outage_start = datetime.now(UTC)
        stopped_at = time.monotonic()

        body = await wait_for_status(base + "/readyz", 503, OUTAGE, proc, log_path)
        assert body["ready"] is False
        storage = body["checks"]["storage"]
        assert storage != "ok"
        assert "unreachable" in storage or "writes failing" in storage, storage
        status, health = await get(base + "/healthz")
        assert (status, health) == (200, {"status": "ok"})

        while time.monotonic() - stopped_at < OUTAGE:
            assert proc.poll() is None, f"the daemon died while the database was away:\n{tail(log_path)}"
            status, _ = await get(base + "/healthz")
            assert status == 200
            await asyncio.sleep(0.25)
        status, body = await get(base + "/readyz")
        assert status == 503, body
        outage_end = datetime.now(UTC)
        await asyncio.to_thread(pg_server.start)

        # Back: ready again once the buffered samples are written.
        await wait_for_status(base + "/readyz", 200, 25, proc, log_path)
        after = await sample_times(pg_server.url)
        assert proc.poll() is None

        window = outage_end - outage_start
        expected = window.total_seconds() / POLL_INTERVAL
        for env in ENVIRONMENTS:
            during = [ts for ts in after[env] if outage_start < ts < outage_end]
            # Every poll taken while the database was down was kept and written (a little slack for
            # a poll straddling either edge, and for timing on a busy machine).
            assert len(during) >= expected * 0.6, (env, len(during), expected)
            # No hole in the series across the outage: nothing was dropped.
            span = [ts for ts in after[env] if outage_start - timedelta(seconds=2) < ts]
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(span)]
            assert max(gaps) < 4 * POLL_INTERVAL, (env, max(gaps))
            assert len(after[env]) > len(before[env]) + len(during) - 1

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0, tail(log_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-4000:]
    events = log_events(log_path)
    names = [e["event"] for e in events]
    assert "daemon_started" in names
    assert "daemon_stopped" in names
    assert names.count("sample_write_failed") <= 1, names
    assert "sample_write_recovered" in names
    # Failing writes are reported, not repeated on every poll: the log stays readable.
    errors = [e for e in events if e.get("level") in ("error", "critical")]
    assert len(errors) <= 10, [e["event"] for e in errors]
    # job_failed once per job kind per outage, and its recovery once, however many polls failed
    failed = [e["kind"] for e in events if e["event"] == "job_failed"]
    assert len(failed) == len(set(failed)), failed
    recovered = [e["kind"] for e in events if e["event"] == "job_failed_recovered"]
    # a recovery is said once, for a kind that failed; the polls ran again before shutdown (a
    # slower job, e.g. a heartbeat-interval one, may not have run again yet)
    assert len(recovered) == len(set(recovered)), recovered
    assert set(recovered) <= set(failed), (failed, recovered)
    if "health" in failed:
        assert "health" in recovered, (failed, recovered)
    assert names.count("storage_unhealthy") <= 1, names
