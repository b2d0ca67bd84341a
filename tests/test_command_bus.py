"""The ops commands' bus: storage shared with the daemon. While a daemon leads, a command queues
what it records and leaves dispatching and delivery to it, the daemon's pending rows included;
with no daemon, it delivers its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

from umig_monitor.cluster import LEADER_LEASE
from umig_monitor.commands.common import bus
from umig_monitor.config import Settings, parse_config
from umig_monitor.core.alerts import Notification, NotificationKind
from umig_monitor.pipeline import policy_from
from umig_monitor.pipeline.dispatch import outbox_entry
from umig_monitor.storage import Store
from umig_monitor.storage.records import OutboxEntry
from umig_monitor.storage.schema import outbox


async def receiver() -> tuple[web.AppRunner, str, list[str]]:
    got: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(request.headers.get("Idempotency-Key", ""))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook", got


def pending_row(key: str, now: datetime) -> OutboxEntry:
    """A test notification the daemon queued, due now."""
    notification = Notification(key, NotificationKind.TEST, "default", (), now)
    return outbox_entry(notification, "hook", policy_from(Settings()), None)


async def rows(store: Store) -> list[tuple[str, int, str | None]]:
    async with store._engine.connect() as conn:
        result = await conn.execute(sa.select(outbox.c.status, outbox.c.attempts, outbox.c.claimed_by))
        return [(r[0], r[1], r[2]) for r in result]


async def test_a_command_beside_a_leading_daemon_delivers_nothing(tmp_path: Path) -> None:
    runner, url, got = await receiver()
    try:
        settings = parse_config(
            f"daemon: {{storage: 'sqlite:///{tmp_path / 'm.db'}'}}\n"
            f"sinks: {{hook: {{type: webhook, url: '{url}'}}}}\n",
            "test",
        )
        now = datetime.now(UTC)
        store = await Store.open(settings.daemon.storage)
        try:
            await store.acquire_lease(LEADER_LEASE, "daemon-1", now, timedelta(minutes=5))
            await store.enqueue([pending_row("the-daemons", now)], [])
            async with bus(settings, deliver_for=2.0) as b:
                assert b.leader == "daemon-1"
                assert not b.pipeline.delivers  # its workers claim nothing, whenever they run
            assert got == []
            assert await rows(store) == [("pending", 0, None)]
            # No daemon now: the command delivers what is due.
            async with store._engine.begin() as conn:
                await conn.execute(sa.text("DELETE FROM cluster_leases"))
            async with bus(settings, deliver_for=5.0) as b:
                assert b.leader is None
                assert b.pipeline.delivers
            assert got == ["the-daemons"]
        finally:
            await store.close()
    finally:
        await runner.cleanup()
