"""Report benchmark (issue 7 §5): the daily status report built from a year of stored health data.

Run it from the repository root (the package is installed editable, so ``import umig_monitor`` works):

    python bench/report.py                            # 365 days x 10 environments in a temporary SQLite
    python bench/report.py --db /tmp/report.db        # keep the database; a rerun skips generation
    python bench/report.py --days 200 --runs 9        # fewer days (say so when you quote the figures)
    python bench/report.py --envs 100 --runs 5 --db /tmp/rb/report-100.db   # issue 18's year (~25 min)
    python bench/report.py --json > report.json       # machine-readable

What happens, in order:

1. Data: ``--days`` days of 30 s polls of ``--envs`` environments (10: production, uat, development
   and hotfix kinds; more are further production ones), up to the last UTC midnight, generated from a
   fixed seed day by day, and after each day the retention job's own calls, ``Store.rollup_health``
   and ``Store.prune`` with the default retention (raw samples 30 d, hourly rollups 400 d), at that
   day's end. So the database ends as a daemon's does after that long: the last 30 days of raw
   samples and hourly rollups for the rest. The samples are written two ways:

   * the last 31 days (the raw window, and the day before it, which the last prune rolls up and
     deletes) as the daemon writes them: ``Store.add_health_samples`` (at most 30,000 samples a
     call), then rolled up and pruned by those retention calls;
   * the days before (by then only rollups in a daemon's database) are not stored as samples: their
     hourly rollups, computed from the generated samples by ``hourly_rollups`` (the rows
     ``Store.rollup_health`` writes), are bulk-inserted with the schema's table
     (``health_rollups_hourly``) before that day's retention calls, which find nothing to roll up.
     105 M samples of 100 environments through the store would take about an hour.

   Every day's samples are generated either way, so the random streams, hence the last 31 days and
   every alert, are the same as if all went through the store. ``hourly_rollups`` is checked, not
   trusted: the data is refused (exit 2, no marker written) unless the rollups ``rollup_health``
   wrote for the last 31 days (yesterday's last hour aside: not rolled up yet) are exactly
   ``hourly_rollups`` of the same samples, and unless the first of those days' rows, bulk-inserted
   into a scratch database of the same schema, are stored as rollup_health stored them (values,
   text and types).

   The polls are mostly healthy, with incidents (degraded components, slow responses, error rates,
   DB connections, an inactive orchestrator, unhealthy, unreachable, timeouts, HTTP 503) classified
   by the product's own ``core.assess.assess``, a short outage at every deployment, versions
   changing every few days (development) to every few weeks (production, hotfix), uptime, response
   times and component maps. The alerts the health job would raise for them (health incidents and
   the guide's checks, 3 failed polls to open, 2 good ones to close) go through
   ``Store.fire_alert`` / ``Store.resolve_alert``, deployments through
   ``Store.add_deployment_events``, drift findings through ``Store.sync_findings`` once a day, on
   every day, whichever way its samples went. Hourly performance baselines (the daemon's default
   ``baseline.cron``; nothing prunes them) go through ``Store.add_baseline`` on the reported days and
   their previous days, and are bulk-inserted with the schema's table elsewhere (``add_baseline`` is
   one transaction per row, ~3 ms: 87,600 of them would take minutes).
   With ``--db PATH`` a file that already holds exactly this data (a marker in ``kv_state``) is reused.

   Sizes: the file and its WAL with the store open; then, from SQLite's ``dbstat`` on the closed
   file, the bytes per raw sample kept of the ``health_samples`` table (its records by column, free
   space, headers) and of each of its indexes, and, computed, the bytes per raw sample that would
   keep the file under 1 GB with everything else as it is. Peak RSS of the generation: ``ru_maxrss``.
2. Reports: ``ops.reports.build_report`` (the report job's and the ``report`` command's) +
   ``Rendered.of`` (text, HTML, JSON) for yesterday (raw samples) and for the oldest generated day
   that has a previous day and is past the raw window (hourly rollups only; its "alerts since" query
   reaches over the whole year: the worst case).
   ``--runs`` runs each on one ``Store.open``: p50, max and the first run, and the p50 of each step
   (the store queries ``build_report`` makes, ``make_report``, each rendering: the names
   ``ops.reports`` calls them by), timed by wrapping them in this process only; a run in which one of
   them was not called is refused (the code moved: its time would read as 0). Peak RSS of each day's
   runs: ``VmHWM`` of this process, reset through ``/proc/self/clear_refs`` before the first run (so
   not the generation's), which includes the interpreter, the imports and the open store; where it
   cannot be reset, ``ru_maxrss`` since the process started, said so.

It prints figures and asserts nothing; targets are shown with PASS or MISS, and anything that could
not be measured is shown as absent, with the reason. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import math
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NoReturn

import sqlalchemy
from common import (
    Layout,
    Section,
    code_state,
    command,
    judged,
    load,
    machine,
    output,
    progress,
    started_under_load,
)
from sqlalchemy.ext.asyncio import AsyncEngine

import umig_monitor.ops.reports as reports
from umig_monitor.config import Settings, parse_config
from umig_monitor.core.alerts import AlertEvent, Severity, alert_key
from umig_monitor.core.assess import Check, Documents, Thresholds, assess
from umig_monitor.core.baselines import ENDPOINTS
from umig_monitor.core.deployments import SHORT_NAME, DeploymentEvent, EventType, new_deployment_id
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.report import Report, hour_floor
from umig_monitor.core.tracking import HEALTH
from umig_monitor.logs import configure_logging
from umig_monitor.storage.engine import create_engine
from umig_monitor.storage.insights import FindingRow
from umig_monitor.storage.schema import baselines as baseline_table
from umig_monitor.storage.schema import health_rollups_hourly as rollup_table
from umig_monitor.storage.store import Store, rollup_boundary

SEED: Final = 7  # issue 7
GENERATOR: Final = 2  # bump when the data or how it is written changes, so an old --db is not taken for it
MARKER_KEY: Final = "bench_report"
INTERVAL_S: Final = 30
POLLS_PER_DAY: Final = 86_400 // INTERVAL_S
BATCH: Final = 30_000  # samples per add_health_samples call at most
BASELINE_BATCH: Final = 20_000
FAILURE_THRESHOLD: Final = 3  # the daemon's defaults (jobs.health)
SUCCESS_THRESHOLD: Final = 2
DAY: Final = timedelta(days=1)

TARGET_REPORT_S: Final = 2.0
TARGET_DB_BYTES: Final = 1e9  # 1 GB

# (name, kind); more than ten are further production environments.
ENVIRONMENTS: Final = (
    ("production", "production"),
    ("uat", "uat"),
    ("development", "development"),
    ("hotfix", "hotfix"),
    ("production-eu", "production"),
    ("production-us", "production"),
    ("uat-eu", "uat"),
    ("development-2", "development"),
    ("production-apac", "production"),
    ("hotfix-eu", "hotfix"),
)
# Days between two version changes, by kind.
CHANGE_DAYS: Final = {
    "development": (1.0, 4.0),
    "uat": (5.0, 12.0),
    "production": (14.0, 28.0),
    "hotfix": (21.0, 42.0),
}
INCIDENTS_PER_DAY: Final = 0.3  # per environment, besides deployment outages and single-poll blips
BLIPS_PER_DAY: Final = 1.0  # single failed polls (a timeout) per environment
# Incident variants and their shares; answered variants are classified by core.assess.
INCIDENT_MIX: Final = {
    "database_degraded": 0.22,
    "api_degraded": 0.06,
    "slow_response": 0.10,
    "high_error_rate": 0.08,
    "high_db_connections": 0.07,
    "orchestrator_inactive": 0.05,
    "unhealthy": 0.15,
    "unreachable": 0.14,
    "timeout": 0.09,
    "http_503": 0.04,
}
INITIATED_BY: Final = {
    "development": "automation",
    "uat": "qa-automation",
    "production": "deployment-automation",
    "hotfix": "oncall",
}


# --- results ---------------------------------------------------------------------------------------

COUNT_UNITS: Final = frozenset({"samples", "rows", "runs", "samples/s"})
LAYOUT = Layout(
    "umig-monitor daily report benchmark", label=38, shown=16, whole=lambda f: f.unit in COUNT_UNITS
)


def refuse(message: str) -> NoReturn:
    print(f"bench/report.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def mb(size: float) -> float:
    return size / 1e6


# --- the plan --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything the generated data depends on; the same plan gives the same data."""

    days: int
    envs: int
    seed: int
    now: datetime  # the end of the data (a UTC midnight): it covers [now - days, now)

    @property
    def start(self) -> datetime:
        return self.now - self.days * DAY

    def marker(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "envs": self.envs,
            "seed": self.seed,
            "generator": GENERATOR,
            "now": self.now.isoformat(),
        }

    def environments(self) -> list[tuple[str, str]]:
        out = list(ENVIRONMENTS[: self.envs])
        return out + [(f"production-{i:02d}", "production") for i in range(len(out) + 1, self.envs + 1)]

    @property
    def yesterday(self) -> date:
        return (self.now - DAY).date()

    def old_day(self, settings: Settings) -> date | None:
        """The oldest day with a previous day in the data and no raw sample left: rollups only."""
        r = settings.daemon.retention
        day = max(self.start + DAY, self.now - r.hourly_rollups + DAY)
        return day.date() if day + DAY <= self.now - r.raw_samples else None

    def raw_from(self, settings: Settings) -> datetime:
        """The first day written through the store's write path (samples, rollup_health, prune): the raw
        window of the last day plus the day before it, which the last prune rolls up and deletes.
        Days before it get their hourly rollups bulk-inserted (``hourly_rollups``)."""
        return max(self.start, self.now - settings.daemon.retention.raw_samples - DAY)

    def baseline_days(self, settings: Settings) -> set[date]:
        """Days whose baselines go through Store.add_baseline: the reported days and their previous days."""
        days = {self.yesterday, self.yesterday - DAY}
        old = self.old_day(settings)
        if old is not None:
            days |= {old, old - DAY}
        return days


