"""What the ops commands share: storage as the bus to the daemon (``bus``), printing tables and
times."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from umig_monitor.cluster import LEADER_LEASE
from umig_monitor.config import Settings
from umig_monitor.core.cluster import live
from umig_monitor.core.timetext import parse_timestamp
from umig_monitor.metrics import AlertMetrics, SelfMetrics
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.storage import Store


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    store = await Store.open(settings.daemon.storage, pool_size=1)
    try:
        yield store
    finally:
        await store.close()


async def leader_alive(store: Store, settings: Settings, now: datetime) -> str | None:
    """The daemon replica that dispatches and delivers what is in storage: the holder of the
    leader lease, or, while the lease changes hands (it lapses for a moment on a loaded machine),
    a replica heard from within ``daemon.cluster.member_timeout``, one of which leads again
    shortly. None when no daemon runs."""
    lease = await store.lease(LEADER_LEASE)
    if lease is not None and lease.held_at(now):
        return lease.holder
    alive = live(await store.cluster_members(), now, settings.daemon.cluster.member_timeout)
    return alive[0].id if alive else None


@dataclass(frozen=True, slots=True)
class Bus:
    """What an ops command works with: storage (shared with the daemon), an alert pipeline for
    what it records, and whether a daemon leads (``leader``, its member id)."""

    store: Store
    pipeline: AlertPipeline
    session: aiohttp.ClientSession
    leader: str | None


@asynccontextmanager
async def bus(settings: Settings, deliver_for: float = 10.0) -> AsyncIterator[Bus]:
    """Storage is the bus between the ops commands and the daemon: a command reads and writes the
    store the daemon uses, whether or not a daemon runs, so it gives the same answer either way.
    What it queues (notifications, a watch) the leading daemon picks up from the store within its
    next tick; when no daemon leads, the command routes and delivers its own notifications here,
    for up to ``deliver_for`` seconds (anything left stays in the outbox for the daemon)."""
    async with open_store(settings) as store, aiohttp.ClientSession() as session:
        leader = await leader_alive(store, settings, datetime.now(UTC))
        # Asked first: the pipeline's delivery workers start with it, and beside a leading daemon
        # they must not claim a row (the daemon's own pending ones included) or count a delivery.
        pipeline = AlertPipeline(store, AlertMetrics(SelfMetrics().registry), active=lambda: leader is None)
        pipeline.configure(settings, session)
        try:
            yield Bus(store, pipeline, session, leader)
            if leader is not None:
                return  # the daemon dispatches and delivers: never both
            await pipeline.evaluate()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + deliver_for
            while loop.time() < deadline:
                if not await store.due_deliveries(datetime.now(UTC), limit=1):
                    break
                await asyncio.sleep(0.2)
        finally:
            await pipeline.close()


def local_time(value: str | datetime | None, settings: Settings) -> str | None:
    """A time for a human, in ``daemon.timezone`` as the status page shows it; JSON output keeps
    the API's UTC ISO form. A value that is not a time is shown as it is."""
    if value is None or value == "":
        return None
    try:
        ts = value if isinstance(value, datetime) else parse_timestamp(value, naive_is_utc=True)
    except ValueError:
        return str(value)
    return ts.astimezone(ZoneInfo(settings.daemon.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: Any = None) -> None:
    out = out or sys.stdout
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
