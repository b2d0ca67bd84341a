"""``drift`` (the guide's version-drift-monitor) and ``baseline`` (its performance-baseline-monitor)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from umig_monitor.commands.common import daemon_request, open_store, print_json, print_table
from umig_monitor.config import Settings
from umig_monitor.jobs.drift import drift_report, finding_document


async def drift(settings: Settings, args: argparse.Namespace) -> int:
    data = await daemon_request(settings, "GET", "/api/v1/drift")
    if data is None:
        async with open_store(settings) as store:
            matrix, findings = await drift_report(store, settings, datetime.now(UTC))
        data = {"matrix": matrix, "findings": [finding_document(f) for f in findings]}
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
