"""The daily report rendered for people: the plain text in the guide's layout and the HTML mail body
with an SVG health timeline per environment. Both lay out the same sections, built once here.

The HTML is self-contained (inline styles, no scripts, images or remote resources), every value in it
is escaped (summaries quote what environments answered), and it is well-formed XML as well as HTML.
Pure; reach it through ``core.report``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING

from umig_monitor.core.page_style import STATE_COLORS  # the status page's colours, state for state
from umig_monitor.core.timeline import STATE_LABELS

if TYPE_CHECKING:
    from umig_monitor.core.report import Counts, EnvironmentHealth, Period, Report, Segment

NA = "n/a"
RULE = "=" * 34  # the guide's header rule
SEVERITY_COLORS = {"critical": "#d0312d", "warning": "#c27c00", "info": "#3b82c4"}
TIMELINE_WIDTH, BAR_HEIGHT = 480, 18


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    pipes: bool = False  # the guide's "name | version | health | uptime" lines, without a header


Block = Table | str  # a table, or a line of text


# -- formatting -----------------------------------------------------------------------------------


def percent(part: int, whole: int, digits: int = 1) -> str:
    """``98.4%``; never shows 100 or 0 unless it is exactly that; ``n/a`` for 0 of 0."""
    if whole <= 0:
        return NA
    value, step = 100 * part / whole, 10.0**-digits
    if 0 < part < whole:
        value = min(max(value, step), 100 - step)
    return f"{value:.{digits}f}%"


def availability_text(c: Counts) -> str:
    return percent(c.healthy + c.degraded, c.checks, 2)


def duration_text(span: timedelta) -> str:
    """The guide's uptime style: ``1d 2h 15m``, ``42m``, ``35s``."""
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    days, rest = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return " ".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)


def ms_text(value: float | None) -> str:
    return NA if value is None else f"{value:.0f} ms"


def change_text(value: float | None) -> str:
    return NA if value is None else f"{round(value * 100):+d}%"


def clock_text(p: Period, ts: datetime) -> str:
    """Local ``HH:MM`` inside the report's day, ``YYYY-MM-DD HH:MM`` outside it."""
    local = p.local(ts)
    return local.strftime("%H:%M") if local.date() == p.day else local.strftime("%Y-%m-%d %H:%M")


def _end_text(p: Period, ts: datetime) -> str:
    return "24:00" if ts == p.end else clock_text(p, ts)


