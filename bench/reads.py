"""Read-path benchmark (issue 18): the CPU time of the reads behind ``GET /api/v1/environments`` and
``GET /``, over a database the size of a busy installation.

    python bench/reads.py                        # 1 M samples over 1,000 environments, temporary SQLite
    python bench/reads.py --db /tmp/reads.db     # keep the database; reruns with the same plan reuse it
    python bench/reads.py --samples 200000 --environments 200 --runs 5
    python bench/reads.py --url postgresql://user@host/db   # an empty (or earlier bench) database

Data, from a fixed seed: ``--samples`` health samples spread evenly over ``--environments``
environments, one every 30 s up to now (1,000 each: the last 8 h 20 min), written through
``Store.add_health_samples``; the finished hours rolled up, as the retention job does; per
environment 5 deployments (start and success) over the last 30 days; 5 % of the environments with a
firing health alert and 10 resolved alerts per 20 environments.

Figures, CPU seconds of this process (``time.process_time``: the database work of SQLite counts,
PostgreSQL's server side does not), the median of ``--runs`` after one warm-up:
``Store.latest_health_samples``, ``ops.views.environments_view`` (the API's document) and the status
page (``web.page.gather_page`` then ``core.page.render``). Only calls that exist in earlier versions
too are made, so the same script measures the code before a change (``PYTHONPATH=<old tree>``).
It prints figures and asserts nothing. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from umig_monitor.config import Settings, parse_config
from umig_monitor.core.alerts import AlertEvent
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.page import render
from umig_monitor.logs import configure_logging
from umig_monitor.ops.views import environments_view
from umig_monitor.storage import Store
from umig_monitor.web.page import gather_page

INTERVAL: Final = timedelta(seconds=30)
BATCH: Final = 20_000
SEED: Final = 18  # issue 18
MARKER_KEY: Final = "bench_reads"
OUTCOMES: Final = (Outcome.HEALTHY,) * 96 + (
    Outcome.DEGRADED,
    Outcome.DEGRADED,
    Outcome.TIMEOUT,
    Outcome.UNREACHABLE,
)


def progress(message: str) -> None:
    print(f"[reads] {message}", file=sys.stderr, flush=True)


def names(environments: int) -> list[str]:
    return [f"env-{i:05d}" for i in range(environments)]


def settings_for(url: str, environments: int) -> Settings:
    lines = ["daemon:", f"  storage: {url}", "  timezone: UTC", "environments:"]
    for i, name in enumerate(names(environments)):
        kind = (
            ("development", "uat", "production", "hotfix")[i % 4] if i >= 4 else ("production", "uat")[i % 2]
        )
        lines.append(f'  {name}: {{base_url: "http://127.0.0.1:9/{name}", kind: {kind}}}')
    return parse_config("\n".join(lines) + "\n", "bench/reads.py")


async def fill(store: Store, samples: int, environments: int, now: datetime) -> None:
    rng = random.Random(SEED)
    envs = names(environments)
    per_env = samples // environments
    first = now - INTERVAL * per_env
    started = time.perf_counter()
    batch: list[HealthSample] = []
    for step in range(per_env):
        ts = first + INTERVAL * step
        for i, env in enumerate(envs):
            outcome = rng.choice(OUTCOMES)
            answered = outcome.answered
            batch.append(
                HealthSample(
                    environment=env,
                    ts=ts,
                    outcome=outcome,
                    umig_status=outcome.value if answered else None,
                    version=f"1.{i % 7}.{step // 400}" if answered else None,
                    build=f"ci.{1000 + step // 400}" if answered else None,
                    uptime_seconds=step * 30 if answered else None,
                    response_ms=rng.uniform(5, 80) if answered else None,
                    components={"database": "healthy", "api": outcome.value} if answered else {},
                    component_versions={"database": "031", "api": "2.3.1"} if answered else {},
                    error=None if answered else "connection refused",
                )
            )
            if len(batch) >= BATCH:
                await store.add_health_samples(batch)
                batch = []
        if step % 100 == 0:
            progress(f"samples: {step * environments:,} of {per_env * environments:,}")
    await store.add_health_samples(batch)
    progress(f"samples written in {time.perf_counter() - started:.0f} s; rolling up finished hours")
    await store.rollup_health(now)
    events = []
    for env in envs:
        for d in range(5):
            at = now - timedelta(days=30) + timedelta(days=6 * d, minutes=rng.randrange(600))
            deployment = f"{env}-d{d}"
            for kind, offset in ((EventType.START, 0), (EventType.SUCCESS, 300)):
                events.append(
                    DeploymentEvent(
                        id=f"{deployment}-{kind.value}",
                        deployment_id=deployment,
                        environment=env,
                        type=kind,
                        ts=at + timedelta(seconds=offset),
                        version=f"1.0.{d}",
                        initiated_by="automation",
                    )
                )
    await store.add_deployment_events(events, now, history=True)
    for i, env in enumerate(envs):
        if i % 20 == 0:
            for r in range(10):
                key = f"health/{env}/{r}"
                at = now - timedelta(hours=r + 1)
                await store.fire_alert(AlertEvent(key, "health", env, "warning", "slow", at))
                await store.resolve_alert(key, at + timedelta(minutes=20))
        if i % 20 == 1:
            await store.fire_alert(AlertEvent(f"health/{env}", "health", env, "critical", "down", now))


async def cpu(runs: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    await call()  # warm-up
    out = []
    for _ in range(runs):
        started = time.process_time()
        await call()
        out.append(time.process_time() - started)
    return out


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db", type=Path, help="SQLite file to keep (reused when it holds this plan)")
    where.add_argument("--url", help="a database URL instead of SQLite (e.g. PostgreSQL)")
    args = parser.parse_args(argv)
    configure_logging("warning", "console", sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
        url = args.url or f"sqlite:///{args.db or Path(tmp) / 'reads.db'}"
        settings = settings_for(url, args.environments)
        store = await Store.open(url)
        try:
            plan = {"samples": args.samples, "environments": args.environments, "seed": SEED}
            marker = await store.kv_get(MARKER_KEY)
            if marker is not None and {k: marker.get(k) for k in plan} == plan:
                now = datetime.fromisoformat(marker["now"])
                progress(f"reusing the data of {now.isoformat()}")
            else:
                now = datetime.now(UTC).replace(microsecond=0)
                await fill(store, args.samples, args.environments, now)
                await store.kv_set(MARKER_KEY, {**plan, "now": now.isoformat()}, now)
            page_now = now + timedelta(seconds=1)
            figures = {
                "latest_health_samples": await cpu(args.runs, store.latest_health_samples),
                "environments_view": await cpu(args.runs, lambda: environments_view(store, settings)),
                "status page (gather + render)": await cpu(
                    args.runs, lambda: _page(store, settings, page_now)
                ),
            }
        finally:
            await store.close()
    print("umig-monitor read-path benchmark")
    print(f"  command      python bench/reads.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    print(f"  machine      {platform.node()}, {platform.python_implementation()} {platform.python_version()}")
    backend = url.split(":")[0]
    print(f"  data         {args.samples:,} samples over {args.environments:,} environments, {backend}")
    print(f"  runs         {args.runs} after one warm-up; CPU seconds of this process")
    for name, values in figures.items():
        shown = ", ".join(f"{v * 1000:.1f}" for v in values)
        print(f"  {name:<32} median {statistics.median(values) * 1000:9.1f} ms   ({shown})")


async def _page(store: Store, settings: Settings, now: datetime) -> None:
    render(await gather_page(store, settings, now))


if __name__ == "__main__":
    asyncio.run(main())
