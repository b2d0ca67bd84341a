"""Reading a request's query values and JSON body: every value bounded (length, range, nesting)
and every mistake an ActionError that names the parameter, answered as a 400, never a 500."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from umig_monitor.core import jsontext, timetext
from umig_monitor.pipeline.actions import ActionError

MAX_VALUE = 256  # characters of a query value (names, versions, types)


def text(query: Mapping[str, str], name: str) -> str | None:
    """A filter value (environment, type, version...), at most MAX_VALUE characters."""
    value = query.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_VALUE:
        raise ActionError(f"{name}: longer than {MAX_VALUE} characters")
    return value


def integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer, clamped to [low, high] (a page size above the maximum is the maximum)."""
    value = query.get(name)
    if value is None or value == "":
        return default
    if len(value) > 18:
        raise ActionError(f"{name}: an integer between {low} and {high}")
    try:
        number = int(value)
    except ValueError:
        raise ActionError(f"{name}: an integer between {low} and {high}") from None
    return min(max(number, low), high)


def number(query: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A finite number in (low, high]; outside it is an error, not clamped."""
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        result = float(value[:32])
    except ValueError:
        result = math.nan
    if len(value) > 32 or not math.isfinite(result) or not low < result <= high:
        raise ActionError(f"{name}: a number greater than {low:g} and at most {high:g}")
    return result


def instant(value: object, now: datetime, name: str) -> datetime | None:
    """``24h``-style durations back from now, or an ISO timestamp (with an offset)."""
    if value is None or value == "":
        return None
    try:
        return timetext.parse_instant(value, now)
    except ValueError as exc:
        raise ActionError(f"{name}: {exc}") from None


def duration(value: object, name: str) -> timedelta:
    try:
        return timetext.parse_duration(value)
    except ValueError as exc:
        raise ActionError(f"{name}: {exc}") from None


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: at most the app's client_max_size, nested at most 32 levels."""
    try:
        body = jsontext.loads(await request.read())
    except ValueError as exc:
        raise ActionError(f"body: {exc}") from None
    if not isinstance(body, dict):
        raise ActionError("body: must be a JSON object")
    return body
