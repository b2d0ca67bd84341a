"""GET /: the status page for people. It reads the same read models as the JSON API (environment
documents, drift report, alerts, deployment history, stored health) and renders them with
``core.page``; no JavaScript, no remote assets, refreshed by the browser every 30 seconds. Built at
most once per ``daemon.http.page_max_age`` and served from memory with an ETag in between."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, tzinfo

import structlog
from aiohttp import web

from umig_monitor import __version__
from umig_monitor.config import Settings
from umig_monitor.core.alerts import AlertState
from umig_monitor.core.health import HealthSample
from umig_monitor.core.page import StatusPage, render, render_unavailable
from umig_monitor.core.timeline import Span, Tally, build_timeline
from umig_monitor.ops.alerts import held_back
from umig_monitor.ops.drift import drift_report
from umig_monitor.ops.latest import read_latest
from umig_monitor.ops.views import environments_view
from umig_monitor.storage import StorageError, Store
from umig_monitor.web.keys import DAEMON_KEY, WebContext
from umig_monitor.web.rendered import Rendered, respond

log = structlog.get_logger("umig_monitor.web.page")

WINDOW = timedelta(hours=24)
REFRESH_SECONDS = 30
RESOLVED_ALERTS = 20
DEPLOYMENT_EVENTS = 10
# Nothing is loaded from anywhere, nothing is scripted, nothing may frame the page.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    # Kept by the browser but asked about again each time: a 304 while the same build is served.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _daemon(request: web.Request) -> WebContext:
    return request.app[DAEMON_KEY]


async def health_timelines(
    store: Store, environments: list[str], start: datetime, end: datetime
) -> dict[str, list[Span]]:
    """Per environment, the window's spans: hourly rollups where the retention job has written them,
    raw samples after the last rolled-up hour (so a page load reads a few hours of samples, not 24)."""
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    rollups = await store.health_rollups(first_hour, end)
    rolled_until = max((r.hour for r in rollups), default=None)
    raw_from = max(start, rolled_until + timedelta(hours=1)) if rolled_until else start
    tallies: dict[str, list[Tally]] = defaultdict(list)
    for r in rollups:
        counts = {"healthy": r.healthy, "degraded": r.degraded, "unhealthy": r.unhealthy, "failed": r.failed}
        tallies[r.environment].append(Tally(r.hour, r.hour + timedelta(hours=1), counts))
    # Grouped once: looking through every row for each environment cost seconds at 1,000 of them.
    samples: dict[str, list[HealthSample]] = defaultdict(list)
    for s in await store.health_samples_between(raw_from, end, brief=True):
        samples[s.environment].append(s)
    return {name: build_timeline(tallies[name], samples[name], start, end) for name in environments}


async def gather_page(
    store: Store,
    settings: Settings,
    now: datetime,
    tz: tzinfo = UTC,
) -> StatusPage:
    start = now - WINDOW
    latest = await read_latest(store)
    firing = await store.active_alerts()
    view = await environments_view(store, settings, latest, firing)
    _, findings = await drift_report(store, settings, now, latest)
    first_seen = {f.key: f.first_seen for f in await store.drift_findings() if f.first_seen is not None}
    resolved = await store.list_alerts(state=AlertState.RESOLVED, since=start, limit=RESOLVED_ALERTS)
    silenced = await held_back(store, settings, now, firing)
    return StatusPage(
        now=now,
        tz=tz,
        window_start=start,
        environments=view["environments"],
        timelines=await health_timelines(store, list(settings.environments), start, now),
        findings=findings,
        alerts=[*firing, *resolved],
        deployments=await store.deployment_events(limit=DEPLOYMENT_EVENTS),
        first_seen=first_seen,
        silenced_by=silenced,
        refresh_seconds=REFRESH_SECONDS,
        version=__version__,
    )


PAGE_KEY: web.AppKey[Rendered] = web.AppKey("status_page", Rendered)


async def build_page(daemon: WebContext) -> bytes:
    """One build: read everything the page shows now and render it; "Generated" is this ``now``."""
    daemon.metrics.page_builds.labels("status").inc()
    page = await gather_page(daemon.store, daemon.settings, datetime.now(UTC), daemon.timezone)
    return render(page).encode()


async def status_page(request: web.Request) -> web.Response:
    daemon = _daemon(request)
    try:
        built = await request.app[PAGE_KEY].get(daemon.settings)
    except StorageError as exc:
        log.error("status_page_failed", error=str(exc))
        return web.Response(
            text=render_unavailable(str(exc), datetime.now(UTC)),
            status=503,
            content_type="text/html",
            charset="utf-8",
            headers={**HEADERS, "Cache-Control": "no-store"},
        )
    return respond(request, built, "text/html", HEADERS)


def register(app: web.Application) -> None:
    """Add ``GET /`` (and HEAD) to the daemon's app; ``app[DAEMON_KEY]`` must be set."""
    daemon = app[DAEMON_KEY]
    app[PAGE_KEY] = Rendered(
        lambda: build_page(daemon), lambda: daemon.settings.daemon.http.page_max_age.total_seconds()
    )
    app.router.add_get("/", status_page)
