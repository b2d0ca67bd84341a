"""Versioned schema migrations, applied in order when the store opens.

Each step is frozen history: it declares the tables it creates in its own ``MetaData`` rather
than importing ``schema.py``, so editing the live schema can never rewrite what an old step
did to an existing database. New changes are new steps. Each step runs in its own transaction
and records itself in ``schema_migrations``; a database written by a newer umig-monitor than
this one is refused rather than guessed at.

Steps receive a synchronous ``Connection`` (run through ``AsyncConnection.run_sync``). Steps so
far only create tables and indexes, which Core DDL does portably; a later step that needs to
alter a table on SQLite can build alembic's ``Operations`` (batch mode) over that connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from umig_monitor.storage import dialects
from umig_monitor.storage.engine import WRITE_TRANSACTION
from umig_monitor.storage.errors import StorageError, describe, translate_errors
from umig_monitor.storage.types import UTCDateTime, json_doc, surrogate_id

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Connection], None]


# The bookkeeping table itself never changes shape: every version of the code must read it.
schema_migrations = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

_NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _0001_initial_tables(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    sa.Table(
        "health_samples",
        md,
        sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String, nullable=False),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("umig_status", sa.String),
        sa.Column("version", sa.String),
        sa.Column("build", sa.String),
        sa.Column("uptime_seconds", sa.BigInteger),
        sa.Column("uptime_text", sa.String),
        sa.Column("response_ms", sa.Double),
        sa.Column("components", json_doc(), nullable=False),
        sa.Column("metrics", json_doc(), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("component_versions", json_doc(), nullable=False),
    )
    sa.Table(
        "deployment_events",
        md,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("deployment_id", sa.String, nullable=False),
        sa.Column("environment", sa.String, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("version", sa.String),
        sa.Column("from_version", sa.String),
        sa.Column("to_version", sa.String),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.Column("initiated_by", sa.String),
        sa.Column("duration_seconds", sa.Double),
        sa.Column("error", sa.Text),
        sa.Column("status", sa.String),
        sa.Column("metadata", json_doc(none_as_null=True)),
        sa.Column("flags", json_doc(none_as_null=True)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Index("ix_deployment_events_environment_ts", "environment", "ts"),
        sa.Index("ix_deployment_events_deployment_id", "deployment_id"),
    )
    sa.Table(
        "alerts",
        md,
        sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
        sa.Column("alert_key", sa.String, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("environment", sa.String),
        sa.Column("severity", sa.String, nullable=False),
        sa.Column("labels", json_doc(), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", json_doc(), nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("starts_at", UTCDateTime, nullable=False),
        sa.Column("ends_at", UTCDateTime),
        sa.Column("last_notified_at", UTCDateTime),
        sa.Column("acked_at", UTCDateTime),
        sa.Column("acked_by", sa.String),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Index("ix_alerts_alert_key_state", "alert_key", "state"),
        # At most one firing alert per key, whichever replica or restart raised it.
        sa.Index(
            "uq_alerts_firing_key",
            "alert_key",
            unique=True,
            sqlite_where=sa.text("state = 'firing'"),
            postgresql_where=sa.text("state = 'firing'"),
        ),
    )
    sa.Table(
        "outbox",
        md,
        sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
        sa.Column("alert_id", surrogate_id(), sa.ForeignKey("alerts.id", ondelete="SET NULL")),
        sa.Column("sink", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("idempotency_key", sa.String, nullable=False),
        sa.Column("payload", json_doc(), nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("deadline", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
        sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )
    sa.Table(
        "baselines",
        md,
        sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String, nullable=False),
        sa.Column("version", sa.String),
        sa.Column("ts", UTCDateTime, nullable=False),
        sa.Column("endpoints", json_doc(), nullable=False),
        sa.Column("figures", json_doc(), nullable=False),
        sa.Index("ix_baselines_environment_ts", "environment", "ts"),
    )
    sa.Table(
        "drift_findings",
        md,
        sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
        sa.Column("finding_key", sa.String, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("environment", sa.String),
        sa.Column("severity", sa.String, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", json_doc(), nullable=False),
        sa.Column("first_seen", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("resolved_at", UTCDateTime),
        sa.Index("ix_drift_findings_finding_key", "finding_key"),
    )
    sa.Table(
        "kv_state",
        md,
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", json_doc(), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


def _0002_hourly_rollups(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    sa.Table(
        "health_rollups_hourly",
        md,
        sa.Column("environment", sa.String, primary_key=True),
        sa.Column("hour", UTCDateTime, primary_key=True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("healthy", sa.Integer, nullable=False),
        sa.Column("degraded", sa.Integer, nullable=False),
        sa.Column("unhealthy", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("response_ms_avg", sa.Double),
        sa.Column("response_ms_max", sa.Double),
    )
    md.create_all(conn)
    # Only the columns the index needs: the table already exists and is not re-created.
    samples = sa.Table(
        "health_samples",
        md,
        sa.Column("environment", sa.String),
        sa.Column("ts", UTCDateTime),
    )
    sa.Index("ix_health_samples_environment_ts", samples.c.environment, samples.c.ts).create(conn)
    sa.Index("ix_health_samples_ts", samples.c.ts).create(conn)


def _0003_notification_log_and_silences(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    sa.Table(
        "notification_log",
        md,
        sa.Column("alert_id", surrogate_id(), primary_key=True, autoincrement=False),
        sa.Column("route_key", sa.String, primary_key=True),
        sa.Column("last_kind", sa.String, nullable=False),
        sa.Column("last_at", UTCDateTime, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("escalated_at", UTCDateTime),
    )
    sa.Table(
        "silences",
        md,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("matchers", json_doc(), nullable=False),
        sa.Column("starts_at", UTCDateTime, nullable=False),
        sa.Column("ends_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Index("ix_silences_ends_at", "ends_at"),
    )
    md.create_all(conn)


def _0004_deployment_watches(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    sa.Table(
        "deployment_watches",
        md,
        sa.Column("deployment_id", sa.String, primary_key=True),
        sa.Column("environment", sa.String, nullable=False),
        sa.Column("expected_version", sa.String, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("deadline", UTCDateTime, nullable=False),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("result", json_doc(), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Index("ix_deployment_watches_state", "state"),
    )
    md.create_all(conn)


def _0005_deployment_summary_index(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    events = sa.Table(
        "deployment_events",
        md,
        sa.Column("environment", sa.String),
        sa.Column("ts", UTCDateTime),
        sa.Column("type", sa.String),
        sa.Column("deployment_id", sa.String),
    )
    # Covers the history summary (environment and time range, grouped by deployment); its prefix
    # serves everything the old (environment, ts) index did.
    sa.Index("ix_deployment_events_environment_ts", events.c.environment, events.c.ts).drop(conn)
    sa.Index(
        "ix_deployment_events_summary",
        events.c.environment,
        events.c.ts,
        events.c.type,
        events.c.deployment_id,
    ).create(conn)


def _0006_deployment_rollups(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    rollups = sa.Table(
        "deployment_rollups",
        md,
        sa.Column("deployment_id", sa.String, primary_key=True),
        sa.Column("environment", sa.String, nullable=False),
        sa.Column("first_ts", UTCDateTime, nullable=False),
        sa.Column("last_ts", UTCDateTime, nullable=False),
        sa.Column("started", sa.Integer, nullable=False),
        sa.Column("observed", sa.Integer, nullable=False),
        sa.Column("success_ts", UTCDateTime),
        sa.Column("failure_ts", UTCDateTime),
        sa.Column("rollback_ts", UTCDateTime),
        sa.Index("ix_deployment_rollups_environment_last_ts", "environment", "last_ts"),
    )
    md.create_all(conn)
    events = sa.Table(
        "deployment_events",
        sa.MetaData(),
        sa.Column("deployment_id", sa.String),
        sa.Column("environment", sa.String),
        sa.Column("type", sa.String),
        sa.Column("ts", UTCDateTime),
    )
    conn.execute(rollups.insert().from_select([c.name for c in rollups.c], rollup_select(events)))


def rollup_select(events: sa.Table) -> sa.Select[Any]:
    """Per deployment id: what the history summary needs (also used by the live store)."""

    def latest(kind: str) -> Any:
        return sa.func.max(sa.case((events.c.type == kind, events.c.ts)))

    def seen(kind: str) -> Any:
        return sa.func.max(sa.case((events.c.type == kind, 1), else_=0))

    return sa.select(
        events.c.deployment_id,
        sa.func.min(events.c.environment),
        sa.func.min(events.c.ts),
        sa.func.max(events.c.ts),
        seen("deployment_start"),
        seen("observed"),
        latest("deployment_success"),
        latest("deployment_failure"),
        latest("rollback"),
    ).group_by(events.c.deployment_id)


# What deployment_days holds per environment and UTC day, in its column order: the day's events by
# type, then the deployments whose latest event falls on that day, by outcome, and those that had a
# failure or a rollback (whatever their outcome).
DAY_EVENT_TYPES: Final = (
    "deployment_start",
    "deployment_success",
    "deployment_failure",
    "rollback",
    "observed",
)
DAY_EVENT_COLUMNS: Final = tuple(f"{t}_events" for t in DAY_EVENT_TYPES)
DAY_OUTCOME_COLUMNS: Final = (
    "outcome_success",
    "outcome_failure",
    "outcome_rollback",
    "outcome_in_progress",
    "outcome_observed",
    "with_failure",
    "with_rollback",
)


def outcome_counts(started: Any, success_ts: Any, failure_ts: Any, rollback_ts: Any) -> list[Any]:
    """Aggregates over rows of one deployment each (also used by the live store), labelled as
    DAY_OUTCOME_COLUMNS: how many end in each outcome, their latest terminal event (on equal times
    rollback wins over failure over success, as core's ``summarize`` decides), else in progress (a
    start) or observed; and how many had a failure, a rollback."""
    s, f, rb = success_ts, failure_ts, rollback_ts

    def after(a: Any, b: Any, *, tie: bool) -> Any:
        return sa.or_(b.is_(None), a >= b if tie else a > b)

    def count(condition: Any) -> Any:
        return sa.func.count(sa.case((condition, 1)))

    unfinished = sa.and_(s.is_(None), f.is_(None), rb.is_(None))
    conditions = (
        sa.and_(s.is_not(None), after(s, f, tie=False), after(s, rb, tie=False)),
        sa.and_(f.is_not(None), after(f, s, tie=True), after(f, rb, tie=False)),
        sa.and_(rb.is_not(None), after(rb, s, tie=True), after(rb, f, tie=True)),
        sa.and_(unfinished, started == 1),
        sa.and_(unfinished, started != 1),
    )
    counted = [count(c) for c in conditions] + [sa.func.count(f), sa.func.count(rb)]
    return [c.label(name) for c, name in zip(counted, DAY_OUTCOME_COLUMNS, strict=True)]


def day_select(
    dialect_name: str,
    events: sa.Table,
    rollups: sa.Table,
    span: tuple[str, datetime, datetime | None] | None = None,
) -> sa.Select[Any]:
    """deployment_days' rows, in its column order, computed from the events and the rollups: of
    every (environment, UTC day) that has any, or only of ``span``'s (an environment, from a
    midnight to a later one, or to the end of time: None), the live store's refresh of the days a
    write touched. A day with nothing gives no row."""
    e, r = events.c, rollups.c

    def within(environment: Any, ts: Any) -> list[Any]:
        if span is None:
            return []
        name, start, end = span
        return [environment == name, ts >= start, *([ts < end] if end is not None else [])]

    def zeros(names: Sequence[str]) -> list[Any]:
        return [sa.literal_column("0", sa.Integer).label(n) for n in names]

    event_day = dialects.day_floor(dialect_name, e.ts)
    by_type = [
        sa.func.count(sa.case((e.type == t, 1))).label(n)
        for t, n in zip(DAY_EVENT_TYPES, DAY_EVENT_COLUMNS, strict=True)
    ]
    of_events = (
        sa.select(e.environment, event_day.label("day"), *by_type, *zeros(DAY_OUTCOME_COLUMNS))
        .where(*within(e.environment, e.ts))
        .group_by(e.environment, event_day)
    )
    last_day = dialects.day_floor(dialect_name, r.last_ts)
    of_rollups = (
        sa.select(
            r.environment,
            last_day.label("day"),
            *zeros(DAY_EVENT_COLUMNS),
            *outcome_counts(r.started, r.success_ts, r.failure_ts, r.rollback_ts),
        )
        .where(*within(r.environment, r.last_ts))
        .group_by(r.environment, last_day)
    )
    both = sa.union_all(of_events, of_rollups).subquery()
    counters = (*DAY_EVENT_COLUMNS, *DAY_OUTCOME_COLUMNS)
    return sa.select(
        both.c.environment, both.c.day, *(sa.func.sum(both.c[n]).label(n) for n in counters)
    ).group_by(both.c.environment, both.c.day)


def _0007_cluster(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    sa.Table(
        "cluster_members",
        md,
        sa.Column("member_id", sa.String, primary_key=True),
        sa.Column("url", sa.String),
        sa.Column("hostname", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("heartbeat_at", UTCDateTime, nullable=False),
        sa.Column("polling", sa.Integer, nullable=False),
    )
    sa.Table(
        "cluster_leases",
        md,
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("acquired_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    md.create_all(conn)
    # Nullable columns: ADD COLUMN is plain and portable on both SQLite and PostgreSQL.
    for name, kind in (("claimed_by", sa.String()), ("claimed_until", UTCDateTime())):
        rendered = kind.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE outbox ADD COLUMN {name} {rendered}"))


def _0008_deployment_events_created_at(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    events = sa.Table("deployment_events", md, sa.Column("created_at", UTCDateTime))
    # Replicas follow the events recorded lately (by any replica or the CLI) to count them.
    sa.Index("ix_deployment_events_created_at", events.c.created_at).create(conn)


def _0009_certificate_expiry(conn: Connection) -> None:
    rendered = UTCDateTime().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE health_samples ADD COLUMN tls_cert_expiry {rendered}"))


def _0010_deployed_at_by(conn: Connection) -> None:
    rendered = UTCDateTime().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE health_samples ADD COLUMN deployed_at {rendered}"))
    conn.execute(sa.text("ALTER TABLE health_samples ADD COLUMN deployed_by VARCHAR"))


def _0012_rollup_summary_index(conn: Connection) -> None:
    md = sa.MetaData()
    columns = ("environment", "last_ts", "started", "observed", "success_ts", "failure_ts", "rollback_ts")
    rollups = sa.Table("deployment_rollups", md, *(sa.Column(c) for c in columns))
    # The history summary reads every deployment of the window from this index alone: at 10 M events
    # (35,000 deployments in 30 days) each one was a lookup of its row, 52 -> 34 ms per query. Its
    # prefix serves everything the old (environment, last_ts) index did.
    sa.Index("ix_deployment_rollups_environment_last_ts", rollups.c.environment, rollups.c.last_ts).drop(conn)
    sa.Index("ix_deployment_rollups_summary", *(rollups.c[c] for c in columns)).create(conn)


def _0011_read_path_indexes(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    rollups = sa.Table(
        "health_rollups_hourly", md, sa.Column("hour", UTCDateTime), sa.Column("environment", sa.String)
    )
    events = sa.Table("deployment_events", md, sa.Column("ts", UTCDateTime))
    alerts = sa.Table(
        "alerts",
        md,
        sa.Column("state", sa.String),
        sa.Column("environment", sa.String),
        sa.Column("starts_at", UTCDateTime),
    )
    log = sa.Table("notification_log", md, sa.Column("last_kind", sa.String))
    # The status page's 24 hours of every environment (and the rollup's newest hour): the primary
    # key starts with the environment, so a time range over all of them read every row.
    sa.Index(None, rollups.c.hour, rollups.c.environment).create(conn)
    # The page's latest events of all environments, newest first.
    sa.Index(None, events.c.ts).create(conn)
    # Firing (every poll, the dispatcher, the page) and recently resolved alerts, newest first.
    sa.Index(None, alerts.c.state, alerts.c.starts_at).create(conn)
    # One environment's alerts over a window (DORA).
    sa.Index(None, alerts.c.environment, alerts.c.starts_at).create(conn)
    # The dispatcher's resolved alerts whose resolved notice may still be due, every second.
    sa.Index(None, log.c.last_kind).create(conn)


def _0013_deployment_days(conn: Connection) -> None:
    md = sa.MetaData(naming_convention=_NAMING_CONVENTION)
    counters = (*DAY_EVENT_COLUMNS, *DAY_OUTCOME_COLUMNS)
    days = sa.Table(
        "deployment_days",
        md,
        sa.Column("environment", sa.String, primary_key=True),
        sa.Column("day", UTCDateTime, primary_key=True),
        *(sa.Column(name, sa.Integer, nullable=False) for name in counters),
        sa.Index(None, "day"),
    )
    md.create_all(conn)
    events = sa.Table(
        "deployment_events",
        sa.MetaData(),
        sa.Column("environment", sa.String),
        sa.Column("type", sa.String),
        sa.Column("ts", UTCDateTime),
    )
    rollups = sa.Table(
        "deployment_rollups",
        sa.MetaData(),
        sa.Column("environment", sa.String),
        sa.Column("last_ts", UTCDateTime),
        sa.Column("started", sa.Integer),
        sa.Column("success_ts", UTCDateTime),
        sa.Column("failure_ts", UTCDateTime),
        sa.Column("rollback_ts", UTCDateTime),
    )
    # Every day so far, from the events and rollups already stored: from here on the store keeps
    # each day in step with them, in the transaction that writes them.
    select = day_select(conn.dialect.name, events, rollups)
    conn.execute(days.insert().from_select([c.name for c in days.c], select))


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "initial tables", _0001_initial_tables),
    Migration(2, "hourly health rollups; health_samples time indexes", _0002_hourly_rollups),
    Migration(3, "notification log and silences", _0003_notification_log_and_silences),
    Migration(4, "deployment watches", _0004_deployment_watches),
    Migration(5, "covering index for deployment summaries", _0005_deployment_summary_index),
    Migration(6, "per-deployment rollups for history summaries", _0006_deployment_rollups),
    Migration(7, "cluster membership, leases and outbox claims", _0007_cluster),
    Migration(8, "index of deployment events by recording time", _0008_deployment_events_created_at),
    Migration(9, "TLS certificate expiry with each health sample", _0009_certificate_expiry),
    Migration(10, "deployed at and by, as the environment's version endpoint says", _0010_deployed_at_by),
    Migration(
        11,
        "indexes for the read paths: rollups by hour, events by time, alerts by state",
        _0011_read_path_indexes,
    ),
    Migration(12, "covering index for deployment summaries over the rollups", _0012_rollup_summary_index),
    Migration(13, "per-day deployment counts for history windows", _0013_deployment_days),
)
LATEST_VERSION: Final = MIGRATIONS[-1].version
MIGRATION_LOCK_ID: Final = 0x756D6967  # "umig": the advisory lock migrations take on PostgreSQL


def read_version(conn: Connection) -> int:
    """The highest applied migration, 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema_migrations.name):
        return 0
    version = conn.execute(sa.select(sa.func.max(schema_migrations.c.version))).scalar_one()
    return int(version or 0)


