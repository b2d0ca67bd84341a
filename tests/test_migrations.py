"""Schema migrations: the upgrade path keeps data, replicas migrating together apply each step once,
a newer database is refused, and the migrated schema is exactly the live one in ``schema.py``.

Runs on a SQLite file, and on PostgreSQL when ``UMIG_TEST_POSTGRES_URL`` is set (see
test_storage.py). Rows for an old schema version are written through lightweight ``sa.table``
descriptions kept in this file, so the test stays true to that version however the live schema
evolves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.history_cases import DAY, assert_history_matches, generated, outcome
from tests.support import POSTGRES_URL, scratch_database
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.health import Outcome
from umig_monitor.storage import LATEST_VERSION, StorageError, Store, migrations
from umig_monitor.storage.engine import create_engine
from umig_monitor.storage.schema import metadata as live_metadata
from umig_monitor.storage.types import UTCDateTime, json_doc

T0 = datetime(2024, 10, 20, 9, 0, tzinfo=UTC)
T = TypeVar("T")

# Files, not :memory:: these tests close and reopen the database.
BACKENDS = ["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(backend, tmp_path / "umig-monitor.db", empty=True) as url:
        yield url


@pytest.fixture
async def reference_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A second empty database, for building straight from the live schema."""
    async with scratch_database(backend, tmp_path / "reference.db", empty=True) as url:
        yield url


async def run_sync(url: str, fn: Callable[[Connection], T]) -> T:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


async def migrated_to(url: str, version: int) -> tuple[int, ...]:
    engine = create_engine(url)
    try:
        return await migrations.migrate(engine, target_version=version)
    finally:
        await engine.dispose()


def schema_of(conn: Connection) -> dict[str, Any]:
    """Everything inspection tells about the tables, in a form that compares across databases."""
    inspector = sa.inspect(conn)
    described: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == migrations.schema_migrations.name:
            continue
        described[table] = {
            "columns": [
                (col["name"], str(col["type"].compile(conn.dialect)), col["nullable"])
                for col in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (uq["name"], tuple(uq["column_names"])) for uq in inspector.get_unique_constraints(table)
            ),
            "foreign_keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    *sorted(fk["options"].items()),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
        }
    return described


# -- the list of steps ------------------------------------------------------------------------


def test_versions_are_consecutive_from_one() -> None:
    assert [step.version for step in migrations.MIGRATIONS] == list(range(1, LATEST_VERSION + 1))
    assert all(step.description for step in migrations.MIGRATIONS)


@pytest.mark.parametrize("target", [-1, LATEST_VERSION + 1])
async def test_target_version_out_of_range(store_url: str, target: int) -> None:
    with pytest.raises(ValueError, match="target_version"):
        await migrated_to(store_url, target)


# -- fresh databases --------------------------------------------------------------------------


