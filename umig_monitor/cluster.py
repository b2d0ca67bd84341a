"""Membership and leadership of this replica, kept in the shared database.

Every half heartbeat interval the coordinator writes this replica's heartbeat, reads the member
list and takes or renews the leader lease. From the live members it computes (``core.cluster``)
which environments this replica polls; the leader alone runs alert decisions, delivery, the
drift, baseline, report, retention and push jobs, and deployment watches.

While the database is unreachable the replica keeps polling what it had; its leadership lapses
locally before the lease can pass to anyone else, so two leaders never act at once."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from umig_monitor.config.models import Cluster
from umig_monitor.core.cluster import Lease, Member, assign, live, view
from umig_monitor.logs import FailureStreak
from umig_monitor.metrics import ClusterMetrics
from umig_monitor.storage import StorageError, Store

log = structlog.get_logger("umig_monitor.cluster")
LEADER_LEASE = "leader"
FORGET_DEAD_AFTER = timedelta(hours=1)
JOIN_TIMEOUT = 30.0  # seconds


class Coordinator:
    def __init__(
        self,
        store: Store,
        config: Cluster,
        member_id: str,
        url: str | None,
        metrics: ClusterMetrics,
        *,
        environments: Callable[[], Iterable[str]],
        on_change: Callable[[], None],
    ) -> None:
        self._store = store
        self.config = config
        self.member_id = member_id
        self._url = url
        self._metrics = metrics
        self._environments = environments
        self._on_change = on_change
        self._started_at = datetime.now(UTC)
        self._hostname = socket.gethostname()
        self.members: list[Member] = []  # live, as of the last good tick
        self.known: list[Member] = []  # every membership row, live or not
        self.lease: Lease | None = None
        self.assignment: dict[str, str] = {}
        self._leader_until = 0.0  # time.monotonic() after which this replica stops acting as leader
        self._was_leader = False
        self._mine: frozenset[str] = frozenset()
        self._failures = FailureStreak(
            log,
            "cluster_heartbeat_failed",
            member=member_id,
            detail="polling continues with the last assignment; leadership lapses with the lease",
        )
        self.last_tick: datetime | None = None
        self._joined = False

    # -- what the daemon asks ---------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._leader_until

    def mine(self) -> frozenset[str]:
        return self._mine

    @property
    def tick_seconds(self) -> float:
        return self.config.heartbeat_interval.total_seconds() / 2

    # -- the loop ----------------------------------------------------------------------------------

    async def join(self) -> None:
        """The first tick, at start-up: errors propagate (the daemon cannot start blind), and a
        member id that a live replica elsewhere already uses is refused."""
        now = datetime.now(UTC)
        for other in await self._store.cluster_members():
            if other.id == self.member_id and _another_live_process(other, self._hostname, now, self.config):
                raise ClusterError(
                    f"cluster member id '{self.member_id}' is in use by pid {other.pid} on {other.hostname} "
                    f"(heartbeat {(now - other.heartbeat_at).total_seconds():.1f} s ago): give each replica "
                    "its own daemon.cluster.member_id"
                )
        await self._tick(raise_errors=True)
        self._joined = True

    async def tick(self) -> None:
        """One step: write this replica's heartbeat, read the members, take or renew the lease,
        and settle what this replica polls and whether it leads. A database that fails or does not
        answer within a heartbeat interval is a failed heartbeat (logged, counted, and leadership
        left to lapse), not an error. ``run`` calls it every half heartbeat interval, or when the
        leader's lease runs out; a caller that wants the cluster stepped calls it directly."""
        await self._tick(raise_errors=False)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._sleep_for())
            try:
                await self.tick()
            except Exception:  # a bug must not silently end this replica's membership
                log.exception("cluster_tick_crashed", member=self.member_id)

    async def leave(self) -> None:
        """A clean stop: give the lease and the membership up so others take over at once. Only
        after a successful join: a replica refused for a duplicate member id must not delete the
        row and lease of the live replica that owns that id."""
        self._leader_until = 0.0
        if not self._joined:
            return
        try:
            await self._store.leave_cluster(self.member_id)
            log.info("cluster_left", member=self.member_id)
        except StorageError as exc:
            log.warning("cluster_leave_failed", member=self.member_id, error=str(exc))

    def _sleep_for(self) -> float:
        """A follower wakes when the leader's lease runs out, so a failover takes the lease time,
        not the lease time plus up to one tick."""
        tick = self.tick_seconds
        lease = self.lease
        if lease is None or lease.holder == self.member_id:
            return tick
        until_expiry = (lease.expires_at - datetime.now(UTC)).total_seconds() + 0.01
        return max(0.01, min(tick, until_expiry))

    async def _tick(self, *, raise_errors: bool) -> None:
        ttl = self.config.lease_ttl
        # A tick slower than a heartbeat interval is a failed one (the database is black-holed or
        # drowning); at start-up, behind other replicas' migrations, allow longer.
        limit = JOIN_TIMEOUT if raise_errors else self.config.heartbeat_interval.total_seconds()
        try:
            async with asyncio.timeout(limit):
                known, lease, started, now = await self._exchange(ttl)
        except (StorageError, TimeoutError) as exc:
            if raise_errors:
                raise StorageError(f"joining the cluster failed: {exc or 'timed out'}") from exc
            self._failures.failed(str(exc) or "the database did not answer within a tick")
            self._metrics.heartbeat_failures.set(1)
            self._settle()
            return
        self._failures.succeeded()
        self._metrics.heartbeat_failures.set(0)
        self._apply(known, lease, started, now, ttl)
        if self.is_leader:
            await self._forget_dead(now)

    async def _exchange(self, ttl: timedelta) -> tuple[list[Member], Lease, float, datetime]:
        """Heartbeat, member list and lease: this replica's three statements per tick."""
        await self._store.heartbeat(
            Member(
                id=self.member_id,
                url=self._url,
                hostname=self._hostname,
                pid=os.getpid(),
                started_at=self._started_at,
                heartbeat_at=datetime.now(UTC),
                polling=len(self._mine),
            )
        )
        known = await self._store.cluster_members()
        # Our term (started) and the row's expiry (now) count from the same instant.
        started = time.monotonic()
        now = datetime.now(UTC)
        lease = await self._store.acquire_lease(LEADER_LEASE, self.member_id, now, ttl)
        return known, lease, started, now

    def _apply(
        self, known: list[Member], lease: Lease, started: float, now: datetime, ttl: timedelta
    ) -> None:
        self.known = known
        self.members = live(known, now, self.config.member_timeout)
        if self.member_id not in {m.id for m in self.members}:
            # Our own row is what we just wrote; a clock far off would hide it. Count ourselves in.
            self.members = sorted([*self.members, *(m for m in known if m.id == self.member_id)], key=_id)
        self.lease = lease
        if lease.holder == self.member_id:
            # Stop acting as leader a tick before the lease could pass to anyone else.
            margin = min(self.tick_seconds, ttl.total_seconds() / 4)
            self._leader_until = started + ttl.total_seconds() - margin
        else:
            self._leader_until = 0.0
        self.assignment = assign(self._environments(), [m.id for m in self.members])
        self.last_tick = now
        self._settle()

    def _settle(self) -> None:
        """Tell the daemon when what this replica does has changed."""
        mine = frozenset(env for env, who in self.assignment.items() if who == self.member_id)
        leader = self.is_leader
        self._metrics.leader.set(1 if leader else 0)
        self._metrics.members.set(len(self.members))
        self._metrics.assigned.set(len(mine))
        if mine == self._mine and leader == self._was_leader:
            return
        if leader != self._was_leader:
            self._metrics.leader_changes.inc()
            (log.warning if not leader and self._was_leader else log.info)(
                "cluster_leadership", member=self.member_id, leader=leader
            )
        if mine != self._mine:
            log.info(
                "cluster_assignment",
                member=self.member_id,
                members=[m.id for m in self.members],
                polling=len(mine),
                gained=sorted(mine - self._mine)[:20] or None,
                lost=sorted(self._mine - mine)[:20] or None,
            )
        self._mine = mine
        self._was_leader = leader
        self._on_change()

    def environments_changed(self) -> None:
        """The config's environments changed (reload): recompute without waiting for a tick."""
        self.assignment = assign(self._environments(), [m.id for m in self.members] or [self.member_id])
        self._settle()

    async def _forget_dead(self, now: datetime) -> None:
        try:
            gone = await self._store.forget_members(now - FORGET_DEAD_AFTER)
        except StorageError:
            return
        if gone:
            log.info("cluster_members_forgotten", count=gone)

    # -- views -------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /api/v1/cluster`` shows: the shared view, and what this replica does."""
        return {
            "member": self.member_id,
            "is_leader": self.is_leader,
            "polling": sorted(self._mine),
            **view(
                self.known,
                self.lease,
                self._environments(),
                self.last_tick or datetime.now(UTC),
                self.config.member_timeout,
            ),
            "heartbeat_interval_s": self.config.heartbeat_interval.total_seconds(),
            "lease_ttl_s": self.config.lease_ttl.total_seconds(),
            "last_heartbeat": self.last_tick.isoformat() if self.last_tick else None,
            "heartbeat_failing": self._failures.failing,
        }


class ClusterError(StorageError):
    """This replica cannot join the cluster as configured."""


def _another_live_process(other: Member, hostname: str, now: datetime, config: Cluster) -> bool:
    if now - other.heartbeat_at > config.member_timeout:
        return False
    if other.hostname != hostname:
        return True
    if other.pid == os.getpid():
        return False  # our own previous life: a container restarted in place is pid 1 again
    try:
        os.kill(other.pid, 0)  # same host: a restart after a crash reuses the id of a dead process
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _id(member: Member) -> str:
    return member.id


def default_member_id(port: int) -> str:
    return f"{socket.gethostname()}:{port}"
