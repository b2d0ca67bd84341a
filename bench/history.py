"""History benchmark (issue 5 §7): one environment's last 30 days of deployment history with its
summary, read the way ``GET /api/v1/deployments`` reads it, next to the guide's
query-deployment-history.sh (jq over the JSONL file) on the same events.

Run it from the repository root (the package is installed editable, so ``import umig_monitor`` works):

    python bench/history.py                          # 1,000,000 events in a temporary SQLite (~4-5 min)
    python bench/history.py --db /tmp/history.db     # keep the database and its JSONL; reruns skip generation
    python bench/history.py --events 100000 --skip-jq --runs 20
    python bench/history.py --json > history.json    # machine-readable
    python bench/history.py --db /tmp/history.db --skip-jq --profile history.prof

What happens, in order:

1. Data: ``--events`` deployment events over the 3 years up to now, in 4 environments (development,
   uat, production, hotfix; equal shares), generated from a fixed seed: per deployment id a start
   and its success (84 %), failure (7 %) or rollback (3 %), a start alone (2 %, still in progress)
   or an ``observed`` change alone (4 %). They are written through the store's own write path,
   ``Store.add_deployment_events`` in batches of 10,000, into SQLite, and with ``event_to_record`` as
   JSONL (one record a line, as ``umig-monitor history --export jsonl`` writes them) for jq. With
   ``--db PATH`` a file that already holds exactly this data (a marker in ``kv_state`` says so) is
   reused, and so is ``PATH.jsonl`` beside it (rewritten from the seed when missing or different).
2. Our query: the calls ``web.deployments.list_deployments`` makes for
   ``?environment=production&since=<30 days before the data's "now">``: a page of 100 events newest
   first, their count and the summary, side by side as the handler runs them, and the JSON body.
   3 warm-ups, then ``--runs`` timed runs: p50 and p95, the p50 of each step and of each of the
   three reads. The real handler is then called once on a mocked request, to check it answers the
   same total, page and summary, and the summary is compared with ``summarize`` over every event of
   the window, read once.
3. The guide: ``query_deployment_history production 30`` from the guide, run by bash over the JSONL
   file (the listing ``jq -r select(...) | sort -r | column -t`` and its four ``jq | wc -l`` summary
   passes), wall clock of ``--jq-runs`` runs. Two lines differ from the guide: the file path, and
   ``date -d "$days days ago"`` counts back from the data's "now" (``date -d "<now> $days days
   ago"``), so that both sides read exactly the same window on a reused database too.

It prints figures and asserts nothing; targets are shown with PASS or MISS, and anything that could
not be measured is shown as absent, with the reason. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import enum
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar
from urllib.parse import urlencode

import aiohttp
import sqlalchemy
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from common import (
    Layout,
    Section,
    code_state,
    command,
    judged,
    load,
    machine,
    output,
    percentile,
    progress,
    started_under_load,
)

from umig_monitor.core.deployments import (
    SHORT_NAME,
    DeploymentEvent,
    EventType,
    Summary,
    format_timestamp,
    new_deployment_id,
)
from umig_monitor.core.dora import summarize
from umig_monitor.core.history import event_to_record
from umig_monitor.logs import configure_logging
from umig_monitor.storage.store import Store
from umig_monitor.web.deployments import list_deployments
from umig_monitor.web.server import DAEMON_KEY

T = TypeVar("T")

ENVIRONMENTS: Final = ("development", "uat", "production", "hotfix")
ENVIRONMENT: Final = "production"  # the one queried
DAYS: Final = 30
SPAN: Final = timedelta(days=3 * 365)
BATCH: Final = 10_000
PAGE_LIMIT: Final = 100  # the API's default page
WARMUPS: Final = 3
SEED: Final = 5  # issue 5
GENERATOR: Final = 2  # bump when the generated data changes, so an old --db is not taken for it
MARKER_KEY: Final = "bench_history"

TARGET_P50_MS: Final = 20.0
TARGET_SPEEDUP: Final = 500.0
REFERENCE_JQ_S: Final = 14.0  # issue 5, 1M events, "this kind of machine"

# The guide's query_deployment_history (scripts/deployment/query-deployment-history.sh), verbatim
# but for two lines, marked: the file comes from BENCH_LOG_FILE, and the threshold counts back from
# BENCH_NOW (the data's "now") instead of the wall clock. Run with TZ=UTC, as `date -Iseconds` then
# writes +00:00, which compares as a string the way the guide meant it against our "Z" timestamps.
GUIDE_HISTORY: Final = r"""
query_deployment_history() {
    local environment="$1"
    local days="${2:-30}"
    local log_file="$BENCH_LOG_FILE"  # bench: was /var/log/umig/deployment-history.jsonl

    echo "=== Deployment History - Last $days days ==="

    if [[ -n "$environment" ]]; then
        echo "Environment: $environment"
        filter_expr=".environment == \"$environment\""
    else
        echo "Environment: All"
        filter_expr="true"
    fi

    # Calculate date threshold
    local threshold_date=$(date -d "$BENCH_NOW $days days ago" -Iseconds)  # bench: was "$days days ago"

    # Query and format deployment history
    cat "$log_file" | \
        jq -r "select($filter_expr and .timestamp >= \"$threshold_date\") |
               \"\(.timestamp) | \(.environment) | \(.version) | \(.type) | \(.status)\"" | \
        sort -r | \
        column -t -s '|' -N "Timestamp,Environment,Version,Type,Status"

    # Summary statistics
    echo ""
    echo "=== Summary ==="
    local total_deployments=$(cat "$log_file" | jq -r "select($filter_expr and .timestamp >= \"$threshold_date\" and .type == \"deployment_start\")" | wc -l)
    local successful_deployments=$(cat "$log_file" | jq -r "select($filter_expr and .timestamp >= \"$threshold_date\" and .type == \"deployment_success\")" | wc -l)
    local failed_deployments=$(cat "$log_file" | jq -r "select($filter_expr and .timestamp >= \"$threshold_date\" and .type == \"deployment_failure\")" | wc -l)
    local rollbacks=$(cat "$log_file" | jq -r "select($filter_expr and .timestamp >= \"$threshold_date\" and .type == \"rollback\")" | wc -l)

    echo "Total deployments: $total_deployments"
    echo "Successful: $successful_deployments"
    echo "Failed: $failed_deployments"
    echo "Rollbacks: $rollbacks"

    if [[ $total_deployments -gt 0 ]]; then
        local success_rate=$((successful_deployments * 100 / total_deployments))
        echo "Success rate: $success_rate%"
    fi
}
query_deployment_history "$@"
"""  # noqa: E501
COLUMN_LINE: Final = """column -t -s '|' -N "Timestamp,Environment,Version,Type,Status\""""


