"""HTTP read benchmark (issue 18): ``GET /``, ``GET /api/v1/environments`` and ``GET /metrics`` under a
bounded number of concurrent clients, while the daemon polls its environments.

    python bench/web.py                                  # 100 and 1,000 environments, 32 clients
    python bench/web.py --envs 100 --duration 10 --clients 32
    python bench/web.py --json > web.json

Per environment count: ``umig-monitor simulate`` in its own process; ``umig-monitor run`` in its own
process (SQLite in a temporary directory, every environment at ``--interval``), started and waited
for until ``/readyz`` is 200 (the first poll round is done), then ``--warmup`` seconds. Then each
path in turn for ``--duration`` seconds: ``--clients`` aiohttp clients in this process (one
connection each, keep-alive, a plain GET without If-None-Match: every answer carries the whole
body), each sending its next request when the last one is answered.

Figures per path: requests per second, p50 and p99 latency (request sent to body read), and the
daemon's CPU per request (utime + stime of the daemon process from /proc, over the window, divided
by the requests answered: the polls running meanwhile are charged to the requests too, which
``polling CPU`` shows on its own over an idle window). The status page and the environments
document are built at most once per ``http.page_max_age`` (the builds are printed). Polling kept
its schedule when the polls completed over the whole loaded period (the delta of
``umig_monitor_job_runs_total{task="health"}``) are what the interval plans: environments x
seconds / interval; below 98 % is a MISS. It prints figures and asserts nothing; progress goes to
stderr. Run it on a quiet machine: the clients, the simulator and the daemon share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from common import (
    HOST,
    Layout,
    Section,
    code_state,
    command,
    judged,
    machine,
    output,
    percentile,
    proc_cpu_seconds,
    progress,
    started_under_load,
)
from poll import served, simulated

PATHS = ("/", "/api/v1/environments", "/metrics")
TARGETS = {  # issue 18, at 100 environments (req/s, p99 ms); /metrics: CPU per scrape at 1,000
    "/": (200.0, 250.0),
    "/api/v1/environments": (500.0, None),
}
SINGLE_SCRAPES = 20
TARGET_METRICS_CPU_MS = 20.0
SCHEDULE_KEPT = 0.98


def daemon_config(envs: Sequence[str], sim_port: int, port: int, interval: float, tmp: Path) -> str:
    lines = [
        "daemon:",
        f"  listen: {HOST}:{port}",
        f"  storage: sqlite:///{tmp / 'umig-monitor.db'}",
        "  log_level: warning",
        "  log_format: json",
        "environments:",
    ]
    for env in envs:
        lines.append(
            f"  {env}: {{base_url: 'http://{HOST}:{sim_port}/{env}', kind: production, "
            f"poll_interval: {round(interval * 1000)}ms, timeout: 5s}}"
        )
    return "\n".join(lines) + "\n"


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=30) as resp:
        return str(resp.read().decode())


def counter(text: str, name: str, **labels: str) -> float:
    """The sum of a family's samples that carry these labels."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def load(port: int, path: str, clients: int, duration: float) -> tuple[list[float], int, int]:
    """(latencies in seconds, answered, failed) of ``clients`` closed-loop clients over ``duration``."""
    latencies: list[float] = []
    failed = 0
    url = f"http://{HOST}:{port}{path}"
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        end = loop.time() + duration

        async def client() -> None:
            nonlocal failed
            while loop.time() < end:
                sent = loop.time()
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    latencies.append(loop.time() - sent)
                else:
                    failed += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, len(latencies), failed


