"""``Store``: the one storage interface every job uses, on SQLite or PostgreSQL alike.

Methods take and return core value types and small frozen records, never SQLAlchemy rows, so
jobs and the web layer stay independent of the database. All SQL is dialect-neutral Core apart
from the helpers in ``dialects.py``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from umig_monitor.core.health import HealthSample, Outcome, VersionSeen
from umig_monitor.storage import dialects, migrations
from umig_monitor.storage.alerts import AlertQueries
from umig_monitor.storage.cluster import ClusterQueries
from umig_monitor.storage.deployments import DeploymentQueries
from umig_monitor.storage.engine import WRITE_TRANSACTION, create_engine, is_sqlite_memory, redacted
from umig_monitor.storage.errors import StorageError, translate_errors
from umig_monitor.storage.insights import InsightQueries
from umig_monitor.storage.latest import newest_rows
from umig_monitor.storage.outbox import OutboxQueries
from umig_monitor.storage.records import HealthRollup, PruneResult
from umig_monitor.storage.schema import alerts as alert_table
from umig_monitor.storage.schema import health_rollups_hourly, health_samples, kv_state, outbox

# An hour is rolled up only once it has been over for this long, so a poll that started before
# the hour ended but was stored just after it still lands in its rollup.
ROLLUP_SETTLE: Final = timedelta(minutes=2)

# Outbox rows in these states will not be delivered again; "pending" rows are never pruned.
OUTBOX_FINISHED: Final = ("sent", "failed")

_SAMPLE_COLUMNS: Final = tuple(column for column in health_samples.c if column.name != "id")
_BRIEF_COLUMNS: Final = tuple(
    health_samples.c[name]
    for name in (
        "environment",
        "ts",
        "outcome",
        "umig_status",
        "version",
        "build",
        "uptime_seconds",
        "uptime_text",
        "response_ms",
        "error",
    )
)
_ROLLUP_KEY: Final = ("environment", "hour")
_ANSWERED: Final = tuple(outcome.value for outcome in Outcome if outcome.answered)


def sqlite_file(engine: AsyncEngine) -> Path | None:
    """The file of a SQLite engine (absolute), or None for PostgreSQL and in-memory SQLite."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or is_sqlite_memory(url) or not url.database:
        return None
    return Path(url.database).resolve()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Store(AlertQueries, OutboxQueries, DeploymentQueries, InsightQueries, ClusterQueries):
    """Async access to umig-monitor's database. Create it with ``await Store.open(url)``."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Wrap an engine whose database is already migrated; ``open`` is the usual way in."""
        self._engine = engine
        self._writer = engine.execution_options(**WRITE_TRANSACTION)
        self._dialect = engine.dialect.name
        # SQLite has one writer at a time: this process's write transactions take turns here, in
        # order, rather than in SQLite's busy handler, which sleeps and retries unfairly and gives
        # up after the busy timeout (a burst of writes under load came back "database is locked").
        # Other processes on the same file still meet the busy timeout.
        self._write_turn: AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self._dialect == "sqlite" else nullcontext()
        )
        self._closed = False
        # A SQLite file's identity at open: a file deleted or replaced under a running daemon
        # would take every later write with it (into an unlinked inode), so ping() checks it.
        self._file = sqlite_file(engine)
        self._identity = _identity(self._file) if self._file is not None else None

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 5) -> Store:
        """Connect to ``url`` and apply pending migrations; ``StorageError`` if either fails."""
        try:
            # A thread: for SQLite files this creates the directory and test-opens the file.
            engine = await asyncio.to_thread(create_engine, url, pool_size=pool_size)
        except StorageError as error:
            raise StorageError(f"cannot open database {redacted(url)}: {error}") from error
        try:
            await migrations.migrate(engine)
        except StorageError as error:
            await engine.dispose()
            raise StorageError(f"cannot open database {redacted(url)}: {error}") from error
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def companion(self, pool_size: int = 1) -> Store:
        """A second store on the same database with its own small pool, for work that must not
        queue behind the busy main pool (cluster heartbeats). SQLite has one writer at a time
        whatever the pool, and an in-memory database exists only in its own engine: there, this
        store itself."""
        if self._dialect != "postgresql":
            return self
        url = self._engine.url
        engine = await asyncio.to_thread(create_engine, url, pool_size=pool_size)
        return Store(engine)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def redacted_url(self) -> str:
        """The database URL without its password, for logs and the status API."""
        return redacted(self._engine.url)

    @property
    def dialect_name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._dialect

    async def ping(self) -> None:
        """Round-trip to the database, for readiness checks; ``StorageError`` when it fails, and
        when the SQLite file was deleted or replaced since the store opened it."""
        if self._file is not None:
            now = await asyncio.to_thread(_identity, self._file)
            if now != self._identity:
                was = f"device {self._identity[0]} inode {self._identity[1]}" if self._identity else "?"
                found = f"device {now[0]} inode {now[1]}" if now else "no file"
                raise StorageError(
                    f"the database file {self._file} was deleted or replaced while the daemon runs "
                    f"(opened {was}, now {found}); writes go nowhere until a restart reopens it"
                )
        async with self._connect("ping", write=False) as conn:
            await conn.execute(sa.select(1))

    async def schema_version(self) -> int:
        async with self._connect("reading the schema version", write=False) as conn:
            return await conn.run_sync(migrations.read_version)

    # -- health samples -------------------------------------------------------------------------

    async def add_health_samples(self, samples: Sequence[HealthSample]) -> None:
        """Store one poll round in one statement (executemany)."""
        if not samples:
            return
        rows = [_sample_to_row(sample) for sample in samples]
        async with self._connect("storing health samples", write=True) as conn:
            await conn.execute(health_samples.insert(), rows)

    async def latest_health_samples(self) -> dict[str, HealthSample]:
        """The newest sample of every environment that has one (of two with the same timestamp,
        the later insert), by index seeks per environment (``latest.py``)."""
        async with self._connect("reading the latest health samples", write=False) as conn:
            rows = await newest_rows(conn, health_samples, _SAMPLE_COLUMNS)
        return {row["environment"]: _sample_from_row(row) for row in rows}

    async def last_versioned_samples(self, environments: Collection[str]) -> dict[str, HealthSample]:
        """``last_versioned_sample`` of each of ``environments`` that has one, in two queries."""
        if not environments:
            return {}
        versioned = [health_samples.c.version.is_not(None)]
        async with self._connect("reading the last reported versions", write=False) as conn:
            rows = await newest_rows(
                conn, health_samples, _SAMPLE_COLUMNS, where=versioned, only=environments
            )
        return {row["environment"]: _sample_from_row(row) for row in rows}

    async def recent_health_samples(self, environment: str, limit: int) -> list[HealthSample]:
        """Up to ``limit`` samples of ``environment``, newest first."""
        if limit <= 0:
            return []
        statement = (
            sa.select(*_SAMPLE_COLUMNS)
            .where(health_samples.c.environment == environment)
            .order_by(health_samples.c.ts.desc(), health_samples.c.id.desc())
            .limit(limit)
        )
        async with self._connect("reading recent health samples", write=False) as conn:
            result = await conn.execute(statement)
            return [_sample_from_row(row) for row in result.mappings()]

    async def recent_versions(self, environments: Collection[str], limit: int) -> dict[str, list[str | None]]:
        """The version of each of the last ``limit`` samples of each environment, newest first
        (None where a sample had none); an environment without samples is absent. One statement
        per RECENT_BATCH environments: a UNION ALL of one index seek each (SQLite has no LATERAL,
        and a window over the environments would rank every sample they ever had)."""
        found: dict[str, list[tuple[Any, int, str | None]]] = {}
        names = sorted(set(environments))
        if limit <= 0 or not names:
            return {}
        t = health_samples
        async with self._connect("reading recent versions", write=False) as conn:
            for start in range(0, len(names), RECENT_BATCH):
                branches = []
                for name in names[start : start + RECENT_BATCH]:
                    newest = (
                        sa.select(t.c.environment, t.c.ts, t.c.id, t.c.version)
                        .where(t.c.environment == name)
                        .order_by(t.c.ts.desc(), t.c.id.desc())
                        .limit(limit)
                        .subquery()
                    )
                    branches.append(sa.select(newest))
                statement = branches[0] if len(branches) == 1 else sa.union_all(*branches)
                # Not kept in the compiled cache: one entry per batch size, each the size of the batch.
                result = await conn.execute(statement, execution_options={"compiled_cache": None})
                for environment, ts, row_id, version in result.all():
                    found.setdefault(environment, []).append((ts, row_id, version))
        return {
            name: [version for _, _, version in sorted(rows, key=lambda r: (r[0], r[1]), reverse=True)]
            for name, rows in found.items()
        }

    async def last_versioned_sample(self, environment: str) -> HealthSample | None:
        """The newest sample of ``environment`` that reported a version: what it last ran."""
        statement = (
            sa.select(*_SAMPLE_COLUMNS)
            .where(health_samples.c.environment == environment, health_samples.c.version.is_not(None))
            .order_by(health_samples.c.ts.desc(), health_samples.c.id.desc())
            .limit(1)
        )
        async with self._connect("reading the last reported version", write=False) as conn:
            row = (await conn.execute(statement)).mappings().first()
            return _sample_from_row(row) if row is not None else None

    async def health_samples_between(
        self, start: datetime, end: datetime, environment: str | None = None, *, brief: bool = False
    ) -> list[HealthSample]:
        """Samples with ``start <= ts < end``, oldest first, optionally of one environment.
        ``brief`` reads only the scalar columns (no components, metrics or versions maps): a day of
        samples for a report costs a third as much."""
        columns = _BRIEF_COLUMNS if brief else _SAMPLE_COLUMNS
        statement = sa.select(*columns).where(health_samples.c.ts >= start, health_samples.c.ts < end)
        if environment is not None:
            statement = statement.where(health_samples.c.environment == environment)
        statement = statement.order_by(health_samples.c.ts, health_samples.c.id)
        async with self._connect("reading health samples", write=False) as conn:
            result = await conn.execute(statement)
            if brief:
                return [_brief_sample(row) for row in result.mappings()]
            return [_sample_from_row(row) for row in result.mappings()]

    async def health_hours(self, start: datetime, end: datetime) -> list[HealthRollup]:
        """The samples with ``start <= ts < end`` counted per environment and UTC hour, as
        ``rollup_health`` counts an hour (the same statement), by hour then environment: an hour cut
        by ``start`` or ``end`` counts only its samples inside. What a day's report reads of its raw
        samples: about 2,400 rows for a day of 100 environments instead of 290,000 samples."""
        ts = health_samples.c.ts
        statement = self._hourly_counts(ts >= start, ts < end).order_by("hour", "environment")
        async with self._connect("counting health samples by hour", write=False) as conn:
            result = await conn.execute(statement)
            return [HealthRollup(**row) for row in result.mappings()]

    async def last_health_samples(
        self, start: datetime, end: datetime, *, versioned: bool = False
    ) -> dict[str, HealthSample]:
        """Each environment's newest sample with ``start <= ts < end`` (of two with the same
        timestamp, the later insert), without the components, metrics and versions maps; with
        ``versioned``, its newest that reported a (non-empty) version. By index seeks per
        environment (``latest.py``), whatever the range holds."""
        t = health_samples
        where = [t.c.ts >= start, t.c.ts < end]
        if versioned:
            where += [t.c.version.is_not(None), t.c.version != ""]
        async with self._connect("reading the last health samples", write=False) as conn:
            rows = await newest_rows(conn, t, _BRIEF_COLUMNS, where=where)
        return {row["environment"]: _brief_sample(row) for row in rows}

    # -- hourly rollups -------------------------------------------------------------------------

    async def rollup_health(self, now: datetime) -> int:
        """Aggregate every finished hour not rolled up yet; return the rollup rows written.

        "Not rolled up yet" means after the newest stored rollup hour, so a second call in the
        same hour writes nothing, and rows are upserted so a repeated hour is overwritten, never
        doubled. An hour counts as finished ``ROLLUP_SETTLE`` after its end.
        """
        boundary = rollup_boundary(now)
        async with self._connect("rolling up health samples", write=True) as conn:
            return await self._rollup(conn, boundary)

    async def _rollup(self, conn: AsyncConnection, boundary: datetime) -> int:
        rollups = health_rollups_hourly
        last_hour = (await conn.execute(sa.select(sa.func.max(rollups.c.hour)))).scalar_one()
        rows = (await conn.execute(self._rollup_query(last_hour, boundary))).mappings().all()
        if rows:
            upsert = dialects.upsert(self._dialect, rollups, key=_ROLLUP_KEY)
            await conn.execute(upsert, [dict(row) for row in rows])
        return len(rows)

    def _rollup_query(self, last_hour: datetime | None, boundary: datetime) -> sa.Select[Any]:
        ts = health_samples.c.ts
        after = () if last_hour is None else (ts >= last_hour + timedelta(hours=1),)
        return self._hourly_counts(ts < boundary, *after)

    def _hourly_counts(self, *where: sa.ColumnElement[bool]) -> sa.Select[Any]:
        """The samples matching ``where`` grouped per environment and UTC hour, in the columns of a
        rollup row: rollups are written from it and a day's report reads its raw samples through it."""
        ts, outcome, response_ms = health_samples.c.ts, health_samples.c.outcome, health_samples.c.response_ms
        hour = dialects.hour_floor(self._dialect, ts).label("hour")

        def count_where(condition: sa.ColumnElement[bool], name: str) -> sa.Label[int]:
            return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0).label(name)

        statement = sa.select(
            health_samples.c.environment,
            hour,
            sa.func.count().label("samples"),
            count_where(outcome == Outcome.HEALTHY.value, "healthy"),
            count_where(outcome == Outcome.DEGRADED.value, "degraded"),
            count_where(outcome == Outcome.UNHEALTHY.value, "unhealthy"),
            count_where(outcome.not_in(_ANSWERED), "failed"),
            sa.func.avg(response_ms).label("response_ms_avg"),
            sa.func.max(response_ms).label("response_ms_max"),
        ).where(*where)
        return statement.group_by(health_samples.c.environment, hour)

    async def health_rollups(
        self, start: datetime, end: datetime, environment: str | None = None
    ) -> list[HealthRollup]:
        """Rollups with ``start <= hour < end``, by hour then environment."""
        rollups = health_rollups_hourly
        statement = sa.select(rollups).where(rollups.c.hour >= start, rollups.c.hour < end)
        if environment is not None:
            statement = statement.where(rollups.c.environment == environment)
        statement = statement.order_by(rollups.c.hour, rollups.c.environment)
        async with self._connect("reading health rollups", write=False) as conn:
            result = await conn.execute(statement)
            return [HealthRollup(**row) for row in result.mappings()]

    # -- daemon state ---------------------------------------------------------------------------

    async def kv_get(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or None."""
        statement = sa.select(kv_state.c.value).where(kv_state.c.key == key)
        async with self._connect("reading daemon state", write=False) as conn:
            return (await conn.execute(statement)).scalar_one_or_none()

    async def kv_set(self, key: str, value: Any, now: datetime) -> None:
        """Store a JSON-serialisable ``value`` under ``key``, replacing any previous one."""
        statement = dialects.upsert(self._dialect, kv_state, key=("key",))
        async with self._connect("writing daemon state", write=True) as conn:
            await conn.execute(statement, {"key": key, "value": value, "updated_at": now})

    # -- the version each environment runs (kv ``version_seen:<env>``) ------------------------

    async def versions_seen(self, environments: Collection[str] | None = None) -> dict[str, VersionSeen]:
        """Every environment's (only these environments' when given), in one query."""
        statement = sa.select(kv_state.c.key, kv_state.c.value)
        if environments is None:
            statement = statement.where(kv_state.c.key.startswith(VERSION_SEEN))
        else:
            statement = statement.where(kv_state.c.key.in_(sorted(VERSION_SEEN + e for e in environments)))
        async with self._connect("reading the versions seen", write=False) as conn:
            rows = (await conn.execute(statement)).all()
        found = ((key.removeprefix(VERSION_SEEN), _version_seen(value)) for key, value in rows)
        return {name: seen for name, seen in found if seen is not None}

    async def set_versions_seen(self, seen: Mapping[str, VersionSeen], now: datetime) -> None:
        """Several environments' at once, in one transaction."""
        if not seen:
            return
        rows = [
            {
                "key": VERSION_SEEN + environment,
                "value": {"version": s.version, "first_seen": s.first_seen.isoformat()},
                "updated_at": now,
            }
            for environment, s in seen.items()
        ]
        statement = dialects.upsert(self._dialect, kv_state, key=("key",))
        async with self._connect("writing the versions seen", write=True) as conn:
            await conn.execute(statement, rows)

    # -- retention ------------------------------------------------------------------------------

    async def prune(
        self,
        now: datetime,
        *,
        raw_samples: timedelta,
        hourly_rollups: timedelta,
        alerts: timedelta,
        outbox_sent: timedelta,
    ) -> PruneResult:
        """Delete data past its retention, rolling samples up first so no hour is lost.

        Raw samples of hours not rolled up yet are kept whatever ``raw_samples`` says. Firing
        alerts and undelivered outbox rows are never deleted.
        """
        for name, keep in (
            ("raw_samples", raw_samples),
            ("hourly_rollups", hourly_rollups),
            ("alerts", alerts),
            ("outbox_sent", outbox_sent),
        ):
            if keep < timedelta(0):
                raise ValueError(f"{name} retention must not be negative, got {keep}")
        boundary = rollup_boundary(now)
        sample_cutoff = min(now - raw_samples, boundary)
        # Outbox rows go before alerts: their foreign key is set to NULL, not cascaded.
        statements = {
            "health_samples": health_samples.delete().where(health_samples.c.ts < sample_cutoff),
            "health_rollups_hourly": health_rollups_hourly.delete().where(
                health_rollups_hourly.c.hour < now - hourly_rollups
            ),
            "outbox": outbox.delete().where(
                outbox.c.status.in_(OUTBOX_FINISHED),
                sa.func.coalesce(outbox.c.sent_at, outbox.c.created_at) < now - outbox_sent,
            ),
            "alerts": alert_table.delete().where(
                alert_table.c.state == "resolved",
                sa.func.coalesce(alert_table.c.ends_at, alert_table.c.updated_at) < now - alerts,
            ),
        }
        # One transaction: no sample can slip in between its rollup and its deletion.
        async with self._connect("pruning old data", write=True) as conn:
            rolled_up = await self._rollup(conn, boundary)
            deleted = {
                name: (await conn.execute(statement)).rowcount for name, statement in statements.items()
            }
        return PruneResult(rolled_up=rolled_up, **deleted)

    # -- plumbing -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connect(self, action: str, *, write: bool) -> AsyncIterator[AsyncConnection]:
        """One transaction; driver errors inside it become ``StorageError`` naming ``action``."""
        if self._closed:
            raise StorageError(f"{action} failed: the store is closed")
        with translate_errors(action):
            if not write:
                async with self._engine.begin() as conn:
                    yield conn
                return
            async with self._write_turn, self._writer.begin() as conn:
                yield conn


