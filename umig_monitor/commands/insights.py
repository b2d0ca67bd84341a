"""``drift`` (the guide's version-drift-monitor) and ``baseline`` (its performance-baseline-monitor)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from umig_monitor.commands.common import (
    bus,
    open_store,
    print_json,
    print_table,
)
from umig_monitor.config import Settings
from umig_monitor.ops.drift import drift_view

MAX_SAMPLES = 1000  # as jobs.baseline.samples


async def drift(settings: Settings, args: argparse.Namespace) -> int:
    async with open_store(settings) as store:
        data = await drift_view(store, settings, datetime.now(UTC))
    findings_list: list[dict[str, Any]] = data["findings"]
    if args.json:
        print_json(data)
    else:
        print("=== Version Drift Detection ===")
        print_table(
            ("environment", "kind", "version", "version kind", "conforms", "components"),
            [
                (
                    r["environment"],
                    r["kind"],
                    r["version"],
                    r["version_kind"],
                    r["conforms"],
                    " ".join(f"{k}={v}" for k, v in sorted((r.get("components") or {}).items())),
                )
                for r in data["matrix"]
            ],
        )
        print()
        if findings_list:
            print_table(
                ("severity", "type", "environment", "finding"),
                [(f["severity"], f["type"], f["environment"], f["summary"]) for f in findings_list],
            )
        else:
            print("No version drift.")
    return 1 if any(f["severity"] != "info" for f in findings_list) else 0


async def baseline(settings: Settings, args: argparse.Namespace) -> int:
    """The guide's performance-baseline-monitor: measure now, store, compare and alert (the
    daemon's own baseline run, from this process: a regression mails "UMIG Performance Alert"
    through the configured routes), report."""
    from umig_monitor.core.baselines import summary_line
    from umig_monitor.ops.baselines import BaselineContext, run_baseline, stats_dict

    if args.environment not in settings.environments:
        raise SystemExit(
            f"unknown environment '{args.environment}' (known: {', '.join(settings.environments)})"
        )
    if args.samples is not None and not 1 <= args.samples <= MAX_SAMPLES:
        print(f"error: --samples must be between 1 and {MAX_SAMPLES}", file=sys.stderr)
        return 2
    samples = args.samples or settings.jobs.baseline.samples
    async with bus(settings, args.wait) as o:
        ctx = BaselineContext(settings, o.store, o.session, o.pipeline)
        run = await run_baseline(ctx, args.environment, samples=samples, expect_version=args.version)
    current, comparison = run.current, run.comparison
    if comparison is None:
        print(
            f"error: {args.environment} runs {current.version or 'an unknown version'}, not {args.version}",
            file=sys.stderr,
        )
        return 2
    regressions = comparison.regressions
    if args.json:
        print_json(
            {
                "environment": current.environment,
                "version": current.version,
                "timestamp": current.ts.isoformat(),
                "endpoints": stats_dict(current),
                "figures": dict(current.figures),
                "regressions": [summary_line(r) for r in regressions],
                "notes": list(comparison.notes),
                "alert": run.alert_key,
            }
        )
    else:
        print(
            f"Performance baseline for {current.version or 'unknown version'} in {current.environment} "
            f"({samples} samples per endpoint)"
        )
        print_table(
            ("endpoint", "samples", "errors", "p50 ms", "p95 ms", "max ms"),
            [
                (n, s.samples, s.errors, _ms(s.p50_ms), _ms(s.p95_ms), _ms(s.max_ms))
                for n, s in current.endpoints.items()
            ],
        )
        if current.figures:
            print(
                "figures reported by the health endpoint: "
                + ", ".join(f"{k}={v:g}" for k, v in sorted(current.figures.items()))
            )
        for note in comparison.notes:
            print(f"ℹ️ {note}")
        for reg in regressions:
            print(f"⚠️ regression: {summary_line(reg)}")
        if regressions:
            print(f"alert {run.alert_key} raised")
        else:
            print("✅ no regression against the references available")
    return 1 if regressions else 0


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"