def bench_count(n: int, args: argparse.Namespace, tmp: Path) -> Section:
    envs = [f"e{i:05d}" for i in range(1, n + 1)]
    section = Section(
        f"{n} environments, {args.clients} clients, polls every {args.interval:g}s",
        "closed-loop aiohttp clients per path; daemon CPU from /proc over each window",
    )

    with simulated(envs, tmp / f"simulator-{n}.log") as (_, sim):

        def run(port: int) -> list[str]:
            config = tmp / f"umig-monitor-{n}.yaml"
            config.write_text(daemon_config(envs, sim, port, args.interval, tmp / f"db-{n}"))
            (tmp / f"db-{n}").mkdir(exist_ok=True)
            return [sys.executable, "-m", "umig_monitor", "run", "--config", str(config)]

        progress(f"{n} environments: daemon up, first round of polls")
        with served(run, "/readyz", tmp / f"daemon-{n}.log", timeout=max(60.0, 3 * args.interval)) as (
            daemon,
            port,
        ):
            time.sleep(args.warmup)
            text = scrape(port)
            polls_before, t_before = (
                counter(text, "umig_monitor_job_runs_total", task="health"),
                time.monotonic(),
            )
            cpu = proc_cpu_seconds(daemon.pid)
            time.sleep(args.idle)
            idle_cpu = proc_cpu_seconds(daemon.pid) - cpu
            section.add(
                "polling_cpu",
                "polling CPU (no requests)",
                idle_cpu / args.idle * 100,
                "% of a core",
                f"over {args.idle:g}s, {n / args.interval:g} polls/s planned",
            )
            # One scrape at a time (as a Prometheus scrapes): their CPU, less the polling's
            # meanwhile, over enough scrapes that /proc's 10 ms ticks do not decide the figure.
            cpu, t0 = proc_cpu_seconds(daemon.pid), time.monotonic()
            for _ in range(SINGLE_SCRAPES):
                scrape(port)
            polling = idle_cpu / args.idle * (time.monotonic() - t0)
            single = max(0.0, proc_cpu_seconds(daemon.pid) - cpu - polling) * 1000 / SINGLE_SCRAPES
            section.add(
                f"metrics_scrape_cpu_ms_{n}",
                "/metrics CPU per single scrape",
                single,
                "ms",
                f"{SINGLE_SCRAPES} one after another, polling's share taken out; back to back, most "
                "series reuse the text of the scrape before: optimistic for scrapes 15 s apart",
                **(
                    judged(f"<= {TARGET_METRICS_CPU_MS:g} ms", single <= TARGET_METRICS_CPU_MS)
                    if n == 1000
                    else {}
                ),
            )
            for path in PATHS:
                progress(f"{n} environments: {path} for {args.duration:g}s")
                builds_before = scrape(port)
                cpu = proc_cpu_seconds(daemon.pid)
                started = time.monotonic()
                latencies, answered, failed = asyncio.run(load(port, path, args.clients, args.duration))
                elapsed = time.monotonic() - started
                cpu = proc_cpu_seconds(daemon.pid) - cpu
                after = scrape(port)
                key = {"/": "page", "/api/v1/environments": "environments", "/metrics": "metrics"}[path]
                rate = answered / elapsed
                target_rate, target_p99 = TARGETS.get(path, (None, None)) if n == 100 else (None, None)
                section.add(
                    f"{key}_rps_{n}",
                    f"{path} req/s",
                    rate,
                    "req/s",
                    f"{answered} answered, {failed} failed",
                    **(judged(f">= {target_rate:g}", rate >= target_rate) if target_rate else {}),
                )
                if not latencies:
                    section.absent(f"{key}_p99_ms_{n}", f"{path} p99", "no request answered")
                    continue
                p99 = percentile(latencies, 99) * 1000
                section.add(f"{key}_p50_ms_{n}", f"{path} p50", percentile(latencies, 50) * 1000, "ms")
                section.add(
                    f"{key}_p99_ms_{n}",
                    f"{path} p99",
                    p99,
                    "ms",
                    **(judged(f"<= {target_p99:g} ms", p99 <= target_p99) if target_p99 else {}),
                )
                per = cpu / answered * 1000 if answered else float("nan")
                note = "polling included"
                if path in ("/", "/api/v1/environments"):
                    page = "status" if path == "/" else "environments"
                    built = counter(after, "umig_monitor_page_builds_total", page=page) - counter(
                        builds_before, "umig_monitor_page_builds_total", page=page
                    )
                    note += f"; {built:g} builds in {elapsed:.1f}s"
                if path == "/metrics":
                    note += "; concurrent scrapes share one exposition"
                section.add(f"{key}_cpu_ms_{n}", f"{path} daemon CPU per request", per, "ms", note)
                if path == "/metrics":
                    section.facts[f"metrics_bytes_{n}"] = len(after.encode())
            polls = counter(scrape(port), "umig_monitor_job_runs_total", task="health") - polls_before
            planned = n * (time.monotonic() - t_before) / args.interval
            kept = polls / planned
            section.add(
                f"schedule_kept_{n}",
                "polls completed / planned",
                kept * 100,
                "%",
                f"{polls:g} of {planned:.0f} while loaded",
                **judged(f">= {SCHEDULE_KEPT * 100:g} %", kept >= SCHEDULE_KEPT),
            )
            log = (tmp / f"daemon-{n}.log").read_text(errors="replace")
            section.facts[f"daemon_log_errors_{n}"] = len(re.findall(r'"level": ?"error"', log))
    return section


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench/web.py")
    p.add_argument("--envs", default="100,1000", help="environment counts, comma-separated (100,1000)")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per path (10)")
    p.add_argument("--interval", type=float, default=10.0, help="poll interval, seconds (10)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after /readyz before measuring (3)")
    p.add_argument("--idle", type=float, default=5.0, help="seconds of polling alone, measured (5)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of the text report")
    args = p.parse_args(argv)
    args.counts = [int(v) for v in args.envs.split(",") if v.strip()]
    if not 1 <= args.clients <= 1000:
        p.error("--clients must be 1..1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup: dict[str, Any] = {
        "machine": machine(),
        "python": f"{sys.version.split()[0]}, aiohttp {aiohttp.__version__}",
        "code": code_state(at_top=True),
        "started": started_under_load(),
        "command": command("web.py", argv),
    }
    sections = []
    with tempfile.TemporaryDirectory(prefix="umig-bench-web-") as scratch:
        for n in args.counts:
            sections.append(bench_count(n, args, Path(scratch)))
    output(
        Layout("bench/web.py: the read endpoints under load, while polling", 44, 16),
        setup,
        sections,
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
