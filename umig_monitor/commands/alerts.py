"""``alerts``, ``ack``, ``silence``, ``escalate`` (the guide's escalate-alert.sh), ``resolve`` and
``notify-test``: on storage, the bus the daemon reads too (``commands.common.bus``)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import aiohttp

from umig_monitor.commands.common import Bus, bus, local_time, open_store, print_json, print_table
from umig_monitor.config import Settings
from umig_monitor.core.alerts import Alert, AlertState, Notification, NotificationKind
from umig_monitor.core.timetext import parse_duration, parse_instant
from umig_monitor.ops.alerts import alerts_view, silences_view
from umig_monitor.pipeline.actions import ActionError, acknowledge, add_silence, escalate, resolve
from umig_monitor.sinks import build_sink


async def alerts(settings: Settings, args: argparse.Namespace) -> int:
    async with open_store(settings) as store:
        data = await alerts_view(
            store,
            settings,
            datetime.now(UTC),
            state=AlertState.FIRING if args.active else None,
            environment=args.environment,
            type=args.type,
            since=_since(args.since),
        )
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
    async with open_store(settings) as store:
        alert, acked = await acknowledge(store, args.id, args.by, datetime.now(UTC))
    if acked:
        print(f"alert {args.id} acknowledged by {alert.acked_by}")
        return 0
    print(
        f"alert {args.id} was already acknowledged by {alert.acked_by} "
        f"at {local_time(alert.acked_at, settings)}"
    )
    return 1


async def silence(settings: Settings, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    if args.action == "add":
        if not args.duration:
            raise ActionError("--duration: required, e.g. --duration 2h (a silence must end)")
        async with open_store(settings) as store:
            created = await add_silence(
                store,
                args.matcher,
                now=now,
                duration=parse_duration(args.duration),
                author=args.author,
                comment=args.comment,
            )
        print(f"silence {created.id} until {local_time(created.ends_at, settings)}")
        return 0
    if args.action == "expire":
        if not args.id:
            raise ActionError("id: which silence to expire (silence list shows them)")
        async with open_store(settings) as store:
            if not await store.expire_silence(args.id, now):
                raise ActionError(f"id: no active silence {args.id}")
        print(f"silence {args.id} expired")
        return 0
    async with open_store(settings) as store:
        data = await silences_view(store, settings, now)
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
    """A manual alert that fires until ``resolve``, recorded in storage; the leading daemon sends
    it (with its repeats and escalation), or, with none, this command routes and delivers it for
    up to ``--wait`` seconds."""
    async with bus(settings, args.wait) as b:
        alert = await escalate(
            b.store,
            b.pipeline,
            args.type,
            args.environment,
            args.severity,
            args.message,
            now=datetime.now(UTC),
            known_environments=list(settings.environments),
        )
    return await _report_delivery(
        settings, b, alert.id, f"escalated: alert {alert.id}; `umig-monitor resolve {alert.id}` ends it"
    )


async def resolve_cmd(settings: Settings, args: argparse.Namespace) -> int:
    """End a manual alert; its routes send the resolved notice."""
    async with bus(settings, args.wait) as b:
        alert = await resolve(b.store, b.pipeline, args.id, datetime.now(UTC))
    return await _report_delivery(settings, b, alert.id, f"resolved: alert {alert.id}")


async def _report_delivery(settings: Settings, b: Bus, alert_id: int | None, headline: str) -> int:
    """What was sent: queued for the leading daemon, or this command's own deliveries."""
    print(headline)
    if b.leader is not None:
        print(f"  queued: the running daemon ({b.leader}) sends it")
        return 0
    async with open_store(settings) as store:
        deliveries = await store.list_deliveries(alert_id=alert_id)
    for d in deliveries:
        print(f"  {d.sink}: {d.status}{' - ' + d.last_error if d.last_error else ''}")
    return 0 if all(d.status == "sent" for d in deliveries) else 1


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
