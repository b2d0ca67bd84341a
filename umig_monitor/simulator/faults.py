"""The ways a simulated environment misbehaves, and which faults a given request receives.

Pure: a fault is a value, and ``take`` decides which faults apply to one request and what is left
afterwards, so counting down "the next N requests" is a function that can be tested without a server.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

HUGE_BODY_BYTES = 5 * 1024 * 1024
_MAX_HUGE_BODY_BYTES = 64 * 1024 * 1024
_MAX_LATENCY_MS = 10 * 60 * 1000


class Endpoint(enum.StrEnum):
    """The UMIG endpoints the simulator serves; the values name them in faults and request counts."""

    HEALTH = "health"
    VERSION = "version"
    COMPONENTS = "components"
    DEV_STATUS = "dev-status"
    REGENERATE = "regenerate"
    TEAMS = "teams"
    USERS = "users"


class FaultKind(enum.StrEnum):
    LATENCY = "latency"
    """Answer normally, but only after ``latency_ms``."""
    TIMEOUT = "timeout"
    """Hold the request open until the client gives up or the simulator stops."""
    HTTP_ERROR = "http_error"
    """A JSON error body with ``status`` (default 500)."""
    AUTH_ERROR = "auth_error"
    """401 (default) or 403, as an expired token or a missing permission would give."""
    LOGIN_PAGE = "login_page"
    """200 with an HTML login form: what a lapsed SSO session looks like through a proxy."""
    MALFORMED_JSON = "malformed_json"
    """200, application/json, and a body cut off half-way."""
    HUGE_BODY = "huge_body"
    """A valid but enormous JSON body (``size_bytes``, default 5 MiB), streamed chunked."""
    CONNECTION_RESET = "connection_reset"
    """The connection is reset without any response."""
    REDIRECT = "redirect"
    """302 (default) to the login page."""


_DEFAULT_STATUS: Mapping[FaultKind, int] = MappingProxyType(
    {FaultKind.HTTP_ERROR: 500, FaultKind.AUTH_ERROR: 401, FaultKind.REDIRECT: 302}
)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FaultError(ValueError):
    """A fault that makes no sense; the message names the offending field."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected misbehaviour.

    ``endpoint`` restricts it to one endpoint (``None``: all of them). ``count`` limits it to the next
    N requests it applies to (``None``: until cleared).
    """

    kind: FaultKind
    endpoint: Endpoint | None = None
    count: int | None = None
    status: int | None = None
    latency_ms: int | None = None
    size_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.count is not None and self.count < 1:
            raise FaultError(f"count: expected a positive integer, got {self.count!r}")
        self._check_status()
        if (self.latency_ms is not None) != (self.kind is FaultKind.LATENCY):
            raise FaultError("latency_ms: required for kind 'latency' and used by no other kind")
        if self.latency_ms is not None and not 0 < self.latency_ms <= _MAX_LATENCY_MS:
            raise FaultError(f"latency_ms: expected 1..{_MAX_LATENCY_MS}, got {self.latency_ms!r}")
        if self.size_bytes is not None:
            if self.kind is not FaultKind.HUGE_BODY:
                raise FaultError(f"size_bytes: not used by kind {self.kind.value!r}")
            if not 1024 <= self.size_bytes <= _MAX_HUGE_BODY_BYTES:
                raise FaultError(
                    f"size_bytes: expected 1024..{_MAX_HUGE_BODY_BYTES}, got {self.size_bytes!r}"
                )

    def _check_status(self) -> None:
        if self.status is None:
            return
        if self.kind not in _DEFAULT_STATUS:
            raise FaultError(f"status: not used by kind {self.kind.value!r}")
        if self.kind is FaultKind.HTTP_ERROR and not 400 <= self.status <= 599:
            raise FaultError(f"status: expected 400..599 for http_error, got {self.status!r}")
        if self.kind is FaultKind.AUTH_ERROR and self.status not in (401, 403):
            raise FaultError(f"status: expected 401 or 403 for auth_error, got {self.status!r}")
        if self.kind is FaultKind.REDIRECT and self.status not in _REDIRECT_STATUSES:
            raise FaultError(f"status: expected one of {sorted(_REDIRECT_STATUSES)}, got {self.status!r}")

    @property
    def http_status(self) -> int:
        """The status this fault answers with, defaults filled in (200 for the kinds that fake success)."""
        return self.status if self.status is not None else _DEFAULT_STATUS.get(self.kind, 200)

    @property
    def body_bytes(self) -> int:
        return self.size_bytes if self.size_bytes is not None else HUGE_BODY_BYTES

    def applies_to(self, endpoint: Endpoint) -> bool:
        return self.endpoint is None or self.endpoint is endpoint


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What one request gets: a delay, then either a normal answer (``response is None``) or a fault."""

    latency_ms: int = 0
    response: Fault | None = None


def take(faults: Sequence[Fault], endpoint: Endpoint) -> tuple[FaultPlan, tuple[Fault, ...]]:
    """Choose the faults for one request and count them down.

    Latency faults add up; of the other kinds the first one added wins. Only faults that were
    applied are counted down, and a fault whose count reaches zero is dropped.
    """
    latency_ms = 0
    response: Fault | None = None
    kept: list[Fault] = []
    for fault in faults:
        applied = fault.applies_to(endpoint) and (fault.kind is FaultKind.LATENCY or response is None)
        if applied:
            if fault.kind is FaultKind.LATENCY:
                latency_ms += fault.latency_ms or 0
            else:
                response = fault
            if fault.count is not None:
                if fault.count > 1:
                    kept.append(replace(fault, count=fault.count - 1))
                continue
        kept.append(fault)
    return FaultPlan(latency_ms=latency_ms, response=response), tuple(kept)


# --- JSON form for the control API ------------------------------------------------------------------

_FAULT_FIELDS = ("kind", "endpoint", "count", "status", "latency_ms", "size_bytes")


def _optional_int(body: Mapping[str, object], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"{name}: expected an integer, got {value!r}")
    return value


def parse_fault(body: object) -> Fault:
    """Validate a control-API fault object, e.g. ``{"kind": "http_error", "status": 503, "count": 2}``."""
    if not isinstance(body, Mapping):
        raise FaultError(f"expected a JSON object with at least 'kind', got {body!r}")
    unknown = sorted(set(body) - set(_FAULT_FIELDS))
    if unknown:
        raise FaultError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_FAULT_FIELDS)}")
    kind = body.get("kind")
    kinds = {k.value: k for k in FaultKind}
    if not isinstance(kind, str) or kind not in kinds:
        raise FaultError(f"kind: expected one of {', '.join(kinds)}, got {kind!r}")
    endpoint = body.get("endpoint")
    endpoints = {e.value: e for e in Endpoint}
    if endpoint is not None and (not isinstance(endpoint, str) or endpoint not in endpoints):
        raise FaultError(f"endpoint: expected one of {', '.join(endpoints)}, got {endpoint!r}")
    return Fault(
        kind=kinds[kind],
        endpoint=None if endpoint is None else endpoints[endpoint],
        count=_optional_int(body, "count"),
        status=_optional_int(body, "status"),
        latency_ms=_optional_int(body, "latency_ms"),
        size_bytes=_optional_int(body, "size_bytes"),
    )


def fault_to_json(fault: Fault) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": fault.kind.value}
    if fault.endpoint is not None:
        out["endpoint"] = fault.endpoint.value
    for name in ("count", "status", "latency_ms", "size_bytes"):
        value = getattr(fault, name)
        if value is not None:
            out[name] = value
    return out
