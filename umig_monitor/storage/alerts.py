"""Alert rows: fire (idempotent per key), resolve, acknowledge, and the queries the API shows."""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from umig_monitor.core.alerts import Alert, AlertEvent, AlertState
from umig_monitor.storage.schema import alerts as alert_table
from umig_monitor.storage.schema import notification_log


class AlertQueries:
    """Mixed into ``Store``; relies on its ``_connect``."""

    def _connect(self, action: str, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    async def fire_alert(self, event: AlertEvent) -> tuple[Alert, bool]:
        """Record a firing alert. Returns (alert, True) when it is new, (alert, False) when an alert
        with that key was already firing (its summary, details and severity are refreshed)."""
        t = alert_table
        async with self._connect("recording an alert", write=True) as conn:
            row = (
                (await conn.execute(sa.select(t).where(t.c.alert_key == event.key, t.c.state == "firing")))
                .mappings()
                .first()
            )
            if row is not None:
                await conn.execute(
                    t.update()
                    .where(t.c.id == row["id"])
                    .values(
                        summary=event.summary,
                        details=dict(event.details),
                        severity=event.severity,
                        labels=dict(event.labels),
                        updated_at=event.at,
                    )
                )
                refreshed = (await conn.execute(sa.select(t).where(t.c.id == row["id"]))).mappings().one()
                return _alert(refreshed), False
            values: dict[str, Any] = {
                "alert_key": event.key,
                "type": event.type,
                "environment": event.environment,
                "severity": event.severity,
                "labels": dict(event.labels),
                "summary": event.summary,
                "details": dict(event.details),
                "state": "firing",
                "starts_at": event.starts_at or event.at,
                "updated_at": event.at,
            }
            try:
                async with conn.begin_nested():
                    new_id = (await conn.execute(t.insert().values(**values).returning(t.c.id))).scalar_one()
            except sa.exc.IntegrityError:
                # Another replica fired the same key between our read and our insert (the partial
                # unique index on firing keys): theirs is the alert, and it is not new here.
                firing = sa.select(t).where(t.c.alert_key == event.key, t.c.state == "firing")
                return _alert((await conn.execute(firing)).mappings().one()), False
            row = (await conn.execute(sa.select(t).where(t.c.id == new_id))).mappings().one()
            return _alert(row), True

    async def resolve_alert(self, key: str, at: datetime, summary: str | None = None) -> Alert | None:
        """Resolve the firing alert with this key; None when nothing was firing."""
        t = alert_table
        async with self._connect("resolving an alert", write=True) as conn:
            row = (
                (await conn.execute(sa.select(t).where(t.c.alert_key == key, t.c.state == "firing")))
                .mappings()
                .first()
            )
            if row is None:
                return None
            values: dict[str, Any] = {"state": "resolved", "ends_at": at, "updated_at": at}
            if summary:
                values["summary"] = summary
            await conn.execute(t.update().where(t.c.id == row["id"]).values(**values))
            row = (await conn.execute(sa.select(t).where(t.c.id == row["id"]))).mappings().one()
            return _alert(row)

    async def get_alert(self, alert_id: int) -> Alert | None:
        async with self._connect("reading an alert", write=False) as conn:
            row = (
                (await conn.execute(sa.select(alert_table).where(alert_table.c.id == alert_id)))
                .mappings()
                .first()
            )
            return _alert(row) if row is not None else None

    async def ack_alert(self, alert_id: int, by: str, at: datetime) -> tuple[Alert | None, bool]:
        """The alert (None: no such alert) and whether this call acknowledged it; an alert keeps
        its first acknowledgement."""
        t = alert_table
        async with self._connect("acknowledging an alert", write=True) as conn:
            result = await conn.execute(
                t.update()
                .where(t.c.id == alert_id, t.c.acked_at.is_(None))
                .values(acked_at=at, acked_by=by, updated_at=at)
            )
            row = (await conn.execute(sa.select(t).where(t.c.id == alert_id))).mappings().first()
            return (_alert(row) if row is not None else None), result.rowcount == 1

    async def list_alerts(
        self,
        *,
        state: AlertState | None = None,
        environment: str | None = None,
        environments: Collection[str] | None = None,
        type: str | None = None,
        since: datetime | None = None,
        limit: int | None = 500,
    ) -> list[Alert]:
        """Newest first. ``since`` keeps alerts active at or after that time; ``limit`` None: all."""
        t = alert_table
        query = sa.select(t).order_by(t.c.starts_at.desc(), t.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        if state is not None:
            query = query.where(t.c.state == state.value)
        if environment is not None:
            query = query.where(t.c.environment == environment)
        if environments is not None:
            query = query.where(t.c.environment.in_(sorted(set(environments))))
        if type is not None:
            query = query.where(t.c.type == type)
        if since is not None:
            query = query.where(sa.or_(t.c.ends_at.is_(None), t.c.ends_at >= since))
        async with self._connect("listing alerts", write=False) as conn:
            return [_alert(row) for row in (await conn.execute(query)).mappings()]

    async def alerts_for_dispatch(self) -> list[Alert]:
        """Alerts the notify stage must look at: every firing alert, and resolved alerts whose
        last notice on some route was a firing one (their resolved notice may be due)."""
        t, log = alert_table, notification_log
        owed = sa.select(log.c.alert_id).where(log.c.last_kind.in_(("firing", "repeat")))
        # A UNION of two index reads, not an OR: PostgreSQL cannot use an index for
        # "state = 'firing' OR id IN (subquery)" and reads every alert, every second.
        wanted = sa.union(sa.select(t.c.id).where(t.c.state == "firing"), owed)
        query = sa.select(t).where(t.c.id.in_(wanted)).order_by(t.c.starts_at, t.c.id)
        async with self._connect("reading alerts to notify", write=False) as conn:
            return [_alert(row) for row in (await conn.execute(query)).mappings()]

    async def active_alerts(
        self, environment: str | None = None, *, environments: Collection[str] | None = None
    ) -> list[Alert]:
        """Every firing alert (of one environment, or of these): never cut at a page size, since
        what fires is what the incident memory, the page and the firing counts are built from."""
        return await self.list_alerts(
            state=AlertState.FIRING, environment=environment, environments=environments, limit=None
        )


def _alert(row: RowMapping) -> Alert:
    return Alert(
        id=row["id"],
        key=row["alert_key"],
        type=row["type"],
        environment=row["environment"],
        severity=row["severity"],
        state=AlertState(row["state"]),
        summary=row["summary"],
        details=row["details"] or {},
        labels=row["labels"] or {},
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        last_notified_at=row["last_notified_at"],
        acked_at=row["acked_at"],
        acked_by=row["acked_by"],
    )
