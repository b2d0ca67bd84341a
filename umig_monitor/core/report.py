"""The daily status report (the guide's daily-status-report.sh) as a model built from plain stored
data, and its JSON document; the text and HTML renderings are in ``core/report_html.py`` and reached
through here. Pure: the clock (``generated_at``) is passed in.

Decisions the guide leaves open (its script divides by zero on an empty log and prints constants):

* **Period.** The report for date D covers local day D, ``[00:00, 24:00)`` in the report's timezone
  (``daemon.timezone``): 23 or 25 hours on DST days. The scheduled run reports on the previous day.
* **Health** is counted per environment and UTC hour: from the raw samples' counts of the hour (the
  store counts them; an hour cut by the day's start or end counts its part inside the day), or from
  the hour's rollup when that holds more polls (raw samples past retention are pruned, the rollups
  stay): both come as ``HourlyCounts``. An hour only partly inside the day (half-hour UTC offsets) is
  counted from raw samples alone: a rollup cannot be split. Availability = (healthy + degraded) / all
  polls. A timeline segment shows its worst poll.
* **Environment summary** is as of the end of the day: health and uptime from the last sample of the
  day, the version from the last sample that reported one. No other single sample is shown, so the
  report takes those two per environment, never the day's samples.
* **Incidents** are ``environment_health`` alerts overlapping the day; one still open is measured
  until ``generated_at``. **Alerts** count those raised during the day (``starts_at`` in it).
* **Performance** per endpoint is the median, over the day's baselines, of their p50 and of their
  p95, compared with the same median of the previous day.
* **Drift** lists the stored findings active at any time during the day.
* Unknown figures are None and render as "n/a"; nothing divides by zero.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from umig_monitor.core.alerts import SEVERITIES, Alert
from umig_monitor.core.baselines import ENDPOINTS, Baseline, Quantile
from umig_monitor.core.deployments import DeploymentEvent, Summary
from umig_monitor.core.dora import summarize
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.history import event_to_record
from umig_monitor.core.status import alert_document
from umig_monitor.core.timeline import NO_DATA, STATES
from umig_monitor.core.tracking import HEALTH

TITLE = "UMIG Daily Status Report"
RECENT_ALERTS = 5
HOUR = timedelta(hours=1)
Source = Literal["samples", "rollup"]
_SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}


def previous_day(now: datetime, timezone: str) -> date:
    """The local day before ``now``'s: what the scheduled run reports on."""
    return now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


def hour_floor(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Period:
    """Local day ``day`` in ``timezone``, as UTC instants ``[start, end)``."""

    day: date
    timezone: str
    start: datetime
    end: datetime

    @classmethod
    def of(cls, day: date, timezone: str) -> Period:
        tz = ZoneInfo(timezone)
        start = datetime.combine(day, time(0), tz).astimezone(UTC)
        return cls(
            day, timezone, start, datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
        )

    def previous(self) -> Period:
        return Period.of(self.day - timedelta(days=1), self.timezone)

    def contains(self, ts: datetime) -> bool:
        return self.start <= ts < self.end

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(ZoneInfo(self.timezone))


@dataclass(frozen=True, slots=True)
class Counts:
    """Polls by outcome class; ``failed`` had no usable answer."""

    checks: int = 0
    healthy: int = 0
    degraded: int = 0
    unhealthy: int = 0
    failed: int = 0

    @classmethod
    def of(cls, samples: Iterable[HealthSample]) -> Counts:
        seen = Counter(s.outcome for s in samples)
        total = sum(seen.values())
        good, degraded, bad = seen[Outcome.HEALTHY], seen[Outcome.DEGRADED], seen[Outcome.UNHEALTHY]
        return cls(total, good, degraded, bad, total - good - degraded - bad)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.checks + other.checks,
            self.healthy + other.healthy,
            self.degraded + other.degraded,
            self.unhealthy + other.unhealthy,
            self.failed + other.failed,
        )

    @property
    def availability(self) -> float | None:
        """Polls that were healthy or degraded, over all polls; None without polls."""
        return (self.healthy + self.degraded) / self.checks if self.checks else None

    @property
    def state(self) -> str:
        """The worst outcome class among the polls (the status page's states), ``no_data`` without any."""
        return next((s for s in STATES if getattr(self, s)), NO_DATA)


