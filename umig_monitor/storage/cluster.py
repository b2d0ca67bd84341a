"""Cluster membership heartbeats and named leases.

A lease is taken with one conditional statement: insert the row if there is none, else take it
over only when it has expired or is already ours. On PostgreSQL two replicas racing for an
expired lease both reach the UPDATE; the second waits for the first's row lock, re-reads the row
and finds it held. On SQLite writers are serialised by BEGIN IMMEDIATE."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from umig_monitor.core.cluster import Lease, Member
from umig_monitor.storage import dialects
from umig_monitor.storage.schema import cluster_leases, cluster_members


class ClusterQueries:
    """Mixed into ``Store``; relies on its ``_connect`` and ``_dialect``."""

    _dialect: str

    def _connect(self, action: str, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        raise NotImplementedError

    async def heartbeat(self, member: Member) -> None:
        """Insert or refresh this replica's membership row."""
        statement = dialects.upsert(self._dialect, cluster_members, key=("member_id",))
        async with self._connect("writing the cluster heartbeat", write=True) as conn:
            await conn.execute(
                statement,
                {
                    "member_id": member.id,
                    "url": member.url,
                    "hostname": member.hostname,
                    "pid": member.pid,
                    "started_at": member.started_at,
                    "heartbeat_at": member.heartbeat_at,
                    "polling": member.polling,
                },
            )

    async def cluster_members(self) -> list[Member]:
        """Every membership row, live or not (``core.cluster.live`` tells them apart)."""
        t = cluster_members
        async with self._connect("reading cluster members", write=False) as conn:
            rows = (await conn.execute(sa.select(t).order_by(t.c.member_id))).mappings()
            return [
                Member(
                    id=r["member_id"],
                    url=r["url"],
                    hostname=r["hostname"],
                    pid=r["pid"],
                    started_at=r["started_at"],
                    heartbeat_at=r["heartbeat_at"],
                    polling=r["polling"],
                )
                for r in rows
            ]

    async def leave_cluster(self, member_id: str) -> None:
        """A clean exit: the membership row and any lease go at once, so others take over now
        rather than after the timeouts."""
        async with self._connect("leaving the cluster", write=True) as conn:
            await conn.execute(cluster_members.delete().where(cluster_members.c.member_id == member_id))
            await conn.execute(cluster_leases.delete().where(cluster_leases.c.holder == member_id))

    async def forget_members(self, older_than: datetime) -> int:
        """Remove membership rows not heard from since ``older_than`` (long dead replicas)."""
        async with self._connect("pruning cluster members", write=True) as conn:
            result = await conn.execute(
                cluster_members.delete().where(cluster_members.c.heartbeat_at < older_than)
            )
            return int(result.rowcount or 0)

    async def acquire_lease(self, name: str, holder: str, now: datetime, ttl: timedelta) -> Lease:
        """Take or renew lease ``name`` for ``holder`` if it is free, expired or already theirs.
        Returns the lease as it stands afterwards: check ``holder`` to see who has it."""
        t = cluster_leases
        expires = now + ttl
        async with self._connect("acquiring a lease", write=True) as conn:
            insert = dialects.insert_ignore(self._dialect, t, key=["name"]).values(
                name=name, holder=holder, acquired_at=now, expires_at=expires
            )
            if not (await conn.execute(insert)).rowcount:
                await conn.execute(
                    t.update()
                    .where(t.c.name == name, sa.or_(t.c.holder == holder, t.c.expires_at <= now))
                    .values(
                        holder=holder,
                        expires_at=expires,
                        acquired_at=sa.case((t.c.holder == holder, t.c.acquired_at), else_=now),
                    )
                )
            row = (await conn.execute(sa.select(t).where(t.c.name == name))).mappings().one()
            return Lease(row["name"], row["holder"], row["acquired_at"], row["expires_at"])

    async def release_lease(self, name: str, holder: str) -> bool:
        async with self._connect("releasing a lease", write=True) as conn:
            t = cluster_leases
            result = await conn.execute(t.delete().where(t.c.name == name, t.c.holder == holder))
            return bool(result.rowcount)

    async def lease(self, name: str) -> Lease | None:
        t = cluster_leases
        async with self._connect("reading a lease", write=False) as conn:
            row = (await conn.execute(sa.select(t).where(t.c.name == name))).mappings().first()
            if row is None:
                return None
            return Lease(row["name"], row["holder"], row["acquired_at"], row["expires_at"])