# --- results ---------------------------------------------------------------------------------------

LAYOUT = Layout("umig-monitor history benchmark", label=34, shown=14)


def refuse(message: str) -> NoReturn:
    print(f"bench/history.py: {message}", file=sys.stderr)
    raise SystemExit(2)


# --- the data --------------------------------------------------------------------------------------


class Kind(enum.Enum):
    """What one deployment id holds."""

    SUCCEEDED = (EventType.START, EventType.SUCCESS)
    FAILED = (EventType.START, EventType.FAILURE)
    ROLLED_BACK = (EventType.START, EventType.ROLLBACK)
    IN_PROGRESS = (EventType.START,)
    OBSERVED = (EventType.OBSERVED,)


MIX: Final = {
    Kind.SUCCEEDED: 0.84,
    Kind.FAILED: 0.07,
    Kind.ROLLED_BACK: 0.03,
    Kind.IN_PROGRESS: 0.02,
    Kind.OBSERVED: 0.04,
}
INITIATED_BY: Final = {
    "development": ("automation",),
    "uat": ("lucas.challamel", "qa-automation"),
    "production": ("deployment-automation",),
    "hotfix": ("lucas.challamel", "oncall"),
}
ERRORS: Final = (
    "database migration 031 failed",
    "post-deployment validation failed: orchestrator not active",
    "artifact checksum mismatch",
    "timeout waiting for the new version to answer",
)


@dataclass(frozen=True)
class Plan:
    """Everything the generated data depends on; the same plan gives the same events."""

    events: int
    seed: int
    now: datetime  # the data's "now": the window is the 30 days before it

    def marker(self) -> dict[str, Any]:
        return {"events": self.events, "seed": self.seed, "generator": GENERATOR, "now": self.now.isoformat()}