def settings_yaml(db: Path, plan: Plan) -> str:
    lines = ["daemon:", f"  storage: sqlite:///{db}", "  timezone: UTC", "environments:"]
    for name, kind in plan.environments():
        lines.append(f'  {name}: {{base_url: "http://127.0.0.1:9/{name}", kind: {kind}}}')
    return "\n".join(lines) + "\n"


# --- version timelines -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Release:
    """A version an environment runs from ``at`` (its restart) until the next release."""

    at: datetime
    version: str
    build: str
    component_versions: dict[str, str]


def release(kind: str, n: int, at: datetime) -> Release:
    """The n-th version of an environment of this kind."""
    r = n
    if kind == "development":
        minor, ci = 2 + n // 40, 1245 + n
        version, build = f"1.{minor}.0-dev+ci.{ci}", f"ci.{ci}"
        database = f"0{31 + n // 40}-dev"
    elif kind == "uat":
        r, rc = n // 3 + 1, n % 3 + 1
        version, build = f"1.{1 + r // 5}.{r % 5}-rc.{rc}", f"rc.{rc}-{1198 + n * 7}"
        database = f"0{30 + r // 5}"
    elif kind == "hotfix":
        version, build = f"1.{1 + n // 5}.{n % 5}+hotfix.{1 + n % 3}", f"hotfix-{1170 + n * 9}"
        database = f"0{30 + n // 5}"
    else:
        version, build = f"1.{1 + n // 5}.{n % 5}", str(1170 + n * 9)
        database = f"0{30 + n // 5}"
    release_version = version.split("-")[0].split("+")[0]
    components = {
        "database": database,
        "api": release_version,
        "ui": release_version,
        "backend": release_version,
    }
    return Release(at, version, build, components)


@dataclass
class Timeline:
    """One environment's releases, deployment events and restarts over the data (and just before)."""

    releases: list[Release]
    events: list[DeploymentEvent]
    restarts: list[datetime]

    def __post_init__(self) -> None:
        self._starts = [r.at for r in self.releases]

    def at(self, ts: datetime) -> int:
        """Index of the release running at ``ts``."""
        return max(0, bisect.bisect_right(self._starts, ts) - 1)


def timeline(
    rng: random.Random, name: str, kind: str, start: datetime, end: datetime, forced: Sequence[datetime] = ()
) -> Timeline:
    """Releases every CHANGE_DAYS[kind] days, between 07:00 and 18:00, and at each ``forced`` time."""
    low, high = CHANGE_DAYS[kind]
    pending = sorted(forced)
    n = 0
    t = start - timedelta(days=rng.uniform(0.5, low + 1))
    releases = [release(kind, n, t)]
    events: list[DeploymentEvent] = []
    restarts: list[datetime] = []
    by = INITIATED_BY[kind]

    def event(deployment_id: str, type_: EventType, ts: datetime, **fields: Any) -> DeploymentEvent:
        return DeploymentEvent(
            f"{deployment_id}-{SHORT_NAME[type_]}", deployment_id, name, type_, ts, initiated_by=by, **fields
        )

    while True:
        day = (t + timedelta(days=rng.uniform(low, high))).replace(hour=0, minute=0, second=0, microsecond=0)
        due = day + timedelta(seconds=rng.randint(7 * 3600, 18 * 3600))
        while pending and pending[0] <= t:
            pending.pop(0)
        t = pending.pop(0) if pending and pending[0] <= due else due
        if t >= end:
            break
        n += 1
        new, previous = release(kind, n, t), releases[-1]
        if kind == "development" and rng.random() < 0.3:
            observed = f"observed-{name}-{t.strftime('%Y%m%d-%H%M%S')}"
            events.append(
                DeploymentEvent(
                    f"{observed}-{SHORT_NAME[EventType.OBSERVED]}",
                    observed,
                    name,
                    EventType.OBSERVED,
                    t,
                    version=new.version,
                    metadata={"previousVersion": previous.version},
                )
            )
        else:
            if rng.random() < 0.06:  # a failed attempt two hours earlier: the version never ran
                tried = t - timedelta(hours=2)
                failed = new_deployment_id(name, tried, f"{rng.getrandbits(24):06x}")
                took = float(rng.randint(60, 900))
                events.append(event(failed, EventType.START, tried, version=new.version))
                events.append(
                    event(
                        failed,
                        EventType.FAILURE,
                        tried + timedelta(seconds=took),
                        version=new.version,
                        duration_seconds=took,
                        error="post-deployment validation failed: orchestrator not active",
                    )
                )
            took = float(rng.randint(60, 900))
            begun = t - timedelta(seconds=took)
            deployment = new_deployment_id(name, begun, f"{rng.getrandbits(24):06x}")
            events.append(event(deployment, EventType.START, begun, version=new.version))
            events.append(event(deployment, EventType.SUCCESS, t, version=new.version, duration_seconds=took))
            if kind == "production" and rng.random() < 0.05:  # rolled back a few hours later
                releases.append(new)
                restarts.append(t)
                t = t + timedelta(hours=rng.uniform(1, 4))
                new = Release(t, previous.version, previous.build, previous.component_versions)
                events.append(
                    event(
                        deployment,
                        EventType.ROLLBACK,
                        t,
                        version=releases[-1].version,
                        from_version=releases[-1].version,
                        to_version=previous.version,
                    )
                )
        releases.append(new)
        restarts.append(t)
    return Timeline(releases, [e for e in events if start <= e.ts < end], restarts)


