"""The one parser of durations and timestamps people type: config files, CLI flags, API query
values and bodies, deployment events. Pure and bounded: anything outside the documented range or
shape is a ValueError with a message naming the value's problem, never an OverflowError.

Durations: ``30s``, ``5m``, ``1h30m``, ``1d``, ``2w``, ``250ms``, ``1h 5m``, a number of seconds
(``270``, ``1.5``), at most 100 years. Timestamps: ISO-8601 with a UTC offset (``Z``, ``+02:00``);
an instant is either, a duration meaning that long before now."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

MAX_DURATION = timedelta(days=36_500)  # a century: past any retention, timeout or silence
MAX_TEXT = 64  # characters of a duration or timestamp; longer is not one

_PART = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,9})?)(ms|s|m|h|d|w)", re.ASCII)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
HINT = "use e.g. 30s, 5m, 1h30m, 1d, 2w or a number of seconds"


def parse_duration(value: object) -> timedelta:
    """A duration from text, a number of seconds or a timedelta; 0 is allowed, negative is not."""
    if isinstance(value, timedelta):
        return _bounded(value.total_seconds(), value)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid duration of type {type(value).__name__} ({HINT})")
    if isinstance(value, int | float):
        return _bounded(float(value), value)
    text = value.replace(" ", "")
    if not text or len(text) > MAX_TEXT:
        raise ValueError(f"invalid duration '{_shown(value)}' ({HINT})")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _bounded(seconds, value)
    total, pos = 0.0, 0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"invalid duration '{_shown(value)}' ({HINT})")
    return _bounded(total, value)


def parse_timestamp(value: object, *, naive_is_utc: bool = False) -> datetime:
    """ISO-8601 -> an aware datetime in UTC. Without an offset it is an error, unless
    ``naive_is_utc`` (values this program stored itself)."""
    if isinstance(value, datetime):
        ts = value
    else:
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            raise ValueError(f"'{_shown(value)}' is not an ISO-8601 timestamp")
        try:
            ts = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"'{_shown(value)}' is not an ISO-8601 timestamp") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        if not naive_is_utc:
            raise ValueError(f"'{_shown(value)}' needs a UTC offset, e.g. 2026-01-01T10:00:00Z")
        ts = ts.replace(tzinfo=UTC)
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 and the like
        raise ValueError(f"'{_shown(value)}' is out of range") from None


def parse_instant(value: object, now: datetime) -> datetime:
    """A point in time: a duration back from ``now`` (``24h``) or an ISO-8601 timestamp."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        if "UTC offset" in str(exc):
            raise
        raise ValueError(
            f"'{_shown(value)}' is neither a duration (e.g. 24h) nor an ISO-8601 timestamp"
        ) from None


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, for output: 90s -> '1m30s', 0.25s -> '250ms'."""
    seconds = value.total_seconds()
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def _bounded(seconds: float, shown: object) -> timedelta:
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration '{_shown(shown)}': not a finite number")
    if seconds < 0:
        raise ValueError(f"invalid duration '{_shown(shown)}': negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration '{_shown(shown)}': longer than a century")
    return timedelta(seconds=seconds)


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"
