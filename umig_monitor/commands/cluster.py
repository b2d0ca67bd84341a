"""``cluster``: the replicas, which one leads and who polls what."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from umig_monitor.cluster import LEADER_LEASE
from umig_monitor.commands.common import open_store, print_json, print_table
from umig_monitor.config import Settings
from umig_monitor.core.cluster import view


async def cluster_state(settings: Settings) -> dict[str, Any]:
    """The replicas as the shared store knows them (what every replica reads too)."""
    async with open_store(settings) as store:
        known = await store.cluster_members()
        lease = await store.lease(LEADER_LEASE)
    timeout = settings.daemon.cluster.member_timeout
    return view(known, lease, settings.environments, datetime.now(UTC), timeout)


async def cluster(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 1 when no live replica holds the leader lease (nothing would send alerts)."""
    data = await cluster_state(settings)
    leader = data["leader"]
    if args.json:
        print_json(data)
    else:
        rows = [
            (
                m["id"],
                "yes" if m["live"] else "no",
                "leader" if m["leader"] else "",
                m["polling"],
                f"{m['heartbeat_age_s']:.1f}s ago",
                m["url"],
            )
            for m in data["members"]
        ]
        print_table(("member", "live", "role", "polling", "heartbeat", "url"), rows)
        print()
        if leader is None:
            print("leader: none (no live replica holds the lease)")
        else:
            print(f"leader: {leader['member']} since {leader['since']} (lease until {leader['expires_at']})")
        if args.assignments:
            print()
            print_table(
                ("environment", "member"),
                sorted((env, who) for who, envs in data["assignments"].items() for env in envs),
            )
    return 0 if leader is not None else 1
