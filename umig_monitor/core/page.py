"""The status page as one self-contained HTML document, rendered from plain data. Pure: no I/O, ``now``
and the display timezone are passed in. Inline CSS only (no scripts, no remote assets), and every value
is escaped: summaries, versions and errors quote what the environments answered."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from html import escape
from typing import Any
from urllib.parse import quote

from umig_monitor.core import certificates
from umig_monitor.core.alerts import Alert, AlertState
from umig_monitor.core.deployments import TERMINAL, DeploymentEvent, EventType
from umig_monitor.core.drift import Finding
from umig_monitor.core.page_style import CSS, STATE_COLORS
from umig_monitor.core.timeline import NO_DATA, STATE_LABELS, Span, healthy_share
from umig_monitor.core.timetext import parse_timestamp

_RANK = {"failed": 0, "unhealthy": 1, "degraded": 2, NO_DATA: 3, "healthy": 4}
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
_EVENT_STATES = {
    EventType.START: NO_DATA,
    EventType.SUCCESS: "healthy",
    EventType.OBSERVED: NO_DATA,
    EventType.FAILURE: "unhealthy",
    EventType.ROLLBACK: "degraded",
}
DASH = "—"
MIN_SPAN_WIDTH = 0.005  # of the bar: 7 minutes of 24 h, a few pixels even on a phone


@dataclass(frozen=True, slots=True)
class StatusPage:
    """Everything the page shows. ``environments`` holds the API's environment documents (the
    ``/api/v1/environments`` read model), keyed by name, in config order."""

    now: datetime
    tz: tzinfo
    window_start: datetime
    environments: Mapping[str, Mapping[str, Any]]
    timelines: Mapping[str, Sequence[Span]]
    findings: Sequence[Finding] = ()
    alerts: Sequence[Alert] = ()  # firing first, then recently resolved
    deployments: Sequence[DeploymentEvent] = ()  # newest first
    first_seen: Mapping[str, datetime] = field(default_factory=dict)  # drift finding key -> first seen
    silenced_by: Mapping[str, str] = field(default_factory=dict)  # alert key -> silence id
    refresh_seconds: int = 30
    version: str = ""


def health_state(health: str | None) -> str:
    """The colour class of an environment's last poll outcome."""
    if health in ("healthy", "degraded", "unhealthy"):
        return health
    return NO_DATA if health in (None, "unknown") else "failed"


# What a firing alert makes of its environment's colour: a critical one is red whatever the last
# poll said (production with critical checks failing is not "degraded").
_ALERT_STATES = {"critical": "unhealthy", "warning": "degraded"}


def _firing(page: StatusPage) -> list[Alert]:
    """Firing alerts that page someone (not silenced)."""
    return [a for a in page.alerts if a.state is AlertState.FIRING and a.key not in page.silenced_by]


def environment_state(name: str, doc: Mapping[str, Any], firing: Sequence[Alert]) -> str:
    """The worse of the last poll's outcome and the environment's firing alerts by severity."""
    states = [health_state(doc.get("health"))]
    states += [
        _ALERT_STATES[a.severity] for a in firing if a.environment == name and a.severity in _ALERT_STATES
    ]
    return min(states, key=_RANK.__getitem__)


def overall_state(environments: Mapping[str, Mapping[str, Any]], firing: Sequence[Alert] = ()) -> str:
    """The worst environment state; firing alerts of no environment count too."""
    states = [environment_state(name, doc, firing) for name, doc in environments.items()]
    states += [
        _ALERT_STATES[a.severity] for a in firing if a.environment is None and a.severity in _ALERT_STATES
    ]
    return min(states, key=_RANK.__getitem__, default=NO_DATA)


def ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _parse(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return parse_timestamp(value, naive_is_utc=True)
    except ValueError:
        return None


def _clock(ts: datetime, tz: tzinfo) -> str:
    return ts.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _time(value: object, page: StatusPage) -> str:
    """``<time>`` with the age as text and the absolute time as tooltip; unparseable text is shown as is."""
    ts = _parse(value)
    if ts is None:
        return escape(str(value)) if value else DASH
    return (
        f'<time datetime="{escape(ts.astimezone(UTC).isoformat())}" title="{escape(_clock(ts, page.tz))}">'
        f"{escape(ago(page.now - ts))}</time>"
    )


_CERT_STATES = {"ok": "healthy", "warning": "degraded", "critical": "unhealthy"}


def _certificate(doc: Mapping[str, Any], page: StatusPage) -> str:
    """When the environment's certificate expires: how long from now, the date as tooltip; a
    pill once it is within a threshold. A dash for plain HTTP or before a TLS connection."""
    expiry = _parse(doc.get("tlsCertExpiry")) if doc.get("tlsCertExpiry") else None
    if expiry is None:
        return DASH
    text = certificates.remaining(expiry, page.now)
    stamp = (
        f'<time datetime="{escape(expiry.astimezone(UTC).isoformat())}" '
        f'title="{escape(_clock(expiry, page.tz))}">{escape(text)}</time>'
    )
    state = str(doc.get("tlsCertState") or "ok")
    if state in ("warning", "critical"):
        return f"{_pill(state, _CERT_STATES[state])} {stamp}"
    return stamp


def _pill(text: str, state: str) -> str:
    return f'<span class="pill state-{state}">{escape(text)}</span>'


def _table(caption: str, headings: Sequence[str], rows: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>\n'
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headings)
    return (
        f'<div class="scroll"><table>\n<caption>{escape(caption)}</caption>\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table></div>\n"
    )


def _section(ident: str, heading: str, body: str) -> str:
    return f'<section aria-labelledby="{ident}">\n<h2 id="{ident}">{escape(heading)}</h2>\n{body}</section>\n'


# -- sections ---------------------------------------------------------------------------------------


def _headline(page: StatusPage) -> str:
    envs = page.environments
    if not envs:
        return "No environments configured"
    firing = _firing(page)
    problems = [
        f"{name} {doc.get('health') or 'unknown'}"
        for name, doc in envs.items()
        if health_state(doc.get("health")) != "healthy"
    ]
    if firing:
        by_severity = sorted({a.severity for a in firing}, key=lambda s: _SEVERITY_RANK.get(s, 9))
        counts = ", ".join(f"{sum(a.severity == s for a in firing)} {s}" for s in by_severity)
        problems.insert(0, f"{len(firing)} alert{'s' if len(firing) != 1 else ''} firing ({counts})")
    if not problems:
        return f"All {len(envs)} environments healthy" if len(envs) > 1 else "Healthy"
    return "Attention: " + ", ".join(problems)


def _figures(page: StatusPage) -> str:
    envs = page.environments
    healthy = sum(1 for doc in envs.values() if doc.get("health") == "healthy")
    firing = sum(1 for a in page.alerts if a.state is AlertState.FIRING)
    actionable = sum(1 for f in page.findings if f.severity != "info")
    last = page.deployments[0].ts if page.deployments else None
    items = [
        ("Environments healthy", f"{healthy} / {len(envs)}"),
        ("Alerts firing", str(firing)),
        ("Drift findings", f"{len(page.findings)}" + (f" ({actionable} to act on)" if actionable else "")),
    ]
    out = "".join(f"<li><strong>{escape(v)}</strong> {escape(k)}</li>" for k, v in items)
    out += f"<li><strong>{_time(last, page) if last else DASH}</strong> Last deployment event</li>"
    return f'<ul class="figures">{out}</ul>\n'


def _environment_row(name: str, doc: Mapping[str, Any], page: StatusPage) -> str:
    health = str(doc.get("health") or "unknown")
    state = environment_state(name, doc, _firing(page))
    version = escape(str(doc.get("umigVersion") or DASH))
    if doc.get("build"):
        version += f" <small>build {escape(str(doc['build']))}</small>"
    if doc.get("deployedAt"):
        deployed = _time(doc.get("deployedAt"), page)
    elif doc.get("firstSeen"):  # not a deployment time: when this monitor first saw the version
        deployed = f"<small>first seen</small> {_time(doc.get('firstSeen'), page)}"
    else:
        deployed = DASH
    if doc.get("deployedBy"):
        deployed += f" <small>by {escape(str(doc['deployedBy']))}</small>"
    checked = _time(doc.get("lastCheck"), page) if doc.get("lastCheck") else "not polled yet"
    if doc.get("error"):
        checked += f'<br><small class="error">{escape(str(doc["error"]))}</small>'
    status = str(doc.get("status") or DASH)
    kind = str(doc.get("kind") or "")
    kind = f" <small>{escape(kind)}</small>" if kind and kind != name else ""
    status_html = _pill(status, "unhealthy") if status == "incident" else escape(status)
    return (
        f'<tr data-environment="{escape(name)}"><th scope="row">{escape(name)}{kind}</th>'
        f'<td class="version">{version}</td>'
        f'<td class="health state-{state}">{_pill(health, state)}</td>'
        f"<td>{status_html}</td>"
        f'<td class="uptime">{escape(str(doc.get("uptime") or DASH))}</td>'
        f"<td>{deployed}</td><td>{checked}</td>"
        f'<td class="certificate">{_certificate(doc, page)}</td></tr>\n'
    )


def _environments(page: StatusPage) -> str:
    rows = [_environment_row(name, doc, page) for name, doc in page.environments.items()]
    table = _table(
        "Last poll of every environment",
        ("Environment", "Version", "Health", "Status", "Uptime", "Deployed", "Last check", "Certificate"),
        rows,
        "No environments configured.",
    )
    return _section("environments", "Environments", table)


def _span_title(name: str, span: Span, tz: tzinfo) -> str:
    when = f"{_clock(span.start, tz)} – {span.end.astimezone(tz).strftime('%H:%M')}"
    if not span.polls:
        return f"{name}: {when}: no data"
    counts = ", ".join(
        f"{n} {STATE_LABELS.get(s, s)}"
        for s, n in sorted(span.counts.items(), key=lambda i: _RANK[i[0]])
        if n
    )
    return f"{name}: {when}: {STATE_LABELS[span.state]} ({counts})"


def _layer(span: Span) -> int:
    """Drawing order: widened spans must not hide a worse neighbour."""
    return {NO_DATA: 0, "healthy": 1}.get(span.state, 2)


def timeline_svg(name: str, spans: Sequence[Span], start: datetime, end: datetime, tz: tzinfo) -> str:
    """One environment's bar: x in minutes since the window start, one ``<rect>`` per span with its
    ``<title>`` as tooltip; the SVG's own title summarises it for screen readers. A span with polls
    is drawn at least ``MIN_SPAN_WIDTH`` of the bar wide, over "no data" and problems over healthy
    ones, so that the two minutes of an incident that just started do not vanish in a day-wide bar."""
    width = max((end - start).total_seconds() / 60, 1.0)
    share = healthy_share(spans)
    summary = (
        f"{name}: " + (f"{share:.1%} of polls healthy" if share is not None else "no polls") + " in 24 h"
    )
    rects = []
    for span in sorted(spans, key=_layer):
        x = (span.start - start).total_seconds() / 60
        w = (span.end - span.start).total_seconds() / 60
        if span.state != NO_DATA and w < width * MIN_SPAN_WIDTH:
            w = width * MIN_SPAN_WIDTH
            x = max(min(x, width - w), 0.0)
        rects.append(
            f'<rect class="state-{span.state}" x="{x:.2f}" y="0" width="{w:.2f}" height="10">'
            f"<title>{escape(_span_title(name, span, tz))}</title></rect>"
        )
    return (
        f'<svg class="bar" viewBox="0 0 {width:.2f} 10" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(summary)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(summary)}</title>{''.join(rects)}</svg>"
    )


def _timelines(page: StatusPage) -> str:
    ticks = [page.window_start + (page.now - page.window_start) * i / 4 for i in range(5)]
    axis = "".join(f"<span>{escape(t.astimezone(page.tz).strftime('%H:%M'))}</span>" for t in ticks[:-1])
    axis = f'<div class="axis" aria-hidden="true">{axis}<span>now</span></div>'
    parts = []
    for name in page.environments:
        spans = page.timelines.get(name, ())
        share = healthy_share(spans)
        figure = f"{share:.1%} healthy" if share is not None else "no polls"
        polls = sum(s.polls for s in spans)
        parts.append(
            f'<div class="timeline" data-environment="{escape(name)}">'
            f'<h3>{escape(name)} <span class="muted">{escape(figure)} · {polls} polls</span></h3>'
            f"{timeline_svg(name, spans, page.window_start, page.now, page.tz)}{axis}</div>\n"
        )
    legend = "".join(
        f'<li><span class="swatch state-{s}"></span>{escape(label)}</li>' for s, label in STATE_LABELS.items()
    )
    zone = page.now.astimezone(page.tz).strftime("%Z")
    body = (
        f'<p class="muted">Worst outcome per 5 minutes (per hour once rolled up); times in {escape(zone)}. '
        "Hover a segment for its polls.</p>\n" + "".join(parts) + f'<ul class="legend">{legend}</ul>\n'
    )
    return _section("timeline", "Health, last 24 hours", body)


def _drift(page: StatusPage) -> str:
    if not page.findings:
        return _section("drift", "Version drift", '<p class="muted">No version drift.</p>\n')
    items = []
    for f in sorted(page.findings, key=lambda f: (_SEVERITY_RANK.get(f.severity, 9), f.environment or "")):
        seen = page.first_seen.get(f.key)
        since = f" <small>since {_time(seen, page)}</small>" if seen else ""
        items.append(
            f'<li class="severity-{escape(f.severity)}"><span class="sev">{escape(f.severity)}</span> '
            f"<strong>{escape(f.environment or 'all')}</strong> {escape(f.summary)}"
            f" <small>({escape(f.type)})</small>{since}</li>\n"
        )
    return _section("drift", "Version drift", f'<ul class="findings">\n{"".join(items)}</ul>\n')


def _alert_row(a: Alert, page: StatusPage) -> str:
    firing = a.state is AlertState.FIRING
    notes = []
    if firing and a.key in page.silenced_by:
        notes.append(f"silenced ({page.silenced_by[a.key]})")
    if a.acked_by:
        notes.append(f"acked by {a.acked_by}")
    ended = _time(a.ends_at, page) if a.ends_at else DASH
    note = f"<br><small>{escape('; '.join(notes))}</small>" if notes else ""
    return (
        f'<tr class="alert-{escape(a.state.value)}">'
        f"<td>{_pill(a.state.value, 'unhealthy' if firing else 'healthy')}</td>"
        f'<td class="severity-{escape(a.severity)}"><span class="sev">{escape(a.severity)}</span></td>'
        f"<td>{escape(a.environment or DASH)}</td><td>{escape(a.type)}</td>"
        f"<td>{escape(a.summary)}{note}</td><td>{_time(a.starts_at, page)}</td><td>{ended}</td></tr>\n"
    )


def _alerts(page: StatusPage) -> str:
    rows = [_alert_row(a, page) for a in page.alerts]
    table = _table(
        "Firing now, and resolved in the last 24 hours",
        ("State", "Severity", "Environment", "Alert", "Summary", "Started", "Resolved"),
        rows,
        "No alerts in the last 24 hours.",
    )
    return _section("alerts", "Alerts", table)


def _deployment_row(e: DeploymentEvent, page: StatusPage, finished: Collection[str]) -> str:
    """One event; a start shows whether its deployment is still in progress, and a version nobody
    reported is shown as observed, not as a success."""
    status, state = e.status, _EVENT_STATES.get(e.type, NO_DATA)
    if e.type is EventType.START:
        status = "started" if e.deployment_id in finished else "in progress"
        state = NO_DATA if e.deployment_id in finished else "degraded"
    elif e.type is EventType.OBSERVED:
        status = "observed, not reported"
    version = e.version or DASH
    if e.type is EventType.ROLLBACK:
        version = f"{e.from_version or e.version or '?'} → {e.to_version or '?'}"
    duration = f"{e.duration_seconds:.0f} s" if e.duration_seconds is not None else DASH
    return (
        f"<tr><td>{_time(e.ts, page)}</td><td>{escape(e.environment)}</td>"
        f"<td>{_pill(status, state)}</td>"
        f"<td>{escape(version)}</td><td>{escape(e.initiated_by or DASH)}</td><td>{escape(duration)}</td>"
        f"<td>{escape(e.error or '')}</td></tr>\n"
    )


def _deployments(page: StatusPage) -> str:
    finished = {e.deployment_id for e in page.deployments if e.type in TERMINAL}
    rows = [_deployment_row(e, page, finished) for e in page.deployments]
    table = _table(
        "Latest deployment events, newest first",
        ("When", "Environment", "Event", "Version", "By", "Duration", "Error"),
        rows,
        "No deployments recorded yet.",
    )
    return _section("deployments", "Recent deployments", table)


# -- the document -----------------------------------------------------------------------------------


def _favicon(state: str) -> str:
    """A dot in the overall state's colour, as a data: URL (no request, so no 404 in the console)."""
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'>"
        f"<circle cx='8' cy='8' r='7' fill='{STATE_COLORS[state]}'/></svg>"
    )
    return "data:image/svg+xml," + quote(svg, safe="")


