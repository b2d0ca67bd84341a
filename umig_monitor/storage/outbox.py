"""The delivery outbox, the notification log and silences.

A notification is written here, together with the dedup stage's memory, in one transaction and
before any attempt to send it; delivery then works from these rows alone, so a crash loses
nothing and the unique idempotency key stops anything from being enqueued twice."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from umig_monitor.core.alerts import NotificationKind
from umig_monitor.core.dedup import Sent
from umig_monitor.core.silences import Silence, parse_matcher
from umig_monitor.storage import dialects
from umig_monitor.storage.records import Delivery, LogUpdate, OutboxEntry
from umig_monitor.storage.schema import alerts as alert_table
from umig_monitor.storage.schema import notification_log, outbox, silences


class OutboxQueries:
    """Mixed into ``Store``; relies on its ``_connect`` and ``_dialect``."""

    _dialect: str

    def _connect(self, action: str, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    async def enqueue(self, entries: Sequence[OutboxEntry], log: Sequence[LogUpdate]) -> int:
        """Store notifications and the log together; returns how many were new."""
        if not entries and not log:
            return 0
        inserted = 0
        async with self._connect("enqueueing notifications", write=True) as conn:
            statement = dialects.insert_ignore(self._dialect, outbox, key=["idempotency_key"])
            for entry in entries:
                result = await conn.execute(
                    statement.values(
                        alert_id=entry.alert_id,
                        sink=entry.sink,
                        kind=entry.kind,
                        idempotency_key=entry.idempotency_key,
                        payload=entry.payload,
                        status="pending",
                        attempts=0,
                        next_attempt_at=entry.created_at,
                        deadline=entry.deadline,
                        created_at=entry.created_at,
                    )
                )
                inserted += result.rowcount or 0
            if log:
                upsert = dialects.upsert(self._dialect, notification_log, key=["alert_id", "route_key"])
                await conn.execute(
                    upsert,
                    [
                        {
                            "alert_id": u.alert_id,
                            "route_key": u.route_key,
                            "last_kind": u.kind,
                            "last_at": u.at,
                            "count": u.count,
                            "escalated_at": u.escalated_at,
                        }
                        for u in log
                    ],
                )
                ids = sorted({u.alert_id for u in log})
                await conn.execute(
                    alert_table.update().where(alert_table.c.id.in_(ids)).values(last_notified_at=log[0].at)
                )
        return inserted

    async def notification_log(self, alert_ids: Sequence[int]) -> dict[tuple[int, str], Sent]:
        if not alert_ids:
            return {}
        t = notification_log
        async with self._connect("reading the notification log", write=False) as conn:
            rows = (await conn.execute(sa.select(t).where(t.c.alert_id.in_(list(alert_ids))))).mappings()
            return {
                (r["alert_id"], r["route_key"]): Sent(
                    NotificationKind(r["last_kind"]), r["last_at"], r["count"], r["escalated_at"]
                )
                for r in rows
            }

    async def due_deliveries(
        self, now: datetime, *, limit: int = 100, sink: str | None = None
    ) -> list[Delivery]:
        query = (
            sa.select(outbox)
            .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(limit)
        )
        if sink is not None:
            query = query.where(outbox.c.sink == sink)
        async with self._connect("reading due deliveries", write=False) as conn:
            return [_delivery(r) for r in (await conn.execute(query)).mappings()]

    async def claim_deliveries(
        self, now: datetime, *, sink: str, owner: str, until: datetime, limit: int = 20
    ) -> list[Delivery]:
        """Due rows of ``sink``, claimed for ``owner`` until ``until`` (or until it records the
        attempt). Rows another deliverer holds are skipped (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL, serialised writers on SQLite), so two deliverers never send the same row; a
        claim left by a deliverer that died is free again once ``until`` passes."""
        due = (
            sa.select(outbox.c.id)
            .where(
                outbox.c.status == "pending",
                outbox.c.sink == sink,
                outbox.c.next_attempt_at <= now,
                sa.or_(
                    outbox.c.claimed_until.is_(None),
                    outbox.c.claimed_until <= now,
                    outbox.c.claimed_by == owner,
                ),
            )
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            outbox.update()
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(claimed_by=owner, claimed_until=until)
            .returning(*outbox.c)
        )
        async with self._connect("claiming due deliveries", write=True) as conn:
            rows = [_delivery(r) for r in (await conn.execute(claim)).mappings()]
        return sorted(rows, key=lambda d: (d.next_attempt_at, d.id))

    async def release_claims(self, owner: str, *, sink: str | None = None) -> int:
        """Hand back the pending rows ``owner`` claimed but did not attempt."""
        statement = (
            outbox.update()
            .where(outbox.c.claimed_by == owner, outbox.c.status == "pending")
            .values(claimed_by=None, claimed_until=None)
        )
        if sink is not None:
            statement = statement.where(outbox.c.sink == sink)
        async with self._connect("releasing outbox claims", write=True) as conn:
            return int((await conn.execute(statement)).rowcount or 0)

    async def delivery_sent(self, delivery_id: int, at: datetime, *, owner: str | None = None) -> bool:
        return await self._update_delivery(
            delivery_id, owner, status="sent", sent_at=at, attempts=outbox.c.attempts + 1, last_error=None
        )

    async def delivery_retry(
        self, delivery_id: int, next_at: datetime, error: str, *, owner: str | None = None
    ) -> bool:
        return await self._update_delivery(
            delivery_id, owner, next_attempt_at=next_at, attempts=outbox.c.attempts + 1, last_error=error
        )

    async def delivery_failed(self, delivery_id: int, error: str, *, owner: str | None = None) -> bool:
        return await self._update_delivery(
            delivery_id, owner, status="failed", attempts=outbox.c.attempts + 1, last_error=error
        )

    async def expedite(self, sink: str, now: datetime) -> int:
        """The receiver answers again: make every pending row of that sink due now, instead of
        each waiting out its own backoff (after a long outage that could be minutes)."""
        async with self._connect("expediting deliveries", write=True) as conn:
            result = await conn.execute(
                outbox.update()
                .where(outbox.c.sink == sink, outbox.c.status == "pending", outbox.c.next_attempt_at > now)
                .values(next_attempt_at=now)
            )
            return int(result.rowcount or 0)

    async def next_due(
        self, sink: str, *, owner: str | None = None, now: datetime | None = None
    ) -> datetime | None:
        """When the next pending row of ``sink`` can be worked on: its next attempt, or for a row
        another deliverer (not ``owner``) holds, the end of that claim."""
        when: sa.ColumnElement[datetime] = outbox.c.next_attempt_at
        if owner is not None and now is not None:
            held = sa.and_(
                outbox.c.claimed_by.is_not(None),
                outbox.c.claimed_by != owner,
                outbox.c.claimed_until > now,
            )
            when = sa.case((held, outbox.c.claimed_until), else_=outbox.c.next_attempt_at)
        query = sa.select(sa.func.min(when)).where(outbox.c.sink == sink, outbox.c.status == "pending")
        async with self._connect("reading the outbox", write=False) as conn:
            value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
            return value

    async def fail_pending(self, sink: str, error: str) -> int:
        async with self._connect("failing deliveries", write=True) as conn:
            result = await conn.execute(
                outbox.update()
                .where(outbox.c.sink == sink, outbox.c.status == "pending")
                .values(status="failed", last_error=error)
            )
            return int(result.rowcount or 0)

    async def _update_delivery(self, delivery_id: int, owner: str | None, **values: Any) -> bool:
        """Record an attempt; the row's claim ends with it. With ``owner``, only while the row is
        still pending and claimed by it: a deliverer whose claim lapsed mid-send must not overwrite
        what the one that took the row over recorded. True when the row was updated."""
        statement = outbox.update().where(outbox.c.id == delivery_id)
        if owner is not None:
            statement = statement.where(outbox.c.claimed_by == owner, outbox.c.status == "pending")
        async with self._connect("updating a delivery", write=True) as conn:
            result = await conn.execute(statement.values(claimed_by=None, claimed_until=None, **values))
            return bool(result.rowcount)

    async def outbox_counts(self) -> dict[tuple[str, str], int]:
        """Rows per (sink, status)."""
        query = sa.select(outbox.c.sink, outbox.c.status, sa.func.count()).group_by(
            outbox.c.sink, outbox.c.status
        )
        async with self._connect("counting the outbox", write=False) as conn:
            return {(sink, status): int(n) for sink, status, n in (await conn.execute(query)).all()}

    async def pending_counts(self) -> dict[str, int]:
        """Pending rows per sink: read through the (status, next attempt) index, where
        ``outbox_counts`` reads every row ever sent (the pipeline's metrics, every 5 s)."""
        query = (
            sa.select(outbox.c.sink, sa.func.count())
            .where(outbox.c.status == "pending")
            .group_by(outbox.c.sink)
        )
        async with self._connect("counting pending notifications", write=False) as conn:
            return {sink: int(n) for sink, n in (await conn.execute(query)).all()}

    async def list_deliveries(
        self, *, status: str | None = None, alert_id: int | None = None, limit: int = 200
    ) -> list[Delivery]:
        query = sa.select(outbox).order_by(outbox.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(outbox.c.status == status)
        if alert_id is not None:
            query = query.where(outbox.c.alert_id == alert_id)
        async with self._connect("listing deliveries", write=False) as conn:
            return [_delivery(r) for r in (await conn.execute(query)).mappings()]

    # -- silences --------------------------------------------------------------------------------

    async def add_silence(self, silence: Silence, now: datetime) -> None:
        async with self._connect("adding a silence", write=True) as conn:
            await conn.execute(
                silences.insert().values(
                    id=silence.id,
                    matchers=[str(m) for m in silence.matchers],
                    starts_at=silence.starts_at,
                    ends_at=silence.ends_at,
                    created_by=silence.created_by,
                    comment=silence.comment,
                    created_at=now,
                )
            )

    async def list_silences(self, now: datetime | None = None) -> list[Silence]:
        """All silences, or those not yet ended at ``now``."""
        query = sa.select(silences).order_by(silences.c.starts_at.desc())
        if now is not None:
            query = query.where(silences.c.ends_at > now)
        async with self._connect("listing silences", write=False) as conn:
            return [
                Silence(
                    id=r["id"],
                    matchers=tuple(parse_matcher(m) for m in r["matchers"]),
                    starts_at=r["starts_at"],
                    ends_at=r["ends_at"],
                    created_by=r["created_by"],
                    comment=r["comment"],
                )
                for r in (await conn.execute(query)).mappings()
            ]

    async def expire_silence(self, silence_id: str, now: datetime) -> bool:
        async with self._connect("expiring a silence", write=True) as conn:
            result = await conn.execute(
                silences.update()
                .where(silences.c.id == silence_id, silences.c.ends_at > now)
                .values(ends_at=now)
            )
            return bool(result.rowcount)


def _delivery(r: RowMapping) -> Delivery:
    return Delivery(
        id=r["id"],
        sink=r["sink"],
        kind=r["kind"],
        idempotency_key=r["idempotency_key"],
        payload=r["payload"],
        status=r["status"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        deadline=r["deadline"],
        created_at=r["created_at"],
        sent_at=r["sent_at"],
        last_error=r["last_error"],
        alert_id=r["alert_id"],
    )
