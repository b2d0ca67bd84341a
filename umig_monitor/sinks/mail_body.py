"""The text and HTML bodies of an alert mail. Pure. The HTML is self-contained (inline styles,
no images, scripts or remote resources) and every value in it is escaped, since summaries and
details quote what UMIG environments answered."""

from __future__ import annotations

from html import escape

from umig_monitor.core.alerts import Alert, AlertState, Notification
from umig_monitor.sinks.content import (
    DEPLOYMENT_EVENTS,
    details_lines,
    event_sentence,
    headline,
    rfc3339,
    status_word,
    title,
    version_of,
)

_COLORS = {"critical": "#d00000", "warning": "#d98c00", "info": "#439fe0"}
_RESOLVED_COLOR = "#2eb886"
_SIGNATURE = "Sent by umig-monitor."


def _facts(alert: Alert) -> list[tuple[str, str]]:
    facts = [("Environment", alert.environment or "-"), ("Severity", alert.severity)]
    version = version_of(alert)
    if version:
        facts.append(("Version", version))
    facts.append(("At" if alert.type in DEPLOYMENT_EVENTS else "Started", rfc3339(alert.starts_at)))
    if alert.state is AlertState.RESOLVED and alert.ends_at is not None:
        facts.append(("Resolved", rfc3339(alert.ends_at)))
    facts.append(("Alert", alert.type))
    return facts


def _safe_link(url: str | None) -> str | None:
    """Only http(s) links make it into a mail: a javascript: or data: URL never does."""
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return None


def render_text(notification: Notification) -> str:
    n = notification
    if n.text is not None:
        return n.text
    lines = [title(n), ""]
    for alert in n.alerts:
        lines.append(f"{status_word(alert, n.kind)}: {headline(alert.type)}")
        lines.append(f"  {event_sentence(alert)}")
        lines += [f"  {name}: {value}" for name, value in _facts(alert)]
        if alert.details:
            lines.append("  Details:")
            lines += [f"    {key}: {value}" for key, value in details_lines(alert.details)]
        if alert.labels:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
            lines.append(f"  Labels: {labels}")
        lines.append("")
    lines.append("-- ")
    link = _safe_link(n.external_url)
    lines.append(f"{_SIGNATURE} {link}" if link else _SIGNATURE)
    return "\n".join(lines) + "\n"


def _page(heading: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8">'
        f"<title>{escape(heading)}</title></head>\n"
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222">\n'
        f"{body}"
        "</body></html>\n"
    )


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;vertical-align:top">{escape(k)}</th>'
        f'<td style="padding:2px 0">{escape(v)}</td></tr>\n'
        for k, v in rows
    )
    return f'<table style="border-collapse:collapse">\n{cells}</table>\n'


def _alert_html(alert: Alert, notification: Notification) -> str:
    resolved = alert.state is AlertState.RESOLVED
    color = _RESOLVED_COLOR if resolved else _COLORS.get(alert.severity, "#439fe0")
    parts = [
        f'<div style="border-left:4px solid {color};padding:4px 12px;margin:12px 0">\n',
        f'<h3 style="margin:4px 0;color:{color}">'
        f"{escape(status_word(alert, notification.kind))}: {escape(headline(alert.type))}</h3>\n",
        f"<p>{escape(event_sentence(alert))}</p>\n",
        _table(_facts(alert)),
    ]
    if alert.details:
        parts.append('<h4 style="margin:8px 0 4px">Details</h4>\n')
        parts.append(_table(details_lines(alert.details)))
    if alert.labels:
        parts.append('<h4 style="margin:8px 0 4px">Labels</h4>\n')
        parts.append(_table(sorted(alert.labels.items())))
    parts.append("</div>\n")
    return "".join(parts)


def render_html(notification: Notification) -> str:
    n = notification
    if n.html is not None:
        return n.html  # the daily report renders its own (escaped) HTML
    heading = title(n)
    if n.text is not None:
        body = f'<pre style="font-family:Menlo,Consolas,monospace">{escape(n.text)}</pre>\n'
    else:
        body = "".join(_alert_html(alert, n) for alert in n.alerts)
    link = _safe_link(n.external_url)
    footer = (
        f'<p style="color:#777;font-size:12px">{_SIGNATURE[:-1]}: '
        f'<a href="{escape(link)}">{escape(link)}</a></p>\n'
        if link
        else f'<p style="color:#777;font-size:12px">{_SIGNATURE}</p>\n'
    )
    return _page(heading, f"<h2>{escape(heading)}</h2>\n{body}{footer}")