async def test_fresh_database_records_every_step(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        assert await store.schema_version() == LATEST_VERSION
    rows = await run_sync(
        store_url,
        lambda conn: conn.execute(
            sa.select(migrations.schema_migrations).order_by(migrations.schema_migrations.c.version)
        ).all(),
    )
    assert [(row.version, row.description) for row in rows] == [
        (step.version, step.description) for step in migrations.MIGRATIONS
    ]
    assert all(row.applied_at.tzinfo is UTC for row in rows)


async def test_reopening_applies_nothing(store_url: str) -> None:
    assert await migrated_to(store_url, LATEST_VERSION) == tuple(range(1, LATEST_VERSION + 1))
    assert await migrated_to(store_url, LATEST_VERSION) == ()


async def test_migrated_schema_matches_live_schema(store_url: str, reference_url: str) -> None:
    async with await Store.open(store_url):
        pass
    await run_sync(reference_url, live_metadata.create_all)
    migrated = await run_sync(store_url, schema_of)
    live = await run_sync(reference_url, schema_of)
    assert set(migrated) == set(live_metadata.tables)
    assert migrated == live


async def test_replicas_migrating_together_apply_each_step_once(store_url: str) -> None:
    # Replicas that start together all migrate the same empty database; the step lock lets one
    # apply each step and the others find it done, with no error.
    engines = [create_engine(store_url) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrations.migrate(engine) for engine in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(version for versions in applied for version in versions) == list(
        range(1, LATEST_VERSION + 1)
    )
    assert await migrated_to(store_url, LATEST_VERSION) == ()


# -- upgrading --------------------------------------------------------------------------------

# The version-1 tables as this test writes them (only the columns it fills in).
V1_HEALTH_SAMPLES = sa.table(
    "health_samples",
    sa.column("environment", sa.String),
    sa.column("ts", UTCDateTime()),
    sa.column("outcome", sa.String),
    sa.column("version", sa.String),
    sa.column("uptime_seconds", sa.BigInteger),
    sa.column("response_ms", sa.Double),
    sa.column("components", json_doc()),
    sa.column("metrics", json_doc()),
    sa.column("component_versions", json_doc()),
)
V1_KV_STATE = sa.table(
    "kv_state",
    sa.column("key", sa.String),
    sa.column("value", json_doc()),
    sa.column("updated_at", UTCDateTime()),
)


def fill_version_1(conn: Connection) -> None:
    conn.execute(
        V1_HEALTH_SAMPLES.insert(),
        [
            {
                "environment": "production",
                "ts": T0 + timedelta(minutes=10 * i),
                "outcome": Outcome.HEALTHY.value,
                "version": "1.1.2",
                "uptime_seconds": None if i == 0 else 600 * i,
                "response_ms": 20.0 + i,
                "components": {"database": "healthy"},
                "metrics": {"activeUsers": i},
                "component_versions": {"database": "030"},
            }
            for i in range(6)
        ],
    )
    conn.execute(
        V1_KV_STATE.insert().values(
            key="first_seen:production:1.1.2", value={"at": T0.isoformat()}, updated_at=T0
        )
    )


async def test_upgrade_from_version_1_keeps_data(store_url: str, reference_url: str) -> None:
    assert await migrated_to(store_url, 1) == (1,)
    tables_at_1 = await run_sync(store_url, lambda conn: set(sa.inspect(conn).get_table_names()))
    assert "health_rollups_hourly" not in tables_at_1
    await run_sync(store_url, fill_version_1)

    async with await Store.open(store_url) as store:
        assert await store.schema_version() == LATEST_VERSION
        samples = await store.recent_health_samples("production", 10)
        assert [s.ts for s in samples] == [T0 + timedelta(minutes=10 * i) for i in reversed(range(6))]
        assert samples[-1].uptime_seconds is None
        assert samples[0].component_versions == {"database": "030"}
        assert await store.kv_get("first_seen:production:1.1.2") == {"at": T0.isoformat()}
        # The new table works on the old data.
        assert await store.rollup_health(T0 + timedelta(hours=2)) == 1
        (rollup,) = await store.health_rollups(T0, T0 + timedelta(hours=1))
        assert (rollup.samples, rollup.healthy, rollup.response_ms_max) == (6, 6, 25.0)

    indexes = await run_sync(store_url, lambda conn: sa.inspect(conn).get_indexes("health_samples"))
    assert ("ix_health_samples_environment_ts", ["environment", "ts"]) in [
        (ix["name"], ix["column_names"]) for ix in indexes
    ]
    await run_sync(reference_url, live_metadata.create_all)
    assert await run_sync(store_url, schema_of) == await run_sync(reference_url, schema_of)


# The version-12 deployment tables, as this test writes them (only the columns it fills in).
V12 = sa.MetaData()
V12_DEPLOYMENT_EVENTS = sa.Table(
    "deployment_events",
    V12,
    sa.Column("id", sa.String),
    sa.Column("deployment_id", sa.String),
    sa.Column("environment", sa.String),
    sa.Column("type", sa.String),
    sa.Column("version", sa.String),
    sa.Column("to_version", sa.String),
    sa.Column("error", sa.Text),
    sa.Column("ts", UTCDateTime()),
    sa.Column("created_at", UTCDateTime()),
)
V12_DEPLOYMENT_ROLLUPS = sa.Table(
    "deployment_rollups",
    V12,
    *(
        sa.Column(name)
        for name in (
            "deployment_id",
            "environment",
            "first_ts",
            "last_ts",
            "started",
            "observed",
            "success_ts",
            "failure_ts",
            "rollback_ts",
        )
    ),
)


def fill_version_12(conn: Connection, events: list[DeploymentEvent]) -> None:
    columns = ("id", "deployment_id", "environment", "version", "to_version", "error", "ts")
    conn.execute(
        V12_DEPLOYMENT_EVENTS.insert(),
        [{"type": e.type.value, "created_at": e.ts, **{c: getattr(e, c) for c in columns}} for e in events],
    )
    # As the version-12 store kept them: one rollup row per deployment, from its events.
    names = [c.name for c in V12_DEPLOYMENT_ROLLUPS.c]
    conn.execute(
        V12_DEPLOYMENT_ROLLUPS.insert().from_select(names, migrations.rollup_select(V12_DEPLOYMENT_EVENTS))
    )


async def test_upgrade_from_version_12_counts_the_days_of_the_history_stored(store_url: str) -> None:
    assert await migrated_to(store_url, 12) == tuple(range(1, 13))
    events = generated(300, seed=13)
    await run_sync(store_url, lambda conn: fill_version_12(conn, events))

    async with await Store.open(store_url) as store:
        assert await store.schema_version() == LATEST_VERSION
        await assert_history_matches(store, events)
        # From here on every write keeps the days in step: a deployment rolled back days later.
        last = events[-1]
        rollback = outcome(last.deployment_id, last.environment, EventType.ROLLBACK, last.ts + 3 * DAY)
        rollback = replace(rollback, id=f"{rollback.id}-again")
        assert await store.add_deployment_event(rollback, rollback.ts)
        await assert_history_matches(store, [*events, rollback], days=65)


# -- refusing ---------------------------------------------------------------------------------


async def stamp_version(url: str, version: int) -> None:
    def stamp(conn: Connection) -> None:
        conn.execute(
            migrations.schema_migrations.insert().values(
                version=version, description="from the future", applied_at=T0
            )
        )

    await run_sync(url, stamp)


async def test_newer_database_is_refused(store_url: str) -> None:
    async with await Store.open(store_url):
        pass
    await stamp_version(store_url, LATEST_VERSION + 7)
    with pytest.raises(
        StorageError, match=rf"schema version {LATEST_VERSION + 7} is newer than this umig-monitor"
    ):
        await Store.open(store_url)


async def test_older_code_target_refuses_a_database_past_it(store_url: str) -> None:
    await migrated_to(store_url, LATEST_VERSION)
    with pytest.raises(StorageError, match="newer than this umig-monitor supports"):
        await migrated_to(store_url, 1)


async def test_failed_step_is_rolled_back(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(conn: Connection) -> None:
        sa.Table("half_done", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True)).create(conn)
        raise RuntimeError("step bug")

    await migrated_to(store_url, LATEST_VERSION)
    step = migrations.Migration(LATEST_VERSION + 1, "broken step", broken)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step))
    monkeypatch.setattr(migrations, "LATEST_VERSION", LATEST_VERSION + 1)
    with pytest.raises(StorageError, match=r"migration \d+ \(broken step\) failed: step bug"):
        await Store.open(store_url)

    def state(conn: Connection) -> tuple[int, bool]:
        return migrations.read_version(conn), sa.inspect(conn).has_table("half_done")

    assert await run_sync(store_url, state) == (LATEST_VERSION, False)


async def test_engine_is_released_when_open_fails(store_url: str) -> None:
    # filterwarnings=error turns an undisposed connection into a failure; opening a refused
    # database many times must not leak connections or file handles.
    async with await Store.open(store_url):
        pass
    await stamp_version(store_url, LATEST_VERSION + 1)
    for _ in range(5):
        with pytest.raises(StorageError):
            await Store.open(store_url)
