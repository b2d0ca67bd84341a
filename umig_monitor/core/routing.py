"""Route matching: which routes (and so which sinks) an alert's labels select. Ordered, first
match wins unless ``continue``; the default route takes what nothing matched."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route as the pipeline uses it. ``key`` names it in the notification log and idempotency
    keys: its config name, or its position (``route-0``) when unnamed."""

    key: str
    sinks: tuple[str, ...]
    match: Mapping[str, str] = field(default_factory=dict)
    match_re: Mapping[str, re.Pattern[str]] = field(default_factory=dict)
    continue_: bool = False
    group_by: tuple[str, ...] = ("type", "environment")
    group_wait: timedelta = timedelta(0)
    repeat_interval: timedelta = timedelta(hours=4)
    send_resolved: bool = True
    escalate_after: timedelta | None = None
    escalate_sinks: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for name, value in self.match.items():
            if labels.get(name) != value:
                return False
        for name, pattern in self.match_re.items():
            if pattern.fullmatch(labels.get(name, "")) is None:
                return False
        return True

    def group_key(self, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple((name, labels.get(name, "")) for name in self.group_by)


def select_routes(
    routes: Sequence[RouteSpec], default: RouteSpec, labels: Mapping[str, str]
) -> list[RouteSpec]:
    """The routes an alert goes through, in order."""
    chosen = []
    for route in routes:
        if route.matches(labels):
            chosen.append(route)
            if not route.continue_:
                break
    return chosen or [default]


def compile_match_re(patterns: Mapping[str, str]) -> dict[str, re.Pattern[str]]:
    return {name: re.compile(pattern) for name, pattern in patterns.items()}
