"""A per-sink pacing gate: sends at most ``rate`` per second, and honours a receiver's "wait N
seconds" (429/503 Retry-After) for every later send of the same sink, not just the one retried.

The clock and sleep are injectable so tests can check the spacing without waiting for it."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateGate:
    """A minimum-interval gate. Each ``wait()`` reserves the next free slot before it sleeps, so
    concurrent senders queue up one interval apart instead of all waking at once."""

    def __init__(
        self,
        per_second: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError(f"rate must be positive, got {per_second}")
        self.interval = 1.0 / per_second if per_second else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = -math.inf
        self._held_until = -math.inf

    async def wait(self) -> float:
        """Wait for this caller's slot; returns the seconds waited."""
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self.interval
        delay = slot - now
        if delay > 0:
            await self._sleep(delay)
        return delay

    def hold(self, seconds: float) -> None:
        """The receiver asked us to stay away for ``seconds``."""
        if seconds > 0:
            self._held_until = max(self._held_until, self._clock() + seconds)

    def held_for(self) -> float:
        """Seconds left of a receiver's hold; 0 when sends may go ahead."""
        return max(0.0, self._held_until - self._clock())
