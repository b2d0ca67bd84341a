"""``alerts``, ``ack``, ``silence``, ``escalate`` (the guide's escalate-alert.sh) and ``notify-test``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import aiohttp

from umig_monitor.commands.common import (
    daemon_request,
    local_time,
    offline_pipeline,
    open_store,
    print_json,
    print_table,
)
from umig_monitor.config import Settings
from umig_monitor.core.alerts import Alert, AlertState, Notification, NotificationKind
from umig_monitor.core.status import alert_document, silence_document
from umig_monitor.core.timetext import parse_duration, parse_instant
from umig_monitor.pipeline.actions import ActionError, acknowledge, add_silence, escalate, resolve
from umig_monitor.sinks import build_sink


def _query(args: argparse.Namespace) -> str:
    parts = []
    if args.active:
        parts.append("active=true")
    for key in ("since", "environment", "type"):
        if getattr(args, key, None):
            parts.append(f"{key}={getattr(args, key)}")
    return "?" + "&".join(parts) if parts else ""


async def alerts(settings: Settings, args: argparse.Namespace) -> int:
    data = await daemon_request(settings, "GET", "/api/v1/alerts" + _query(args))
    if data is None:
        async with open_store(settings) as store:
            found = await store.list_alerts(
                state=AlertState.FIRING if args.active else None,
                environment=args.environment,
                type=args.type,
                since=_since(args.since),
            )
        data = {"alerts": [alert_document(a) for a in found]}
    if args.json:
        print_json(data)
        return 0
    rows = [
        (
            a["id"],
            a["state"],
            a["severity"],
            a["type"],
            a["environment"],
            local_time(a["startsAt"], settings),
            local_time(a["endsAt"], settings),
            "acked by " + a["ackedBy"]
            if a.get("ackedBy")
            else (f"silenced ({a['silencedBy']})" if a.get("silencedBy") else ""),
            a["summary"],
        )
        for a in data["alerts"]
    ]
    print_table(
        ("id", "state", "severity", "type", "environment", "started", "ended", "note", "summary"), rows
    )
    return 0


async def ack(settings: Settings, args: argparse.Namespace) -> int:
    data = await daemon_request(
        settings, "POST", f"/api/v1/alerts/{args.id}/ack", body={"by": args.by}, token=True
    )
    if data is None:
        async with open_store(settings) as store:
            alert, acked = await acknowledge(store, args.id, args.by, datetime.now(UTC))
        data = {"alert": alert_document(alert), "acknowledged": acked}
    first = data["alert"]
    if data.get("acknowledged", True):
        print(f"alert {args.id} acknowledged by {first['ackedBy']}")
        return 0
    print(f"alert {args.id} was already acknowledged by {first['ackedBy']} at {first['ackedAt']}")
    return 1


async def silence(settings: Settings, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.action == "add":
        if not args.duration:
            raise ActionError("--duration: required, e.g. --duration 2h (a silence must end)")
        body = {
            "matchers": args.matcher,
            "duration": args.duration,
            "author": args.author,
            "comment": args.comment,
        }
        data = await daemon_request(settings, "POST", "/api/v1/silences", body=body, token=True)
        if data is None:
            async with open_store(settings) as store:
                created = await add_silence(
                    store,
                    args.matcher,
                    now=now,
                    duration=parse_duration(args.duration),
                    author=args.author,
                    comment=args.comment,
                )
            data = {"silence": silence_document(created, now)}
        print(f"silence {data['silence']['id']} until {data['silence']['endsAt']}")
        return 0
    if args.action == "expire":
        data = await daemon_request(settings, "DELETE", f"/api/v1/silences/{args.id}", token=True)
        if data is None:
            async with open_store(settings) as store:
                if not await store.expire_silence(args.id, now):
                    raise ActionError(f"no active silence {args.id}")
        print(f"silence {args.id} expired")
        return 0
    data = await daemon_request(settings, "GET", "/api/v1/silences")
    if data is None:
        async with open_store(settings) as store:
            data = {"silences": [silence_document(s, now) for s in await store.list_silences(now)]}
    if args.json:
        print_json(data)
    else:
        print_table(
            ("id", "state", "matchers", "starts", "ends", "by", "comment"),
            [
                (
                    s["id"],
                    s["state"],
                    " ".join(s["matchers"]),
                    local_time(s["startsAt"], settings),
                    local_time(s["endsAt"], settings),
                    s["createdBy"],
                    s["comment"],
                )
                for s in data["silences"]
            ],
        )
    return 0


async def escalate_cmd(settings: Settings, args: argparse.Namespace) -> int:
    """A manual alert that fires until ``resolve``: through the daemon, or (no daemon) recorded and
    dispatched from here, delivered for up to ``--wait`` seconds; the daemon then carries on with
    its reminders and escalation."""
    body = {
        "type": args.type,
        "environment": args.environment,
        "severity": args.severity,
        "message": args.message,
    }
    data = await daemon_request(settings, "POST", "/api/v1/alerts", body=body, token=True)
    if data is not None:
        alert_id = data["alert"]["id"]
        print(f"escalated: alert {alert_id}, queued by the daemon; `umig-monitor resolve {alert_id}` ends it")
        return 0
    async with offline_pipeline(settings, args.wait, dispatch=True) as off:
        alert = await escalate(
            off.store,
            off.pipeline,
            args.type,
            args.environment,
            args.severity,
            args.message,
            now=datetime.now(UTC),
            known_environments=list(settings.environments),
        )
    async with open_store(settings) as store:
        deliveries = await store.list_deliveries(alert_id=alert.id)
    print(f"escalated: alert {alert.id}; `umig-monitor resolve {alert.id}` ends it")
    for d in deliveries:
        print(f"  {d.sink}: {d.status}{' - ' + d.last_error if d.last_error else ''}")
    return 0 if deliveries and all(d.status == "sent" for d in deliveries) else 1


async def resolve_cmd(settings: Settings, args: argparse.Namespace) -> int:
    """End a manual alert; its routes send the resolved notice."""
    data = await daemon_request(settings, "POST", f"/api/v1/alerts/{args.id}/resolve", body={}, token=True)
    if data is not None:
        print(f"resolved: alert {args.id}")
        return 0
    async with offline_pipeline(settings, args.wait, dispatch=True) as off:
        alert = await resolve(off.store, off.pipeline, args.id, datetime.now(UTC))
    print(f"resolved: alert {alert.id}")
    return 0


async def notify_test(settings: Settings, args: argparse.Namespace) -> int:
    names = [args.sink] if args.sink else list(settings.sinks)
    unknown = [n for n in names if n not in settings.sinks]
    if unknown:
        raise ActionError(f"unknown sink '{unknown[0]}' (known: {', '.join(settings.sinks) or 'none'})")
    now = datetime.now(UTC)
    alert = Alert(
        "notify_test/-/",
        "notify_test",
        None,
        "info",
        AlertState.FIRING,
        "umig-monitor test notification: if you can read this, the sink works",
        now,
    )
    failures = 0
    async with aiohttp.ClientSession() as session:
        for name in names:
            sink = build_sink(name, settings.sinks[name], session)
            note = Notification(
                f"test-{name}-{now.timestamp():.0f}",
                NotificationKind.TEST,
                name,
                (alert,),
                now,
                title="umig-monitor test notification",
            )
            result = await sink.send(note)
            failures += not result.ok
            state = "ok" if result.ok else ("failed (retryable)" if result.retryable else "failed")
            print(f"{name}: {state}: {result.detail}")
    return 1 if failures else 0


def _since(value: str | None) -> datetime | None:
    """``--since``: ``24h``-style, back from now, or an ISO timestamp with an offset."""
    if not value:
        return None
    try:
        return parse_instant(value, datetime.now(UTC))
    except ValueError as exc:
        raise ActionError(f"--since: {exc}") from None
