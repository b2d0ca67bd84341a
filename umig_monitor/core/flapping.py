"""Version flapping: when an environment's version changes so often that announcing each change
(one ``deployment_observed`` notice per poll) is noise. Pure; the health job keeps the state in its
tracker and calls ``step`` on every poll, changed or not.

* Up to ``FlapPolicy.changes`` changes within ``window`` are announced one by one: a deployment,
  a quick fix and a rollback are each worth a notice.
* The change that goes past that starts flapping: no more announcements; one notice now with the
  changes of the last window, then at most one per window with the changes folded since the last
  notice. A window's notice goes out on the first poll after the window ends, changed or not.
* A whole window without a change ends flapping (and its count starts again), without a notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from umig_monitor.core.alerts import Alert, AlertState, Severity, alert_key

FLAPPING = "version_flapping"


@dataclass(frozen=True, slots=True)
class FlapPolicy:
    window: timedelta = timedelta(minutes=10)
    changes: int = 3  # announced one by one within a window; the next one is flapping


@dataclass(frozen=True, slots=True)
class Flap:
    """One environment's recent version changes."""

    recent: tuple[datetime, ...] = ()  # not flapping: changes within the last window, oldest first
    since: datetime | None = None  # flapping: when the current notice window began
    folded: int = 0  # changes since the last notice, not announced
    total: int = 0  # changes since flapping began
    started: datetime | None = None  # when flapping began


@dataclass(frozen=True, slots=True)
class FlapNotice:
    """One notice for a window of flapping: ``changes`` from ``start`` to ``end``."""

    changes: int
    start: datetime
    end: datetime
    total: int  # since flapping began at ``began``
    began: datetime
    first: bool  # the notice that flapping started


@dataclass(frozen=True, slots=True)
class FlapDecision:
    announce: bool = False  # this poll's change is announced on its own
    notice: FlapNotice | None = None


def step(flap: Flap, changed: bool, now: datetime, policy: FlapPolicy) -> tuple[Flap, FlapDecision]:
    """One poll: ``changed`` when it saw a new version (not the first sighting)."""
    if flap.since is None or flap.started is None:
        recent = tuple(t for t in flap.recent if now - t < policy.window) + ((now,) if changed else ())
        if not changed:
            return Flap(recent), FlapDecision()
        if len(recent) <= policy.changes:
            return Flap(recent), FlapDecision(announce=True)
        began = recent[0]
        notice = FlapNotice(len(recent), began, now, len(recent), began, first=True)
        return Flap(since=now, total=len(recent), started=began), FlapDecision(notice=notice)
    # Flapping: only the counts matter (``recent`` would grow with every poll).
    folded = flap.folded + (1 if changed else 0)
    total = flap.total + (1 if changed else 0)
    if now - flap.since < policy.window:
        return Flap((), flap.since, folded, total, flap.started), FlapDecision()
    if folded == 0:  # a whole window without a change: no longer flapping
        return Flap(), FlapDecision()
    notice = FlapNotice(folded, flap.since, now, total, flap.started, first=False)
    return Flap(since=now, total=total, started=flap.started), FlapDecision(notice=notice)


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def notice_alert(
    environment: str, kind: str, notice: FlapNotice, version: str | None, labels: dict[str, str]
) -> Alert:
    """The one-off notice for a window of flapping (info in development, else warning)."""
    severity: Severity = "info" if kind == "development" else "warning"
    span = _duration(notice.end - notice.start)
    if notice.first:
        summary = f"{environment}: version flapping, {notice.changes} changes in {span}"
    else:
        summary = (
            f"{environment}: still flapping, {notice.changes} more version changes in {span} "
            f"({notice.total} since {notice.began.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')})"
        )
    if version:
        summary += f", now {version}"
    return Alert(
        key=alert_key(FLAPPING, environment, notice.start.strftime("%Y%m%dT%H%M%S.%f")),
        type=FLAPPING,
        environment=environment,
        severity=severity,
        state=AlertState.FIRING,
        summary=summary,
        starts_at=notice.start,
        details={
            "changes": notice.changes,
            "since": notice.start.isoformat(),
            "total": notice.total,
            "flapping_since": notice.began.isoformat(),
            **({"version": version} if version else {}),
        },
        labels={**labels, "kind": kind},
    )