# --- samples and the alerts they raise -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Template:
    """What every poll of one state looks like (ts, uptime and response time aside)."""

    outcome: Outcome
    umig_status: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    checks: tuple[Check, ...] = ()
    response_ms: float | None = None  # fixed (failures), else drawn per poll


FAILURES: Final = {
    "unreachable": Template(
        Outcome.UNREACHABLE, error="connection failed: Connect call failed ('10.20.0.15', 443)"
    ),
    "timeout": Template(Outcome.TIMEOUT, error="no answer within 10s", response_ms=10_000.0),
    "http_503": Template(Outcome.HTTP_ERROR, error="HTTP 503", response_ms=12.0),
}


def answered_template(name: str, variant: str, r: Release, when: datetime) -> Template:
    """Health, version and components documents for ``variant``, classified by core.assess."""
    status = "unhealthy" if variant == "unhealthy" else "healthy"
    statuses = dict.fromkeys(("database", "api", "ui", "authentication"), "healthy")
    if variant in ("database_degraded", "api_degraded"):
        statuses[variant.split("_")[0]] = "degraded"
    if variant == "unhealthy":
        statuses["database"] = "unhealthy"
    components: dict[str, Any] = {k: {"status": v} for k, v in statuses.items()}
    components["database"] |= {
        "connections": 92 if variant == "high_db_connections" else 14,
        "responseTime": 25,
    }
    health = {
        "umig": {"status": status, "version": r.version, "uptime": "1h 0m"},
        "components": components,
        "metrics": {
            "errorRate": 0.08 if variant == "high_error_rate" else 0.01,
            "activeUsers": 40,
            "responseTime": 4200 if variant == "slow_response" else 180,
        },
    }
    version = {
        "umig": {"version": r.version, "build": r.build},
        "components": {k: {"version": v} for k, v in r.component_versions.items()},
    }
    orchestrator = {
        "orchestrator": {"status": "inactive" if variant == "orchestrator_inactive" else "active"}
    }
    sample, checks = assess(
        name, when, Documents(health, version, orchestrator, response_ms=50.0), Thresholds()
    )
    return Template(
        sample.outcome,
        sample.umig_status,
        dict(sample.components),
        dict(sample.metrics),
        sample.error,
        tuple(checks),
    )


