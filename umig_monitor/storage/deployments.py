"""Deployment events and watches. Events are idempotent by id; queries compare timestamps as
datetimes in the database (the guide compared strings) and page through history. Every write keeps
the per-deployment rollups and the per-day counts in step, in its own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from umig_monitor.core.deployments import DeploymentEvent, EventType, Summary
from umig_monitor.storage import deployment_days as per_day
from umig_monitor.storage import dialects
from umig_monitor.storage.latest import newest_rows
from umig_monitor.storage.migrations import outcome_counts, rollup_select
from umig_monitor.storage.schema import deployment_events as events
from umig_monitor.storage.schema import deployment_rollups as rollups
from umig_monitor.storage.schema import deployment_watches as watches

TERMINAL = (EventType.SUCCESS.value, EventType.FAILURE.value, EventType.ROLLBACK.value)
# The PostgreSQL advisory lock (two-key space, apart from the migrations' one) deployment writers take.
HISTORY_LOCK: Final = (0x756D6967, 1)


@dataclass(frozen=True, slots=True)
class Watch:
    deployment_id: str
    environment: str
    expected_version: str
    started_at: datetime
    deadline: datetime
    state: str  # watching | verified | failed | timeout
    result: dict[str, Any]


class DeploymentQueries:
    """Mixed into ``Store``; relies on its ``_connect`` and ``_dialect``."""

    _dialect: str

    def _connect(self, action: str, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    async def add_deployment_events(
        self, batch: Sequence[DeploymentEvent], now: datetime, *, history: bool = False
    ) -> int:
        """Insert events; an id already stored is skipped (re-sending is idempotent). Returns new rows.
        ``history``: imported past events, recorded as of their own time (at the latest ``now``), so
        that replicas following what is recorded do not count an import as deployments made now."""
        if not batch:
            return 0
        statement = dialects.insert_ignore(self._dialect, events, key=["id"])
        if self._dialect == "postgresql":
            # asyncpg's executemany counts no rows (-1, once taken for "all new"): RETURNING names
            # those inserted. SQLite's count is exact and cheaper than a row back per event.
            statement = statement.returning(events.c.id)
        rows = [_row(e, min(e.ts, now) if history else now) for e in batch]
        async with self._connect("recording deployment events", write=True) as conn:
            await self._serialise(conn)
            result = await conn.execute(statement, rows)
            inserted = len(result.all()) if result.returns_rows else int(result.rowcount)
            await self._refresh(conn, {e.deployment_id for e in batch}, {per_day.day_of(e) for e in batch})
            return inserted

    async def add_deployment_event(self, event: DeploymentEvent, now: datetime) -> bool:
        statement = dialects.insert_ignore(self._dialect, events, key=["id"])
        async with self._connect("recording a deployment event", write=True) as conn:
            await self._serialise(conn)
            result = await conn.execute(statement.values(**_row(event, now)))
            if result.rowcount:
                await self._refresh(conn, {event.deployment_id}, {per_day.day_of(event)})
            return bool(result.rowcount)

    async def reconcile_deployment_days(self, since: datetime) -> int:
        """Recompute the per-day counts of the deployments recorded at or after ``since`` and of
        every day from ``since``'s on, from the events and rollups as they are; returns how many
        days that was. Puts right what a writer that does not keep them left behind: a replica
        still on the code before migration 13 during a rolling upgrade records events (and their
        rollups) but not their days."""
        async with self._connect("reconciling deployment day counts", write=True) as conn:
            await self._serialise(conn)
            touched = await per_day.days_to_reconcile(conn, self._dialect, since)
            await per_day.refresh(conn, self._dialect, touched)
        return len(touched)

    async def _serialise(self, conn: AsyncConnection) -> None:
        """One deployment writer at a time. SQLite's BEGIN IMMEDIATE already does it; on PostgreSQL
        two writers side by side would each recompute a day (or a deployment) from the rows
        committed before the other's, and the last to commit would leave the other's events out."""
        if self._dialect == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(*HISTORY_LOCK)))

    async def _refresh(
        self, conn: AsyncConnection, deployment_ids: set[str], event_days: set[per_day.Day]
    ) -> None:
        """Recompute the rollup rows of these deployments from their events, then the day rows of
        ``event_days`` (where the written events fall) and of the days those deployments' latest
        events fell on before and after (same transaction)."""
        touched = set(event_days)
        ids = sorted(deployment_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            touched |= await per_day.days_of_rollups(conn, self._dialect, chunk)
            select = rollup_select(events).where(events.c.deployment_id.in_(chunk))
            await conn.execute(
                dialects.upsert_from_select(self._dialect, rollups, key=["deployment_id"], select=select)
            )
            touched |= await per_day.days_of_rollups(conn, self._dialect, chunk)
        await per_day.refresh(conn, self._dialect, touched)

    async def update_deployment_event(self, event: DeploymentEvent) -> None:
        """Replace a stored event's fields (a re-sent event that added information); its time of
        recording stays, so followers do not count it again."""
        values = {k: v for k, v in _row(event, event.ts).items() if k not in ("id", "created_at")}
        before = sa.select(events.c.deployment_id, events.c.environment, events.c.ts).where(
            events.c.id == event.id
        )
        async with self._connect("updating a deployment event", write=True) as conn:
            await self._serialise(conn)
            was = (await conn.execute(before)).first()
            await conn.execute(sa.update(events).where(events.c.id == event.id).values(**values))
            ids, touched = {event.deployment_id}, {per_day.day_of(event)}
            if was is not None:  # where it counted until now
                ids.add(was.deployment_id)
                touched.add((was.environment, per_day.midnight(was.ts)))
            await self._refresh(conn, ids, touched)

    async def latest_deployment_of(self, environment: str, version: str) -> list[DeploymentEvent]:
        """The events of the latest deployment of ``version`` in ``environment`` (any age): the one
        a rollback of that version ends."""
        latest = (
            sa.select(events.c.deployment_id)
            .where(
                events.c.environment == environment,
                events.c.version == version,
                events.c.type != EventType.ROLLBACK.value,
            )
            .order_by(events.c.ts.desc())
            .limit(1)
            .scalar_subquery()
        )
        query = sa.select(events).where(events.c.deployment_id == latest).order_by(events.c.ts, events.c.id)
        async with self._connect("finding a deployment of a version", write=False) as conn:
            return [_event(r) for r in (await conn.execute(query)).mappings()]

    async def get_deployment_event(self, event_id: str) -> DeploymentEvent | None:
        async with self._connect("reading a deployment event", write=False) as conn:
            row = (await conn.execute(sa.select(events).where(events.c.id == event_id))).mappings().first()
            return _event(row) if row is not None else None

    def _filtered(
        self,
        query: Any,
        environment: str | None,
        since: datetime | None,
        until: datetime | None,
        types: Sequence[str] | None,
    ) -> Any:
        if environment is not None:
            query = query.where(events.c.environment == environment)
        if since is not None:
            query = query.where(events.c.ts >= since)
        if until is not None:
            query = query.where(events.c.ts < until)
        if types:
            query = query.where(events.c.type.in_(list(types)))
        return query

    async def deployment_events(
        self,
        *,
        environment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[DeploymentEvent]:
        order = (events.c.ts.desc(), events.c.id.desc()) if newest_first else (events.c.ts, events.c.id)
        query = self._filtered(sa.select(events).order_by(*order), environment, since, until, types)
        query = query.limit(limit)  # None: every one
        if offset:
            query = query.offset(offset)  # without a limit too (SQLite then says LIMIT -1)
        async with self._connect("reading deployment history", write=False) as conn:
            return [_event(r) for r in (await conn.execute(query)).mappings()]

    async def deployments_recorded_since(self, since: datetime) -> list[tuple[DeploymentEvent, datetime]]:
        """Events recorded (stored) at or after ``since``, with when, oldest first."""
        query = sa.select(events).where(events.c.created_at >= since).order_by(events.c.created_at)
        async with self._connect("following deployment events", write=False) as conn:
            return [(_event(r), r["created_at"]) for r in (await conn.execute(query)).mappings()]

    async def count_deployment_events(
        self,
        *,
        environment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> int:
        count = sa.select(sa.func.count()).select_from(events)
        if until is None:
            # Open-ended (the usual "last N days"): the window's whole days from deployment_days,
            # the events themselves only of its first, partial day.
            first, partial = per_day.split(since)
            total = per_day.events_in_days(environment, first, types)
            if partial is not None:
                total = total + self._filtered(count, environment, *partial, types).scalar_subquery()
            query = sa.select(total)
        else:
            query = self._filtered(count, environment, since, until, types)
        async with self._connect("counting deployment history", write=False) as conn:
            return int((await conn.execute(query)).scalar_one())

    async def deployment_summary(
        self, *, environment: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> Summary:
        """``summarize`` of the window, computed in the database: each deployment's outcome is
        decided in SQL and only the counts per outcome come back (the history page's cost at a
        million events). On equal times rollback wins over failure over success, as in core."""
        if until is None:
            # Open-ended windows count each deployment whose latest event is in the window, with
            # its outcome from all its events (its latest terminal event, in the window whenever
            # any terminal is): the whole days' counts from deployment_days, the first, partial
            # day's from the rollups.
            query = per_day.outcomes(environment, *per_day.split(since))
        else:
            # A bounded window is judged on its own events only.
            # The rollup's own grouping, restricted to the window, minus its id/environment/time columns.
            full = rollup_select(events)
            grouped = full.with_only_columns(*full.selected_columns[4:])
            window = self._filtered(grouped, environment, since, until, None).subquery()
            started, _, s, f, rb = tuple(window.c)
            query = sa.select(*outcome_counts(started, s, f, rb))
        async with self._connect("summarising deployment history", write=False) as conn:
            return per_day.summary((await conn.execute(query)).one())

    async def events_of_deployment(self, deployment_id: str) -> list[DeploymentEvent]:
        query = (
            sa.select(events)
            .where(events.c.deployment_id == deployment_id)
            .order_by(events.c.ts, events.c.id)
        )
        async with self._connect("reading a deployment", write=False) as conn:
            return [_event(r) for r in (await conn.execute(query)).mappings()]

    async def open_start(self, environment: str, version: str | None) -> DeploymentEvent | None:
        """The latest start in this environment (for this version, when given) with no terminal event."""
        finished = sa.select(events.c.deployment_id).where(events.c.type.in_(TERMINAL))
        query = (
            sa.select(events)
            .where(
                events.c.environment == environment,
                events.c.type == EventType.START.value,
                events.c.deployment_id.not_in(finished),
            )
            .order_by(events.c.ts.desc())
            .limit(1)
        )
        if version is not None:
            query = query.where(events.c.version == version)
        async with self._connect("finding an open deployment", write=False) as conn:
            row = (await conn.execute(query)).mappings().first()
            return _event(row) if row is not None else None

    async def latest_deployments(self) -> dict[str, DeploymentEvent]:
        """Per environment, the latest success or observed deployment (what is running now)."""
        kinds = (EventType.SUCCESS.value, EventType.OBSERVED.value)
        async with self._connect("reading current deployments", write=False) as conn:
            rows = await newest_rows(conn, events, tuple(events.c), where=[events.c.type.in_(kinds)])
        return {r["environment"]: _event(r) for r in rows}

    # -- watches -------------------------------------------------------------------------------

    async def save_watch(self, watch: Watch, now: datetime) -> None:
        statement = dialects.upsert(self._dialect, watches, key=["deployment_id"])
        async with self._connect("saving a deployment watch", write=True) as conn:
            await conn.execute(
                statement.values(
                    deployment_id=watch.deployment_id,
                    environment=watch.environment,
                    expected_version=watch.expected_version,
                    started_at=watch.started_at,
                    deadline=watch.deadline,
                    state=watch.state,
                    result=watch.result,
                    updated_at=now,
                )
            )

    async def get_watch(self, deployment_id: str) -> Watch | None:
        async with self._connect("reading a deployment watch", write=False) as conn:
            row = (
                (await conn.execute(sa.select(watches).where(watches.c.deployment_id == deployment_id)))
                .mappings()
                .first()
            )
            return _watch(row) if row is not None else None

    async def active_watches(self) -> list[Watch]:
        async with self._connect("reading deployment watches", write=False) as conn:
            rows = (await conn.execute(sa.select(watches).where(watches.c.state == "watching"))).mappings()
            return [_watch(r) for r in rows]


def _row(e: DeploymentEvent, now: datetime) -> dict[str, Any]:
    return {
        "id": e.id,
        "deployment_id": e.deployment_id,
        "environment": e.environment,
        "type": e.type.value,
        "version": e.version,
        "from_version": e.from_version,
        "to_version": e.to_version,
        "ts": e.ts,
        "initiated_by": e.initiated_by,
        "duration_seconds": e.duration_seconds,
        "error": e.error,
        "status": e.status,
        "metadata": dict(e.metadata) or None,
        "flags": list(e.flags) or None,
        "created_at": now,
    }


def _event(r: RowMapping) -> DeploymentEvent:
    return DeploymentEvent(
        id=r["id"],
        deployment_id=r["deployment_id"],
        environment=r["environment"],
        type=EventType(r["type"]),
        ts=r["ts"],
        version=r["version"],
        from_version=r["from_version"],
        to_version=r["to_version"],
        initiated_by=r["initiated_by"],
        duration_seconds=r["duration_seconds"],
        error=r["error"],
        metadata=r["metadata"] or {},
        flags=tuple(r["flags"] or ()),
    )


def _watch(r: RowMapping) -> Watch:
    return Watch(
        r["deployment_id"],
        r["environment"],
        r["expected_version"],
        r["started_at"],
        r["deadline"],
        r["state"],
        r["result"] or {},
    )
