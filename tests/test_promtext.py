"""Our text writer against prometheus_client's own: for the daemon's registry, populated with every
kind of series it has (labelled and not, histograms, label values that need escaping, series
removed and added back, infinite values), both texts parse to the same families, in the same order,
and promtool accepts ours."""

from __future__ import annotations

import math
import subprocess
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import require_tool
from umig_monitor.metrics import (
    AlertMetrics,
    ClusterMetrics,
    DeploymentMetrics,
    InsightMetrics,
    SelfMetrics,
    UmigMetrics,
)
from umig_monitor.promtext import exposition

OUTCOMES = ("healthy", "degraded", "unhealthy", "unreachable", "timeout", "http_error")


def parsed(text: bytes) -> list[tuple[str, str, str, list[tuple[str, tuple[tuple[str, str], ...], str]]]]:
    """Families as (name, type, help, samples); values as text so NaN compares equal to itself, and
    none for the process's own figures (its CPU and memory move between two scrapes)."""
    out = []
    for family in text_string_to_metric_families(text.decode()):
        moving = family.name.startswith("process_")
        samples = sorted(
            (s.name, tuple(sorted(s.labels.items())), "" if moving else repr(s.value)) for s in family.samples
        )
        out.append((family.name, family.type, family.documentation, samples))
    return out


def daemon_registry() -> tuple[SelfMetrics, UmigMetrics]:
    metrics = SelfMetrics()
    r = metrics.registry
    umig = UmigMetrics(r)
    AlertMetrics(r).set_sinks(["mail", "hook"])
    DeploymentMetrics(r).track(["prod", "uat"], datetime.now(UTC))
    InsightMetrics(r).track(["prod"])
    ClusterMetrics(r).members.set(3)
    metrics.tasks({"health", "drift"})
    metrics.job_finished("health", "success", 0.02, 1_733_212_345.25)
    metrics.poll_lag.observe(0.003)
    awkward = 'we"ird\\name\nnext'
    umig.track(["prod", "uat", awkward, "gone"])
    for env in ("prod", "uat", awkward, "gone"):
        umig.observe(env, "healthy", "healthy", "1.2.3", 'b"1', 86_400, OUTCOMES)
        umig.observe_duration(env, "health", 0.0123)
        umig.certificate(env, 1_800_000_000.0, https=True)
    umig.observe("uat", "timeout", None, None, None, None, OUTCOMES)
    umig.failed("uat", "timeout")
    umig.observe("prod", "healthy", "healthy", "1.2.4", "b2", 5, OUTCOMES)  # the old version's series goes
    umig.track(["prod", "uat", awkward])  # "gone" loses every series
    return metrics, umig


def test_the_text_parses_to_what_prometheus_client_writes() -> None:
    metrics, umig = daemon_registry()
    ours, theirs = exposition(metrics.registry), generate_latest(metrics.registry)
    assert parsed(ours) == parsed(theirs)
    assert b"gone" not in ours
    # Scraped again after changes, from the kept prefixes: still the same.
    umig.observe_duration("prod", "health", 7.5)
    umig.track(["prod", "uat", "gone"])
    umig.observe("gone", "healthy", "healthy", "1.0.0", None, 1, OUTCOMES)
    ours, theirs = exposition(metrics.registry), generate_latest(metrics.registry)
    assert parsed(ours) == parsed(theirs)
    assert b'environment="gone"' in ours


def test_unlabelled_metrics_infinities_and_the_family_order() -> None:
    registry = CollectorRegistry()
    Counter("plain_events", "Events.", registry=registry).inc(3)
    gauge = Gauge("plain_level", "Level.\\ with a backslash\nand a newline", registry=registry)
    gauge.set(math.inf)
    Gauge("plain_nan", "Not a number.", registry=registry).set(math.nan)
    Gauge("plain_empty", "Labelled, no series yet.", ["x"], registry=registry)
    histogram = Histogram(
        "plain_seconds", "Seconds.", buckets=(0.5, 1_000_000.0, 12_345_678.0), registry=registry
    )
    histogram.observe(0.25)
    histogram.observe(2_000_000)
    ours, theirs = exposition(registry), generate_latest(registry)
    assert parsed(ours) == parsed(theirs)
    assert [f[0] for f in parsed(ours)] == [f[0] for f in parsed(theirs)]
    # The bucket bounds are written as prometheus_client writes them.
    assert 'plain_seconds_bucket{le="1.2345678e+07"} 2.0' in ours.decode()


def test_only_the_named_families_for_a_push() -> None:
    metrics, _ = daemon_registry()
    names = {
        "umig_health_status",
        "umig_probe_failures_total",
        "umig_monitor_cluster_members",
        "process_open_fds",
    }
    families = {f[0] for f in parsed(exposition(metrics.registry, names))}
    # The parser names a counter family without its _total.
    assert families == {
        "umig_health_status",
        "umig_probe_failures",
        "umig_monitor_cluster_members",
        "process_open_fds",
    }


def test_promtool_accepts_it() -> None:
    promtool = require_tool("promtool")
    metrics, _ = daemon_registry()
    check: Any = subprocess.run(
        [promtool, "check", "metrics"], input=exposition(metrics.registry), capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