@dataclass(frozen=True, slots=True)
class HourlyCounts:
    """An environment's polls during the UTC hour starting at ``hour``: a stored hourly rollup, or the
    raw samples of that hour inside the period, counted."""

    environment: str
    hour: datetime
    counts: Counts


@dataclass(frozen=True, slots=True)
class ReportEnvironment:
    name: str
    kind: str | None


@dataclass(frozen=True, slots=True)
class DriftFinding:
    type: str
    environment: str | None
    severity: str
    summary: str
    first_seen: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReportInputs:
    """Everything a report is built from. Data outside the period may be included: it is filtered
    (``hours`` by hour: their counts must already be of samples inside the period).

    * ``hours``: the period's raw samples counted per environment and UTC hour;
    * ``rollups``: the stored hourly rollups;
    * ``last_samples``: each environment's last raw sample of the period (of several given, the
      newest, and of equal stamps the one given last);
    * ``last_versioned``: likewise, of the samples that reported a version.
    """

    day: date
    timezone: str
    generated_at: datetime
    environments: Sequence[ReportEnvironment]
    hours: Sequence[HourlyCounts] = ()
    rollups: Sequence[HourlyCounts] = ()
    last_samples: Sequence[HealthSample] = ()
    last_versioned: Sequence[HealthSample] = ()
    events: Sequence[DeploymentEvent] = ()
    alerts: Sequence[Alert] = ()
    baselines: Sequence[Baseline] = ()  # the day's and the previous day's
    findings: Sequence[DriftFinding] = ()
    drift_enabled: bool = True


@dataclass(frozen=True, slots=True)
class EnvironmentStatus:
    """As of the end of the day; all None when the day has no raw sample of the environment."""

    name: str
    kind: str | None
    version: str | None
    health: str | None
    uptime: str | None
    last_check: datetime | None


@dataclass(frozen=True, slots=True)
class Segment:
    """The part of one UTC hour inside the period, and where its counts came from (None: no data)."""

    start: datetime
    end: datetime
    counts: Counts
    source: Source | None


@dataclass(frozen=True, slots=True)
class EnvironmentHealth:
    name: str
    counts: Counts
    segments: tuple[Segment, ...]
    rollup_hours: int  # segments counted from hourly rollups (raw samples pruned)
    hours_without_data: int


@dataclass(frozen=True, slots=True)
class Incident:
    environment: str | None
    type: str
    severity: str
    summary: str
    starts_at: datetime
    ends_at: datetime | None  # None: still open when the report was generated
    duration: timedelta  # until it ended, or until the report was generated
    in_period: timedelta


@dataclass(frozen=True, slots=True)
class EndpointFigures:
    """Medians of the day's and of the previous day's baselines; changes are relative (+0.05: +5 %)."""

    endpoint: str
    p50_ms: float | None
    p95_ms: float | None
    previous_p50_ms: float | None
    previous_p95_ms: float | None
    p50_change: float | None
    p95_change: float | None


@dataclass(frozen=True, slots=True)
class EnvironmentPerformance:
    name: str
    baselines: int
    previous_baselines: int
    versions: tuple[str, ...]
    endpoints: tuple[EndpointFigures, ...]


@dataclass(frozen=True, slots=True)
class AlertSummary:
    raised: int
    by_severity: Mapping[str, int]
    firing_at_end: int
    recent: tuple[Alert, ...]  # newest first


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    generated_at: datetime
    environments: tuple[EnvironmentStatus, ...]
    deployments: tuple[DeploymentEvent, ...]
    deployment_summary: Summary
    health: tuple[EnvironmentHealth, ...]
    total: Counts
    incidents: tuple[Incident, ...]
    performance: tuple[EnvironmentPerformance, ...]
    alerts: AlertSummary
    drift: tuple[DriftFinding, ...]
    drift_enabled: bool

    @property
    def title(self) -> str:
        return f"{TITLE} - {self.period.day.isoformat()}"

    @property
    def complete(self) -> bool:
        """False when generated before the day was over (the figures cover only part of it)."""
        return self.generated_at >= self.period.end


