"""Drift findings and performance baselines: what the drift and baseline jobs found, kept so that
findings resolve when fixed and baselines compare across versions and time."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from umig_monitor.storage.schema import baselines, drift_findings


@dataclass(frozen=True, slots=True)
class FindingRow:
    key: str
    type: str
    environment: str | None
    severity: str
    summary: str
    details: dict[str, Any]
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredBaseline:
    id: int
    environment: str
    version: str | None
    ts: datetime
    endpoints: dict[str, Any]
    figures: dict[str, Any]


class InsightQueries:
    """Mixed into ``Store``; relies on its ``_connect``."""

    def _connect(self, action: str, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    async def sync_findings(
        self, current: Sequence[FindingRow], now: datetime
    ) -> tuple[list[FindingRow], list[FindingRow]]:
        """Make stored findings match this run: new ones are added, known ones refreshed, and the
        ones no longer found are resolved. Returns (new, resolved)."""
        t = drift_findings
        new: list[FindingRow] = []
        resolved: list[FindingRow] = []
        async with self._connect("recording drift findings", write=True) as conn:
            rows = (await conn.execute(sa.select(t).where(t.c.resolved_at.is_(None)))).mappings().all()
            active = {r["finding_key"]: r for r in rows}
            seen = set()
            for f in current:
                seen.add(f.key)
                values = {
                    "type": f.type,
                    "environment": f.environment,
                    "severity": f.severity,
                    "summary": f.summary,
                    "details": f.details,
                    "last_seen": now,
                }
                if f.key in active:
                    await conn.execute(t.update().where(t.c.id == active[f.key]["id"]).values(**values))
                else:
                    await conn.execute(t.insert().values(finding_key=f.key, first_seen=now, **values))
                    new.append(f)
            for key, row in active.items():
                if key not in seen:
                    await conn.execute(t.update().where(t.c.id == row["id"]).values(resolved_at=now))
                    resolved.append(_finding(row))
        return new, resolved

    async def drift_findings(self, *, active_only: bool = True, limit: int = 500) -> list[FindingRow]:
        t = drift_findings
        query = sa.select(t).order_by(t.c.first_seen.desc()).limit(limit)
        if active_only:
            query = query.where(t.c.resolved_at.is_(None))
        async with self._connect("reading drift findings", write=False) as conn:
            return [_finding(r) for r in (await conn.execute(query)).mappings()]

    async def add_baseline(
        self,
        environment: str,
        version: str | None,
        ts: datetime,
        endpoints: dict[str, Any],
        figures: dict[str, Any],
    ) -> int:
        async with self._connect("storing a baseline", write=True) as conn:
            result = await conn.execute(
                baselines.insert()
                .values(environment=environment, version=version, ts=ts, endpoints=endpoints, figures=figures)
                .returning(baselines.c.id)
            )
            return int(result.scalar_one())

    async def baselines(
        self,
        *,
        environment: str | None = None,
        version: str | None = None,
        before: datetime | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[StoredBaseline]:
        """Newest first."""
        t = baselines
        query = sa.select(t).order_by(t.c.ts.desc(), t.c.id.desc()).limit(limit)
        if environment is not None:
            query = query.where(t.c.environment == environment)
        if version is not None:
            query = query.where(t.c.version == version)
        if before is not None:
            query = query.where(t.c.ts < before)
        if since is not None:
            query = query.where(t.c.ts >= since)
        async with self._connect("reading baselines", write=False) as conn:
            return [_baseline(r) for r in (await conn.execute(query)).mappings()]

    async def latest_baselines(
        self, after_id: int | None, *, overlap: int = 200
    ) -> tuple[int | None, dict[str, StoredBaseline]]:
        """The newest baseline per environment: of all (``after_id`` None), or among those stored
        after row ``after_id`` (re-reading ``overlap`` rows: on PostgreSQL a lower id can commit
        after a higher one); and the highest row id read, to follow on from."""
        t = baselines
        if after_id is None:
            newest = sa.select(sa.func.max(t.c.id).label("id")).group_by(t.c.environment).subquery()
            query = sa.select(t).join(newest, t.c.id == newest.c.id)
        else:
            query = sa.select(t).where(t.c.id > after_id - overlap)
        latest: dict[str, StoredBaseline] = {}
        last_id = after_id
        async with self._connect("reading the latest baselines", write=False) as conn:
            for row in (await conn.execute(query.order_by(t.c.id))).mappings():
                b = _baseline(row)
                latest[b.environment] = b
                last_id = b.id if last_id is None else max(last_id, b.id)
        return last_id, latest

    async def previous_version(self, environment: str, version: str, before: datetime) -> str | None:
        """The version of this environment's latest baseline before ``before`` taken on another
        known version: the version it ran before ``version``."""
        t = baselines
        query = (
            sa.select(t.c.version)
            .where(
                t.c.environment == environment,
                t.c.version.is_not(None),
                t.c.version != version,
                t.c.ts < before,
            )
            .order_by(t.c.ts.desc(), t.c.id.desc())
            .limit(1)
        )
        async with self._connect("reading baselines", write=False) as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
            return None if found is None else str(found)


def _finding(r: RowMapping) -> FindingRow:
    return FindingRow(
        r["finding_key"],
        r["type"],
        r["environment"],
        r["severity"],
        r["summary"],
        r["details"] or {},
        r["first_seen"],
        r["last_seen"],
        r["resolved_at"],
    )


def _baseline(r: RowMapping) -> StoredBaseline:
    return StoredBaseline(
        r["id"], r["environment"], r["version"], r["ts"], r["endpoints"] or {}, r["figures"] or {}
    )
