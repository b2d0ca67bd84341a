"""Shared by the sink tests: fixed notifications, golden-file comparison, and a scriptable HTTP
receiver on a free loopback port.

Golden files live in tests/golden/sinks/; ``UMIG_REGENERATE_GOLDEN=1 pytest tests/test_sinks_*``
rewrites them (then review the diff); with CI=true it fails instead."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from tests import support
from tests.support import free_port
from umig_monitor.core.alerts import Alert, AlertState, Notification, NotificationKind

GOLDEN = Path(__file__).parent / "golden" / "sinks"

T0 = datetime(2024, 10, 25, 10, 15, 30, tzinfo=UTC)
EXTERNAL_URL = "https://monitor.example.com"


def check_golden(name: str, actual: str) -> None:
    support.check_golden(GOLDEN / name, actual)


def golden_json(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def _alert(**kwargs: Any) -> Alert:
    base: dict[str, Any] = {
        "key": "environment_health/production/",
        "type": "environment_unhealthy",
        "environment": "production",
        "severity": "critical",
        "state": AlertState.FIRING,
        "summary": "production is unhealthy: status degraded (database unhealthy)",
        "starts_at": T0,
        "details": {"status": "degraded", "components": {"database": "unhealthy", "api": "healthy"}},
        "labels": {"kind": "production", "version": "1.1.2"},
    }
    base.update(kwargs)
    return Alert(**base)


def _case_id(alerts: tuple[Alert, ...]) -> str:
    """A fixed id per case for its idempotency key (what mail's Message-ID is made from)."""
    return hashlib.sha256(alerts[0].key.encode()).hexdigest()[:16] if alerts else "none"


def _notification(kind: NotificationKind, alerts: tuple[Alert, ...], **kwargs: Any) -> Notification:
    base: dict[str, Any] = {
        "idempotency_key": f"{kind.value}-{_case_id(alerts)}-1",
        "kind": kind,
        "receiver": "ops",
        "alerts": alerts,
        "created_at": T0 + timedelta(seconds=90),
        "group_labels": {"type": alerts[0].type, "environment": "production"} if alerts else {},
        "external_url": EXTERNAL_URL,
    }
    base.update(kwargs)
    return Notification(**base)


FIRING = _alert()
RESOLVED = replace(FIRING, state=AlertState.RESOLVED, ends_at=T0 + timedelta(minutes=12))


def _event(kind: str, severity: str, details: Mapping[str, Any], summary: str) -> Alert:
    return _alert(
        key=f"{kind}/production/deploy-production-20241025-101530",
        type=kind,
        severity=severity,
        summary=summary,
        details=details,
        labels={"kind": "production"},
    )


EVENTS = {
    "deployment_start": _event(
        "deployment_start",
        "info",
        {"version": "1.2.0", "initiatedBy": "lucas"},
        "deployment of 1.2.0 started",
    ),
    "deployment_success": _event(
        "deployment_success", "info", {"version": "1.2.0", "duration": "4m 12s"}, "1.2.0 deployed"
    ),
    "deployment_failure": _event(
        "deployment_failure",
        "critical",
        {"version": "1.2.0", "error": "migration 031 failed"},
        "1.2.0 failed",
    ),
    "rollback": _event(
        "rollback", "warning", {"fromVersion": "1.2.0", "toVersion": "1.1.2"}, "rollback to 1.1.2"
    ),
}

GROUP = (
    _alert(
        key="high_error_rate/production/",
        type="high_error_rate",
        summary="error rate 0.12 above 0.05",
        details={"errorRate": 0.12, "limit": 0.05},
    ),
    _alert(
        key="slow_response/production/",
        type="slow_response",
        severity="warning",
        summary="average response time 4200ms above 3000ms",
        details={"responseTime": 4200, "limit": 3000},
        starts_at=T0 + timedelta(seconds=30),
    ),
)

REPORT_TEXT = (
    "==================================\n"
    "UMIG Daily Status Report\n"
    "Date: 2024-10-25\n"
    "==================================\n"
    "development  | 1.3.0-dev+ci.1245 | healthy | 2h 45m\n"
    "production   | 1.1.2             | healthy | 5d 7h 45m\n"
)

CASES: dict[str, Notification] = {
    "firing_critical": _notification(NotificationKind.FIRING, (FIRING,)),
    "resolved": _notification(NotificationKind.RESOLVED, (RESOLVED,), created_at=T0 + timedelta(minutes=12)),
    "repeat": _notification(NotificationKind.REPEAT, (FIRING,), created_at=T0 + timedelta(hours=4)),
    **{
        name: _notification(NotificationKind.EVENT, (alert,), group_labels={"type": name})
        for name, alert in EVENTS.items()
    },
    "group": _notification(
        NotificationKind.FIRING, GROUP, group_labels={"environment": "production"}, receiver="ops-group"
    ),
    "report": _notification(
        NotificationKind.REPORT,
        (),
        idempotency_key="report-2024-10-25",
        title="UMIG Daily Status Report - 2024-10-25",
        text=REPORT_TEXT,
        html="<html><body><h1>UMIG Daily Status Report</h1><pre>…</pre></body></html>\n",
    ),
}


def notification(name: str = "firing_critical", **changes: Any) -> Notification:
    return replace(CASES[name], **changes)


# --- an HTTP receiver -------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    held: bool = False  # answered only when the test is over: a sender's timeout runs out first


@dataclass
class Received:
    path: str
    headers: Mapping[str, str]
    body: Any
    at: float  # time.monotonic() on arrival


class Receiver:
    """Answers POSTs from a script of replies (the last one repeats) and records each request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [Reply()]
        self.requests: list[Received] = []
        self.url = ""
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append(
            Received(request.path_qs, dict(request.headers), json.loads(raw), time.monotonic())
        )
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply.held:
            await self.release.wait()
        return web.Response(status=reply.status, text=reply.body, headers=dict(reply.headers))


@asynccontextmanager
async def serve(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()
