"""What the ops commands share: reaching the daemon's API, opening storage, an alert pipeline in the
command's own process, printing tables."""

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

from umig_monitor.config import Settings
from umig_monitor.core.timetext import parse_timestamp
from umig_monitor.metrics import AlertMetrics, SelfMetrics
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.storage import Store


class ApiError(Exception):
    """The daemon answered with an error; the message is its own."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


def api_base(settings: Settings) -> str:
    host, port = settings.daemon.listen_address
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def daemon_request(
    settings: Settings, method: str, path: str, *, body: Any = None, token: bool = False, wait: float = 3.0
) -> Any | None:
    """JSON from the running daemon, or None when no daemon answers at daemon.listen."""
    headers = {}
    if token:
        secret = settings.daemon.read_api_token()
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as session,
            session.request(method, api_base(settings) + path, json=body, headers=headers) as resp,
        ):
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ApiError(
                    str(data.get("error")) if isinstance(data, dict) else f"HTTP {resp.status}", resp.status
                )
            return data
    except (aiohttp.ClientConnectionError, TimeoutError):
        return None
    except (aiohttp.ContentTypeError, json.JSONDecodeError, ValueError):
        return None


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    store = await Store.open(settings.daemon.storage, pool_size=1)
    try:
        yield store
    finally:
        await store.close()


@dataclass(frozen=True, slots=True)
class Offline:
    store: Store
    pipeline: AlertPipeline
    session: aiohttp.ClientSession


@asynccontextmanager
async def offline_pipeline(
    settings: Settings, deliver_for: float = 10.0, *, dispatch: bool = False
) -> AsyncIterator[Offline]:
    """What the daemon would do, in this process: record, enqueue, and try to deliver before exiting
    (anything not delivered stays in the outbox for the daemon). With ``dispatch``, alerts submitted
    in the body are also routed and deduplicated here on the way out, as the daemon's dispatcher
    would (idempotently: a running daemon deciding the same enqueues nothing twice)."""
    async with open_store(settings) as store, aiohttp.ClientSession() as session:
        pipeline = AlertPipeline(store, AlertMetrics(SelfMetrics().registry))
        pipeline.configure(settings, session)
        try:
            yield Offline(store, pipeline, session)
            if dispatch:
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
