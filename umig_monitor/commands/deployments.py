"""``deploy-event``, ``watch-deploy``, ``history``, ``import-history`` and ``dora``: the guide's
log-deployment-event, deployment-status-monitor and query-deployment-history, against the daemon's
API when it runs and against storage directly when it does not."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from umig_monitor.commands.common import (
    bus,
    leader_alive,
    local_time,
    open_store,
    print_json,
    print_table,
)
from umig_monitor.config import Settings
from umig_monitor.core.deployments import EventError
from umig_monitor.core.history import event_to_record, parse_history
from umig_monitor.core.timetext import parse_duration
from umig_monitor.ops.deployments import DeploymentRecorder, Recorded, parse_event_type
from umig_monitor.ops.deployments import history as ops_history
from umig_monitor.ops.views import dora_figures
from umig_monitor.ops.watches import look, start_watch
from umig_monitor.pipeline.actions import ActionError


def _meta(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EventError("meta", f"expected key=value, got '{pair}'")
        out[key] = value
    return out


async def deploy_event(settings: Settings, args: argparse.Namespace) -> int:
    """Record an event in storage, as the API does (the same recorder); the leading daemon sends
    its notifications, or, with none, this command does."""
    async with bus(settings) as b:
        recorder = DeploymentRecorder(b.store, b.pipeline, settings)
        event, recorded = await recorder.record(
            parse_event_type(args.event),
            args.env,
            datetime.now(UTC),
            version=args.version,
            to_version=args.to_version,
            deployment_id=args.id,
            initiated_by=args.initiated_by,
            duration=args.duration,
            error=args.error,
            metadata=_meta(args.meta),
        )
    if recorded is not Recorded.CREATED:
        print(f"{event.id}: already recorded ({recorded.value})", file=sys.stderr)
    print(event.deployment_id if args.print == "deployment" else event.id)
    return 0


async def watch_deploy(settings: Settings, args: argparse.Namespace) -> int:
    """The watch is stored; the leading daemon runs it (it resumes after a restart) and this
    command follows it, printing each look. With no daemon leading, this command looks itself."""
    deployment_id = args.id or f"watch-{args.env}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    timeout = parse_duration(args.timeout) if args.timeout else settings.deployments.watch_timeout
    if args.env not in settings.environments:
        raise EventError("environment", f"unknown environment '{args.env}'")
    print(
        f"Monitoring deployment: {deployment_id}\nExpected version: {args.version}\n"
        f"Timeout: {int(timeout.total_seconds())}s",
        flush=True,
    )
    async with bus(settings) as b:
        recorder = DeploymentRecorder(b.store, b.pipeline, settings)
        w = await start_watch(b.store, deployment_id, args.env, args.version, timeout, datetime.now(UTC))
        looks = 0
        interval = settings.deployments.watch_interval.total_seconds()
        while w.state == "watching":
            if b.leader is not None and await leader_alive(b.store, settings, datetime.now(UTC)) is not None:
                await asyncio.sleep(min(1.0, interval))
                w = await b.store.get_watch(deployment_id) or w
            else:
                w = await look(recorder, b.session, w)
                if w.state == "watching":
                    await asyncio.sleep(interval)
            if w.state == "watching" and int(w.result.get("looks", 0)) != looks:
                looks = int(w.result.get("looks", 0))
                print(f"⏳ {w.result.get('progress')}", flush=True)  # every look, as the guide's loop did
    return _verdict({"state": w.state, **w.result}, args.version)


def _verdict(watch: dict[str, Any], version: str) -> int:
    """The guide's last lines; plus what was recorded, since a watch records only a deployment
    that exists."""
    message = str(watch.get("progress", ""))
    recorded = watch.get("recordedDeployment")
    if watch.get("state") == "verified":
        head = (
            f"Deployment successful: version {version} confirmed"
            if recorded
            else f"Version {version} answers"
        )
        print(f"✅ {head}\n✅ {message}")
        if recorded:
            print(f"recorded: success of deployment {recorded}")
        return 0
    print(f"❌ {message}")
    if recorded:
        print(f"recorded: failure of deployment {recorded}")
    return 1


async def history(settings: Settings, args: argparse.Namespace) -> int:
    if args.days_arg is not None and args.days is not None and args.days_arg != args.days:
        raise ActionError(f"days: given twice ({args.days_arg:g} and --days {args.days:g})")
    args.days = args.days_arg if args.days_arg is not None else (args.days if args.days is not None else 30.0)
    if not 0 < args.days <= 36500:
        raise ActionError(f"days: between 0 and 36500, got {args.days:g}")
    since = datetime.now(UTC) - timedelta(days=args.days)
    async with open_store(settings) as store:
        window = await ops_history(
            store, environment=args.environment, since=since, newest_first=args.export is None
        )
    events, s = window.events, window.summary
    if args.export == "jsonl":
        for event in events:
            sys.stdout.write(json.dumps(event_to_record(event)) + "\n")
        return 0
    summary = s.to_record()
    if args.json:
        print_json({"events": [event_to_record(e) for e in events], "summary": summary})
        return 0
    print(f"=== Deployment History - Last {args.days:g} days ===\nEnvironment: {args.environment or 'All'}")
    print_table(
        ("timestamp", "environment", "version", "type", "status"),
        [
            (
                local_time(e.ts, settings),
                e.environment,
                f"{e.from_version or e.version} -> {e.to_version}" if e.to_version else e.version,
                e.type.value,
                e.status,
            )
            for e in events
        ],
    )
    rate = f"{s.success_rate * 100:.0f}%" if s.success_rate is not None else "n/a (nothing finished)"
    print(
        f"\n=== Summary ===\nTotal deployments: {s.total}\nSuccessful: {s.successful}\nFailed: {s.failed}\n"
        f"Rollbacks: {s.rollbacks}\nIn progress: {s.in_progress}\nObserved (unreported): {s.observed}\n"
        f"Success rate: {rate}"
    )
    return 0


async def import_history(settings: Settings, args: argparse.Namespace) -> int:
    try:
        text = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
    except OSError as exc:
        raise ActionError(f"{args.file}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ActionError(f"{args.file}: not UTF-8 text") from None
    events, errors = parse_history(text.splitlines(), list(settings.environments))
    async with open_store(settings) as store:
        new = await store.add_deployment_events(events, datetime.now(UTC), history=True)
    for line, message in errors:
        print(f"{args.file}:{line}: skipped: {message}", file=sys.stderr)
    print(
        f"imported {new} new event(s), {len(events) - new} already known, "
        + f"{len(errors)} malformed line(s) skipped"
    )
    return 0


async def dora_cmd(settings: Settings, args: argparse.Namespace) -> int:
    async with open_store(settings) as store:
        data = await dora_figures(store, settings, args.days)
    if args.json:
        print_json(data)
        return 0

    def hours(seconds: float | None) -> str | None:
        return None if seconds is None else f"{seconds / 3600:.1f}h"

    rows = []
    for name, d in data["environments"].items():
        cfr = d["change_failure_rate"]
        rows.append(
            (
                name,
                d["deployments"],
                f"{d['deployment_frequency_per_day']:.2f}/day",
                None if cfr is None else f"{cfr * 100:.0f}%",
                hours(d["time_to_restore_median_s"]),
                hours(d["lead_time_median_s"]),
            )
        )
    print(f"DORA figures over the last {args.days:g} days")
    print_table(
        (
            "environment",
            "deployments",
            "frequency",
            "change failure rate",
            "time to restore (median)",
            "lead time (median)",
        ),
        rows,
    )
    return 0