async def migrate(engine: AsyncEngine, *, target_version: int | None = None) -> tuple[int, ...]:
    """Bring the database up to ``target_version`` (default: the latest); return the versions applied.

    A database already past the target is refused with ``StorageError``: running old code
    against a newer schema could corrupt it silently.
    """
    target = LATEST_VERSION if target_version is None else target_version
    if not 0 <= target <= LATEST_VERSION:
        raise ValueError(f"target_version must be between 0 and {LATEST_VERSION}, got {target}")
    writer = engine.execution_options(**WRITE_TRANSACTION)
    with translate_errors("reading the schema version"):
        async with writer.begin() as conn:
            await conn.run_sync(_serialise)
            await conn.run_sync(lambda sync_conn: schema_migrations.create(sync_conn, checkfirst=True))
            current = await conn.run_sync(read_version)
    if current > target:
        raise StorageError(
            f"database schema version {current} is newer than this umig-monitor supports ({target}): "
            "upgrade umig-monitor, or point it at another database"
        )
    applied: list[int] = []
    for step in MIGRATIONS:
        if current < step.version <= target:
            try:
                async with writer.begin() as conn:
                    done = await conn.run_sync(_apply, step)
            except Exception as error:
                # Whatever broke (driver, disk, a bug in the step), the transaction rolled back
                # and start-up must stop with a message, not a traceback from inside a step.
                raise StorageError(
                    f"applying schema migration {step.version} ({step.description}) failed: {describe(error)}"
                ) from error
            if done:
                applied.append(step.version)
                log.info("schema_migrated", version=step.version, description=step.description)
    return tuple(applied)


def _serialise(conn: Connection) -> None:
    """Replicas starting together must not migrate together. SQLite's BEGIN IMMEDIATE already
    serialises writers; on PostgreSQL a transaction-scoped advisory lock does it."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_ID)))


def _apply(conn: Connection, step: Migration) -> bool:
    _serialise(conn)
    # Another process may have migrated while this one waited for the lock.
    if read_version(conn) >= step.version:
        return False
    step.upgrade(conn)
    conn.execute(
        schema_migrations.insert().values(
            version=step.version, description=step.description, applied_at=datetime.now(UTC)
        )
    )
    return True
