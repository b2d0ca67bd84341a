"""Store behaviour against real databases: a SQLite file in tmp_path, SQLite :memory:, and
PostgreSQL when ``UMIG_TEST_POSTGRES_URL`` names a server where the tests may create databases
(each test gets a fresh one). Tests about SQLite itself (WAL, file paths) say so in their name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import sqlite3
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support import POSTGRES_URL, scratch_database
from umig_monitor.core.alerts import AlertEvent, AlertState
from umig_monitor.core.health import HealthSample, Outcome, VersionSeen
from umig_monitor.storage import LATEST_VERSION, HealthRollup, PruneResult, StorageError, Store
from umig_monitor.storage.engine import normalize_url, redacted
from umig_monitor.storage.records import OutboxEntry
from umig_monitor.storage.schema import alerts, health_samples, outbox
from umig_monitor.storage.store import RECENT_BATCH, ROLLUP_SETTLE, rollup_boundary
from umig_monitor.storage.types import UTCDateTime

T0 = datetime(2024, 10, 25, 10, 0, tzinfo=UTC)

BACKENDS = ["sqlite_file", "sqlite_memory", *(["postgresql"] if POSTGRES_URL else [])]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(backend, tmp_path / "state" / "umig-monitor.db") as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    try:
        yield opened
    finally:
        await opened.close()


def sample(env: str, ts: datetime, outcome: Outcome = Outcome.HEALTHY, **fields: Any) -> HealthSample:
    return HealthSample(environment=env, ts=ts, outcome=outcome, **fields)


async def insert_rows(store: Store, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    # Alerts and the outbox have no Store methods yet; seed them directly for the prune tests.
    async with store._engine.begin() as conn:
        await conn.execute(table.insert(), list(rows))


async def count_rows(store: Store, table: sa.Table) -> int:
    async with store._engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


# -- opening ----------------------------------------------------------------------------------


async def test_open_reports_schema_version_and_pings(store: Store) -> None:
    assert await store.schema_version() == LATEST_VERSION
    await store.ping()


async def test_closed_store_refuses_work(store_url: str) -> None:
    opened = await Store.open(store_url)
    await opened.close()
    await opened.close()  # closing twice is harmless
    with pytest.raises(StorageError, match="closed"):
        await opened.ping()


async def test_sqlite_file_creates_missing_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    async with await Store.open(f"sqlite:///{path}") as opened, opened._engine.connect() as conn:
        pragmas = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 5000, "synchronous": 1, "foreign_keys": 1}
    assert path.is_file()
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


async def test_sqlite_call_cancelled_twice_leaves_no_task_behind(tmp_path: Path) -> None:
    # A cluster tick's timeout cancels a write that waits for the lock, and a shutdown cancels the
    # tick again while the pool throws that connection away. Once the lock is free, the call ends
    # cancelled and nothing is left waiting: no task for the garbage collector to find pending.
    path = tmp_path / "state.db"
    async with await Store.open(f"sqlite:///{path}") as store:
        engine = store._engine.sync_engine
        executing, thrown_away = asyncio.Event(), asyncio.Event()
        sa.event.listen(engine, "before_cursor_execute", lambda *_: executing.set())
        sa.event.listen(engine.pool, "invalidate", lambda *_: thrown_away.set())
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            call = asyncio.create_task(store.kv_set("k", 1, T0))
            await executing.wait()  # its BEGIN IMMEDIATE waits for the holder's lock
            call.cancel()
            await thrown_away.wait()  # the cancelled statement's connection is being closed
            call.cancel()
        finally:
            holder.rollback()
            holder.close()
        with pytest.raises(asyncio.CancelledError):
            await call
    left = asyncio.all_tasks() - {asyncio.current_task()}
    shown = [repr(task) for task in left]
    for _ in range(3):  # a failure here must not hang the event loop's close, which cancels once
        if not left:
            break
        for task in left:
            task.cancel()
        _, left = await asyncio.wait(left, timeout=1)
    assert not shown, shown


@pytest.mark.skipif(not POSTGRES_URL, reason="needs PostgreSQL (UMIG_TEST_POSTGRES_URL; .ci/run starts one)")
async def test_postgres_call_cancelled_twice_leaves_no_orphan_error() -> None:
    # A shutdown cancels a query, and cancels again while the pool throws that connection away:
    # asyncpg's graceful close, shielded by SQLAlchemy, then fails with nobody to hear it
    # ("Future exception was never retrieved" in the log). The connection is aborted instead.
    loop = asyncio.get_running_loop()
    unheard: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unheard.append(str(context.get("message"))))
    try:
        async with scratch_database("postgresql", Path("unused")) as url, await Store.open(url) as store:
            engine = store._engine
            executing = asyncio.Event()
            sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda *_: executing.set())

            async def slow() -> None:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT pg_sleep(30)"))

            # The second cancellation lands at every step of the first one's clean-up in turn.
            for steps in range(24):
                executing.clear()
                call = asyncio.create_task(slow())
                await executing.wait()
                await asyncio.sleep(0.02)  # the query is on the wire
                call.cancel()
                for _ in range(steps):
                    await asyncio.sleep(0)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
        for _ in range(5):  # the orphaned future is reported when it is collected
            gc.collect()
            await asyncio.sleep(0.05)
    finally:
        loop.set_exception_handler(previous)
    assert unheard == []


async def test_sqlite_path_under_a_file_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create directory"):
        await Store.open(f"sqlite:///{blocker}/state.db")


async def test_sqlite_path_that_is_a_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(
        StorageError, match=r"cannot open database .*unable to open database file \(the path is a directory\)"
    ):
        await Store.open(f"sqlite:///{tmp_path}")


@pytest.mark.parametrize(
    ("written", "driver"),
    [
        ("sqlite:///var/lib/umig/state.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///state.db", "sqlite+aiosqlite"),
        ("sqlite:///:memory:", "sqlite+aiosqlite"),
        ("postgresql://umig:secret@db/umig", "postgresql+asyncpg"),
        ("postgres://umig:secret@db/umig", "postgresql+asyncpg"),
        ("postgresql+asyncpg://umig@db/umig", "postgresql+asyncpg"),
    ],
)
def test_urls_are_mapped_to_async_drivers(written: str, driver: str) -> None:
    assert normalize_url(written).drivername == driver


@pytest.mark.parametrize("written", ["mysql://db/umig", "postgresql+psycopg2://db/umig", "not a url"])
def test_unsupported_urls_are_storage_errors(written: str) -> None:
    with pytest.raises(StorageError):
        normalize_url(written)


def test_redacted_url_hides_the_password() -> None:
    assert "secret" not in redacted("postgresql://umig:secret@db/umig")


# -- timestamps -------------------------------------------------------------------------------


def test_utc_datetime_refuses_naive_values() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        UTCDateTime().process_bind_param(datetime(2024, 1, 1), sa.create_engine("sqlite://").dialect)


async def test_naive_sample_timestamp_is_rejected_and_nothing_stored(store: Store) -> None:
    good = sample("dev", T0)
    naive = sample("dev", datetime(2024, 10, 25, 10, 5))
    with pytest.raises(ValueError, match="naive datetime"):
        await store.add_health_samples([good, naive])
    assert await store.latest_health_samples() == {}


async def test_naive_query_bounds_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        await store.health_samples_between(datetime(2024, 1, 1), T0)
    with pytest.raises(ValueError, match="naive datetime"):
        await store.rollup_health(datetime(2024, 1, 1))


# -- health samples ---------------------------------------------------------------------------


def test_every_sample_field_has_a_column() -> None:
    columns = {column.name for column in health_samples.c} - {"id"}
    assert {field.name for field in dataclasses.fields(HealthSample)} == columns


async def test_sample_round_trip_keeps_every_field(store: Store) -> None:
    paris = timezone(timedelta(hours=2))
    full = HealthSample(
        environment="uat",
        ts=datetime(2024, 10, 24, 16, 30, 0, 123456, tzinfo=paris),
        outcome=Outcome.DEGRADED,
        umig_status="degraded",
        version="1.2.0-rc.2",
        build="ci.1245",
        uptime_seconds=94500,
        uptime_text="1d 2h 15m",
        response_ms=41.25,
        components={"database": "healthy", "api": "degraded"},
        metrics={"errorRate": 0.01, "activeUsers": 12, "nested": {"list": [1, "two", None]}},
        error="api slow",
        component_versions={"database": "031", "api": "2.3.1"},
        tls_cert_expiry=datetime(2025, 1, 20, 23, 59, 59, tzinfo=UTC),
    )
    await store.add_health_samples([full])
    (stored,) = await store.recent_health_samples("uat", 10)
    assert stored == full
    assert stored.ts.tzinfo is UTC
    assert stored.ts == datetime(2024, 10, 24, 14, 30, 0, 123456, tzinfo=UTC)


async def test_none_and_zero_stay_distinct(store: Store) -> None:
    await store.add_health_samples(
        [
            sample("dev", T0, Outcome.TIMEOUT, uptime_seconds=None, response_ms=None, uptime_text=None),
            sample("prod", T0, uptime_seconds=0, response_ms=0.0, uptime_text="", umig_status=""),
        ]
    )
    latest = await store.latest_health_samples()
    assert (latest["dev"].uptime_seconds, latest["dev"].response_ms, latest["dev"].uptime_text) == (
        None,
        None,
        None,
    )
    prod = latest["prod"]
    assert (prod.uptime_seconds, prod.response_ms, prod.uptime_text, prod.umig_status) == (0, 0.0, "", "")
    assert latest["dev"].components == {}
    assert latest["dev"].metrics == {}


async def test_latest_sample_per_environment(store: Store) -> None:
    await store.add_health_samples(
        [
            sample("dev", T0 + timedelta(minutes=2), version="b"),
            sample("dev", T0 + timedelta(minutes=5), version="c"),
            sample("dev", T0, version="a"),
            sample("prod", T0 - timedelta(days=3), version="p"),
        ]
    )
    # Same timestamp twice: the one stored last wins.
    await store.add_health_samples([sample("uat", T0, version="u1")])
    await store.add_health_samples([sample("uat", T0, version="u2")])
    latest = await store.latest_health_samples()
    assert {env: s.version for env, s in latest.items()} == {"dev": "c", "prod": "p", "uat": "u2"}


async def test_last_versioned_sample_is_what_an_unreachable_environment_last_ran(store: Store) -> None:
    await store.add_health_samples(
        [
            sample("uat", T0, version="1.2.0-rc.1", component_versions={"ui": "1.2.0"}),
            sample("uat", T0 + timedelta(seconds=30), version="1.2.0-rc.2"),
            *(sample("uat", T0 + timedelta(seconds=60 + i), Outcome.UNREACHABLE) for i in range(3)),
        ]
    )
    held = await store.last_versioned_sample("uat")
    assert held is not None
    assert (held.version, held.ts) == ("1.2.0-rc.2", T0 + timedelta(seconds=30))
    assert await store.last_versioned_sample("nowhere") is None


async def test_last_versioned_samples_of_many_environments_in_one_read(store: Store) -> None:
    await store.add_health_samples(
        [
            sample("uat", T0, version="1.2.0-rc.1"),
            sample("uat", T0 + timedelta(seconds=30), Outcome.UNREACHABLE),
            sample("dev", T0, version="d1"),
            sample("dev", T0 + timedelta(seconds=30), version="d2"),
            sample("prod", T0, Outcome.UNREACHABLE),
        ]
    )
    held = await store.last_versioned_samples(["uat", "dev", "prod", "nowhere"])
    assert {env: (s.version, s.ts) for env, s in held.items()} == {
        "uat": ("1.2.0-rc.1", T0),
        "dev": ("d2", T0 + timedelta(seconds=30)),
    }
    assert await store.last_versioned_samples([]) == {}


async def test_latest_samples_of_more_environments_than_one_read_takes(store: Store) -> None:
    names = [f"env-{i:04d}" for i in range(2500)]  # more than latest.CHUNK ids
    await store.add_health_samples(
        [sample(name, T0 + timedelta(seconds=s)) for name in names for s in (0, 1)]
    )
    latest = await store.latest_health_samples()
    assert sorted(latest) == names
    assert {s.ts for s in latest.values()} == {T0 + timedelta(seconds=1)}


async def test_recent_samples_are_newest_first_and_limited(store: Store) -> None:
    await store.add_health_samples(
        [sample("dev", T0 + timedelta(seconds=30 * i), response_ms=float(i)) for i in range(10)]
        + [sample("prod", T0 + timedelta(hours=1))]
    )
    recent = await store.recent_health_samples("dev", 3)
    assert [s.response_ms for s in recent] == [9.0, 8.0, 7.0]
    assert await store.recent_health_samples("nowhere", 3) == []
    assert await store.recent_health_samples("dev", 0) == []


async def test_recent_versions_per_environment_newest_first_across_batches(store: Store) -> None:
    """The versions of each environment's last samples, NULLs kept (they count towards the limit),
    ties on ts broken by id; more environments than one statement holds."""
    names = [f"env{i:03d}" for i in range(RECENT_BATCH + 5)]
    rows = [sample(n, T0 + timedelta(seconds=s), version=f"1.0.{s}") for n in names for s in range(4)]
    rows += [sample("env000", T0 + timedelta(seconds=3), version=None)]  # same ts as 1.0.3, later id
    await store.add_health_samples(rows)
    recent = await store.recent_versions([*names, "nowhere"], 3)
    assert sorted(recent) == names
    assert recent["env000"] == [None, "1.0.3", "1.0.2"]
    assert all(recent[n] == ["1.0.3", "1.0.2", "1.0.1"] for n in names[1:])
    assert await store.recent_versions(["env001"], 0) == {}
    assert await store.recent_versions([], 3) == {}


async def test_active_alerts_are_all_of_them_and_filter_by_environments(store: Store) -> None:
    """Every firing alert, past any page size (the incident memory is seeded from them), and only
    those of the environments asked for."""
    envs = [f"env{i:03d}" for i in range(260)]
    for env in envs:
        for kind in ("environment_health", "component_health"):
            await store.fire_alert(AlertEvent(f"{kind}/{env}", kind, env, "critical", f"{env} down", T0))
    assert len(await store.active_alerts()) == 520
    some = await store.active_alerts(environments=["env001", "env002", "nowhere"])
    assert sorted(a.key for a in some) == [
        "component_health/env001",
        "component_health/env002",
        "environment_health/env001",
        "environment_health/env002",
    ]
    assert len(await store.list_alerts(state=AlertState.FIRING)) == 500  # a listing keeps its page


async def test_versions_seen_set_together_and_read_for_some(store: Store) -> None:
    seen = {n: VersionSeen(f"2.0.{i}", T0 + timedelta(minutes=i)) for i, n in enumerate(("a", "b", "c"))}
    await store.set_versions_seen(seen, T0)
    await store.set_versions_seen({"b": VersionSeen("2.1.0", T0 + timedelta(hours=1))}, T0)  # replaces
    assert await store.versions_seen(["a", "b", "nowhere"]) == {
        "a": seen["a"],
        "b": VersionSeen("2.1.0", T0 + timedelta(hours=1)),
    }
    assert sorted(await store.versions_seen()) == ["a", "b", "c"]
    await store.set_versions_seen({}, T0)  # nothing to write


async def test_samples_between_is_half_open_and_filters_environment(store: Store) -> None:
    await store.add_health_samples(
        [sample(env, T0 + timedelta(minutes=m)) for env in ("dev", "prod") for m in (0, 10, 20, 30)]
    )
    start, end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=30)
    both = await store.health_samples_between(start, end)
    assert [(s.environment, s.ts) for s in both] == [
        ("dev", start),
        ("prod", start),
        ("dev", start + timedelta(minutes=10)),
        ("prod", start + timedelta(minutes=10)),
    ]
    dev = await store.health_samples_between(start, end, environment="dev")
    assert [s.ts for s in dev] == [start, start + timedelta(minutes=10)]
    # Bounds in another zone mean the same instants: the database compares instants, not text.
    kolkata = timezone(timedelta(hours=5, minutes=30))
    assert await store.health_samples_between(start.astimezone(kolkata), end.astimezone(kolkata)) == both


async def test_empty_batch_is_a_no_op(store: Store) -> None:
    await store.add_health_samples([])
    assert await store.latest_health_samples() == {}


async def test_concurrent_writers_all_land(backend: str, store_url: str) -> None:
    if backend == "sqlite_memory":
        pytest.skip("one shared connection: concurrent transactions would interleave")
    async with await Store.open(store_url, pool_size=4) as opened:
        batches = [[sample(f"env{w}", T0 + timedelta(seconds=i)) for i in range(50)] for w in range(8)]
        await asyncio.gather(*(opened.add_health_samples(batch) for batch in batches))
        await asyncio.gather(*(opened.rollup_health(T0 + timedelta(hours=2)) for _ in range(4)))
        assert await count_rows(opened, health_samples) == 400
        rollups = await opened.health_rollups(T0, T0 + timedelta(hours=1))
        assert sorted(r.environment for r in rollups) == [f"env{w}" for w in range(8)]


# -- daemon state -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [{"version": "1.2.0", "first_seen": "2024-10-24T14:30:00Z"}, [1, 2], "x", 0]
)
async def test_kv_set_then_get(store: Store, value: Any) -> None:
    assert await store.kv_get("first_seen") is None
    await store.kv_set("first_seen", {"old": True}, T0)
    await store.kv_set("first_seen", value, T0 + timedelta(minutes=1))
    assert await store.kv_get("first_seen") == value
    assert await store.kv_get("other") is None


# -- rollups ----------------------------------------------------------------------------------

OUTCOME_CYCLE = list(Outcome)


def mixed_samples() -> list[HealthSample]:
    """Two environments over three hours, every outcome, some polls without a response time."""
    samples = []
    for env_index, env in enumerate(("dev", "prod")):
        for i in range(36):  # one poll every 5 minutes for 3 hours
            outcome = OUTCOME_CYCLE[(i + env_index) % len(OUTCOME_CYCLE)]
            response = None if i % 4 == 0 else float(10 * env_index + i)
            samples.append(sample(env, T0 + timedelta(minutes=5 * i), outcome, response_ms=response))
    return samples


def rollups_by_hand(samples: list[HealthSample], before: datetime) -> list[HealthRollup]:
    groups: dict[tuple[str, datetime], list[HealthSample]] = {}
    for s in samples:
        hour = s.ts.replace(minute=0, second=0, microsecond=0)
        if hour + timedelta(hours=1) <= before:
            groups.setdefault((s.environment, hour), []).append(s)
    expected = []
    for (env, hour), group in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        times = [s.response_ms for s in group if s.response_ms is not None]
        expected.append(
            HealthRollup(
                environment=env,
                hour=hour,
                samples=len(group),
                healthy=sum(s.outcome is Outcome.HEALTHY for s in group),
                degraded=sum(s.outcome is Outcome.DEGRADED for s in group),
                unhealthy=sum(s.outcome is Outcome.UNHEALTHY for s in group),
                failed=sum(not s.outcome.answered for s in group),
                response_ms_avg=sum(times) / len(times) if times else None,
                response_ms_max=max(times) if times else None,
            )
        )
    return expected


async def test_rollup_matches_a_recount_by_hand(store: Store) -> None:
    samples = mixed_samples()
    await store.add_health_samples(samples)
    now = T0 + timedelta(hours=2, minutes=30)  # hours 10 and 11 are over, 12 is not
    assert await store.rollup_health(now) == 4
    stored = await store.health_rollups(T0 - timedelta(days=1), T0 + timedelta(days=1))
    expected = rollups_by_hand(samples, before=T0 + timedelta(hours=2))
    assert stored == expected
    assert all(r.hour.tzinfo is UTC for r in stored)
    assert sum(r.samples for r in stored) == 48


async def test_rollup_is_idempotent_and_incremental(store: Store) -> None:
    samples = mixed_samples()
    await store.add_health_samples(samples)
    now = T0 + timedelta(hours=2, minutes=30)
    assert await store.rollup_health(now) == 4
    assert await store.rollup_health(now) == 0
    later = T0 + timedelta(hours=3, minutes=30)
    assert await store.rollup_health(later) == 2
    stored = await store.health_rollups(T0, T0 + timedelta(hours=3))
    assert stored == rollups_by_hand(samples, before=T0 + timedelta(hours=3))


@pytest.mark.parametrize(
    ("now", "boundary"),
    [
        (datetime(2024, 10, 25, 11, 30, tzinfo=UTC), datetime(2024, 10, 25, 11, 0, tzinfo=UTC)),
        (datetime(2024, 10, 25, 11, 1, tzinfo=UTC), datetime(2024, 10, 25, 10, 0, tzinfo=UTC)),
        (datetime(2024, 10, 25, 11, 2, tzinfo=UTC), datetime(2024, 10, 25, 11, 0, tzinfo=UTC)),
        # Hours are UTC hours, whatever zone ``now`` is given in.
        (
            datetime(2024, 10, 25, 17, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            datetime(2024, 10, 25, 11, 0, tzinfo=UTC),
        ),
    ],
)
def test_rollup_boundary(now: datetime, boundary: datetime) -> None:
    assert rollup_boundary(now) == boundary
    assert rollup_boundary(now).tzinfo is UTC


async def test_rollup_waits_for_late_writes_of_the_last_hour(store: Store) -> None:
    await store.add_health_samples([sample("dev", T0 + timedelta(minutes=59, seconds=59))])
    just_after = T0 + timedelta(hours=1, seconds=30)
    assert rollup_boundary(just_after) == T0
    assert await store.rollup_health(just_after) == 0
    assert await store.rollup_health(T0 + timedelta(hours=1) + ROLLUP_SETTLE) == 1


async def test_rollups_filter_by_range_and_environment(store: Store) -> None:
    await store.add_health_samples(mixed_samples())
    await store.rollup_health(T0 + timedelta(hours=4))
    second_hour = await store.health_rollups(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert [(r.environment, r.hour) for r in second_hour] == [
        ("dev", T0 + timedelta(hours=1)),
        ("prod", T0 + timedelta(hours=1)),
    ]
    prod = await store.health_rollups(T0, T0 + timedelta(hours=4), environment="prod")
    assert [r.hour for r in prod] == [T0 + timedelta(hours=h) for h in range(3)]


async def test_health_hours_count_raw_samples_as_rollups_do_within_the_range(store: Store) -> None:
    samples = mixed_samples()
    await store.add_health_samples(samples)
    # Cut inside the first and the last hour: those hours count only their samples in the range.
    start, end = T0 + timedelta(minutes=20), T0 + timedelta(hours=2, minutes=40)
    inside = [s for s in samples if start <= s.ts < end]
    hours = await store.health_hours(start, end)
    assert hours == rollups_by_hand(inside, before=end + timedelta(hours=1))
    assert [h.samples for h in hours] == [8, 8, 12, 12, 8, 8]
    assert all(h.hour.tzinfo is UTC for h in hours)
    # Whole hours: exactly the rows rollup_health writes for them.
    await store.rollup_health(T0 + timedelta(hours=4))
    assert await store.health_hours(T0, T0 + timedelta(hours=3)) == await store.health_rollups(
        T0, T0 + timedelta(hours=3)
    )
    kolkata = timezone(timedelta(hours=5, minutes=30))
    assert await store.health_hours(start.astimezone(kolkata), end.astimezone(kolkata)) == hours
    assert await store.health_hours(T0 - timedelta(days=2), T0 - timedelta(days=1)) == []


async def test_last_health_samples_of_a_range_and_their_last_versions(store: Store) -> None:
    await store.add_health_samples(
        [
            sample("uat", T0, version="1.2.0", uptime_text="3h", components={"db": "ok"}),
            sample("uat", T0 + timedelta(minutes=1), version=""),  # an empty version is none
            sample("uat", T0 + timedelta(minutes=2), Outcome.UNREACHABLE),
            sample("uat", T0 + timedelta(hours=1), version="after"),  # past the range
            sample("dev", T0 + timedelta(minutes=5), version="d1"),
            sample("dev", T0 + timedelta(minutes=5), Outcome.DEGRADED, version="d2"),  # same stamp, later
            sample("prod", T0 - timedelta(minutes=1), version="before"),  # before the range
        ]
    )
    start, end = T0, T0 + timedelta(hours=1)
    last = await store.last_health_samples(start, end)
    assert {env: (s.ts, s.outcome, s.version) for env, s in last.items()} == {
        "uat": (T0 + timedelta(minutes=2), Outcome.UNREACHABLE, None),
        "dev": (T0 + timedelta(minutes=5), Outcome.DEGRADED, "d2"),
    }
    versioned = await store.last_health_samples(start, end, versioned=True)
    assert {env: (s.ts, s.version, s.uptime_text) for env, s in versioned.items()} == {
        "uat": (T0, "1.2.0", "3h"),
        "dev": (T0 + timedelta(minutes=5), "d2", None),
    }
    assert versioned["uat"].components == {}  # brief: the maps are not read
    assert await store.last_health_samples(T0 - timedelta(days=1), T0 - timedelta(hours=1)) == {}


# -- retention --------------------------------------------------------------------------------

RETENTION = {
    "raw_samples": timedelta(days=1),
    "hourly_rollups": timedelta(days=30),
    "alerts": timedelta(days=7),
    "outbox_sent": timedelta(days=2),
}


def alert_row(key: str, state: str, starts_at: datetime, ends_at: datetime | None) -> dict[str, Any]:
    return {
        "alert_key": key,
        "type": "environment_unhealthy",
        "environment": "prod",
        "severity": "critical",
        "labels": {"env": "prod"},
        "summary": f"{key} {state}",
        "details": {},
        "state": state,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "updated_at": ends_at or starts_at,
    }


def outbox_row(key: str, status: str, created_at: datetime, sent_at: datetime | None) -> dict[str, Any]:
    return {
        "alert_id": None,
        "sink": "ops-mail",
        "kind": "firing",
        "idempotency_key": key,
        "payload": {"key": key},
        "status": status,
        "attempts": 1,
        "next_attempt_at": created_at,
        "created_at": created_at,
        "sent_at": sent_at,
    }


async def test_prune_rolls_up_before_deleting_samples(store: Store) -> None:
    now = T0 + timedelta(days=3)
    old = [sample("prod", T0 + timedelta(minutes=10 * i), response_ms=float(i)) for i in range(12)]
    recent = [sample("prod", now - timedelta(hours=2)), sample("prod", now - timedelta(minutes=1))]
    await store.add_health_samples(old + recent)
    result = await store.prune(now, **RETENTION)
    assert result.health_samples == 12
    assert result.rolled_up == 3  # the two old hours and the recent completed one
    assert await store.health_samples_between(T0 - timedelta(days=1), now + timedelta(days=1)) == recent
    rollups = await store.health_rollups(T0, T0 + timedelta(hours=2))
    assert rollups == rollups_by_hand(old, before=now)


async def test_prune_never_deletes_samples_of_hours_not_rolled_up(store: Store) -> None:
    now = T0 + timedelta(minutes=30)
    await store.add_health_samples([sample("dev", T0 + timedelta(minutes=m)) for m in (1, 2, 3)])
    result = await store.prune(now, **{**RETENTION, "raw_samples": timedelta(0)})
    assert (result.rolled_up, result.health_samples) == (0, 0)
    assert len(await store.recent_health_samples("dev", 10)) == 3


async def test_prune_deletes_old_rollups(store: Store) -> None:
    await store.add_health_samples(mixed_samples())
    now = T0 + timedelta(days=30, hours=1, minutes=30)  # rollups before 11:30 on day 0 expire
    result = await store.prune(now, **RETENTION)
    assert result == PruneResult(rolled_up=6, health_samples=72, health_rollups_hourly=4, alerts=0, outbox=0)
    kept = await store.health_rollups(T0, now)
    assert [r.hour for r in kept] == [T0 + timedelta(hours=2)] * 2


async def test_prune_keeps_firing_alerts_and_pending_outbox(store: Store) -> None:
    now = T0 + timedelta(days=30)
    long_ago = now - timedelta(days=20)
    await insert_rows(
        store,
        alerts,
        [
            alert_row("old-firing", "firing", long_ago, None),
            alert_row("old-resolved", "resolved", long_ago, long_ago + timedelta(hours=1)),
            alert_row("new-resolved", "resolved", long_ago, now - timedelta(days=1)),
        ],
    )
    async with store._engine.connect() as conn:
        old_resolved_id = (
            await conn.execute(sa.select(alerts.c.id).where(alerts.c.alert_key == "old-resolved"))
        ).scalar_one()
    await insert_rows(
        store,
        outbox,
        [
            outbox_row("pending-old", "pending", long_ago, None),
            outbox_row("sent-old", "sent", long_ago, long_ago),
            outbox_row("failed-old", "failed", long_ago, None),
            outbox_row("sent-new", "sent", now - timedelta(days=1), now - timedelta(days=1))
            | {"alert_id": old_resolved_id},
        ],
    )
    result = await store.prune(now, **RETENTION)
    assert (result.alerts, result.outbox) == (1, 2)
    async with store._engine.connect() as conn:
        kept_alerts = (await conn.execute(sa.select(alerts.c.alert_key).order_by(alerts.c.id))).scalars()
        assert list(kept_alerts) == ["old-firing", "new-resolved"]
        kept_outbox = (
            await conn.execute(sa.select(outbox.c.idempotency_key, outbox.c.alert_id).order_by(outbox.c.id))
        ).all()
    # The delivery record of a pruned alert stays, detached from it.
    assert [tuple(row) for row in kept_outbox] == [("pending-old", None), ("sent-new", None)]


async def test_prune_refuses_negative_retention(store: Store) -> None:
    with pytest.raises(ValueError, match="alerts retention"):
        await store.prune(T0, **{**RETENTION, "alerts": timedelta(days=-1)})


async def test_previous_version_is_the_latest_other_known_version_before(store: Store) -> None:
    for hours, env, version in [
        (0, "production", "1.1.1"),
        (1, "production", "1.1.2"),
        (2, "production", None),  # version unknown: not a version it ran
        (3, "production", "1.2.0"),
        (4, "uat", "1.1.3"),
    ]:
        await store.add_baseline(env, version, T0 + timedelta(hours=hours), {}, {})
    assert await store.previous_version("production", "1.2.0", T0 + timedelta(hours=5)) == "1.1.2"
    assert await store.previous_version("production", "1.2.0", T0 + timedelta(hours=1)) == "1.1.1"
    assert await store.previous_version("production", "1.1.2", T0 + timedelta(hours=5)) == "1.2.0"
    assert await store.previous_version("production", "1.1.1", T0 + timedelta(minutes=30)) is None
    assert await store.previous_version("uat", "1.1.3", T0 + timedelta(hours=5)) is None


async def test_pending_counts_are_per_sink_and_only_pending(store: Store) -> None:
    def entry(key: str, sink: str) -> OutboxEntry:
        return OutboxEntry(sink, "firing", key, {}, T0, T0 + timedelta(hours=1))

    await store.enqueue([entry("a", "ops"), entry("b", "ops"), entry("c", "mail")], [])
    (sent,) = [d for d in await store.due_deliveries(T0) if d.idempotency_key == "c"]
    await store.delivery_sent(sent.id, T0)
    assert await store.pending_counts() == {"ops": 2}
    assert await store.outbox_counts() == {("ops", "pending"): 2, ("mail", "sent"): 1}