def render(page: StatusPage) -> str:
    state = overall_state(page.environments, _firing(page))
    headline = _headline(page)
    generated = _clock(page.now, page.tz)
    generated_at = page.now.astimezone(UTC).isoformat(timespec="seconds")
    sections: list[Callable[[StatusPage], str]] = [
        _environments,
        _timelines,
        _drift,
        _alerts,
        _deployments,
    ]
    version = f"umig-monitor {page.version}".strip()
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="refresh" content="{int(page.refresh_seconds)}">\n'
        f"<title>UMIG status: {escape(headline)}</title>\n"
        f'<link rel="icon" href="{escape(_favicon(state))}">\n'
        f"<style>{CSS}</style></head>\n<body>\n"
        "<header><h1>UMIG status</h1>\n"
        f'<p class="overall state-{state}" role="status">{escape(headline)}</p>\n'
        f"{_figures(page)}</header>\n"
        "<main>\n" + "".join(render_section(page) for render_section in sections) + "</main>\n"
        f'<footer><p>Generated <time datetime="{escape(generated_at)}">'
        f"{escape(generated)}</time> by {escape(version)}; refreshes every "
        f"{int(page.refresh_seconds)} s. JSON: "
        '<a href="api/v1/environments">environments</a>, <a href="api/v1/alerts?active=true">alerts</a>, '
        '<a href="api/v1/drift">drift</a>, <a href="api/v1/deployments">deployments</a>, '
        '<a href="metrics">metrics</a>.</p></footer>\n'
        "</body></html>\n"
    )


def render_unavailable(reason: str, now: datetime) -> str:
    """The page when storage cannot be read: says so, and keeps refreshing until it can."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="refresh" content="30">\n'
        "<title>UMIG status: storage unavailable</title>\n"
        f'<link rel="icon" href="{escape(_favicon("failed"))}">\n'
        f"<style>{CSS}</style></head>\n<body>\n"
        "<header><h1>UMIG status</h1></header>\n<main>\n"
        '<p class="overall state-failed" role="alert">Storage unavailable</p>\n'
        f'<p>{escape(reason)}</p>\n<p class="muted">{escape(_clock(now, UTC))}; retrying every 30 s.</p>\n'
        "</main>\n</body></html>\n"
    )
