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
    exponent = min(max(attempts - 1, 0), 60)  # 2**60 s is past any deadline; no float overflow
    backoff = min(maximum.total_seconds(), initial.total_seconds() * 2**exponent) * jitter
    delay = max(backoff, retry_after or 0.0)
    if deadline is not None and delay > (deadline - now).total_seconds():
        return None  # also keeps an absurd Retry-After from overflowing the datetime
    delay = min(delay, 365 * 86400.0)
    return now + timedelta(seconds=delay)
