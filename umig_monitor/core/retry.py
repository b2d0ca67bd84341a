"""When to try a failed delivery again: exponential backoff with jitter, at least the receiver's
Retry-After, and never past the deadline (then the delivery is given up, with the reason)."""

from __future__ import annotations

from datetime import datetime, timedelta


def next_attempt(
    attempts: int,
    now: datetime,
    deadline: datetime | None,
    *,
    initial: timedelta,
    maximum: timedelta,
    retry_after: float | None = None,
    jitter: float = 1.0,
) -> datetime | None:
    """``attempts`` failed so far (>= 1); ``jitter`` in [0.5, 1.5] spreads retries of many rows.
    None means the deadline would pass: give up."""
    backoff = min(maximum.total_seconds(), initial.total_seconds() * 2 ** max(attempts - 1, 0)) * jitter
    delay = max(backoff, retry_after or 0.0)
    when = now + timedelta(seconds=delay)
    if deadline is not None and when > deadline:
        return None
    return when