def uptime_text(minutes: int) -> str:
    """As the simulator (and the guide) writes it: ``5d 7h 45m``, leading zero units left out."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {mins}m"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


@dataclass(frozen=True, slots=True)
class AlertCall:
    """A store call the health job would make: fire (``event``) or resolve (``key``) at ``ts``."""

    ts: datetime
    event: AlertEvent | None = None
    key: str = ""


class Environment:
    """One generated environment: its timeline, its look (response times, users), its incidents."""

    def __init__(self, plan: Plan, index: int, name: str, kind: str, report_days: Sequence[date]) -> None:
        self.name, self.kind = name, kind
        self.rng = random.Random(plan.seed * 1000 + index)
        # So that every section of the reported days has data, whatever the dice say: a deployment in
        # the second environment at 14:30, production unhealthy from 10:00 for 40 minutes, a degraded
        # database in the third environment from 16:00 for 10 minutes.
        last = plan.envs - 1
        midnights = [datetime.combine(d, datetime.min.time(), UTC) for d in report_days]
        deployments = (
            [m + timedelta(hours=14, minutes=30) for m in midnights] if index == min(1, last) else []
        )
        self.forced: dict[datetime, list[tuple[int, int, str, int]]] = {m: [] for m in midnights}
        for m in midnights:
            if index == 0:
                self.forced[m].append((1200, 1280, "unhealthy", 0))
            if index == min(2, last):
                self.forced[m].append((1920, 1940, "database_degraded", 0))
        self.timeline = timeline(self.rng, name, kind, plan.start, plan.now, deployments)
        self.offset = timedelta(seconds=round(self.rng.uniform(0, 10), 3))  # first polls spread over 10 s
        self.response_mu = math.log(self.rng.uniform(25, 90))  # probe time of the three requests
        self.users = self.rng.randint(20, 400) if kind == "production" else self.rng.randint(3, 40)
        self.severity: Severity = "critical" if kind == "production" else "warning"
        self.labels = {"kind": kind}
        self._templates: dict[tuple[int, str], Template] = {}

    def template(self, release_index: int, variant: str) -> Template:
        if variant in FAILURES:
            return FAILURES[variant]
        key = (release_index, variant)
        if key not in self._templates:
            r = self.timeline.releases[release_index]
            self._templates[key] = answered_template(self.name, variant, r, r.at)
        return self._templates[key]

    def incidents(self, start: datetime) -> list[tuple[int, int, str, int]]:
        """Non-overlapping (first poll, end poll, variant, polls unreachable) of the day from ``start``.
        A ``restart`` (a deployment) is refused connections for its first polls, then a 503 or two."""
        rng = self.rng
        wanted: list[tuple[int, int, str, int]] = []
        for restart in self.timeline.restarts[bisect.bisect_left(self.timeline.restarts, start) :]:
            if restart >= start + DAY:
                break
            first = int((restart - start).total_seconds()) // INTERVAL_S
            down = rng.randint(1, 4)
            wanted.append((first, first + down + rng.randint(0, 2), "restart", down))
        variants, weights = list(INCIDENT_MIX), list(INCIDENT_MIX.values())
        for _ in range(poisson(rng, INCIDENTS_PER_DAY)):
            length = 1 + min(int(rng.lognormvariate(math.log(6), 1.0)), 360)
            first = rng.randint(FAILURE_THRESHOLD, POLLS_PER_DAY - 1)
            wanted.append((first, first + length, rng.choices(variants, weights)[0], 0))
        for _ in range(poisson(rng, BLIPS_PER_DAY)):
            first = rng.randint(FAILURE_THRESHOLD, POLLS_PER_DAY - 1)
            wanted.append((first, first + 1, "timeout", 0))
        out = list(self.forced.get(start, ()))
        for first, end, variant, down in sorted(wanted):
            end = min(end, POLLS_PER_DAY)
            apart = all(first >= e + SUCCESS_THRESHOLD or end + SUCCESS_THRESHOLD <= f for f, e, _, _ in out)
            if end > first and apart:
                out.append((first, end, variant, down))
        return sorted(out)

    def day(self, start: datetime) -> tuple[list[HealthSample], list[AlertCall]]:
        """The day's samples, and the alert calls the health job would make for them."""
        rng, name, releases = self.rng, self.name, self.timeline.releases
        base = start + self.offset
        stamps = [base + timedelta(seconds=INTERVAL_S * i) for i in range(POLLS_PER_DAY)]
        states: list[str | None] = [None] * POLLS_PER_DAY
        incidents = self.incidents(start)
        for first, end, variant, down in incidents:
            if variant == "restart":
                cut = min(first + down, end)
                states[first:end] = ["unreachable"] * (cut - first) + ["http_503"] * (end - cut)
            else:
                states[first:end] = [variant] * (end - first)
        r_index = self.timeline.at(stamps[0])
        next_at = releases[r_index + 1].at if r_index + 1 < len(releases) else None
        r = releases[r_index]
        healthy = self.template(r_index, "healthy")
        mu, users, random_ = self.response_mu, self.users, rng.random
        samples: list[HealthSample] = []
        append = samples.append
        for i, ts in enumerate(stamps):
            if next_at is not None and ts >= next_at:
                r_index = self.timeline.at(ts)
                r = releases[r_index]
                next_at = releases[r_index + 1].at if r_index + 1 < len(releases) else None
                healthy = self.template(r_index, "healthy")
            state = states[i]
            if state is not None and state in FAILURES:
                t = FAILURES[state]
                response = t.response_ms if t.response_ms is not None else round(rng.uniform(1, 5), 1)
                append(HealthSample(name, ts, t.outcome, response_ms=response, error=t.error))
                continue
            minutes = int((ts - r.at).total_seconds()) // 60
            response = round(rng.lognormvariate(mu, 0.25), 1)
            if state is None:
                hour = ts.hour
                active = users * (0.25 + 0.75 * (7 <= hour < 18)) * (0.8 + 0.4 * random_())
                metrics = {
                    "errorRate": round(0.002 + 0.018 * random_(), 4),
                    "activeUsers": float(int(active)),
                    "responseTime": float(120 + int(301 * random_())),
                    "dbConnections": float(8 + int(23 * random_())),
                    "dbResponseTime": float(15 + int(31 * random_())),
                    "orchestrator": "active",
                }
                t = healthy
            else:
                t = self.template(r_index, state)
                metrics = t.metrics
            append(
                HealthSample(
                    name,
                    ts,
                    t.outcome,
                    t.umig_status,
                    r.version,
                    r.build,
                    minutes * 60,
                    uptime_text(minutes),
                    response,
                    t.components,
                    metrics,
                    t.error,
                    r.component_versions,
                )
            )
        calls: list[AlertCall] = []
        for first, end, _, _ in incidents:
            if end - first >= FAILURE_THRESHOLD:
                state = states[first + FAILURE_THRESHOLD - 1]
                assert state is not None
                calls += self.alert_calls(stamps, first, end, state)
        return samples, calls

    def alert_calls(self, stamps: list[datetime], first: int, end: int, variant: str) -> list[AlertCall]:
        """As core.tracking: opened at the 3rd failed poll (starting at the 1st) with what that poll saw,
        closed at the 2nd good one."""
        opened = stamps[first + FAILURE_THRESHOLD - 1]
        closed = stamps[0] + timedelta(seconds=INTERVAL_S * (end + SUCCESS_THRESHOLD - 1))
        t = self.template(self.timeline.at(opened), variant)
        name, calls = self.name, []
        if t.outcome not in (Outcome.HEALTHY, Outcome.DEGRADED):
            kind = (
                "environment_unreachable"
                if t.outcome in (Outcome.UNREACHABLE, Outcome.TIMEOUT)
                else "environment_unhealthy"
            )
            key = alert_key(HEALTH, name)
            summary = f"{name} is {t.outcome.value}: {t.error or ''}".rstrip(": ")
            details = {"outcome": t.outcome.value, "error": t.error}
            event = AlertEvent(
                key, kind, name, self.severity, summary, opened, True, details, self.labels, stamps[first]
            )
            calls += [AlertCall(opened, event), AlertCall(closed, key=key)]
        for check in t.checks:
            if check.name.startswith("component_"):
                key, kind = alert_key("component_unhealthy", name, str(check.value)), "component_unhealthy"
            else:
                key, kind = alert_key(check.name, name), check.name
            severity: Severity = (
                self.severity if kind in ("high_error_rate", "orchestrator_inactive") else "warning"
            )
            details = {"value": check.value, "limit": check.limit}
            summary = f"{name}: {check.describe()}"
            event = AlertEvent(
                key, kind, name, severity, summary, opened, True, details, self.labels, stamps[first]
            )
            calls += [AlertCall(opened, event), AlertCall(closed, key=key)]
        return calls


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; fine for small means."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def findings(envs: Sequence[Environment], noon: datetime, rng: random.Random) -> list[FindingRow]:
    """What a drift run at ``noon`` finds: development ahead of production, stale hotfix environments,
    and now and then a UI/backend component mismatch (resolved the next day)."""
    production = next((e for e in envs if e.kind == "production"), envs[0])
    prod = production.timeline.releases[production.timeline.at(noon)].version
    out = []
    for e in envs:
        index = e.timeline.at(noon)
        r, before = e.timeline.releases[index], e.timeline.releases[max(0, index - 1)]
        if e.kind == "development":
            summary = f"{e.name} {r.version} is ahead of production {prod}"
            out.append(FindingRow(f"version_drift/ahead:{e.name}", "ahead", e.name, "info", summary, {}))
        if e.kind == "hotfix" and noon - r.at > timedelta(days=14):
            summary = f"{e.name}: no deployment for {(noon - r.at).days} days"
            out.append(FindingRow(f"version_drift/stale:{e.name}", "stale", e.name, "info", summary, {}))
        if e.kind in ("development", "uat") and rng.random() < 0.04:
            ui, backend = r.component_versions["ui"], before.component_versions["backend"]
            summary = f"{e.name}: ui {ui} differs from backend {backend}"
            out.append(
                FindingRow(f"version_drift/component:{e.name}", "component", e.name, "warning", summary, {})
            )
    return out


def baseline_row(e: Environment, ts: datetime, rng: random.Random) -> dict[str, Any]:
    """One hourly baseline as the baseline job stores it (stats_dict and the health figures)."""
    base = math.exp(e.response_mu) / 3
    endpoints = {}
    for endpoint, factor in zip(ENDPOINTS, (1.0, 4.0, 3.0), strict=True):
        p50 = round(base * factor * rng.uniform(0.85, 1.15), 1)
        p95 = round(p50 * rng.uniform(1.2, 1.8), 1)
        endpoints[endpoint] = {
            "samples": 5,
            "errors": 0,
            "p50_ms": p50,
            "p95_ms": p95,
            "max_ms": round(p95 * 1.1, 1),
        }
    figures = {
        "responseTime": float(rng.randint(120, 420)),
        "dbConnections": float(rng.randint(8, 30)),
        "dbResponseTime": float(rng.randint(15, 45)),
        "errorRate": round(rng.uniform(0.002, 0.02), 4),
        "activeUsers": float(e.users),
    }
    version = e.timeline.releases[e.timeline.at(ts)].version
    return {"environment": e.name, "version": version, "ts": ts, "endpoints": endpoints, "figures": figures}


# --- generation ------------------------------------------------------------------------------------


@dataclass
class Generation:
    samples: int = 0
    build_s: float = 0.0
    store_s: float = 0.0
    store_calls: int = 0
    store_samples: int = 0
    retention_s: float = 0.0
    rollups_s: float = 0.0  # computing and bulk-inserting the hourly rollups of the days before raw_from
    rollup_days: int = 0
    rollup_rows: int = 0
    verify_s: float = 0.0
    verified_rows: int = 0
    other_s: float = 0.0  # alerts, deployment events, drift findings
    baselines_s: float = 0.0
    alerts_fired: int = 0
    deployment_events: int = 0
    baselines_bulk: int = 0
    baselines_store: int = 0
    wal_max: int = 0

    @property
    def total_s(self) -> float:
        return (
            self.build_s
            + self.store_s
            + self.retention_s
            + self.rollups_s
            + self.other_s
            + self.baselines_s
            + self.verify_s
        )


def rss_kb(name: str) -> int | None:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in kB (Linux)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{name}:")), None)


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to what it holds now (Linux 4.0 and later)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return rss_kb("VmHWM") is not None


