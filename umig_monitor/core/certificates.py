"""TLS certificate expiry against an environment's two thresholds (Gatus' and Uptime Kuma's
certificate checks, blackbox_exporter's ``probe_ssl_earliest_cert_expiry`` rules). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

CERTIFICATE_EXPIRING = "certificate_expiring"
Level = Literal["warning", "critical"]
LEVELS: tuple[Level, ...] = ("warning", "critical")


def level(expiry: datetime, now: datetime, warning: timedelta, critical: timedelta) -> Level | None:
    """``critical`` within ``critical`` of the expiry (or past it), ``warning`` within ``warning``."""
    left = expiry - now
    if left <= critical:
        return "critical"
    if left <= warning:
        return "warning"
    return None


def remaining(expiry: datetime, now: datetime) -> str:
    """``in 6d 4h``, ``in 3h 20m``, or ``2d ago`` once expired: as an operator reads it."""
    seconds = int((expiry - now).total_seconds())
    past = seconds < 0
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days}d {hours}h" if hours else f"{days}d"
    elif hours:
        text = f"{hours}h {minutes}m" if minutes else f"{hours}h"
    else:
        text = f"{minutes}m"
    return f"{text} ago" if past else f"in {text}"


def expiry_text(expiry: datetime, now: datetime) -> str:
    """``2025-01-20 23:59 UTC (in 6d 4h)``"""
    return f"{expiry.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({remaining(expiry, now)})"
