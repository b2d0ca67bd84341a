"""Config -> the plain values the pipeline's pure stages work on: routes, silences, windows."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from umig_monitor.config import Settings
from umig_monitor.config.models import Route
from umig_monitor.core.routing import RouteSpec, compile_match_re
from umig_monitor.core.silences import WEEKDAYS, Silence, WeeklyWindow, parse_matcher


def route_specs(settings: Settings) -> tuple[list[RouteSpec], RouteSpec]:
    routes = [_spec(route.name or f"route-{i}", route) for i, route in enumerate(settings.routes)]
    d = settings.default_route
    default = RouteSpec(
        key="default",
        sinks=tuple(d.sinks),
        group_by=tuple(d.group_by),
        group_wait=d.group_wait,
        repeat_interval=d.repeat_interval,
        send_resolved=d.send_resolved,
    )
    return routes, default


def _spec(key: str, route: Route) -> RouteSpec:
    return RouteSpec(
        key=key,
        sinks=tuple(route.sinks),
        match=dict(route.match),
        match_re=compile_match_re(route.match_re),
        continue_=route.continue_,
        group_by=tuple(route.group_by),
        group_wait=route.group_wait,
        repeat_interval=route.repeat_interval,
        send_resolved=route.send_resolved,
        escalate_after=route.escalate.after if route.escalate else None,
        escalate_sinks=tuple(route.escalate.sinks) if route.escalate else (),
    )


def _config_id(prefix: str, *parts: object) -> str:
    return f"{prefix}-" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:10]


def config_silences(settings: Settings) -> list[Silence]:
    return [
        Silence(
            id=_config_id("config", s.matchers, s.starts_at, s.ends_at),
            matchers=tuple(parse_matcher(m) for m in s.matchers),
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            created_by="config",
            comment=s.comment,
        )
        for s in settings.silences
    ]


def maintenance_windows(settings: Settings) -> list[WeeklyWindow]:
    return [
        WeeklyWindow(
            id=_config_id("window", w.matchers, w.days, w.start, w.duration),
            matchers=tuple(parse_matcher(m) for m in w.matchers),
            days=tuple(WEEKDAYS.index(d) for d in w.days),
            start=w.start,
            duration=timedelta(seconds=w.duration.total_seconds()),
            timezone=w.timezone or settings.daemon.timezone,
            comment=w.comment,
        )
        for w in settings.maintenance_windows
    ]
