"""The sample writer on SQLite and PostgreSQL: one sample the database refuses (an uptime beyond
the 64-bit range) is dropped and logged alone, every other sample is written, and the writer
keeps writing afterwards; a database that is away keeps everything buffered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.support import POSTGRES_URL, scratch_database
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.jobs.samples import SampleWriter
from umig_monitor.storage import Store

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with scratch_database(request.param, tmp_path / "samples.db") as url:
        opened = await Store.open(url)
        try:
            yield opened
        finally:
            await opened.close()


def sample(env: str, n: int, uptime: int = 60) -> HealthSample:
    return HealthSample(env, T0 + timedelta(seconds=n), Outcome.HEALTHY, uptime_seconds=uptime)


async def stored(store: Store, env: str) -> int:
    return len(await store.recent_health_samples(env, 10_000))


async def test_a_poison_sample_is_dropped_alone_and_writing_goes_on(store: Store) -> None:
    writer = SampleWriter(store, batch=64)
    for n in range(100):
        writer.add(sample("production", n))
        writer.add(sample("uat", n, uptime=10**20 if n == 37 else 60))
    with capture_logs() as logs:
        assert await writer.flush() == 199
    assert await stored(store, "production") == 100
    assert await stored(store, "uat") == 99
    assert writer.rejected == 1
    assert writer.pending == 0
    rejected = [e for e in logs if e["event"] == "sample_rejected"]
    assert len(rejected) == 1
    assert rejected[0]["env"] == "uat"
    # The target is fixed: the next samples are written as usual.
    writer.add(sample("uat", 200))
    assert await writer.flush() == 1
    assert await stored(store, "uat") == 100


async def test_a_database_that_is_away_keeps_every_sample(store: Store, tmp_path: Path) -> None:
    writer = SampleWriter(store, batch=10)
    for n in range(25):
        writer.add(sample("production", n))
    await store.close()  # every write now fails: nothing may be dropped as "bad data"
    with pytest.raises(Exception, match="closed"):
        await writer.flush()
    assert writer.pending == 25
    assert writer.rejected == 0
    assert writer.dropped == 0