def make_report(inputs: ReportInputs) -> Report:
    p = Period.of(inputs.day, inputs.timezone)
    previous = p.previous()
    sampled, rolled = _by_hour(p, inputs.hours), _by_hour(p, inputs.rollups)
    last, versioned = _last(p, inputs.last_samples), _last(p, inputs.last_versioned, versioned=True)
    baselines = [b for b in inputs.baselines if previous.start <= b.ts < p.end]
    envs = list(inputs.environments)
    seen = set(sampled) | set(last) | set(rolled) | {b.environment for b in baselines}
    envs += [ReportEnvironment(name, None) for name in sorted(seen - {e.name for e in envs})]
    events = tuple(sorted((e for e in inputs.events if p.contains(e.ts)), key=lambda e: (e.ts, e.id)))
    health = tuple(_health(p, e.name, sampled.get(e.name, {}), rolled.get(e.name, {})) for e in envs)
    findings = (
        f
        for f in inputs.findings
        if (f.first_seen is None or f.first_seen < p.end)
        and (f.resolved_at is None or f.resolved_at >= p.start)
    )
    return Report(
        period=p,
        generated_at=inputs.generated_at,
        environments=tuple(_status(e, last.get(e.name), versioned.get(e.name)) for e in envs),
        deployments=events,
        deployment_summary=summarize(events),
        health=health,
        total=sum((h.counts for h in health), Counts()),
        incidents=_incidents(p, inputs.alerts, inputs.generated_at),
        performance=tuple(_performance(p, e.name, baselines) for e in envs),
        alerts=_alert_summary(p, inputs.alerts),
        drift=tuple(
            sorted(findings, key=lambda f: (_SEVERITY_RANK.get(f.severity, 9), f.environment or "", f.type))
        ),
        drift_enabled=inputs.drift_enabled,
    )


def _by_hour(p: Period, hours: Iterable[HourlyCounts]) -> dict[str, dict[datetime, Counts]]:
    """Environment -> UTC hour -> counts, of the hours that overlap the period."""
    first = hour_floor(p.start)
    out: dict[str, dict[datetime, Counts]] = {}
    for h in hours:
        if first <= h.hour < p.end:
            out.setdefault(h.environment, {})[h.hour] = h.counts
    return out


def _last(p: Period, samples: Iterable[HealthSample], *, versioned: bool = False) -> dict[str, HealthSample]:
    """Each environment's newest of ``samples`` inside the period (with ``versioned``, of those that
    reported a version); of equal stamps, the one given last."""
    out: dict[str, HealthSample] = {}
    for s in sorted((s for s in samples if p.contains(s.ts) and (s.version or not versioned)), key=_ts):
        out[s.environment] = s
    return out


def _status(
    env: ReportEnvironment, last: HealthSample | None, versioned: HealthSample | None
) -> EnvironmentStatus:
    version = versioned.version if versioned is not None else None
    if last is None:
        return EnvironmentStatus(env.name, env.kind, version, None, None, None)
    uptime = last.uptime_text if last.outcome.answered else None
    return EnvironmentStatus(env.name, env.kind, version, last.outcome.value, uptime, last.ts)


def _ts(sample: HealthSample) -> datetime:
    return sample.ts


def _health(
    p: Period, name: str, sampled: Mapping[datetime, Counts], rolled: Mapping[datetime, Counts]
) -> EnvironmentHealth:
    """``sampled`` and ``rolled``: the environment's raw samples' counts and its rollups, by UTC hour."""
    segments = []
    hour = hour_floor(p.start)
    while hour < p.end:
        raw = sampled.get(hour, Counts())
        rollup = rolled.get(hour) if p.start <= hour and hour + HOUR <= p.end else None
        source: Source | None = "samples" if raw.checks else None
        if rollup is not None and rollup.checks > raw.checks:
            raw, source = rollup, "rollup"
        segments.append(Segment(max(hour, p.start), min(hour + HOUR, p.end), raw, source))
        hour += HOUR
    return EnvironmentHealth(
        name,
        sum((s.counts for s in segments), Counts()),
        tuple(segments),
        rollup_hours=sum(1 for s in segments if s.source == "rollup"),
        hours_without_data=sum(1 for s in segments if s.source is None),
    )


