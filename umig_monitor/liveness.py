"""The daemon's own background checks: storage checked on its own schedule, and systemd's
watchdog fed while the scheduler runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from umig_monitor.config import Settings
from umig_monitor.logs import FailureStreak
from umig_monitor.sdnotify import SystemdNotifier
from umig_monitor.storage import StorageError, Store


async def check_storage(
    store: Callable[[], Store], settings: Callable[[], Settings], streak: FailureStreak
) -> None:
    """Storage is checked on its own, not only when something asks /readyz: an outage, or a
    SQLite file deleted or replaced under the daemon, is one clear line when it starts."""
    while True:
        await asyncio.sleep(settings().daemon.storage_check_interval.total_seconds())
        try:
            async with asyncio.timeout(10):
                await store().ping()
        except (StorageError, TimeoutError) as exc:
            streak.failed(str(exc) or "no answer within 10 s")
        else:
            streak.succeeded()


async def feed_watchdog(notifier: SystemdNotifier, alive: Callable[[], bool], interval: float) -> None:
    while True:
        if alive():
            notifier.watchdog()
        await asyncio.sleep(interval)