def file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def generate(store: Store, db: Path, plan: Plan, settings: Settings) -> Generation:
    progress(f"generating {plan.days} days x {plan.envs} environments of 30 s polls into {db}")
    g = Generation()
    old = plan.old_day(settings)
    report_days = [plan.yesterday] if old is None else [plan.yesterday, old]
    envs = [
        Environment(plan, i, name, kind, report_days) for i, (name, kind) in enumerate(plan.environments())
    ]
    drift_rng = random.Random(plan.seed + 1)
    events = sorted((ev for e in envs for ev in e.timeline.events), key=lambda ev: (ev.ts, ev.id))
    raw_from = plan.raw_from(settings)
    expected: dict[tuple[str, datetime], dict[str, Any]] = {}  # rollups of the days written raw
    engine: AsyncEngine = await asyncio.to_thread(create_engine, f"sqlite:///{db}")
    try:
        started = time.perf_counter()
        for d in range(plan.days):
            await generate_day(store, engine, plan, settings, envs, events, drift_rng, d, expected, g)
            g.wal_max = max(g.wal_max, file_size(Path(f"{db}-wal")))
            if (d + 1) % 10 == 0 or d + 1 == plan.days:
                spent = time.perf_counter() - started
                eta = spent / (d + 1) * (plan.days - d - 1)
                done = f"  day {d + 1}/{plan.days}: {g.samples:,} samples, {spent:.0f} s"
                progress(f"{done}, about {eta:.0f} s to go")
    finally:
        await engine.dispose()
    await verify_rollups(store, db, plan, raw_from, expected, g)
    await write_baselines(store, db, settings, plan, envs, g)
    return g


async def generate_day(
    store: Store,
    engine: AsyncEngine,
    plan: Plan,
    settings: Settings,
    envs: Sequence[Environment],
    events: Sequence[DeploymentEvent],
    drift_rng: random.Random,
    d: int,
    expected: dict[tuple[str, datetime], dict[str, Any]],
    g: Generation,
) -> None:
    """Day ``d``: its samples (as rows of the store, or as the hourly rollups the store would make of
    them), alerts, deployment events, drift findings, then the retention job's calls at its end."""
    retention = settings.daemon.retention
    day = plan.start + d * DAY
    t0 = time.perf_counter()
    samples: list[HealthSample] = []
    calls: list[AlertCall] = []
    for e in envs:
        day_samples, day_calls = e.day(day)
        samples += day_samples
        calls += day_calls
    t1 = time.perf_counter()
    g.build_s += t1 - t0
    if day < plan.raw_from(settings):
        rows = hourly_rollups(samples)
        await insert_rollups(engine, rows.values())
        g.rollup_days += 1
        g.rollup_rows += len(rows)
        t2 = time.perf_counter()
        g.rollups_s += t2 - t1
    else:
        samples.sort(key=lambda s: s.ts)  # poll rounds, as the daemon stores them
        for i in range(0, len(samples), BATCH):
            await store.add_health_samples(samples[i : i + BATCH])
            g.store_calls += 1
        g.store_samples += len(samples)
        t2 = time.perf_counter()
        g.store_s += t2 - t1
        expected.update(hourly_rollups(samples))  # what rollup_health must write: checked at the end
        g.verify_s += time.perf_counter() - t2
        t2 = time.perf_counter()
    for call in sorted(calls, key=lambda c: c.ts):
        if call.event is not None:
            _, new = await store.fire_alert(call.event)
            g.alerts_fired += new
        else:
            await store.resolve_alert(call.key, call.ts)
    todays = [ev for ev in events if day <= ev.ts < day + DAY]
    if todays:
        g.deployment_events += await store.add_deployment_events(todays, day + DAY)
    noon = day + timedelta(hours=12)
    new_findings, resolved = await store.sync_findings(findings(envs, noon, drift_rng), noon)
    for f in new_findings:
        if f.type == "component" and f.environment is not None:
            key = alert_key("version_drift", f.environment, f"component:{f.environment}")
            event = AlertEvent(key, "version_drift", f.environment, "warning", f.summary, noon)
            g.alerts_fired += (await store.fire_alert(event))[1]
    for f in resolved:
        if f.type == "component" and f.environment is not None:
            key = alert_key("version_drift", f.environment, f"component:{f.environment}")
            await store.resolve_alert(key, noon)
    t3 = time.perf_counter()
    # The retention job as the daemon runs it (jobs/retention.py), at the day's end, on every day: on
    # the rollup-only days it prunes alerts (and finds no sample to roll up).
    end = day + DAY
    await store.rollup_health(end)
    await store.prune(
        end,
        raw_samples=retention.raw_samples,
        hourly_rollups=retention.hourly_rollups,
        alerts=retention.alerts,
        outbox_sent=retention.outbox_sent,
    )
    g.samples += len(samples)
    g.other_s += t3 - t2
    g.retention_s += time.perf_counter() - t3


def hourly_rollups(samples: Iterable[HealthSample]) -> dict[tuple[str, datetime], dict[str, Any]]:
    """The rows ``Store.rollup_health`` writes for ``samples`` (whole UTC hours), by (environment,
    hour): the polls by outcome class, and the mean and maximum response time of those that have one.
    The mean adds the floats one at a time in ts order and divides by their count, as SQLite's avg()
    does (3.40; 3.43 and later add with compensation). Not assumed: ``verify_rollups`` compares."""
    groups: dict[tuple[str, datetime], list[HealthSample]] = {}
    for sample in samples:
        groups.setdefault((sample.environment, hour_floor(sample.ts)), []).append(sample)
    rows = {}
    for (environment, hour), group in groups.items():
        group.sort(key=lambda s: s.ts)
        seen = Counter(s.outcome for s in group)
        healthy, degraded, unhealthy = seen[Outcome.HEALTHY], seen[Outcome.DEGRADED], seen[Outcome.UNHEALTHY]
        total, measured, highest = 0.0, 0, None
        for s in group:
            if s.response_ms is not None:
                total += s.response_ms
                measured += 1
                highest = s.response_ms if highest is None else max(highest, s.response_ms)
        rows[environment, hour] = {
            "environment": environment,
            "hour": hour,
            "samples": len(group),
            "healthy": healthy,
            "degraded": degraded,
            "unhealthy": unhealthy,
            "failed": len(group) - healthy - degraded - unhealthy,
            "response_ms_avg": total / measured if measured else None,
            "response_ms_max": highest,
        }
    return rows


async def insert_rollups(engine: AsyncEngine, rows: Iterable[dict[str, Any]]) -> None:
    """Bulk insert with the schema's table (its column types write the hour as the store does)."""
    batch = list(rows)
    if batch:
        async with engine.begin() as conn:
            await conn.execute(rollup_table.insert(), batch)


ROLLUP_COLUMNS: Final = (
    "environment, hour, typeof(hour), samples, healthy, degraded, unhealthy, failed, "
    "response_ms_avg, typeof(response_ms_avg), response_ms_max, typeof(response_ms_max)"
)


