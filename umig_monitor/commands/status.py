"""``status`` (the guide's environment-status-check) and ``check ENV`` (its emergency health check)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from umig_monitor.commands.common import local_time, open_store, print_json, print_table
from umig_monitor.config import Settings
from umig_monitor.core import certificates
from umig_monitor.core.assess import Thresholds, assess
from umig_monitor.core.status import iso
from umig_monitor.core.timetext import parse_timestamp
from umig_monitor.ops.views import environments_view
from umig_monitor.probes.client import fetch_json, make_session
from umig_monitor.probes.umig import probe_environment


async def environments(settings: Settings) -> dict[str, Any]:
    """The API's environments document, read from storage (the same view)."""
    async with open_store(settings) as store:
        return await environments_view(store, settings)


def _ago(iso: str | None, now: datetime, settings: Settings) -> str | None:
    if not iso:
        return None
    seconds = int((now - parse_timestamp(iso, naive_is_utc=True)).total_seconds())
    return f"{local_time(iso, settings)} ({seconds}s ago)"


async def status(settings: Settings, args: argparse.Namespace) -> int:
    data = await environments(settings)
    envs: dict[str, Any] = data["environments"]
    if args.json:
        print_json(data)
    else:
        now = datetime.now(UTC)
        rows = [
            (name, e["kind"], e["umigVersion"], e["health"], e["uptime"], _ago(e["lastCheck"], now, settings))
            for name, e in envs.items()
        ]
        print_table(("environment", "kind", "version", "health", "uptime", "last check"), rows)
    bad = [
        n
        for n, e in envs.items()
        if e["kind"] == "production" and (e["health"] != "healthy" or e["status"] == "incident")
    ]
    return 1 if bad else 0


async def check(settings: Settings, args: argparse.Namespace) -> int:
    env = settings.environments.get(args.environment)
    if env is None:
        raise SystemExit(
            f"unknown environment '{args.environment}' (known: {', '.join(settings.environments)})"
        )
    session = make_session(settings)
    try:
        docs, fetches = await probe_environment(session, env)
        extra = []
        if env.kind == "development":
            extra.append(await fetch_json(session, env, "/admin/dev-status"))
        teams = await fetch_json(session, env, "/teams")
    finally:
        await session.close()
    t = env.thresholds
    sample, checks = assess(
        args.environment,
        datetime.now(UTC),
        docs,
        Thresholds(t.error_rate, t.response_time_ms, t.db_connections),
    )
    expiry = sample.tls_cert_expiry
    cert_level = (
        certificates.level(expiry, sample.ts, t.certificate_warning, t.certificate_critical)
        if expiry is not None
        else None
    )
    endpoints = [
        *zip(("health", "version", "components"), fetches, strict=False),
        *(("dev-status", f) for f in extra),
        ("teams", teams),
    ]
    if args.json:
        print_json(
            {
                "environment": args.environment,
                "outcome": sample.outcome.value,
                "version": sample.version,
                "build": sample.build,
                "uptime": sample.uptime_text,
                "components": dict(sample.components),
                "checks": [c.describe() for c in checks],
                "endpoints": {
                    n: {"status": f.status, "ms": round(f.elapsed_ms, 1), "error": f.detail}
                    for n, f in endpoints
                },
                "error": sample.error,
                "tlsCertExpiry": iso(expiry),
                "tlsCertState": (cert_level or "ok") if expiry is not None else None,
            }
        )
    else:
        print(
            f"{args.environment}: {sample.outcome.value}  version {sample.version or '-'}  "
            f"build {sample.build or '-'}  uptime {sample.uptime_text or '-'}"
        )
        if expiry is not None:
            flag = f"  [{cert_level}]" if cert_level else ""
            print(f"certificate expires {certificates.expiry_text(expiry, sample.ts)}{flag}")
        print_table(
            ("endpoint", "http", "time ms", "result"),
            [(n, f.status, f"{f.elapsed_ms:.1f}", f.detail or "ok") for n, f in endpoints],
        )
        if sample.components:
            print()
            print_table(("component", "status"), sorted(sample.components.items()))
        for c in checks:
            print(f"check failed: {c.describe()}")
        if sample.error and not checks:
            print(f"error: {sample.error}")
    return 0 if sample.outcome.value == "healthy" else 1