@dataclass
class Track:
    """One environment's version sequence and what it runs."""

    environment: str
    deployed: int = 0
    running: str = ""

    def next_version(self) -> str:
        n = self.deployed = self.deployed + 1
        major, minor, patch = 1 + n // 2000, n // 20 % 100, n % 20
        return {
            "development": f"{major}.{minor}.0-dev+ci.{n}",
            "uat": f"{major}.{minor}.0-rc.{patch + 1}",
            "production": f"{major}.{minor}.{patch}",
            "hotfix": f"{major}.{minor}.{patch}+hotfix.1",
        }[self.environment]


def deployment_kinds(plan: Plan) -> list[Kind]:
    """Deployments drawn from MIX until they hold exactly ``plan.events`` events."""
    rng = random.Random(plan.seed)
    kinds, weights = list(MIX), list(MIX.values())
    out: list[Kind] = []
    left = plan.events
    while left > 0:
        kind = rng.choices(kinds, weights)[0]
        if len(kind.value) > left:
            kind = Kind.IN_PROGRESS
        out.append(kind)
        left -= len(kind.value)
    return out


def generate(plan: Plan) -> Iterator[DeploymentEvent]:
    """The plan's events, deployment by deployment in time order, spread evenly over SPAN."""
    kinds = deployment_kinds(plan)
    rng = random.Random(plan.seed + 1)
    tracks = {env: Track(env) for env in ENVIRONMENTS}
    for track in tracks.values():
        track.running = track.next_version()
    first = plan.now - SPAN
    step = (SPAN - timedelta(hours=1)).total_seconds() / len(kinds)  # every terminal event < now
    for k, kind in enumerate(kinds):
        started = first + timedelta(seconds=int((k + rng.random()) * step))
        track = tracks[rng.choice(ENVIRONMENTS)]
        yield from deployment(rng, kind, track, started)


def deployment(rng: random.Random, kind: Kind, track: Track, started: datetime) -> Iterator[DeploymentEvent]:
    env, previous, version = track.environment, track.running, track.next_version()
    if kind is Kind.OBSERVED:
        track.running = version
        # With entropy, as deployment ids have: at 10 M events two observed changes of one
        # environment fell in the same second three times (their ids collided and the store kept one).
        deployment_id = f"observed-{env}-{started.strftime('%Y%m%d-%H%M%S')}-{rng.getrandbits(24):06x}"
        yield DeploymentEvent(
            id=f"{deployment_id}-{SHORT_NAME[EventType.OBSERVED]}",
            deployment_id=deployment_id,
            environment=env,
            type=EventType.OBSERVED,
            ts=started,
            version=version,
            metadata={"previousVersion": previous},
        )
        return
    deployment_id = new_deployment_id(env, started, f"{rng.getrandbits(24):06x}")
    initiated_by = rng.choice(INITIATED_BY[env])
    yield DeploymentEvent(
        id=f"{deployment_id}-{SHORT_NAME[EventType.START]}",
        deployment_id=deployment_id,
        environment=env,
        type=EventType.START,
        ts=started,
        version=version,
        initiated_by=initiated_by,
    )
    if kind is Kind.IN_PROGRESS:
        return
    duration = rng.randint(60, 2700)
    ended = started + timedelta(seconds=duration)
    common: dict[str, Any] = {
        "id": f"{deployment_id}-{SHORT_NAME[kind.value[1]]}",
        "deployment_id": deployment_id,
        "environment": env,
        "type": kind.value[1],
        "ts": ended,
        "initiated_by": initiated_by,
        "duration_seconds": float(duration),
    }
    if kind is Kind.SUCCEEDED:
        track.running = version
        commit = started - timedelta(seconds=rng.randint(1800, 3 * 86400))
        yield DeploymentEvent(**common, version=version, metadata={"commit_time": format_timestamp(commit)})
    elif kind is Kind.FAILED:
        yield DeploymentEvent(**common, version=version, error=rng.choice(ERRORS))
    else:  # rolled back to what ran before
        yield DeploymentEvent(**common, version=version, from_version=version, to_version=previous)


def batches(events: Iterator[DeploymentEvent], size: int) -> Iterator[list[DeploymentEvent]]:
    while batch := list(islice(events, size)):
        yield batch


