"""Cluster membership and work assignment, pure.

Replicas share one database. Each writes a heartbeat row; a member whose heartbeat is older than
the member timeout is dead. Environments are split among the live members by rendezvous
(highest-random-weight) hashing: every replica computes the same owner for an environment from
the same member list, with no coordination, and when a member joins or leaves only the
environments it gains or held move (about 1/n of them)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from umig_monitor.core.redaction import redact_any_url


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    url: str | None
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    polling: int = 0  # environments it said it polls at its last heartbeat


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime

    def held_at(self, now: datetime) -> bool:
        return self.expires_at > now


def weight(member_id: str, environment: str) -> int:
    """The rendezvous weight of ``environment`` on ``member_id``: stable across processes and
    Python versions (a real hash, not ``hash()``), well spread for similar names."""
    digest = hashlib.blake2b(f"{member_id}\x00{environment}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(environment: str, members: Sequence[str]) -> str | None:
    """The member that polls ``environment``; None when there are no members."""
    if not members:
        return None
    # Ties (astronomically unlikely) go to the smaller id, so every replica agrees.
    return max(members, key=lambda m: (weight(m, environment), _reverse(m)))


def assign(environments: Iterable[str], members: Sequence[str]) -> dict[str, str]:
    """Every environment to exactly one member (an empty dict when there are no members)."""
    if not members:
        return {}
    ordered = sorted(set(members))
    return {env: owner_id for env in environments if (owner_id := owner(env, ordered)) is not None}


def owned_by(member_id: str, environments: Iterable[str], members: Sequence[str]) -> set[str]:
    return {env for env, who in assign(environments, members).items() if who == member_id}


def live(members: Iterable[Member], now: datetime, timeout: timedelta) -> list[Member]:
    """Members heard from within ``timeout``, by id."""
    return sorted((m for m in members if now - m.heartbeat_at <= timeout), key=lambda m: m.id)


def view(
    known: Sequence[Member],
    lease: Lease | None,
    environments: Iterable[str],
    now: datetime,
    member_timeout: timedelta,
) -> dict[str, Any]:
    """The cluster as ``GET /api/v1/cluster`` and ``umig-monitor cluster`` show it: every member
    row with whether it is live and leads, and the assignment the live members imply."""
    alive = live(known, now, member_timeout)
    live_ids = {m.id for m in alive}
    assigned: dict[str, list[str]] = {m.id: [] for m in alive}
    for env, who in assign(environments, [m.id for m in alive]).items():
        assigned[who].append(env)
    leading = lease is not None and lease.held_at(now)
    return {
        "leader": None
        if lease is None or not leading
        else {
            "member": lease.holder,
            "since": lease.acquired_at.isoformat(),
            "expires_at": lease.expires_at.isoformat(),
        },
        "members": [
            {
                "id": m.id,
                "url": redact_any_url(m.url),
                "hostname": m.hostname,
                "pid": m.pid,
                "started_at": m.started_at.isoformat(),
                "heartbeat_at": m.heartbeat_at.isoformat(),
                "heartbeat_age_s": round((now - m.heartbeat_at).total_seconds(), 3),
                "live": m.id in live_ids,
                "leader": leading and lease is not None and lease.holder == m.id,
                "polling": m.polling,  # as the member reported at its last heartbeat
            }
            for m in sorted(known, key=lambda m: m.id)
        ],
        "assignments": {who: sorted(envs) for who, envs in sorted(assigned.items())},
        "member_timeout_s": member_timeout.total_seconds(),
    }


def _reverse(member_id: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in member_id)
