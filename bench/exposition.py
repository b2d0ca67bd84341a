"""/metrics exposition benchmark (issue 18): CPU per scrape of the daemon's registry with N
environments' series (every per-environment family populated as polls leave it), written by our
``promtext.exposition`` and by prometheus_client's ``generate_latest``, side by side, plus the
memory the per-environment series take.

    python bench/exposition.py                 # 1,000 environments
    python bench/exposition.py --envs 10000

Three figures per writer: a scrape where nothing changed since the last one, one after half the
environments were polled (their uptime, status and probe histogram moved), and the bytes written.
It prints figures and asserts nothing."""

from __future__ import annotations

import argparse
import time
import tracemalloc
from datetime import UTC, datetime

from prometheus_client import generate_latest

from umig_monitor.metrics import AlertMetrics, DeploymentMetrics, InsightMetrics, SelfMetrics, UmigMetrics
from umig_monitor.promtext import exposition

OUTCOMES = ("healthy", "degraded", "unhealthy", "unreachable", "timeout", "http_error")
TARGET_MS = 20.0  # issue 18: CPU per scrape at 1,000 environments


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, default=1000)
    p.add_argument("--scrapes", type=int, default=10)
    args = p.parse_args()
    metrics = SelfMetrics()
    r = metrics.registry
    umig, deployments, insights = UmigMetrics(r), DeploymentMetrics(r), InsightMetrics(r)
    AlertMetrics(r).set_sinks(["mail", "hook"])
    metrics.tasks({"health", "drift", "exposition"})
    envs = [f"env{n:05d}" for n in range(args.envs)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    umig.track(envs)
    deployments.track(envs, datetime.now(UTC))
    insights.track(envs)

    def poll(names: list[str], k: int) -> None:
        for env in names:
            umig.observe(env, "healthy", "healthy", "1.2.3", "b1", 100 + k, OUTCOMES)
            umig.observe_duration(env, "health", 0.01 * (k % 7))

    poll(envs, 0)
    per_env = (tracemalloc.get_traced_memory()[0] - before) / len(envs)
    tracemalloc.stop()
    print(f"{len(envs)} environments; {per_env:,.0f} bytes of series per environment (tracemalloc)")
    for name, write in (
        ("promtext.exposition", exposition),
        ("prometheus_client generate_latest", generate_latest),
    ):
        scrapes = args.scrapes if write is exposition else max(1, args.scrapes // 5)
        body = write(r)
        started = time.process_time()
        for _ in range(scrapes):
            write(r)
        unchanged = (time.process_time() - started) / scrapes * 1000
        changed = 0.0
        for k in range(scrapes):
            poll(envs[: len(envs) // 2], k + 1)
            started = time.process_time()
            write(r)
            changed += time.process_time() - started
        changed = changed / scrapes * 1000
        verdict = "PASS" if max(unchanged, changed) <= TARGET_MS else "MISS"
        print(
            f"  {name:36s} unchanged {unchanged:8.1f} CPU-ms  half polled since {changed:8.1f} CPU-ms"
            f"  {len(body) / 1e6:5.2f} MB  (target <= {TARGET_MS:g} ms at 1,000 environments: {verdict})"
        )


if __name__ == "__main__":
    main()