def rollup_boundary(now: datetime) -> datetime:
    """Start of the first hour not yet eligible for rollup at ``now`` (UTC)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive datetime {now.isoformat()} refused: pass a timezone-aware datetime")
    settled = (now - ROLLUP_SETTLE).astimezone(UTC)
    return settled.replace(minute=0, second=0, microsecond=0)


def _sample_to_row(sample: HealthSample) -> dict[str, Any]:
    return {
        "environment": sample.environment,
        "ts": sample.ts,
        "outcome": sample.outcome.value,
        "umig_status": sample.umig_status,
        "version": sample.version,
        "build": sample.build,
        "uptime_seconds": sample.uptime_seconds,
        "uptime_text": sample.uptime_text,
        "response_ms": sample.response_ms,
        "components": dict(sample.components),
        "metrics": dict(sample.metrics),
        "error": sample.error,
        "component_versions": dict(sample.component_versions),
        "tls_cert_expiry": sample.tls_cert_expiry,
        "deployed_at": sample.deployed_at,
        "deployed_by": sample.deployed_by,
    }


def _sample_from_row(row: RowMapping) -> HealthSample:
    return HealthSample(
        environment=row["environment"],
        ts=row["ts"],
        outcome=Outcome(row["outcome"]),
        umig_status=row["umig_status"],
        version=row["version"],
        build=row["build"],
        uptime_seconds=row["uptime_seconds"],
        uptime_text=row["uptime_text"],
        response_ms=row["response_ms"],
        components=row["components"] or {},
        metrics=row["metrics"] or {},
        error=row["error"],
        component_versions=row["component_versions"] or {},
        tls_cert_expiry=row["tls_cert_expiry"],
        deployed_at=row["deployed_at"],
        deployed_by=row["deployed_by"],
    )


def _brief_sample(row: RowMapping) -> HealthSample:
    return HealthSample(
        environment=row["environment"],
        ts=row["ts"],
        outcome=Outcome(row["outcome"]),
        umig_status=row["umig_status"],
        version=row["version"],
        build=row["build"],
        uptime_seconds=row["uptime_seconds"],
        uptime_text=row["uptime_text"],
        response_ms=row["response_ms"],
        error=row["error"],
    )


VERSION_SEEN = "version_seen:"
# Environments per statement of recent_versions: SQLite allows 500 terms in a compound SELECT.
RECENT_BATCH = 200


def _version_seen(value: Any) -> VersionSeen | None:
    """The stored record, shape-checked once here: anything else is as if nothing were seen."""
    if not isinstance(value, dict) or not isinstance(value.get("version"), str):
        return None
    try:
        first_seen = datetime.fromisoformat(str(value.get("first_seen")))
    except ValueError:
        return None
    if first_seen.tzinfo is None:
        return None
    return VersionSeen(value["version"], first_seen)
