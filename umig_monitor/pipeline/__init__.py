"""The alert pipeline every job raises through: route -> group/dedup -> outbox -> deliver.

Jobs call ``submit`` (an alert fires or clears) or ``notify`` (a one-off notice such as a
deployment event or the daily report). Decisions are made by the dispatcher on every change and
on a short tick (reminders, escalations, silences ending); delivery works from the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from umig_monitor.config import Settings
from umig_monitor.core.alerts import Alert, AlertEvent, Notification, NotificationKind
from umig_monitor.core.dedup import idempotency_key
from umig_monitor.core.routing import select_routes
from umig_monitor.logs import FailureStreak
from umig_monitor.metrics import AlertMetrics
from umig_monitor.pipeline.deliver import Deliverer
from umig_monitor.pipeline.dispatch import Dispatcher, Policy, outbox_entry
from umig_monitor.pipeline.policy import config_silences, maintenance_windows, route_specs
from umig_monitor.sinks import Sink, build_sink
from umig_monitor.sinks.forward import FORWARD_SINK, forward_sink
from umig_monitor.storage import StorageError, Store

log = structlog.get_logger("umig_monitor.pipeline")
TICK = 1.0  # seconds: how often reminders, escalations and ended silences are looked at


def policy_from(settings: Settings) -> Policy:
    routes, default = route_specs(settings)
    return Policy(
        routes=routes,
        default=default,
        silences=config_silences(settings),
        windows=maintenance_windows(settings),
        deadlines={
            **{name: sink.retry.deadline for name, sink in settings.sinks.items()},
            FORWARD_SINK: settings.deployments.forward_retry.deadline,
        },
        external_url=str(settings.daemon.external_url) if settings.daemon.external_url else None,
    )


class AlertPipeline:
    def __init__(
        self,
        store: Store,
        metrics: AlertMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        owner: str | None = None,
        active: Callable[[], bool] = lambda: True,
        claim_for: timedelta = timedelta(minutes=1),
    ) -> None:
        """``active`` says whether this process decides and delivers now (in a cluster: while it
        is the leader); ``owner`` names it on the outbox rows it claims."""
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._active = active
        self._dispatcher = Dispatcher(store, Policy(routes=[], default=route_specs(Settings())[1]))
        self._deliverer = Deliverer(
            store,
            metrics,
            clock,
            owner=owner or f"{socket.gethostname()}:pid{os.getpid()}",
            active=active,
            claim_for=claim_for,
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def configure(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self._dispatcher.policy = policy_from(settings)
        sinks: dict[str, Sink] = {
            name: build_sink(name, cfg, session) for name, cfg in settings.sinks.items()
        }
        retry = {name: cfg.retry for name, cfg in settings.sinks.items()}
        if settings.deployments.forwarding:
            sinks[FORWARD_SINK] = forward_sink(settings.deployments, session)
            retry[FORWARD_SINK] = settings.deployments.forward_retry
        self._deliverer.configure(sinks, retry)
        self._metrics.set_sinks(sinks)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="alert-dispatch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._deliverer.close()

    async def submit(self, event: AlertEvent) -> None:
        """An alert fires (idempotent per key) or clears."""
        if event.firing:
            alert, new = await self._store.fire_alert(event)
            if new:
                log.warning(
                    "alert_raised",
                    alert_key=alert.key,
                    type=alert.type,
                    env=alert.environment,
                    severity=alert.severity,
                    summary=alert.summary,
                )
                self._wake.set()
            return
        resolved = await self._store.resolve_alert(event.key, event.at)
        if resolved is not None:
            log.info("alert_resolved", alert_key=resolved.key, type=resolved.type, env=resolved.environment)
            self._wake.set()

    async def notify(
        self,
        alert: Alert,
        kind: NotificationKind,
        event_id: str,
        *,
        route_name: str | None = None,
        title: str | None = None,
        text: str | None = None,
        html: str | None = None,
        supersedes: tuple[Alert, ...] = (),
    ) -> int:
        """A one-off notice, routed by the alert's labels (or through the named route) and enqueued
        once per sink: ``event_id`` makes it idempotent. Nothing follows it (no reminder, no
        resolved notice); ``supersedes`` are earlier notices it ends, for sinks that keep them
        active (Alertmanager). Returns how many deliveries were new."""
        now = self._clock()
        policy = self._dispatcher.policy
        if route_name is not None:
            routes = [r for r in policy.routes if r.key == route_name]
        else:
            routes = select_routes(policy.routes, policy.default, alert.all_labels())
        entries = []
        for route in routes:
            for sink in route.sinks:
                notification = Notification(
                    idempotency_key=idempotency_key(route.key, sink, kind.value, [alert], event_id),
                    kind=kind,
                    receiver=route.key,
                    alerts=(alert,),
                    created_at=now,
                    group_labels=dict(route.group_key(alert.all_labels())),
                    title=title,
                    text=text,
                    html=html,
                    external_url=policy.external_url,
                    one_off=True,
                    supersedes=supersedes,
                )
                entries.append(outbox_entry(notification, sink, policy, alert.id))
        inserted = await self._store.enqueue(entries, [])
        if inserted:
            self._deliverer.wake()
        return inserted

    async def send_to(self, notification: Notification, sink: str) -> int:
        """Queue ``notification`` for one sink, outside routing (the central deployment log): the
        same outbox row, retries and deadline as any notification. Idempotent per its key."""
        entry = outbox_entry(notification, sink, self._dispatcher.policy, None)
        inserted = await self._store.enqueue([entry], [])
        if inserted:
            self._deliverer.wake()
        return inserted

    @property
    def delivers(self) -> bool:
        """Whether this process decides and delivers now (its workers claim nothing otherwise)."""
        return self._active()

    def suppressed_by(self, key: str) -> str | None:
        return self._dispatcher.suppressed_by(key)

    async def evaluate(self) -> int:
        enqueued = await self._dispatcher.evaluate(self._clock())
        if enqueued:
            self._deliverer.wake()
        return enqueued

    async def refresh_metrics(self) -> None:
        firing = await self._store.active_alerts()
        self._metrics.set_firing(dict(Counter((a.severity, a.type) for a in firing)))
        self._metrics.set_pending(await self._store.pending_counts())

    async def _loop(self) -> None:
        last_metrics = 0.0
        was_active = False
        loop = asyncio.get_running_loop()
        failures = FailureStreak(log, "dispatch_failed")
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=TICK)
            self._wake.clear()
            try:
                active = self._active()
                if active:
                    await self.evaluate()
                # The alert and outbox gauges are the leader's to export (from the shared store),
                # fresh from the moment it leads; every replica keeps the silences for its API.
                if (active and not was_active) or loop.time() - last_metrics >= 5:
                    if active:
                        await self.refresh_metrics()
                    else:
                        await self._dispatcher.refresh_suppressed(self._clock())
                    last_metrics = loop.time()
                was_active = active
                failures.succeeded()
            except StorageError as exc:
                failures.failed(str(exc))
            except Exception:
                log.exception("dispatch_failed")
