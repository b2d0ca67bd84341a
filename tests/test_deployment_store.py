"""Deployment storage: the SQL summary agrees with core's ``summarize`` on the same events
(ties, observed, open starts), on SQLite and PostgreSQL; windows compare datetimes."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import POSTGRES_URL, scratch_database
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.dora import summarize
from umig_monitor.storage import Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with scratch_database(request.param, tmp_path / "d.db") as url:
        s = await Store.open(url)
        try:
            yield s
        finally:
            await s.close()


def generated(n: int, seed: int = 7) -> list[DeploymentEvent]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        env = rng.choice(["uat", "production"])
        start = T0 + timedelta(hours=rng.randrange(0, 24 * 60))
        dep = f"d{i}"
        shape = rng.random()
        if shape < 0.05:
            out.append(DeploymentEvent(f"{dep}-o", dep, env, EventType.OBSERVED, start, version="1.0.0"))
            continue
        out.append(DeploymentEvent(f"{dep}-s", dep, env, EventType.START, start, version="1.0.0"))
        end = start + timedelta(minutes=rng.choice([0, 5, 10]))
        for kind in rng.sample(
            [EventType.SUCCESS, EventType.FAILURE, EventType.ROLLBACK], rng.randrange(0, 3)
        ):
            out.append(
                DeploymentEvent(
                    f"{dep}-{kind.value}",
                    dep,
                    env,
                    kind,
                    end,
                    version="1.0.0",
                    to_version="0.9.0" if kind is EventType.ROLLBACK else None,
                    error="x" if kind is EventType.FAILURE else None,
                )
            )
    return out


async def test_sql_summary_matches_core(store: Store) -> None:
    events = generated(400)
    await store.add_deployment_events(events, T0)
    for env in (None, "uat", "production"):
        for since, until in ((None, None), (T0 + timedelta(days=10), T0 + timedelta(days=40))):
            window = [
                e
                for e in events
                if (env is None or e.environment == env)
                and (since is None or e.ts >= since)
                and (until is None or e.ts < until)
            ]
            assert await store.deployment_summary(environment=env, since=since, until=until) == summarize(
                window
            )


async def test_empty_summary(store: Store) -> None:
    s = await store.deployment_summary(environment="uat")
    assert (s.total, s.success_rate) == (0, None)


async def test_window_compares_datetimes_across_offsets(store: Store) -> None:
    from datetime import timezone

    plus2 = timezone(timedelta(hours=2))
    # 09:30+02:00 is 07:30Z: before an 08:00Z threshold, though "09:30" > "08:00" as text.
    early = DeploymentEvent("a-s", "a", "uat", EventType.START, datetime(2026, 1, 1, 9, 30, tzinfo=plus2))
    late = DeploymentEvent("b-s", "b", "uat", EventType.START, datetime(2026, 1, 1, 8, 30, tzinfo=UTC))
    await store.add_deployment_events([early, late], T0)
    found = await store.deployment_events(since=datetime(2026, 1, 1, 8, 0, tzinfo=UTC))
    assert [e.id for e in found] == ["b-s"]
