"""Delivery from the outbox: one worker per sink (order kept, rate limits respected), sinks in
parallel. Each attempt's answer decides: sent, retry later (backoff with jitter, at least the
receiver's Retry-After, until the sink's deadline), or failed with the reason."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import structlog

from umig_monitor.config.models import Retry
from umig_monitor.core.alerts import notification_from_dict
from umig_monitor.core.retry import next_attempt
from umig_monitor.logs import FailureStreak
from umig_monitor.metrics import AlertMetrics
from umig_monitor.sinks import SendResult, Sink
from umig_monitor.storage import StorageError, Store
from umig_monitor.storage.records import Delivery

log = structlog.get_logger("umig_monitor.pipeline")
IDLE_POLL = 1.0  # seconds between outbox checks when nothing woke the worker
# Rows are claimed a batch at a time; a claim outlives its holder's crash by at most claim_for.
CLAIM_BATCH = 20
CLOSE_GRACE = 2.0  # seconds a closing deliverer lets a send in flight finish


class Deliverer:
    def __init__(
        self,
        store: Store,
        metrics: AlertMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        owner: str,
        active: Callable[[], bool] = lambda: True,
        claim_for: timedelta = timedelta(minutes=1),
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._owner = owner
        self._active = active
        self._claim_for = claim_for
        self._closing = False
        self._read_failures: dict[str, FailureStreak] = {}
        self._sinks: dict[str, Sink] = {}
        self._retry: dict[str, Retry] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._orphans: asyncio.Task[None] | None = None

    def configure(self, sinks: Mapping[str, Sink], retry: Mapping[str, Retry]) -> None:
        """(Re)start workers to match the configured sinks."""
        self._sinks = dict(sinks)
        self._retry = dict(retry)
        for name in list(self._workers):
            if name not in sinks:
                self._workers.pop(name).cancel()
                self._wake.pop(name, None)
        for name in sinks:
            if name not in self._workers or self._workers[name].done():
                self._wake[name] = asyncio.Event()
                self._workers[name] = asyncio.create_task(self._work(name), name=f"deliver:{name}")
        if self._orphans is None:
            self._orphans = asyncio.create_task(self._fail_orphans(), name="deliver:orphans")

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Stop the workers. A send in flight may finish and be recorded (up to ``grace`` seconds):
        cut off between the receiver's answer and the record, it would be sent again later."""
        self._closing = True
        self.wake()
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers, timeout=grace)
        tasks = [*workers, *([self._orphans] if self._orphans else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        with contextlib.suppress(StorageError):
            await self._store.release_claims(self._owner)

    async def _work(self, name: str) -> None:
        wake = self._wake[name]
        while not self._closing:
            sink = self._sinks.get(name)
            if sink is None:
                return
            if not self._active():
                # Not the leader: nothing to claim and nothing to ask the database about.
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=IDLE_POLL)
                continue
            claimed_at = self._clock()
            # Every claim outlives at least one whole send, so no row can be claimed by another
            # deliverer while this one may still be sending it.
            until = claimed_at + max(self._claim_for, timedelta(seconds=2 * sink.timeout + 1))
            due = await self._claim(name, claimed_at, until)
            for delivery in due:
                if self._closing:
                    await self._release(name)
                    return
                if not self._active():
                    # Leadership lapsed mid-batch: the rest is for the next leader.
                    await self._release(name)
                    break
                if (until - self._clock()).total_seconds() < sink.timeout + 1:
                    break  # a slow batch: claim again (extending ours) rather than outlive the claim
                try:
                    recorded = await self._attempt(sink, delivery)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one bad row must not stop the sink's worker for good
                    log.exception("delivery_crashed", sink=name, idempotency_key=delivery.idempotency_key)
                    with contextlib.suppress(StorageError):
                        await self._store.delivery_failed(delivery.id, f"internal error: {exc!r}")
                    continue
                if not recorded:
                    break  # storage is failing: send nothing more that could not be recorded
            else:
                if len(due) == CLAIM_BATCH:
                    continue
            wake.clear()
            idle = await self._idle_for(name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=idle)

    async def _claim(self, name: str, now: datetime, until: datetime) -> list[Delivery]:
        failures = self._read_failures.setdefault(name, FailureStreak(log, "outbox_read_failed", sink=name))
        try:
            claimed = await self._store.claim_deliveries(
                now, sink=name, owner=self._owner, until=until, limit=CLAIM_BATCH
            )
        except StorageError as exc:
            failures.failed(str(exc))
            return []
        failures.succeeded()
        return claimed

    async def _release(self, name: str) -> None:
        with contextlib.suppress(StorageError):
            await self._store.release_claims(self._owner, sink=name)

    async def _idle_for(self, name: str) -> float:
        """Sleep until the next row of this sink is due (at most IDLE_POLL), not a fixed second."""
        try:
            due = await self._store.next_due(name, owner=self._owner, now=self._clock())
        except StorageError:
            return IDLE_POLL
        if due is None:
            return IDLE_POLL
        return min(max((due - self._clock()).total_seconds(), 0.01), IDLE_POLL)

    async def _attempt(self, sink: Sink, delivery: Delivery) -> bool:
        """Send one row and record the outcome; False when the outcome could not be recorded."""
        notification = notification_from_dict(delivery.payload)
        result: SendResult = await sink.send(notification)
        now = self._clock()
        attempt = delivery.attempts + 1
        owner = self._owner
        try:
            if result.ok:
                if not await self._store.delivery_sent(delivery.id, now, owner=owner):
                    self._claim_lost(sink, delivery)
                    return True
                self._metrics.delivered(sink.name, "sent")
                self._metrics.latency.observe(max((now - delivery.created_at).total_seconds(), 0))
                if delivery.attempts:
                    # It answers again after failures: everything it owes is due now, rather than
                    # each row waiting out its own backoff (minutes, after a long outage).
                    expedited = await self._store.expedite(sink.name, now)
                    if expedited:
                        log.info("sink_recovered", sink=sink.name, expedited=expedited)
                log.info(
                    "alert_sent",
                    sink=sink.name,
                    kind=delivery.kind,
                    attempt=attempt,
                    idempotency_key=delivery.idempotency_key,
                    detail=result.detail,
                )
                return True
            retry = self._retry.get(sink.name, Retry())
            when = None
            if result.retryable:
                when = next_attempt(
                    attempt,
                    now,
                    delivery.deadline,
                    initial=retry.initial_backoff,
                    maximum=retry.max_backoff,
                    retry_after=result.retry_after,
                    jitter=random.uniform(0.8, 1.2),
                )
            if when is not None:
                if not await self._store.delivery_retry(delivery.id, when, result.detail, owner=owner):
                    self._claim_lost(sink, delivery)
                    return True
                self._metrics.delivered(sink.name, "retry")
                log.warning(
                    "sink_send_failed",
                    sink=sink.name,
                    attempt=attempt,
                    retry_in_s=round((when - now).total_seconds(), 2),
                    error=result.detail,
                    idempotency_key=delivery.idempotency_key,
                )
                return True
            reason = (
                result.detail
                if not result.retryable
                else f"deadline passed after {attempt} attempts: {result.detail}"
            )
            if not await self._store.delivery_failed(delivery.id, reason, owner=owner):
                self._claim_lost(sink, delivery)
                return True
            self._metrics.delivered(sink.name, "failed")
            log.error(
                "notification_failed",
                sink=sink.name,
                attempt=attempt,
                error=reason,
                idempotency_key=delivery.idempotency_key,
            )
            return True
        except StorageError as exc:
            # The attempt is not recorded; the row stays due and is tried again (a receiver may
            # see it twice, which the idempotency key lets it drop).
            log.error("outbox_write_failed", sink=sink.name, error=str(exc))
            return False

    def _claim_lost(self, sink: Sink, delivery: Delivery) -> None:
        """Another deliverer holds the row now (ours lapsed mid-send): its record stands."""
        log.warning("delivery_claim_lost", sink=sink.name, idempotency_key=delivery.idempotency_key)

    async def _fail_orphans(self) -> None:
        """Rows for a sink removed from the config can never be delivered: say so, once."""
        while True:
            if not self._active():
                await asyncio.sleep(IDLE_POLL)
                continue
            try:
                for sink in await self._store.pending_counts():
                    if sink not in self._sinks:
                        failed = await self._store.fail_pending(
                            sink, f"sink '{sink}' is no longer configured"
                        )
                        log.error(
                            "notification_failed", sink=sink, count=failed, error="sink no longer configured"
                        )
            except StorageError as exc:
                log.error("outbox_read_failed", error=str(exc))
            await asyncio.sleep(30)
