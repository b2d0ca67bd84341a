"""Push metrics to a Prometheus Pushgateway, replacing the guide's export script.

Each replica pushes what it exports itself (its environments; the cluster-wide series when it
leads) to its own group, ``job``/``instance`` = its member id plus the configured grouping labels,
so that across the groups each fact is there once. PUT replaces the whole group: series of
environments that moved away, removed environments or old versions disappear there too. A replica
deletes its group when it stops, and the leader deletes the groups of replicas that died."""

from __future__ import annotations

import asyncio
import base64
from typing import Protocol

import aiohttp
import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from umig_monitor.cluster import Coordinator
from umig_monitor.config import Settings
from umig_monitor.config.models import Pushgateway
from umig_monitor.config.types import redact_url
from umig_monitor.metrics import SelfMetrics
from umig_monitor.promtext import exposition

log = structlog.get_logger("umig_monitor.jobs.pushgateway")


class PushFailed(Exception):
    pass


def group_url(config: Pushgateway, member_id: str) -> str:
    """The group's URL. Every value base64url-encoded (``label@base64``), so that values with a
    ``/`` (or a member id's ``:``) need no other escaping."""
    labels = {"job": config.job, "instance": member_id, **config.grouping_key}
    path = "".join(f"/{name}@base64/{_b64(value)}" for name, value in labels.items())
    return f"{str(config.url).rstrip('/')}/metrics{path}"


def _b64(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


class PushTarget(Protocol):
    """What deleting a group needs."""

    @property
    def settings(self) -> Settings: ...
    @property
    def session(self) -> aiohttp.ClientSession: ...


class PushContext(PushTarget, Protocol):
    @property
    def cluster(self) -> Coordinator: ...
    @property
    def metrics(self) -> SelfMetrics: ...
    @property
    def is_leader(self) -> bool: ...


async def push_metrics(ctx: PushContext) -> None:
    config = ctx.settings.pushgateway
    if config is None:
        return
    url = group_url(config, ctx.cluster.member_id)
    body = await asyncio.to_thread(exposition, ctx.metrics.registry, config.metrics)
    try:
        async with ctx.session.put(
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
    if ctx.is_leader and "instance" not in config.grouping_key:
        live = {m.id for m in ctx.cluster.members}
        for member in ctx.cluster.known:
            if member.id not in live:
                await delete_group(ctx, member.id)


async def delete_group(ctx: PushTarget, member_id: str) -> None:
    """Remove a replica's group; a failure is logged, and the next leader's push tries again."""
    config = ctx.settings.pushgateway
    if config is None:
        return
    url = group_url(config, member_id)
    try:
        async with ctx.session.delete(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            if resp.status >= 300:
                log.warning("pushgateway_delete_failed", url=redact_url(url), status=resp.status)
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("pushgateway_delete_failed", url=redact_url(url), error=str(exc) or "timeout")
        return
    log.debug("pushgateway_group_deleted", url=redact_url(url), member=member_id)