def record_line(event: DeploymentEvent) -> str:
    """As ``umig-monitor history --export jsonl`` writes it."""
    return json.dumps(event_to_record(event)) + "\n"


def jsonl_matches(path: Path, plan: Plan) -> bool:
    """The file has the plan's line count and starts and ends with its first and last records."""
    if not path.exists():
        return False
    first = record_line(next(generate(plan)))
    with path.open("rb") as f:
        head = f.readline().decode()
        lines = 1 + sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return head == first and lines == plan.events


def file_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 1e6


async def prepare_database(db: Path, plan: Plan, section: Section) -> Plan:
    """Make sure ``db`` holds the plan's events; return the plan whose data it holds (a reused
    database keeps the "now" it was generated with)."""
    async with await Store.open(f"sqlite:///{db}") as store:
        marker = await store.kv_get(MARKER_KEY)
        stored = await store.count_deployment_events()
        expected = {k: v for k, v in plan.marker().items() if k != "now"}
        if marker is not None and {k: marker.get(k) for k in expected} == expected and stored == plan.events:
            plan = Plan(plan.events, plan.seed, datetime.fromisoformat(marker["now"]))
            section.facts["database"] = f"reused {db} (generated {marker['now']}), {stored:,} events"
            section.absent("generation_s", "generation", "skipped: the database already holds the data")
        elif stored == 0:
            await write_database(store, plan, section)
        else:
            refuse(
                f"{db} holds {stored:,} deployment events that are not this benchmark's "
                f"{plan.events:,} (seed {plan.seed}, generator {GENERATOR}); use another --db or delete it"
            )
    wal = Path(f"{db}-wal")
    section.add("db_mb", "DB size", file_mb(db, wal), "MB", f"{db.name} + its WAL ({file_mb(wal):.1f} MB)")
    return plan


async def write_database(store: Store, plan: Plan, section: Section) -> None:
    progress(f"generating {plan.events:,} events into {store.redacted_url}")
    build_s = store_s = 0.0
    inserted = 0
    events = generate(plan)
    while True:
        t0 = time.perf_counter()
        batch = list(islice(events, BATCH))
        t1 = time.perf_counter()
        if not batch:
            break
        inserted += await store.add_deployment_events(batch, datetime.now(UTC))
        build_s, store_s = build_s + t1 - t0, store_s + time.perf_counter() - t1
        if inserted % 100_000 < BATCH:
            progress(f"  {inserted:,} events, {build_s + store_s:.0f} s")
    if inserted != plan.events:
        refuse(f"stored {inserted:,} events of {plan.events:,}: generated ids collided")
    await store.kv_set(MARKER_KEY, plan.marker(), datetime.now(UTC))
    total = build_s + store_s
    section.add(
        "generation_s",
        "generation",
        total,
        "s",
        f"{plan.events / total:,.0f} events/s: building events {build_s:.1f} s, "
        f"add_deployment_events {store_s:.1f} s in {math.ceil(plan.events / BATCH)} calls",
    )


def prepare_jsonl(jsonl: Path, plan: Plan, section: Section) -> None:
    """The same events as JSONL for jq: reused when the file already holds them, else written."""
    if jsonl_matches(jsonl, plan):
        section.facts["jsonl"] = f"reused {jsonl}"
    else:
        progress(f"writing the same events to {jsonl}")
        started = time.perf_counter()
        with jsonl.open("w") as out:
            for batch in batches(generate(plan), BATCH):
                out.write("".join(record_line(e) for e in batch))
        section.facts["jsonl_written_s"] = round(time.perf_counter() - started, 1)
    section.add("jsonl_mb", "JSONL size", file_mb(jsonl), "MB", "event_to_record, one record a line")


# --- our query -------------------------------------------------------------------------------------

STEPS: Final = ("reads", "body")
READS: Final = ("page", "count", "summary")  # each read's own wall clock, while the others run beside it


@dataclass(frozen=True)
class Answer:
    page: list[DeploymentEvent]
    total: int
    window: list[DeploymentEvent]
    summary: Summary
    body: bytes


def summary_document(s: Summary) -> dict[str, Any]:
    return {
        "total": s.total,
        "successful": s.successful,
        "failed": s.failed,
        "rollbacks": s.rollbacks,
        "inProgress": s.in_progress,
        "observed": s.observed,
        "successRate": s.success_rate,
    }