async def verify_rollups(
    store: Store,
    db: Path,
    plan: Plan,
    raw_from: datetime,
    expected: dict[tuple[str, datetime], dict[str, Any]],
    g: Generation,
) -> None:
    """Refuse the data unless the rollups ``Store.rollup_health`` (and ``prune``) wrote for the days
    written raw are exactly ``hourly_rollups`` of the same samples, and unless those rows bulk-inserted
    by ``insert_rollups`` (into a scratch database of the same schema) are the same stored values
    (text, types) as rollup_health's, for the first of those days (whose raw samples the last prune
    deleted)."""
    progress("checking the bulk-inserted rollups: the same rows as rollup_health's")
    started = time.perf_counter()
    boundary = rollup_boundary(plan.now)  # the last hour of yesterday is not rolled up yet
    want = {key: row for key, row in expected.items() if key[1] < boundary}
    got = {(r.environment, r.hour): asdict(r) for r in await store.health_rollups(raw_from, boundary)}
    if got != want:
        differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        shown = "; ".join(f"{k[0]} {k[1]:%Y-%m-%d %H:%M}: {got.get(k)} != {want.get(k)}" for k in differ[:3])
        refuse(f"hourly_rollups differs from rollup_health in {len(differ):,} of {len(want):,} rows: {shown}")
    first = {key: row for key, row in want.items() if raw_from <= key[1] < raw_from + DAY}
    with tempfile.TemporaryDirectory(prefix="umig-bench-rollups-") as scratch:
        other = Path(scratch) / "rollups.db"
        async with await Store.open(f"sqlite:///{other}"):
            pass  # the schema, as the store makes it
        engine = await asyncio.to_thread(create_engine, f"sqlite:///{other}")
        try:
            await insert_rollups(engine, first.values())
        finally:
            await engine.dispose()
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("ATTACH DATABASE ? AS scratch", (str(other),))
            columns = f"SELECT {ROLLUP_COLUMNS} FROM {{}}.health_rollups_hourly"
            bounds = " WHERE hour >= (SELECT min(hour) FROM scratch.health_rollups_hourly)"
            bounds += " AND hour <= (SELECT max(hour) FROM scratch.health_rollups_hourly)"
            ours = conn.execute(columns.format("scratch") + " ORDER BY environment, hour").fetchall()
            theirs = conn.execute(columns.format("main") + bounds + " ORDER BY environment, hour").fetchall()
    if not ours or ours != theirs:
        refuse(
            f"bulk-inserted rollups of {raw_from.date()} are not stored as rollup_health stores them: "
            f"{len(ours):,} rows against {len(theirs):,}"
            + next((f"; first: {a} != {b}" for a, b in zip(ours, theirs, strict=False) if a != b), "")
        )
    g.verified_rows = len(want)
    g.verify_s += time.perf_counter() - started


async def write_baselines(
    store: Store, db: Path, settings: Settings, plan: Plan, envs: Sequence[Environment], g: Generation
) -> None:
    """Hourly baselines over the data: through Store.add_baseline on the reported days and their previous
    days, bulk-inserted with the schema's table (same column types) on the others."""
    progress("writing hourly baselines")
    rng = random.Random(plan.seed + 2)
    through_store = plan.baseline_days(settings)
    bulk: list[dict[str, Any]] = []
    stored: list[dict[str, Any]] = []
    started = time.perf_counter()
    for hour in range(plan.days * 24):
        ts = plan.start + timedelta(hours=hour, seconds=20)
        for e in envs:
            (stored if ts.date() in through_store else bulk).append(baseline_row(e, ts, rng))
    engine: AsyncEngine = await asyncio.to_thread(create_engine, f"sqlite:///{db}")
    try:
        for i in range(0, len(bulk), BASELINE_BATCH):
            async with engine.begin() as conn:
                await conn.execute(baseline_table.insert(), bulk[i : i + BASELINE_BATCH])
    finally:
        await engine.dispose()
    for row in stored:
        await store.add_baseline(
            row["environment"], row["version"], row["ts"], row["endpoints"], row["figures"]
        )
    g.baselines_bulk, g.baselines_store = len(bulk), len(stored)
    g.baselines_s = time.perf_counter() - started


# --- the database ----------------------------------------------------------------------------------


async def prepare_database(db: Path, plan: Plan, section: Section) -> Plan:
    """Make sure ``db`` holds the plan's data; return the plan whose data it holds (a reused database
    keeps the "now" it was generated with)."""
    settings = parse_config(settings_yaml(db, plan))
    async with await Store.open(f"sqlite:///{db}") as store:
        marker = await store.kv_get(MARKER_KEY)
        expected = {k: v for k, v in plan.marker().items() if k != "now"}
        if marker is not None and {k: marker.get(k) for k in expected} == expected:
            plan = Plan(plan.days, plan.envs, plan.seed, datetime.fromisoformat(marker["now"]))
            section.facts["database"] = f"reused {db} (generated {marker['now']})"
            section.add(
                "samples_generated", "samples generated", marker["samples"], "samples", "when it was made"
            )
            section.absent("generation_s", "generation", "skipped: the database already holds the data")
        elif (await store.latest_health_samples()) or marker is not None:
            refuse(
                f"{db} holds data that is not this benchmark's {plan.days} days x {plan.envs} environments "
                f"(seed {plan.seed}, generator {GENERATOR}); use another --db or delete it"
            )
        else:
            g = await generate(store, db, plan, settings)
            await store.kv_set(MARKER_KEY, {**plan.marker(), "samples": g.samples}, datetime.now(UTC))
            report_generation(section, plan, g)
        wal = Path(f"{db}-wal")
        size, wal_size = file_size(db), file_size(wal)
        section.add(
            "db_mb",
            f"DB size ({plan.days} days)",
            mb(size + wal_size),
            "MB",
            f"{db.name} {mb(size):.1f} MB + WAL {mb(wal_size):.1f} MB, store open as the daemon keeps it",
            **judged("< 1 GB (for the year)", size + wal_size < TARGET_DB_BYTES),
        )
    section.facts["after_close"] = f"{db.name} {mb(file_size(db)):.1f} MB, WAL {mb(file_size(wal)):.1f} MB"
    describe_database(db, plan, settings, section, size + wal_size)
    return plan


def report_generation(section: Section, plan: Plan, g: Generation) -> None:
    full = plan.envs * POLLS_PER_DAY * 365
    note = "the spec's year" if plan.days >= 365 else f"{plan.days} of 365 days: NOT the year's {full:,}"
    section.add("samples_generated", "samples generated", g.samples, "samples", note)
    section.add(
        "generation_s",
        "generation",
        g.total_s,
        "s",
        f"building samples {g.build_s:.1f} s, add_health_samples {g.store_s:.1f} s in {g.store_calls} calls "
        f"({plan.days - g.rollup_days} days), rollups bulk-inserted {g.rollups_s:.1f} s ({g.rollup_days} "
        f"days), rollup_health + prune {g.retention_s:.1f} s, alerts/deployments/drift {g.other_s:.1f} s, "
        f"baselines {g.baselines_s:.1f} s, checking rollups {g.verify_s:.1f} s",
    )
    section.add(
        "generation_peak_rss_mb",
        "peak RSS, generation",
        mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        "MB",
        "ru_maxrss of this process since it started: the generation's peak",
    )
    section.add("rows_per_s", "rows per second (whole generation)", g.samples / g.total_s, "samples/s")
    section.add(
        "store_rows_per_s", "rows per second (add_health_samples)", g.store_samples / g.store_s, "samples/s"
    )
    section.add("wal_max_mb", "WAL size, max during generation", mb(g.wal_max), "MB")
    section.facts.update(
        alerts_fired=g.alerts_fired,
        deployment_events=g.deployment_events,
        baselines=f"{g.baselines_store:,} through Store.add_baseline, {g.baselines_bulk:,} bulk-inserted",
        rollups=f"{g.rollup_rows:,} bulk-inserted for {g.rollup_days} days; {g.verified_rows:,} of "
        f"rollup_health's equal to hourly_rollups of the same samples",
    )


