"""Push the umig_* metrics to a Prometheus Pushgateway, replacing the guide's export script.

PUT replaces the whole group, so series of removed environments or old versions disappear there too."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

import aiohttp
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from umig_monitor.config.types import redact_url

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

log = structlog.get_logger("umig_monitor.jobs.pushgateway")


class PushFailed(Exception):
    pass


async def push_metrics(daemon: Daemon) -> None:
    config = daemon.settings.pushgateway
    if config is None:
        return
    url = f"{str(config.url).rstrip('/')}/metrics/job/{quote(config.job, safe='')}"
    body = await asyncio.to_thread(generate_latest, daemon.umig_metrics.registry)
    try:
        async with daemon.session.put(
            url,
            data=body,
            headers={"Content-Type": CONTENT_TYPE_LATEST},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as resp:
            if resp.status >= 300:
                text = (await resp.text())[:200]
                raise PushFailed(f"pushgateway answered HTTP {resp.status}: {text}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PushFailed(f"cannot reach pushgateway {redact_url(url)}: {exc}") from exc
    log.debug("metrics_pushed", url=redact_url(url), bytes=len(body))