async def api_query(store: Store, since: datetime, times: dict[str, list[float]] | None) -> Answer:
    """What ``list_deployments`` does for ``?environment=E&since=…`` with the default page."""
    filters: dict[str, Any] = {"environment": ENVIRONMENT, "since": since, "until": None, "types": None}
    read_s: dict[str, float] = {}

    async def timed(name: str, read: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await read
        finally:
            read_s[name] = time.perf_counter() - started

    t0 = time.perf_counter()
    # As the handler does: the page, the count and the summary side by side.
    page, total, s = await asyncio.gather(
        timed("page", store.deployment_events(**filters, limit=PAGE_LIMIT, offset=0)),
        timed("count", store.count_deployment_events(**filters)),
        timed("summary", store.deployment_summary(environment=ENVIRONMENT, since=since, until=None)),
    )
    t4 = time.perf_counter()
    window: list[DeploymentEvent] = []  # the handler no longer loads the window; see summary_agrees
    document = {
        "events": [event_to_record(e) for e in page],
        "total": total,
        "limit": PAGE_LIMIT,
        "offset": 0,
        "summary": summary_document(s),
    }
    body = json.dumps(document).encode()
    t5 = time.perf_counter()
    if times is not None:
        for step, seconds in zip(STEPS, (t4 - t0, t5 - t4), strict=True):
            times[step].append(seconds)
        for name in READS:
            times[name].append(read_s[name])
        times["total"].append(t5 - t0)
    return Answer(page, total, window, s, body)


async def handler_agrees(store: Store, since: datetime, ours: Answer) -> str:
    """Call the real handler once on a mocked request; say whether it answers what we measured."""
    app = web.Application()
    app[DAEMON_KEY] = types.SimpleNamespace(store=store)  # the handler reads nothing else of the daemon
    query = urlencode({"environment": ENVIRONMENT, "since": format_timestamp(since)})
    response = await list_deployments(make_mocked_request("GET", f"/api/v1/deployments?{query}", app=app))
    if response.status != 200 or not isinstance(response.body, bytes):
        return f"no: status {response.status}"
    answer = json.loads(response.body)
    same = (
        answer["total"] == ours.total
        and answer["summary"] == summary_document(ours.summary)
        and [e["id"] for e in answer["events"]] == [e.id for e in ours.page]
    )
    return "yes" if same else "NO: the handler's total, page or summary differ from the measured calls"


async def bench_query(db: Path, plan: Plan, runs: int, profile: str | None) -> tuple[Section, Answer]:
    since = plan.now - timedelta(days=DAYS)
    section = Section(
        f"our query: {ENVIRONMENT}, last {DAYS} days, with the summary ({runs} runs)",
        f"the calls GET /api/v1/deployments?environment={ENVIRONMENT}&since={DAYS}d makes, through the "
        f"Store API on a fresh Store.open: deployment_events(limit={PAGE_LIMIT}) newest first, "
        "count_deployment_events and deployment_summary (per-day counts, and the events and rollups of the "
        "window's first day) side by side, each timed too, the JSON body "
        f"(page records + summary). {WARMUPS} warm-ups, then wall clock (perf_counter) per run.",
    )
    times: dict[str, list[float]] = {step: [] for step in (*STEPS, *READS, "total")}
    profiler = cProfile.Profile() if profile else None
    async with await Store.open(f"sqlite:///{db}") as store:
        for _ in range(WARMUPS):
            answer = await api_query(store, since, None)
        for _ in range(runs):
            if profiler:
                profiler.enable()
            answer = await api_query(store, since, times)
            if profiler:
                profiler.disable()
        agrees = await handler_agrees(store, since, answer)
        window = await store.deployment_events(environment=ENVIRONMENT, since=since, until=None)
        summary_agrees = (
            "yes" if summarize(window) == answer.summary else "NO: SQL summary differs from summarize"
        )
        answer = Answer(answer.page, answer.total, window, answer.summary, answer.body)
    if profiler and profile:
        profiler.dump_stats(profile)
        section.facts["profile"] = f"{profile} (cProfile of the timed runs; SQL runs in aiosqlite's thread)"
    total_ms = [t * 1000 for t in times["total"]]
    p50 = statistics.median(total_ms)
    section.add("query_p50_ms", "p50", p50, "ms", **judged(f"< {TARGET_P50_MS:g} ms", p50 < TARGET_P50_MS))
    section.add("query_p95_ms", "p95", percentile(total_ms, 95), "ms")
    section.add("query_max_ms", "max", max(total_ms), "ms")
    labels = {
        "reads": f"  page ({PAGE_LIMIT}) + count + summary, side by side",
        "page": f"    deployment_events (limit {PAGE_LIMIT})",
        "count": "    count_deployment_events",
        "summary": "    deployment_summary",
        "body": "  JSON body",
    }
    for step in ("reads", *READS, "body"):
        section.add(f"step_{step}_p50_ms", f"{labels[step]} p50", statistics.median(times[step]) * 1000, "ms")
    by_type = Counter(e.type.value for e in answer.window)
    section.facts.update(
        window_events=len(answer.window),
        window_by_type=dict(sorted(by_type.items())),
        summary=summary_document(answer.summary),
        handler_agrees=agrees,
        summary_agrees_with_core=summary_agrees,
        after=load(),
    )
    return section, answer


# --- the guide -------------------------------------------------------------------------------------


def column_usable() -> bool:
    if shutil.which("column") is None:
        return False
    test = subprocess.run(
        ["column", "-t", "-s", "|", "-N", "A,B"], input="a|b\n", capture_output=True, text=True, check=False
    )
    return test.returncode == 0


def parse_guide_output(text: str) -> tuple[int, dict[str, int]]:
    """(rows of the listing, the summary's numbers) from the function's output."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Environment:")) + 1
    end = lines.index("", start)
    rows = [line for line in lines[start:end] if not line.startswith("Timestamp ")]
    numbers = {m[1]: int(m[2]) for m in re.finditer(r"^([A-Za-z ]+): (\d+)%?$", text, re.MULTILINE)}
    return len(rows), numbers


def bench_jq(jsonl: Path, plan: Plan, runs: int, ours: Answer, tmp: Path) -> Section:
    section = Section(
        f"the guide: query-deployment-history.sh {ENVIRONMENT} {DAYS} ({runs} run{'s' * (runs > 1)})",
        "the guide's function run by bash over the JSONL file (cat | jq listing | sort -r | column -t, "
        "then four cat | jq | wc -l summary passes), TZ=UTC; wall clock (perf_counter) of the whole "
        "run, output to a file; CPU = getrusage(RUSAGE_CHILDREN) delta.",
    )
    missing = [tool for tool in ("bash", "jq", "date", "sort", "wc") if shutil.which(tool) is None]
    if missing:
        reason = f"{', '.join(missing)} not on PATH (apt-get install {' '.join(missing)})"
        section.absent("jq_s", "jq pipeline", reason)
        return section
    script = GUIDE_HISTORY
    if not column_usable():
        script = script.replace(COLUMN_LINE, "cat")
        section.facts["column"] = "omitted: `column -t -N` not available (the listing is not aligned)"
    env = {
        **os.environ,
        "TZ": "UTC",
        "BENCH_LOG_FILE": str(jsonl),
        "BENCH_NOW": plan.now.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    jq_version = subprocess.run(["jq", "--version"], capture_output=True, text=True, check=False)
    section.facts["jq"] = jq_version.stdout.strip()
    section.facts["locale"] = os.environ.get("LC_ALL") or os.environ.get("LANG") or "unset"
    output = tmp / "guide-history.out"
    walls: list[float] = []
    cpus: list[float] = []
    for i in range(runs):
        progress(f"the guide's jq pipeline, run {i + 1} of {runs}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        with output.open("w") as out:
            done = subprocess.run(
                ["bash", "-c", script, "guide-history", ENVIRONMENT, str(DAYS)],
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                check=False,
            )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        if done.returncode != 0 or done.stderr.strip():
            section.absent("jq_s", "jq pipeline", f"exit {done.returncode}: {done.stderr.strip()[:300]}")
            return section
    rows, numbers = parse_guide_output(output.read_text())
    wall = statistics.median(walls)
    note = f"issue reference ≈ {REFERENCE_JQ_S:g} s; runs: {', '.join(f'{w:.1f}' for w in walls)} s"
    section.add("jq_s", "jq pipeline (median)", wall, "s", note)
    section.add("jq_cpu_s", "CPU (bash, jq, sort, ...)", statistics.median(cpus), "s")
    by_type = Counter(e.type.value for e in ours.window)
    section.facts.update(
        listing_rows=rows,
        same_events_as_ours="yes" if rows == len(ours.window) else f"NO: ours {len(ours.window)}",
        guide_summary=numbers,
        guide_summary_note=(
            "the guide's counts are lines of pretty-printed JSON (jq -r without -c prints each "
            "object over several lines), not events: starts in the window are "
            f"{by_type[EventType.START.value]}, successes {by_type[EventType.SUCCESS.value]}"
        ),
        after=load(),
    )
    return section


def side_by_side(query: Section, guide: Section | None) -> Section:
    section = Section("side by side", "the guide's jq pipeline wall clock / our query's p50.")
    found = {f.key: f.value for s in (query, guide) if s for f in s.figures if f.value is not None}
    p50, jq = found.get("query_p50_ms"), found.get("jq_s")
    if guide is None:
        section.absent("speedup", "speed-up", "not measured (--skip-jq)")
    elif p50 is None or jq is None:
        section.absent("speedup", "speed-up", "the jq pipeline has no figure (see above)")
    else:
        ratio = jq * 1000 / p50
        limit = f">= {TARGET_SPEEDUP:g} x"
        verdict = judged(limit, ratio >= TARGET_SPEEDUP)
        section.add("speedup", "speed-up (jq / our p50)", ratio, "x", **verdict)
    return section


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000, help="deployment events (default 1000000)")
    p.add_argument("--runs", type=int, default=50, help=f"timed query runs after {WARMUPS} warm-ups (50)")
    p.add_argument("--db", type=Path, help="SQLite file to use, reused when it already holds the data")
    p.add_argument("--jq-runs", type=int, default=1, choices=(1, 2, 3), help="jq pipeline runs (1)")
    p.add_argument("--skip-jq", action="store_true", help="leave out the guide's jq pipeline")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--profile", metavar="PATH", help="cProfile the timed query runs into PATH (pstats)")
    args = p.parse_args(argv)
    if args.events <= 0 or args.runs <= 0:
        p.error("--events and --runs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning", "console", sys.stderr)  # the store's schema_migrated lines are noise here
    setup: dict[str, Any] = {
        "machine": machine(),
        "python": f"{platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"aiohttp {aiohttp.__version__}",
        "sqlite": sqlite3.sqlite_version,
        "code": code_state(),
        "started": started_under_load(),
        "command": command("history.py", argv),
    }
    plan = Plan(args.events, SEED, datetime.now(UTC).replace(microsecond=0))
    with tempfile.TemporaryDirectory(prefix="umig-bench-") as scratch:
        tmp = Path(scratch)
        db = args.db.resolve() if args.db else tmp / "history.db"
        jsonl = None if args.skip_jq else Path(f"{db}.jsonl")
        data = Section(
            f"data: {args.events:,} deployment events, {len(ENVIRONMENTS)} environments, 3 years",
            "generated from a fixed seed, written through Store.add_deployment_events in batches of "
            f"{BATCH:,} into SQLite (WAL, as the daemon opens it); generation = building the events + "
            "the store calls; then the same events are written as JSONL for jq (timed apart).",
        )
        plan = asyncio.run(prepare_database(db, plan, data))
        if jsonl is not None:
            prepare_jsonl(jsonl, plan, data)
        setup["data now"] = f"{plan.now.isoformat()} (the window is the {DAYS} days before it)"
        progress(f"our query: {WARMUPS} warm-ups and {args.runs} runs")
        query, answer = asyncio.run(bench_query(db, plan, args.runs, args.profile))
        if jsonl is None:
            guide = None
            skipped = Section("the guide: query-deployment-history.sh", "skipped (--skip-jq)")
            skipped.absent("jq_s", "jq pipeline", "not measured (--skip-jq)")
        else:
            guide = skipped = bench_jq(jsonl, plan, args.jq_runs, answer, tmp)
    sections = [data, query, skipped, side_by_side(query, guide)]
    output(LAYOUT, setup, sections, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