def _incidents(p: Period, alerts: Iterable[Alert], generated_at: datetime) -> tuple[Incident, ...]:
    out = []
    for a in alerts:
        if a.key.split("/", 1)[0] != HEALTH or a.starts_at >= p.end:
            continue
        until = a.ends_at if a.ends_at is not None else max(generated_at, a.starts_at)
        if until <= p.start:
            continue
        in_period = max(min(until, p.end) - max(a.starts_at, p.start), timedelta(0))
        out.append(
            Incident(
                a.environment,
                a.type,
                a.severity,
                a.summary,
                a.starts_at,
                a.ends_at,
                until - a.starts_at,
                in_period,
            )
        )
    return tuple(sorted(out, key=lambda i: (i.starts_at, i.environment or "")))


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(statistics.median(present)) if present else None


def _change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None or before <= 0 else (now - before) / before


def _performance(p: Period, name: str, baselines: Sequence[Baseline]) -> EnvironmentPerformance:
    mine = [b for b in baselines if b.environment == name]
    day = sorted((b for b in mine if p.contains(b.ts)), key=lambda b: b.ts)
    before = [b for b in mine if b.ts < p.start]
    measured = {e for b in day for e in b.endpoints}
    names = [e for e in ENDPOINTS if e in measured] + sorted(measured - set(ENDPOINTS))

    def median(group: Sequence[Baseline], endpoint: str, q: Quantile) -> float | None:
        return _median(b.endpoints[endpoint].quantile(q) for b in group if endpoint in b.endpoints)

    figures = []
    for e in names:
        p50, p95, old50, old95 = (median(g, e, q) for g in (day, before) for q in ("p50", "p95"))
        figures.append(EndpointFigures(e, p50, p95, old50, old95, _change(p50, old50), _change(p95, old95)))
    versions = tuple(dict.fromkeys(b.version for b in day if b.version))
    return EnvironmentPerformance(name, len(day), len(before), versions, tuple(figures))


def _alert_summary(p: Period, alerts: Sequence[Alert]) -> AlertSummary:
    raised = sorted((a for a in alerts if p.contains(a.starts_at)), key=lambda a: (a.starts_at, a.id or 0))
    severities = Counter(a.severity for a in raised)
    order = list(SEVERITIES) + sorted(set(severities) - set(SEVERITIES))
    return AlertSummary(
        raised=len(raised),
        by_severity={s: severities[s] for s in order},
        firing_at_end=sum(
            1 for a in alerts if a.starts_at < p.end and (a.ends_at is None or a.ends_at > p.end)
        ),
        recent=tuple(reversed(raised[-RECENT_ALERTS:])),
    )


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON, shaped like the model (camelCase keys): UTC times with ``Z``, durations in
    seconds, ratios in [0, 1], null for what is unknown; deployment events as the history's records
    and alerts as the API shows them."""
    body = _plain(report)
    assert isinstance(body, dict)
    return {"title": report.title, "date": report.period.day.isoformat(), "complete": report.complete, **body}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: Any) -> Any:
    if isinstance(value, DeploymentEvent):
        return event_to_record(value)
    if isinstance(value, Alert):
        return alert_document(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Counts):
        return {**_fields(value), "availability": _plain(value.availability), "state": value.state}
    if is_dataclass(value) and not isinstance(value, type):
        return _fields(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _fields(value: Any) -> dict[str, Any]:
    return {_camel(f.name): _plain(getattr(value, f.name)) for f in fields(value)}


# The renderings for people live in ``core/report_html.py``; these delegate so that callers find the
# whole report API here. The import is at the bottom so that either module can be imported first.
def render_text(report: Report) -> str:
    """The plain-text report in the layout of the guide's daily-status-report.sh."""
    return _render.render_text(report)


def render_html(report: Report) -> str:
    """The HTML mail body: inline CSS, escaped values, an SVG health timeline per environment."""
    return _render.render_html(report)


from umig_monitor.core import report_html as _render  # noqa: E402