def _many(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _na(value: str | None) -> str:
    return NA if value is None else value


# -- the sections ---------------------------------------------------------------------------------


def _header(r: Report) -> list[str]:
    p = r.period
    hours = round((p.end - p.start) / timedelta(hours=1))
    lines = [
        f"Period: {p.local(p.start):%Y-%m-%d %H:%M} to {p.local(p.end):%Y-%m-%d %H:%M} {p.timezone}"
        f" ({hours} hours)",
        f"Generated: {p.local(r.generated_at):%Y-%m-%d %H:%M} {p.timezone}",
    ]
    if not r.complete:
        lines.append("Note: generated before the day was over; the figures cover part of it only.")
    return lines


def _environments(r: Report) -> list[Block]:
    if not r.environments:
        return ["No environments configured."]
    rows = [
        (
            e.name,
            _na(e.version),
            _na(e.health),
            _na(e.uptime),
            f"last check {clock_text(r.period, e.last_check)}" if e.last_check else "no check this day",
        )
        for e in r.environments
    ]
    return [
        "As of the end of the day (the last health check of the day):",
        Table(("environment", "version", "health", "uptime", "last check"), rows, pipes=True),
    ]


def _deployments(r: Report) -> list[Block]:
    s = r.deployment_summary
    blocks: list[Block] = ["No deployments recorded for this day."]
    if r.deployments:
        rows = [
            (
                clock_text(r.period, e.ts),
                e.environment,
                _na(e.version or e.from_version),
                e.type.value,
                e.status,
            )
            for e in r.deployments
        ]
        blocks = [Table(("time", "environment", "version", "type", "status"), rows)]
    rate = percent(round(s.success_rate * 1000), 1000, 0) if s.success_rate is not None else None
    return [
        *blocks,
        f"Total deployments: {s.total}",
        f"Successful: {s.successful}",
        f"Failed: {s.failed}",
        f"Rollbacks: {s.rollbacks}",
        f"In progress: {s.in_progress}",
        f"Observed (unreported): {s.observed}",
        f"Success rate: {rate or 'n/a (nothing finished)'}",
    ]


def _health(r: Report) -> list[Block]:
    t = r.total
    if not t.checks:
        blocks: list[Block] = ["No health checks recorded for this day."]
    else:
        blocks = [
            f"Total health checks: {t.checks}",
            *(
                f"{label}: {n} ({percent(n, t.checks)})"
                for label, n in (
                    ("Healthy", t.healthy),
                    ("Degraded", t.degraded),
                    ("Unhealthy", t.unhealthy),
                    ("No answer", t.failed),
                )
            ),
            f"Availability: {availability_text(t)} (healthy or degraded checks / all checks)",
            "Per environment:",
            Table(
                (
                    "environment",
                    "checks",
                    "healthy",
                    "degraded",
                    "unhealthy",
                    "no answer",
                    "availability",
                    "notes",
                ),
                [
                    (
                        h.name,
                        *(str(n) for n in (h.counts.checks, h.counts.healthy, h.counts.degraded)),
                        *(str(n) for n in (h.counts.unhealthy, h.counts.failed)),
                        availability_text(h.counts),
                        _notes(h),
                    )
                    for h in r.health
                ],
            ),
        ]
    if not r.incidents:
        return [*blocks, "No incidents."]
    rows = [
        (
            _na(i.environment),
            i.type,
            i.severity,
            clock_text(r.period, i.starts_at),
            clock_text(r.period, i.ends_at) if i.ends_at else "still open",
            duration_text(i.duration)
            + (f" ({duration_text(i.in_period)} this day)" if i.in_period != i.duration else ""),
            i.summary,
        )
        for i in r.incidents
    ]
    return [
        *blocks,
        f"Incidents: {len(r.incidents)}",
        Table(("environment", "type", "severity", "started", "ended", "duration", "summary"), rows),
    ]


def _notes(h: EnvironmentHealth) -> str:
    notes = []
    if h.rollup_hours:
        notes.append(f"{h.rollup_hours}h from hourly rollups")
    if h.hours_without_data and h.counts.checks:
        notes.append(f"{h.hours_without_data}h without data")
    return ", ".join(notes) or ("no data" if not h.counts.checks else "")


def _performance(r: Report) -> list[Block]:
    if not any(e.baselines for e in r.performance):
        return ["No performance baselines recorded for this day."]
    blocks: list[Block] = ["Per endpoint: the median of the day's baselines, against the previous day's."]
    for e in r.performance:
        if not e.baselines:
            blocks.append(f"{e.name}: no baselines this day")
            continue
        versions = f" of {', '.join(e.versions)}" if e.versions else ""
        blocks.append(
            f"{e.name}: {_many(e.baselines, 'baseline')}{versions}; previous day: {e.previous_baselines}"
        )
        rows = [
            (
                f.endpoint,
                ms_text(f.p50_ms),
                ms_text(f.p95_ms),
                change_text(f.p50_change),
                change_text(f.p95_change),
            )
            for f in e.endpoints
        ]
        blocks.append(Table(("endpoint", "p50", "p95", "p50 change", "p95 change"), rows))
    return blocks


def _alerts(r: Report) -> list[Block]:
    a = r.alerts
    counts = ", ".join(f"{severity} {n}" for severity, n in a.by_severity.items())
    blocks: list[Block] = [
        f"Alerts raised this day: {a.raised} ({counts})" if a.raised else "No alerts raised this day."
    ]
    if a.firing_at_end:
        blocks.append(f"Still firing at the end of the day: {a.firing_at_end}")
    if a.recent:
        rows = [
            (
                clock_text(r.period, x.starts_at),
                x.severity,
                x.type,
                _na(x.environment),
                f"resolved {clock_text(r.period, x.ends_at)}" if x.ends_at else "firing",
                x.summary,
            )
            for x in a.recent
        ]
        blocks += [
            "Most recent:",
            Table(("time", "severity", "type", "environment", "state", "summary"), rows),
        ]
    return blocks


def _drift(r: Report) -> list[Block]:
    if not r.drift:
        if not r.drift_enabled:
            return ["Drift detection is disabled (jobs.drift.enabled); no findings recorded."]
        return ["No version drift findings active during this day."]
    rows = [
        (
            f.severity,
            f.type,
            _na(f.environment),
            clock_text(r.period, f.first_seen) if f.first_seen else NA,
            clock_text(r.period, f.resolved_at) if f.resolved_at else "still active",
            f.summary,
        )
        for f in r.drift
    ]
    return [Table(("severity", "type", "environment", "first seen", "resolved", "summary"), rows)]


def sections(r: Report) -> list[tuple[str, list[Block]]]:
    """The guide's sections in its order, then version drift."""
    return [
        ("Environment Status Summary", _environments(r)),
        ("Deployment Activity", _deployments(r)),
        ("Health Status Summary", _health(r)),
        ("Performance Summary", _performance(r)),
        ("Issues and Alerts", _alerts(r)),
        ("Version Drift", _drift(r)),
    ]


# -- text -----------------------------------------------------------------------------------------


def _text_table(table: Table) -> list[str]:
    cells = [table.headers, *table.rows] if not table.pipes else list(table.rows)
    if table.pipes:  # the guide's printf "%-12s | %-10s | %-8s | %s"
        minimum = (12, 10, 8)
        widths = [
            max([minimum[i] if i < 3 else 0] + [len(r[i]) for r in cells]) for i in range(len(cells[0]))
        ]
        return [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(len(table.headers))]
    head = "  ".join(h.upper().ljust(w) for h, w in zip(table.headers, widths, strict=True)).rstrip()
    return ["  " + head] + [
        "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table.rows
    ]


def render_text(report: Report) -> str:
    lines = [
        RULE,
        "UMIG Daily Status Report",
        f"Date: {report.period.day.isoformat()}",
        RULE,
        *_header(report),
    ]
    for heading, blocks in sections(report):
        lines += ["", f"{heading}:", "-" * (len(heading) + 1)]
        for i, block in enumerate(blocks):
            if isinstance(block, Table):
                lines += _text_table(block)
                # A table is set off from what follows it; a line before it introduces it.
                lines += [""] if i < len(blocks) - 1 and not block.pipes else []
            else:
                lines.append(block)
    return "\n".join(lines) + "\n"


# -- HTML -----------------------------------------------------------------------------------------

_H2 = "font-size:16px;margin:18px 0 4px;border-bottom:2px solid #dde2e8"
_CELL = "padding:3px 10px 3px 0;text-align:left;vertical-align:top;border-bottom:1px solid #dde2e8"


def _html_table(table: Table) -> str:
    head = "".join(f'<th style="{_CELL};color:#5d6878">{escape(h)}</th>' for h in table.headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td style="{_CELL}">{_cell(table, i, v)}</td>' for i, v in enumerate(row))
        + "</tr>\n"
        for row in table.rows
    )
    return f'<table style="border-collapse:collapse;margin:6px 0 10px">\n<tr>{head}</tr>\n{body}</table>\n'


def _cell(table: Table, index: int, value: str) -> str:
    color = SEVERITY_COLORS.get(value) if table.headers[index] == "severity" else None
    if color is None and table.headers[index] == "health":
        color = STATE_COLORS.get(value if value in STATE_COLORS else "failed") if value != NA else None
    text = escape(value)
    return f'<span style="color:{color};font-weight:bold">{text}</span>' if color else text


def _segment_title(p: Period, name: str, s: Segment) -> str:
    span = f"{name} {clock_text(p, s.start)}-{_end_text(p, s.end)}"
    c = s.counts
    if not c.checks:
        return f"{span}: no data"
    state = STATE_LABELS[c.state]
    detail = f"{c.healthy} healthy, {c.degraded} degraded, {c.unhealthy} unhealthy, {c.failed} no answer"
    source = " (hourly rollup)" if s.source == "rollup" else ""
    return f"{span}: {state}, {c.checks} checks ({detail}){source}"


def timeline_svg(p: Period, h: EnvironmentHealth) -> str:
    """One rect per segment (the part of a UTC hour inside the day), coloured by its worst poll, with a
    tooltip; hour labels every six local hours."""
    total, height = (p.end - p.start).total_seconds(), BAR_HEIGHT + 12

    def x(ts: datetime) -> float:
        return round((ts - p.start).total_seconds() / total * TIMELINE_WIDTH, 2)

    parts = [
        f'<svg width="{TIMELINE_WIDTH}" height="{height}" viewBox="0 0 {TIMELINE_WIDTH} {height}" role="img"'
        f' aria-label="{escape(f"{h.name} health, {p.day.isoformat()}")}">'
    ]
    for s in h.segments:
        parts.append(
            f'<rect x="{x(s.start)}" y="0" width="{round(x(s.end) - x(s.start), 2)}" height="{BAR_HEIGHT}"'
            f' fill="{STATE_COLORS[s.counts.state]}" stroke="#ffffff" stroke-width="0.5">'
            f"<title>{escape(_segment_title(p, h.name, s))}</title></rect>"
        )
        local = p.local(s.start)
        if local.minute == 0 and local.hour % 6 == 0:
            parts.append(
                f'<text x="{x(s.start) + 1}" y="{BAR_HEIGHT + 10}" font-size="9"'
                f' font-family="Arial,Helvetica,sans-serif" fill="#5d6878">{local:%H}</text>'
            )
    return "".join(parts) + "</svg>"


def _timelines(r: Report) -> str:
    rows = "".join(
        f'<tr><td style="{_CELL};border-bottom:0">{escape(h.name)}</td>'
        f'<td style="padding:3px 0">{timeline_svg(r.period, h)}</td></tr>\n'
        for h in r.health
    )
    legend = " ".join(
        f'<span style="display:inline-block;width:10px;height:10px;background:{color}"></span>'
        f" {escape(STATE_LABELS[state])}"
        for state, color in STATE_COLORS.items()
    )
    hours = f"{r.period.timezone}; each hour shows its worst check, hover for the counts"
    return (
        f'<table style="border-collapse:collapse;margin:6px 0">\n{rows}</table>\n'
        f'<p style="font-size:12px;color:#5d6878">{legend} ({escape(hours)})</p>\n'
    )


def render_html(report: Report) -> str:
    title = escape(report.title)
    body = [
        f'<h1 style="font-size:20px;margin:0 0 4px">{escape("UMIG Daily Status Report")}</h1>\n',
        f'<p style="margin:0 0 12px;color:#5d6878">Date: {escape(report.period.day.isoformat())}<br/>',
        "<br/>".join(escape(line) for line in _header(report)),
        "</p>\n",
    ]
    for heading, blocks in sections(report):
        body.append(f'<h2 style="{_H2}">{escape(heading)}</h2>\n')
        if heading == "Health Status Summary" and report.health:
            body.append(_timelines(report))
        for block in blocks:
            body.append(
                _html_table(block)
                if isinstance(block, Table)
                else f'<p style="margin:2px 0">{escape(block)}</p>\n'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
        f'<meta name="viewport" content="width=device-width"/><title>{title}</title></head>\n'
        '<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;font-size:14px;'
        'color:#1d2330;background:#ffffff">\n'
        + "".join(body)
        + '<p style="margin-top:18px;color:#5d6878;font-size:12px">Sent by umig-monitor.</p>\n'
        + "</body></html>\n"
    )
