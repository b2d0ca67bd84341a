"""Write-behind buffer for health samples: polls never wait on the database, writes are batched,
and while the database is unavailable samples are kept (up to a bound) and written once it is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import structlog

from umig_monitor.core.health import HealthSample
from umig_monitor.storage import Store

log = structlog.get_logger("umig_monitor.jobs.samples")


class SampleWriter:
    def __init__(
        self, store: Store, *, flush_interval: float = 0.5, batch: int = 1000, bound: int = 200_000
    ) -> None:
        self._store = store
        self._buffer: deque[HealthSample] = deque(maxlen=bound)
        self._flush_interval = flush_interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing = asyncio.Lock()  # one writer at a time: a batch is removed only once written
        self.dropped = 0  # fell out of a full buffer
        self.rejected = 0  # refused by a database that answers (a value it cannot store)
        self.healthy = True

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def add(self, sample: HealthSample) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1  # the oldest sample falls out; counted, never silent
        self._buffer.append(sample)
        if len(self._buffer) >= self._batch:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sample-writer")

    async def flush(self) -> int:
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        written = 0
        while self._buffer:
            # Take the batch out first: a full buffer drops its oldest entries from the left while
            # the write is awaited, so popping afterwards could remove samples never written.
            batch = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
            written += await self._write(batch)
        return written

    async def _write(self, batch: list[HealthSample]) -> int:
        """Write ``batch``. While the database answers, a failing batch is bisected and a sample
        that fails alone is dropped and logged (one absurd value must not stop all storage); when
        the database does not answer, everything not yet written goes back to the buffer."""
        pending = [batch]
        written = 0
        while pending:
            chunk = pending.pop()
            try:
                await self._store.add_health_samples(chunk)
            except BaseException as exc:
                if isinstance(exc, Exception) and await self._reachable():
                    if len(chunk) > 1:
                        middle = len(chunk) // 2
                        pending += [chunk[middle:], chunk[:middle]]
                    else:
                        self._reject(chunk[0], exc)
                    continue
                self._requeue([s for c in (chunk, *reversed(pending)) for s in c])
                raise
            written += len(chunk)
        return written

    async def _reachable(self) -> bool:
        try:
            await self._store.ping()
        except Exception:
            return False
        return True

    def _reject(self, sample: HealthSample, error: BaseException) -> None:
        self.rejected += 1
        log.error(
            "sample_rejected",
            env=sample.environment,
            ts=sample.ts.isoformat(),
            error=f"{type(error).__name__}: {str(error)[:300]}",
        )

    def _requeue(self, samples: list[HealthSample]) -> None:
        room = (self._buffer.maxlen or 0) - len(self._buffer)
        self._buffer.extendleft(reversed(samples[-room:] if room < len(samples) else samples))
        self.dropped += max(len(samples) - room, 0)

    async def _loop(self) -> None:
        backoff = self._flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # a bad batch must not end the writer: keep buffering, retry
                if self.healthy:
                    log.error("sample_write_failed", error=str(exc), buffered=self.pending)
                self.healthy = False
                backoff = min(backoff * 2, 30.0)
                continue
            if not self.healthy:
                log.info("sample_write_recovered", buffered=self.pending)
            self.healthy = True
            backoff = self._flush_interval

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception as exc:  # the database is away: say what is lost, and stop cleanly
            log.error("sample_write_failed", error=str(exc), lost=self.pending)