def describe_database(db: Path, plan: Plan, settings: Settings, section: Section, open_bytes: int) -> None:
    """What the file holds, read with sqlite3 after the store is closed."""
    retention = settings.daemon.retention
    with contextlib.closing(sqlite3.connect(db)) as conn:

        def one(sql: str, *args: Any) -> Any:
            return conn.execute(sql, args).fetchone()[0]

        raw = one("SELECT count(*) FROM health_samples")
        rollups, rolled = conn.execute(
            "SELECT count(*), coalesce(sum(samples), 0) FROM health_rollups_hourly"
        ).fetchone()
        last_hour = one("SELECT max(hour) FROM health_rollups_hourly")
        unrolled = (
            one("SELECT count(*) FROM health_samples WHERE ts >= datetime(?, '+1 hour')", last_hour)
            if last_hour
            else raw
        )
        oldest = one("SELECT min(ts) FROM health_samples")
        page_size, pages, free = (one(f"PRAGMA {p}") for p in ("page_size", "page_count", "freelist_count"))
        try:
            stat = conn.execute(
                "SELECT name, sum(pgsize), sum(payload), sum(unused) FROM dbstat"
                " GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
        except sqlite3.Error as exc:
            stat = [(f"dbstat unavailable: {exc}", 0, 0, 0)]
        tables = [(name, size) for name, size, _, _ in stat]
        text = conn.execute(
            "SELECT "
            + ", ".join(f"coalesce(sum(length(CAST({c} AS BLOB))), 0)" for c in TEXT_COLUMNS)
            + " FROM health_samples"
        ).fetchone()
        counts = {
            t: one(f"SELECT count(*) FROM {t}")
            for t in ("alerts", "deployment_events", "baselines", "drift_findings")
        }
    section.add("raw_samples_kept", "raw samples kept", raw, "rows", f"oldest {oldest}")
    section.add("rollup_rows", "hourly rollup rows", rollups, "rows")
    if raw and stat[0][1]:
        per_sample(section, raw, stat, dict(zip(TEXT_COLUMNS, text, strict=True)), open_bytes)
    # What grows with the number of days: everything but the raw window (samples and their indexes).
    growing = sum(
        size for name, size in tables if not name.startswith(("health_samples", "ix_health_samples"))
    )
    if plan.days < 365 and tables and tables[0][1]:
        projected = open_bytes + growing * (365 - plan.days) / plan.days
        section.add(
            "db_year_projected_mb",
            "DB size, projected for 365 days",
            mb(projected),
            "MB",
            f"computed, NOT measured: + (365 - {plan.days}) / {plan.days} x the {mb(growing):.1f} MB of "
            "rollups, baselines, alerts, deployments and findings; the raw window stays 30 d",
            **judged("< 1 GB (projected)", projected < TARGET_DB_BYTES),
        )
    expected = plan.envs * POLLS_PER_DAY * plan.days
    accounted = rolled + unrolled
    section.facts.update(
        polls_accounted=f"{accounted:,} of {expected:,} generated (rollup samples + raw samples of hours "
        "not rolled up)" + ("" if accounted == expected else "  MISMATCH"),
        pages=f"{pages:,} x {page_size} B, {free:,} free",
        largest=", ".join(f"{name} {mb(size):.1f} MB" for name, size in tables[:8]),
        rows=counts,
        retention=f"raw samples {retention.raw_samples.days} d, rollups {retention.hourly_rollups.days} d",
    )


# Text columns of health_samples, whose stored bytes are summed for the per-sample breakdown.
TEXT_COLUMNS: Final = (
    "ts",
    "environment",
    "outcome",
    "umig_status",
    "version",
    "build",
    "uptime_text",
    "error",
    "components",
    "metrics",
    "component_versions",
    "tls_cert_expiry",
    "deployed_at",
    "deployed_by",
)
RAW_OBJECTS: Final = ("health_samples", "ix_health_samples_environment_ts", "ix_health_samples_ts")


def per_sample(
    section: Section, raw: int, stat: Sequence[tuple[str, int, int, int]], text: dict[str, int], total: int
) -> None:
    """Bytes per raw sample kept: of the table (its records, and what else its pages hold) and of each
    of its indexes, from dbstat (pages of the closed file, the WAL checkpointed); and, computed, what a
    sample could cost for the file to stay under the storage target with the rest as it is."""
    sizes = {name: (size, payload, unused) for name, size, payload, unused in stat}
    raw_bytes = sum(sizes.get(name, (0, 0, 0))[0] for name in RAW_OBJECTS)
    section.add(
        "bytes_per_sample",
        "bytes per raw sample, table + indexes",
        raw_bytes / raw,
        "B",
        f"{mb(raw_bytes):.1f} MB of the file's {mb(sum(s for s, _, _ in sizes.values())):.1f} MB",
    )
    for name in RAW_OBJECTS:
        size, payload, unused = sizes.get(name, (0, 0, 0))
        note = f"{mb(size):.1f} MB: records {payload / raw:.0f} B, free {unused / raw:.0f} B, "
        note += f"page and cell headers {(size - payload - unused) / raw:.0f} B"
        if name == "health_samples":
            shown = sorted(((c, b / raw) for c, b in text.items() if b), key=lambda cb: -cb[1])
            columns = ", ".join(f"{c} {b:.1f}" for c, b in shown)
            rest = (payload - sum(text.values())) / raw
            note += f"; in the record, text columns {columns}, the record header and numbers {rest:.1f}"
        label = (
            f"  {'table' if name == 'health_samples' else 'index'} {name.removeprefix('ix_health_samples_')}"
        )
        section.add(f"bytes_per_sample_{name}", label, size / raw, "B", note)
    rest = sum(s for name, (s, _, _) in sizes.items() if name not in RAW_OBJECTS)
    section.add(
        "bytes_per_sample_needed",
        "bytes per raw sample for < 1 GB",
        (TARGET_DB_BYTES - rest) / raw,
        "B",
        f"computed, NOT measured: (1 GB - the {mb(rest):.1f} MB of everything else) / the {raw:,} raw "
        "samples kept, table and indexes together, as if the WAL were empty",
    )


# --- the report ------------------------------------------------------------------------------------

STORE_STEPS: Final = (
    "health_hours",
    "last_health_samples",
    "health_rollups",
    "baselines",
    "deployment_events",
    "list_alerts",
    "drift_findings",
)
CODE_STEPS: Final = ("make_report", "render_text", "render_html", "report_json")


class Steps:
    """Time and rows of the calls build_report and Rendered.of make, by wrapping them (this process only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys((*STORE_STEPS, *CODE_STEPS), 0.0)
        self.rows: dict[str, int] = dict.fromkeys(STORE_STEPS, 0)
        self.calls: dict[str, int] = dict.fromkeys(self.seconds, 0)

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.rows = dict.fromkeys(self.rows, 0)
        self.calls = dict.fromkeys(self.calls, 0)

    def check(self) -> None:
        """Refuse a run in which a wrapped step was never called: the code moved, and its time would
        silently read as 0 ms."""
        missed = [name for name, n in self.calls.items() if not n]
        if missed:
            refuse(f"steps not called by build_report / Rendered.of (moved?): {', '.join(missed)}")

    def wrap_store(
        self, name: str, method: Callable[..., Awaitable[Sized]]
    ) -> Callable[..., Awaitable[Sized]]:
        async def timed(*args: Any, **kwargs: Any) -> Sized:
            started = time.perf_counter()
            out = await method(*args, **kwargs)
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1
            self.rows[name] += len(out)
            return out

        return timed

    def wrap_code(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed


@contextlib.contextmanager
def instrumented(store: Store, steps: Steps) -> Iterator[None]:
    for name in STORE_STEPS:
        setattr(store, name, steps.wrap_store(name, getattr(store, name)))
    originals = {name: getattr(reports, name) for name in CODE_STEPS}
    try:
        for name, function in originals.items():
            setattr(reports, name, steps.wrap_code(name, function))
        yield
    finally:
        for name, function in originals.items():
            setattr(reports, name, function)
        for name in STORE_STEPS:
            delattr(store, name)


STEP_LABELS: Final = {
    "health_hours": "store.health_hours",
    "last_health_samples": "store.last_health_samples (twice)",
    "health_rollups": "store.health_rollups",
    "baselines": "store.baselines (per environment)",
    "deployment_events": "store.deployment_events",
    "list_alerts": "store.list_alerts",
    "drift_findings": "store.drift_findings",
    "make_report": "make_report",
    "render_text": "render_text",
    "render_html": "render_html",
    "report_json": "report_json (+ json.dumps apart)",
}


async def bench_report(db: Path, plan: Plan, day: date, what: str, runs: int) -> Section:
    settings = parse_config(settings_yaml(db, plan))
    now = plan.now
    section = Section(
        f"daily report for {day.isoformat()} ({what}), {runs} runs",
        "ops.reports.build_report(store, settings, day, now) + Rendered.of(report) (text, HTML, JSON), "
        f"now = the data's end ({now.isoformat()}), timezone UTC, on one Store.open (SQLite, WAL) for all "
        "runs, one after another; wall clock (perf_counter) per run. Steps are the calls inside, wrapped.",
    )
    steps = Steps()
    gc.collect()
    reset = reset_peak_rss()
    rss_before = rss_kb("VmRSS")
    totals: list[float] = []
    builds: list[float] = []
    renders: list[float] = []
    per_step: dict[str, list[float]] = {name: [] for name in (*STORE_STEPS, *CODE_STEPS)}
    report: Report | None = None
    rendered: reports.Rendered | None = None
    async with await Store.open(f"sqlite:///{db}") as store:
        with instrumented(store, steps):
            for i in range(runs):
                progress(f"report for {day.isoformat()}: run {i + 1} of {runs}")
                steps.reset()
                report = rendered = None  # not alive while the next one is built
                t0 = time.perf_counter()
                report = await reports.build_report(store, settings, day, now)
                t1 = time.perf_counter()
                rendered = reports.Rendered.of(report)
                t2 = time.perf_counter()
                totals.append(t2 - t0)
                builds.append(t1 - t0)
                renders.append(t2 - t1)
                steps.check()
                for name, seconds in steps.seconds.items():
                    per_step[name].append(seconds)
    assert report is not None
    assert rendered is not None
    p50 = statistics.median(totals)
    section.add(
        "report_p50_s",
        "build + render, p50",
        p50,
        "s",
        **judged(f"< {TARGET_REPORT_S:g} s", p50 < TARGET_REPORT_S),
    )
    section.add("report_max_s", "build + render, max", max(totals), "s")
    section.add("report_first_s", "build + render, first run", totals[0], "s")
    peak = rss_kb("VmHWM") if reset else None
    if peak is not None:
        before = (
            "RSS before unknown" if rss_before is None else f"{mb(rss_before * 1024):.0f} MB before the first"
        )
        section.add(
            "report_peak_rss_mb",
            "peak RSS during the runs",
            mb(peak * 1024),
            "MB",
            f"VmHWM of this process, reset (/proc/self/clear_refs) before the first run: the interpreter, "
            f"its imports and the open store included, {before}",
        )
    else:
        section.add(
            "report_peak_rss_mb",
            "peak RSS of the process",
            mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
            "MB",
            "ru_maxrss (the peak could not be reset): since the process started, generation included",
        )
    section.add("build_p50_s", "  build_report p50", statistics.median(builds), "s")
    section.add("render_p50_s", "  Rendered.of p50", statistics.median(renders), "s")
    for name in (*STORE_STEPS, *CODE_STEPS):
        label = f"    {STEP_LABELS[name]} p50"
        section.add(f"step_{name}_ms", label, statistics.median(per_step[name]) * 1000, "ms")
    perf = report.performance
    section.facts.update(
        rows_loaded=dict(steps.rows),
        baselines_used=sum(p.baselines + p.previous_baselines for p in perf),
        checks=report.total.checks,
        availability=round(report.total.availability or 0.0, 5),
        rollup_hours=sum(h.rollup_hours for h in report.health),
        hours_without_data=sum(h.hours_without_data for h in report.health),
        incidents=len(report.incidents),
        deployments=len(report.deployments),
        alerts_raised=report.alerts.raised,
        drift_findings=len(report.drift),
        sizes=f"text {len(rendered.text) / 1e3:.1f} kB, HTML {len(rendered.html) / 1e3:.1f} kB, "
        f"JSON {len(rendered.json) / 1e3:.1f} kB",
        runs_s=[round(t, 3) for t in totals],
        after=load(),
    )
    return section


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=365, help="days of data up to the last UTC midnight (365)")
    p.add_argument("--envs", type=int, default=10, help="environments polled every 30 s (10)")
    p.add_argument("--runs", type=int, default=7, help="timed report runs per day (7)")
    p.add_argument("--db", type=Path, help="SQLite file to use, reused when it already holds the data")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    args = p.parse_args(argv)
    if args.days < 2 or args.envs < 1 or args.runs < 1:
        p.error("--days must be at least 2, --envs and --runs positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning", "console", sys.stderr)  # the store's schema_migrated lines are noise here
    setup: dict[str, Any] = {
        "machine": machine(),
        "python": f"{platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}",
        "sqlite": sqlite3.sqlite_version,
        "code": code_state(),
        "started": started_under_load(),
        "command": command("report.py", argv),
    }
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    plan = Plan(args.days, args.envs, SEED, today)
    with tempfile.TemporaryDirectory(prefix="umig-bench-") as scratch:
        db = args.db.resolve() if args.db else Path(scratch) / "report.db"
        data = Section(
            f"data: {args.days} days x {args.envs} environments, a poll every {INTERVAL_S} s",
            "generated from a fixed seed day by day: the last 31 days' samples through "
            f"Store.add_health_samples (at most {BATCH:,} a call), the hourly rollups of the days before "
            "bulk-inserted (checked against rollup_health's of the 31 days); alerts, deployment events and "
            "drift findings through the store, then Store.rollup_health + Store.prune at each day's end "
            "with the default retention, as the retention job does; hourly baselines last. Sizes are of "
            "the file and its WAL; bytes per sample from dbstat.",
        )
        plan = asyncio.run(prepare_database(db, plan, data))
        settings = parse_config(settings_yaml(db, plan))
        setup["data"] = f"{plan.start.isoformat()} to {plan.now.isoformat()} (UTC)"
        sections = [
            data,
            asyncio.run(bench_report(db, plan, plan.yesterday, "yesterday: raw samples", args.runs)),
        ]
        old = plan.old_day(settings)
        if old is None:
            skipped = Section("daily report for a day past the raw window", "not measured")
            skipped.absent(
                "old_report_p50_s", "build + render, p50", f"--days {plan.days}: no day older than 30 d + 1"
            )
            sections.append(skipped)
        else:
            old_section = asyncio.run(
                bench_report(db, plan, old, "past the raw window: hourly rollups", args.runs)
            )
            for figure in old_section.figures:
                figure.key = f"old_{figure.key}"
            sections.append(old_section)
    output(LAYOUT, setup, sections, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
