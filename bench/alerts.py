"""Alert benchmark (issue 4): how long a real daemon takes from an environment going bad to the
first byte at a webhook receiver, and how fast it drains an outbox of 1,000 notifications that
piled up while the receiver was down.

Run it from the repository root (the package is installed editable, so ``import umig_monitor`` works):

    python bench/alerts.py                          # 20 incidents, 1,000-notification drains (~2 min)
    python bench/alerts.py --incidents 50 --envs 10 # more incidents, more environments at once
    python bench/alerts.py --background-alerts 1000 # latency while 1,000 other alerts are firing
    python bench/alerts.py --background-envs 5000 --skip-drain  # latency beside 5,000 environments
    python bench/alerts.py --notifications 5000     # a bigger backlog
    python bench/alerts.py --skip-defaults          # leave out the drain with the default retry settings
    python bench/alerts.py --json > alerts.json     # one JSON document; `.figures` is key -> value
    python bench/alerts.py --profile drain.prof     # cProfile the tuned drain (inflates its figures)

What happens, in order (everything on 127.0.0.1, every server stopped in a ``finally``):

1. **Alert latency.** The UMIG simulator runs in this process (``start_simulator``), so a state
   change is one synchronous ``simulator.update(env, status="unhealthy")`` with no control-API
   round trip to subtract, and the moment each health request reaches it can be noted. A real
   ``Daemon`` with a generated config (SQLite in a temporary directory, ``--envs`` production
   environments every ``--interval``, ``failure_threshold`` ``--failure-threshold``, a webhook
   sink to an aiohttp receiver on a free port, a route sending critical alerts to it) runs in the
   same event loop. Each environment runs its share of ``--incidents`` one after another: a random
   wait of U(0, interval) (so t0 falls at a random phase of the poll schedule), t0, the state
   change, t1 when the receiver's handler is entered for the firing notification, then recovery
   and the resolved notification. Latency = t1 - t0; the breakdown comes from timestamps taken at
   the simulator, at ``AlertPipeline.submit`` and at ``Store.enqueue`` (wrapped in this process).
   With ``--background-envs N`` the same daemon also polls N healthy environments every
   ``--background-interval`` (30 s), served by a simulator in a child process (``umig-monitor
   simulate``, so serving them costs the daemon's process nothing); timing starts after the
   daemon's first round over all of them, and the requests that simulator served during the
   incidents say whether the background polling kept its schedule.
2. **Outage drain**, twice: with ``retry: {initial_backoff: 1s, max_backoff: 5s}``, then with the
   default retry settings (1s / 5m). A daemon's webhook sink points at a loopback port that is
   bound but not listening (connections are refused, and no other process can take the port);
   ``--notifications`` alerts with distinct keys and environments are submitted through
   ``daemon.alerts.submit`` (route -> dedup -> outbox); deliveries fail and back off for the
   outage; then the receiver listens on that very socket and the clock runs until every
   notification has arrived and the outbox has them all ``sent``. Duplicates are counted by
   Idempotency-Key.
3. **Projection**: how long the last row of the backlog waits for its next attempt after outages
   longer than this run can afford (10 min, 1 h), from ``core.retry.next_attempt`` itself with the
   deliverer's jitter. Computed, not measured, and labelled so.

It prints figures and asserts nothing; targets are shown with PASS or MISS. Times are wall clock
(``time.time()``) so they line up with the timestamps the outbox stores. The receiver shares the
daemon's event loop, so its own handling cost (a fraction of a millisecond per request) is counted
against the daemon: the figures are a little pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import platform
import pstats
import random
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from common import (
    HOST,
    Figure,
    Layout,
    Section,
    code_state,
    command,
    free_port,
    judged,
    machine,
    machine_cpu_seconds,
    output,
    percentile,
    progress,
    started_at,
)
from poll import requests_served, simulated

from umig_monitor.app import Daemon
from umig_monitor.config import parse_config
from umig_monitor.core.alerts import AlertEvent, alert_key
from umig_monitor.core.retry import next_attempt
from umig_monitor.logs import configure_logging
from umig_monitor.simulator import Endpoint, RunningSimulator, start_simulator

RECEIVER_PATH = "/alerts"
SUCCESS_THRESHOLD = 2  # the default jobs.health.success_threshold
LATENCY_SLACK_S = 0.25  # issue 18: p99 <= failure_threshold x poll_interval + 0.25 s (was 1 s)
TARGET_DRAIN_S = 60.0
TUNED_RETRY = {"initial_backoff": "1s", "max_backoff": "5s"}
DEFAULT_RETRY = {"initial_backoff": "1s", "max_backoff": "5m"}  # config/models.py Retry defaults
CAPPED_RETRY = {"initial_backoff": "1s", "max_backoff": "30s"}  # projection only: a middle ground
JITTER = (0.8, 1.2)  # pipeline/deliver.py: random.uniform(0.8, 1.2) per retry


# --- results ---------------------------------------------------------------------------------------


def whole(figure: Figure) -> bool:
    """A count: no unit and a whole number."""
    return not figure.unit and figure.value is not None and float(figure.value).is_integer()


LAYOUT = Layout("umig-monitor alert benchmark", label=40, shown=13, whole=whole)


@contextlib.contextmanager
def wrapped(obj: object, name: str, wrapper: Callable[[Any], Any]) -> Iterator[None]:
    """Replace the bound method ``obj.name`` by ``wrapper(original)`` on this instance only."""
    original = getattr(obj, name)
    setattr(obj, name, wrapper(original))
    try:
        yield
    finally:
        delattr(obj, name)  # the class's method shows through again


@contextlib.contextmanager
def daemon_logs(path: Path) -> Iterator[None]:
    """JSON logs to a file, as ``umig-monitor run`` writes them off a terminal."""
    with path.open("w") as stream:
        configure_logging("info", "json", stream)
        try:
            yield
        finally:
            configure_logging("warning", "console", sys.stderr)


@contextlib.asynccontextmanager
async def running_daemon(config: str, source: str) -> AsyncIterator[Daemon]:
    daemon = Daemon(parse_config(config, source))
    try:
        await daemon.start()
        yield daemon
    finally:
        await daemon.stop()


# --- the receiver ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # wall clock when the handler was entered, before the body is read
    key: str  # Idempotency-Key header
    kind: str  # firing, resolved, ...
    environment: str | None


class Receiver:
    """An aiohttp webhook receiver: notes each request and answers 200."""

    def __init__(self, *, expected: int = 0, by_environment: bool = False) -> None:
        self.arrivals: list[Arrival] = []
        self.keys: set[str] = set()
        self.expected = expected
        self.all_arrived = asyncio.Event()
        self._by_environment = by_environment
        self._queues: defaultdict[str, asyncio.Queue[Arrival]] = defaultdict(asyncio.Queue)
        self._runner: web.AppRunner | None = None
        self.unexpected: list[Arrival] = []

    async def handle(self, request: web.Request) -> web.Response:
        at = time.time()
        body = await request.json()
        key = request.headers.get("Idempotency-Key", "")
        environment = (body.get("commonLabels") or {}).get("environment")
        arrival = Arrival(at, key, str(body.get("kind")), environment)
        self.arrivals.append(arrival)
        self.keys.add(key)
        if self._by_environment and environment is not None:
            self._queues[environment].put_nowait(arrival)
        if self.expected and len(self.keys) >= self.expected:
            self.all_arrived.set()
        return web.Response(text="ok")

    async def start(self, sock: socket.socket | None = None) -> int:
        """Listen on a free port, or on ``sock`` (bound, not yet listening); returns the port."""
        app = web.Application()
        app.router.add_post(RECEIVER_PATH, self.handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0) if sock is None else web.SockSite(self._runner, sock)
        await site.start()
        bound: int = self._runner.addresses[0][1]
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def next(self, environment: str, kind: str, within: float) -> Arrival | None:
        """The next notification of ``kind`` about ``environment``; None after ``within`` seconds."""
        queue = self._queues[environment]
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                arrival = await asyncio.wait_for(queue.get(), left)
            except TimeoutError:
                return None
            if arrival.kind == kind:
                return arrival
            self.unexpected.append(arrival)
        return None

    @property
    def duplicates(self) -> int:
        return len(self.arrivals) - len(self.keys)


async def submit_alerts(daemon: Daemon, count: int, prefix: str) -> None:
    """``count`` critical alerts, each its own key and environment (so its own notification group),
    through the pipeline's front door, as the health job raises them."""
    for i in range(count):
        env = f"{prefix}-{i:05d}"
        event = AlertEvent(
            alert_key("bench_alert", env),
            "bench_alert",
            env,
            "critical",
            f"{env}: bench alert",
            datetime.now(UTC),
        )
        await daemon.alerts.submit(event)


# --- alert latency ---------------------------------------------------------------------------------


@dataclass
class Incident:
    environment: str
    t0: float
    fired: float | None = None  # receiver handler entered, firing notification
    recovered: float | None = None  # just before simulator.update(env, status=None)
    resolved: float | None = None  # receiver handler entered, resolved notification
    first_seen: float | None = None  # first health request at the simulator after t0
    opening: float | None = None  # the failure_threshold-th failing health request
    submitted: float | None = None  # AlertPipeline.submit entered with the firing event
    enqueued: float | None = None  # Store.enqueue returned with the firing notification

    @property
    def latency(self) -> float | None:
        return None if self.fired is None else self.fired - self.t0


@dataclass
class Trace:
    """Timestamps noted inside the daemon and the simulator, per environment."""

    health_requests: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    submits: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    enqueues: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def note_request(self, original: Callable[[str, Endpoint], int]) -> Callable[[str, Endpoint], int]:
        def record_request(environment: str, endpoint: Endpoint) -> int:
            if endpoint is Endpoint.HEALTH:
                self.health_requests[environment].append(time.time())
            return original(environment, endpoint)

        return record_request

    def note_submit(self, original: Callable[[AlertEvent], Awaitable[None]]) -> Callable[..., Any]:
        async def submit(event: AlertEvent) -> None:
            if event.firing and event.environment is not None:
                self.submits[event.environment].append(time.time())
            await original(event)

        return submit

    def note_enqueue(self, original: Callable[..., Awaitable[int]]) -> Callable[..., Any]:
        async def enqueue(entries: Sequence[Any], log: Sequence[Any]) -> int:
            inserted = await original(entries, log)
            done = time.time()
            for entry in entries:
                if entry.kind == "firing" and entry.payload["alerts"]:
                    self.enqueues[entry.payload["alerts"][0]["environment"]].append(done)
            return inserted

        return enqueue

    def explain(self, incident: Incident, failure_threshold: int) -> None:
        """Fill in the breakdown of one incident from what was noted."""
        if incident.fired is None:
            return
        t0, t1 = incident.t0, incident.fired
        seen = [t for t in self.health_requests[incident.environment] if t0 <= t <= t1]
        if seen:
            incident.first_seen = seen[0]
        if len(seen) >= failure_threshold:
            incident.opening = seen[failure_threshold - 1]
        incident.submitted = next((t for t in self.submits[incident.environment] if t0 <= t <= t1), None)
        incident.enqueued = next((t for t in self.enqueues[incident.environment] if t0 <= t <= t1), None)


def latency_config(
    envs: Sequence[str],
    sim: RunningSimulator,
    hook: str,
    tmp: Path,
    args: Any,
    background: tuple[Sequence[str], int] = ((), 0),
) -> str:
    lines = [
        "daemon:",
        f"  listen: {HOST}:{free_port()}",
        f"  storage: sqlite:///{tmp / 'latency.db'}",
        "  log_level: info",
        "jobs:",
        "  health:",
        f"    failure_threshold: {args.failure_threshold}",
        f"    success_threshold: {SUCCESS_THRESHOLD}",
        "environments:",
    ]
    for env in envs:
        lines += [
            f"  {env}:",
            f"    base_url: {sim.base_url(env)}",
            "    kind: production",  # severity critical
            f"    poll_interval: {round(args.interval * 1000)}ms",
            "    timeout: 2s",
        ]
    names, port = background
    for env in names:  # healthy, polled at their own interval, served by the child simulator
        lines += [
            f"  {env}:",
            f"    base_url: http://{HOST}:{port}/{env}",
            "    kind: production",
            f"    poll_interval: {round(args.background_interval * 1000)}ms",
            "    timeout: 5s",
        ]
    lines += [
        "sinks:",
        f"  receiver: {{type: webhook, url: '{hook}'}}",
        "routes:",
        "  - match: {severity: critical}",
        "    sinks: [receiver]",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def background_simulator(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[list[str], int] | None]:
    """The ``--background-envs`` environments' simulator in a child process: (names, port), or None."""
    names = [f"bg-{i:05d}" for i in range(1, args.background_envs + 1)]
    if not names:
        yield None
        return
    with simulated(names, tmp / "bg-simulator.log") as (_, port):
        yield names, port


async def measure_latency(args: argparse.Namespace, tmp: Path) -> tuple[list[Incident], dict[str, Any]]:
    with background_simulator(args, tmp) as background:
        return await latency_run(args, tmp, background)


async def latency_run(
    args: argparse.Namespace, tmp: Path, background: tuple[list[str], int] | None
) -> tuple[list[Incident], dict[str, Any]]:
    envs = [f"lat-{i:02d}" for i in range(1, args.envs + 1)]
    shares = [args.incidents // len(envs) + (i < args.incidents % len(envs)) for i in range(len(envs))]
    interval, threshold = args.interval, args.failure_threshold
    timeout = (threshold + 5) * interval + 10
    trace = Trace()
    receiver = Receiver(by_environment=True)
    sim = await start_simulator(envs, host=HOST, port=0)
    facts: dict[str, Any] = {}
    try:
        hook = f"http://{HOST}:{await receiver.start()}{RECEIVER_PATH}"
        config = latency_config(envs, sim, hook, tmp, args, background or ((), 0))
        with (
            daemon_logs(tmp / "latency-daemon.log"),
            wrapped(sim.simulator, "record_request", trace.note_request),
        ):
            async with running_daemon(config, "bench/alerts.py latency") as daemon:
                with (
                    wrapped(daemon.alerts, "submit", trace.note_submit),
                    wrapped(daemon.store, "enqueue", trace.note_enqueue),
                ):
                    first_round_s = 60 + (args.background_interval if background else 0)
                    for _ in range(round(first_round_s * 10)):
                        if daemon.first_round_done():
                            break
                        await asyncio.sleep(0.1)
                    facts["first_round_done"] = daemon.first_round_done()
                    # Warm-up: every tracker past its success threshold, connections open.
                    await asyncio.sleep((SUCCESS_THRESHOLD + 1) * interval)
                    if args.background_alerts:
                        loaded = time.time()
                        await submit_alerts(daemon, args.background_alerts, "bg")
                        while len(receiver.keys) < args.background_alerts:
                            if time.time() - loaded > 120:
                                raise RuntimeError("background alerts not delivered within 120 s")
                            await asyncio.sleep(0.1)
                        facts["background_alerts_delivered_s"] = round(time.time() - loaded, 1)
                        await asyncio.sleep(interval)

                    async def incidents(env: str, count: int) -> list[Incident]:
                        done = []
                        for _ in range(count):
                            await asyncio.sleep(random.uniform(0, interval))  # a random phase
                            incident = Incident(env, time.time())
                            sim.simulator.update(env, status="unhealthy")
                            fired = await receiver.next(env, "firing", timeout)
                            incident.fired = fired.at if fired else None
                            incident.recovered = time.time()
                            sim.simulator.update(env, status=None)  # healthy again
                            resolved = await receiver.next(env, "resolved", timeout)
                            incident.resolved = resolved.at if resolved else None
                            done.append(incident)
                        return done

                    started = time.time()
                    served_before = sum(requests_served(background[1]).values()) if background else 0
                    runs = await asyncio.gather(*(incidents(e, n) for e, n in zip(envs, shares, strict=True)))
                    wall = time.time() - started
                    facts["wall_s"] = round(wall, 1)
                    if background:
                        # Each background poll reads health, every 4th also version and components.
                        served_now = sum(requests_served(background[1]).values()) - served_before
                        due = len(background[0]) * wall / args.background_interval
                        facts["background_requests_per_second"] = round(served_now / wall, 1)
                        facts["background_polls_due_per_second"] = round(due / wall, 1)
    finally:
        await receiver.stop()
        await sim.stop()
    measured = [i for run in runs for i in run]
    for incident in measured:
        trace.explain(incident, threshold)
    gaps = [b - a for env in envs for a, b in itertools.pairwise(trace.health_requests[env])]
    facts.update(
        notifications_received=len(receiver.arrivals),
        unexpected_notifications=len(receiver.unexpected),
        duplicates_by_idempotency_key=receiver.duplicates,
        poll_period_mean_s=round(statistics.fmean(gaps), 4) if gaps else None,
        poll_period_max_s=round(max(gaps), 4) if gaps else None,
    )
    return measured, facts


def latency_section(incidents: list[Incident], facts: dict[str, Any], args: argparse.Namespace) -> Section:
    interval, threshold = args.interval, args.failure_threshold
    target = threshold * interval + LATENCY_SLACK_S
    section = Section(
        f"alert latency ({len(incidents)} incidents over {args.envs} environments)",
        f"t0 just before simulator.update(env, status='unhealthy') (in-process simulator), t1 when the "
        f"receiver's handler is entered for the firing notification; a real Daemon in this process, "
        f"poll_interval {interval:g}s, failure_threshold {threshold}, webhook sink on a free loopback "
        f"port; t0 at a random phase of the poll schedule. Recovery and the resolved notice between "
        f"incidents. Model: ({threshold} - 1 + U(0,1)) x {interval:g}s + processing."
        + (
            f" {args.background_alerts} other critical alerts firing throughout (--background-alerts)."
            if args.background_alerts
            else ""
        )
        + (
            f" {args.background_envs} other environments polled every {args.background_interval:g}s "
            "throughout (--background-envs)."
            if args.background_envs
            else ""
        ),
    )
    section.facts.update(facts)
    latencies = [i.latency for i in incidents if i.latency is not None]
    missing = len(incidents) - len(latencies)
    section.facts.update(
        incidents=len(incidents),
        firing_not_received=missing,
        resolved_not_received=sum(i.resolved is None for i in incidents),
    )
    if not latencies:
        section.absent("latency_p99_s", "latency p99", "no firing notification arrived")
        return section
    p99 = percentile(latencies, 99)
    ok = p99 <= target and not missing
    section.add("latency_p50_s", "latency p50", percentile(latencies, 50), "s")
    section.add("latency_p95_s", "latency p95", percentile(latencies, 95), "s")
    note = f"{threshold} x {interval:g}s + {LATENCY_SLACK_S:g}s" + (
        f"; {missing} never arrived" if missing else ""
    )
    section.add("latency_p99_s", "latency p99", p99, "s", note, **judged(f"<= {target:g} s", ok))
    section.add("latency_max_s", "latency max", max(latencies), "s")

    def spans(start: str, end: str) -> list[float]:
        out = []
        for i in incidents:
            a, b = getattr(i, start), getattr(i, end)
            if a is not None and b is not None:
                out.append(b - a)
        return out

    wait = spans("t0", "first_seen")
    polls = spans("first_seen", "opening")
    processing = spans("opening", "fired")
    if wait:
        section.add(
            "wait_for_poll_mean_s",
            "t0 -> next health request (mean)",
            statistics.fmean(wait),
            "s",
            f"expected U(0,{interval:g}) mean {interval / 2:g}s; max {max(wait):.3f}s",
        )
    if polls:
        section.add(
            "threshold_polls_mean_s",
            f"1st -> failing request #{threshold} (mean)",
            statistics.fmean(polls),
            "s",
            f"expected ({threshold} - 1) x {interval:g}s = {(threshold - 1) * interval:g}s",
        )
    for key, label, values in (
        ("poll_to_submit", "poll -> AlertPipeline.submit", spans("opening", "submitted")),
        ("submit_to_outbox", "submit -> outbox row committed", spans("submitted", "enqueued")),
        ("outbox_to_receiver", "outbox -> receiver handler", spans("enqueued", "fired")),
    ):
        if values:
            section.add(
                f"{key}_p50_ms",
                f"{label} p50",
                percentile(values, 50) * 1000,
                "ms",
                f"max {max(values) * 1000:,.1f} ms",
            )
    recovery = spans("recovered", "resolved")
    if recovery:
        section.add(
            "resolved_p50_s",
            "recovery -> resolved notification p50",
            percentile(recovery, 50),
            "s",
            f"max {max(recovery):.3f}s; expected ({SUCCESS_THRESHOLD} - 1 + U(0,1)) x {interval:g}s + proc.",
        )
    if processing:
        section.add(
            "processing_p50_ms",
            "processing (opening request -> t1) p50",
            percentile(processing, 50) * 1000,
            "ms",
            f"p99 {percentile(processing, 99) * 1000:,.1f} ms, max {max(processing) * 1000:,.1f} ms",
        )
        expected_p50 = (threshold - 0.5) * interval + percentile(processing, 50)
        expected_max = threshold * interval + max(processing)
        section.add(
            "model_p50_s",
            "model p50 ((ft - 0.5) x interval + proc.)",
            expected_p50,
            "s",
            f"model bound ft x interval + max proc. = {expected_max:.3f}s",
        )
    return section


# --- outage drain ----------------------------------------------------------------------------------


def drain_config(hook: str, retry: dict[str, str], tmp: Path, name: str) -> str:
    retry_yaml = ", ".join(f"{k}: {v}" for k, v in retry.items())
    return textwrap.dedent(
        f"""\
        daemon:
          listen: {HOST}:{free_port()}
          storage: sqlite:///{tmp / f"{name}.db"}
          log_level: info
        sinks:
          outage: {{type: webhook, url: '{hook}', retry: {{{retry_yaml}}}}}
        routes:
          - match: {{severity: critical}}
            sinks: [outage]
        """
    )


@dataclass
class Timings:
    """Calls to one async method and the wall time spent in them."""

    calls: int = 0
    seconds: float = 0.0
    longest: float = 0.0
    on: bool = False

    def wrap(self, original: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                if self.on:
                    spent = time.perf_counter() - started
                    self.calls += 1
                    self.seconds += spent
                    self.longest = max(self.longest, spent)

        return timed

    def ms_per_call(self) -> float | None:
        return self.seconds * 1000 / self.calls if self.calls else None


async def measure_drain(
    args: argparse.Namespace, tmp: Path, name: str, retry: dict[str, str], outage: float, budget: float
) -> dict[str, Any]:
    """One outage and drain; returns raw figures (wall-clock seconds relative to the receiver's start)."""
    count = args.notifications
    # Bound but not listening: connections are refused until the receiver listens on this very
    # socket, and no other process can take the port meanwhile.
    reserved = socket.socket()
    reserved.bind((HOST, 0))  # closed below, whatever happens
    hook = f"http://{HOST}:{reserved.getsockname()[1]}{RECEIVER_PATH}"
    receiver = Receiver(expected=count)
    timings = {n: Timings() for n in ("evaluate", "due_deliveries", "delivery_sent")}
    out: dict[str, Any] = {"retry": retry, "outage_s": outage, "notifications": count}
    profiler = cProfile.Profile() if args.profile and name == "drain-tuned" else None
    with reserved, daemon_logs(tmp / f"{name}-daemon.log"):
        async with running_daemon(drain_config(hook, retry, tmp, name), f"bench/alerts.py {name}") as daemon:
            store = daemon.store
            with (
                wrapped(daemon.alerts, "evaluate", timings["evaluate"].wrap),
                wrapped(store, "due_deliveries", timings["due_deliveries"].wrap),
                wrapped(store, "delivery_sent", timings["delivery_sent"].wrap),
            ):
                try:
                    started = time.time()
                    await submit_alerts(daemon, count, "drain")
                    out["submit_s"] = time.time() - started
                    while (
                        sum(n for (sink, _), n in (await store.outbox_counts()).items() if sink == "outage")
                        < count
                    ):
                        if time.time() - started > 120:
                            raise RuntimeError("the outbox did not reach the expected rows within 120 s")
                        await asyncio.sleep(0.05)
                    out["enqueue_s"] = time.time() - started
                    # The outage: every row must have failed at least once before the receiver comes back.
                    while True:
                        await asyncio.sleep(max(0.0, started + outage - time.time()))
                        pending = await store.list_deliveries(status="pending", limit=count + 10)
                        if min((d.attempts for d in pending), default=0) >= 1:
                            break
                        outage = time.time() - started + 1
                    now = datetime.now(UTC)
                    due_at = {d.idempotency_key: d.next_attempt_at.timestamp() for d in pending}
                    attempts = [d.attempts for d in pending]
                    due_in = [(d.next_attempt_at - now).total_seconds() for d in pending]
                    out.update(
                        outage_s=time.time() - started,
                        pending_at_recovery=len(pending),
                        attempts_during_outage=sum(attempts),
                        attempts_per_row_max=max(attempts),
                        last_row_due_after_s=max(due_in),
                        median_row_due_after_s=statistics.median(due_in),
                    )
                    for t in timings.values():
                        t.on = True
                    if profiler is not None:
                        profiler.enable()
                    up = time.time()
                    await receiver.start(reserved)
                    arrived = True
                    try:
                        await asyncio.wait_for(receiver.all_arrived.wait(), budget)
                    except TimeoutError:
                        arrived = False
                    marked = False
                    while arrived:
                        counts = await store.outbox_counts()
                        if counts.get(("outage", "sent"), 0) >= count:
                            marked = True
                            break
                        if time.time() - up > budget + 10:
                            break
                        await asyncio.sleep(0.02)
                    done = time.time()
                    if profiler is not None:
                        profiler.disable()
                    for t in timings.values():
                        t.on = False
                    sent = await store.list_deliveries(status="sent", limit=count + 10)
                    counts = await store.outbox_counts()
                finally:
                    await receiver.stop()
    if profiler is not None:
        profiler.dump_stats(args.profile)
        print(f"\ncProfile of the tuned drain (main thread), saved in {args.profile}:", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    arrivals = sorted(a.at for a in receiver.arrivals)
    # How long after a row could be tried (its next attempt, or the receiver's start if later) it
    # arrived: the worker's queueing and idle waits, not the backoff.
    behind = [a.at - max(due_at.get(a.key, up), up) for a in receiver.arrivals]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    out.update(
        drained=arrived and marked,
        drain_s=done - up if arrived and marked else None,
        waited_s=done - up,
        received_distinct=len(receiver.keys),
        received_requests=len(receiver.arrivals),
        duplicates=receiver.duplicates,
        outbox=";".join(f"{s}/{st}={n}" for (s, st), n in sorted(counts.items())),
        first_arrival_s=arrivals[0] - up if arrivals else None,
        last_arrival_s=arrivals[-1] - up if arrivals else None,
        last_marked_sent_s=max((d.sent_at.timestamp() for d in sent if d.sent_at), default=up) - up,
        median_gap_between_arrivals_ms=statistics.median(gaps) * 1000 if gaps else None,
        behind_due_p50_s=percentile(behind, 50) if behind else None,
        behind_due_max_s=max(behind) if behind else None,
        timings={
            n: {"calls": t.calls, "ms_per_call": t.ms_per_call(), "longest_ms": t.longest * 1000}
            for n, t in timings.items()
        },
        profiled=profiler is not None,
    )
    return out


def drain_section(result: dict[str, Any], title: str, labelled: str) -> Section:
    count = result["notifications"]
    retry = result["retry"]
    section = Section(
        title,
        f"{count} alerts (distinct keys and environments) submitted through daemon.alerts.submit -> "
        f"route -> dedup -> outbox while the webhook sink's port has no listener; sink retry "
        f"{{initial_backoff: {retry['initial_backoff']}, max_backoff: {retry['max_backoff']}}} "
        f"({labelled}); after {result['outage_s']:.1f}s of outage the receiver starts on that port. "
        "Drain = receiver start -> every notification received and the outbox has them all sent.",
    )
    section.facts.update(
        {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in result.items()
            if k not in ("retry", "timings", "notifications")
        }
    )
    for name, t in result["timings"].items():
        if t["calls"]:
            section.facts[f"{name}_calls"] = t["calls"]
            section.facts[f"{name}_ms_per_call"] = round(t["ms_per_call"], 2)
            section.facts[f"{name}_longest_ms"] = round(t["longest_ms"], 1)
    key = "drain" if labelled == "tuned" else "drain_defaults"
    if result["drain_s"] is None:
        reason = (
            f"not drained within {result['waited_s']:.0f}s: {result['received_distinct']} of {count} "
            f"arrived; the last row was due {result['last_row_due_after_s']:.1f}s after recovery"
        )
        section.absent(f"{key}_s", "drain time", reason)
    else:
        drain = result["drain_s"]
        note = "profiled: inflated" if result["profiled"] else ""
        section.add(
            f"{key}_s",
            "drain time",
            drain,
            "s",
            note,
            **judged(f"<= {TARGET_DRAIN_S:g} s", drain <= TARGET_DRAIN_S),
        )
        section.add(f"{key}_per_s", "deliveries per second (over the drain)", count / drain, "/s")
    section.add(
        f"{key}_last_row_due_s",
        "last row's next attempt after recovery",
        result["last_row_due_after_s"],
        "s",
        f"median {result['median_row_due_after_s']:.1f}s; backoff floor under the drain",
    )
    if result["first_arrival_s"] is not None:
        section.add(f"{key}_first_arrival_s", "first arrival after recovery", result["first_arrival_s"], "s")
    if result["behind_due_p50_s"] is not None:
        section.add(
            f"{key}_behind_due_p50_s",
            "arrival after the row was due, p50",
            result["behind_due_p50_s"],
            "s",
            f"max {result['behind_due_max_s']:.3f}s; worker queueing + idle waits, not backoff",
        )
    if result["median_gap_between_arrivals_ms"] is not None:
        section.add(
            f"{key}_gap_ms",
            "median gap between arrivals",
            result["median_gap_between_arrivals_ms"],
            "ms",
            "≈ service time per delivery while backlogged",
        )
    dup = result["duplicates"]
    section.add(
        f"{key}_duplicates",
        "duplicates by Idempotency-Key",
        dup,
        "",
        f"{result['received_requests']} requests, {result['received_distinct']} distinct keys",
        **judged("0", dup == 0),
    )
    return section


def project_backlog(outage_s: float, initial: float, maximum: float, rows: int, rng: random.Random) -> float:
    """Seconds after recovery until the last of ``rows`` is tried again, all enqueued at outage start
    and failing until ``outage_s``; the schedule is core.retry.next_attempt's, the jitter the deliverer's."""
    zero = datetime(2026, 1, 1, tzinfo=UTC)
    end = zero + timedelta(seconds=outage_s)
    latest = 0.0
    for _ in range(rows):
        at, attempts = zero, 0
        while at < end:
            attempts += 1
            when = next_attempt(
                attempts,
                at,
                None,
                initial=timedelta(seconds=initial),
                maximum=timedelta(seconds=maximum),
                jitter=rng.uniform(*JITTER),
            )
            assert when is not None
            at = when
        latest = max(latest, (at - end).total_seconds())
    return latest


def projection_section(rows: int) -> Section:
    section = Section(
        "projection: backoff floor under the drain after longer outages (computed, not measured)",
        f"for {rows} rows enqueued when the receiver goes down, every attempt failing until it comes "
        "back: seconds until the last row is even tried again, from core.retry.next_attempt with "
        "the deliverer's jitter U(0.8, 1.2). The drain cannot be shorter than this.",
    )
    rng = random.Random(4)
    for label, retry in (("tuned", TUNED_RETRY), ("defaults", DEFAULT_RETRY), ("30s-max", CAPPED_RETRY)):
        initial = parse_seconds(retry["initial_backoff"])
        maximum = parse_seconds(retry["max_backoff"])
        for outage in (60.0, 600.0, 3600.0):
            floor = project_backlog(outage, initial, maximum, rows, rng)
            section.add(
                f"projected_floor_{label}_{int(outage)}s",
                f"{label} ({retry['max_backoff']} max), {outage / 60:g} min outage",
                floor,
                "s",
                **judged(f"<= {TARGET_DRAIN_S:g} s", floor <= TARGET_DRAIN_S),
            )
    return section


def parse_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


# --- main ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--incidents", type=int, default=20, help="incidents to time (default 20)")
    p.add_argument("--envs", type=int, default=5, help="environments polled at once (default 5)")
    p.add_argument("--interval", type=float, default=1.0, help="poll interval, seconds (default 1)")
    p.add_argument("--failure-threshold", type=int, default=3, help="jobs.health.failure_threshold (3)")
    p.add_argument(
        "--background-alerts",
        type=int,
        default=0,
        help="alerts kept firing during the latency incidents, to load the dispatcher (default 0)",
    )
    p.add_argument(
        "--background-envs",
        type=int,
        default=0,
        help="healthy environments polled beside the incidents' ones, from a child simulator (default 0)",
    )
    p.add_argument(
        "--background-interval", type=float, default=30.0, help="their poll interval, seconds (default 30)"
    )
    p.add_argument("--notifications", type=int, default=1000, help="backlog for the drain (default 1000)")
    p.add_argument("--outage", type=float, default=15.0, help="receiver down, tuned retry (default 15 s)")
    p.add_argument(
        "--default-outage", type=float, default=40.0, help="receiver down, default retry (default 40 s)"
    )
    # Both outages count from the first submit and are stretched until every row has failed once.
    p.add_argument("--skip-latency", action="store_true", help="leave out the latency measurement")
    p.add_argument("--skip-drain", action="store_true", help="leave out both drains")
    p.add_argument("--skip-defaults", action="store_true", help="leave out the drain with default retry")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--profile", metavar="PATH", help="cProfile the tuned drain into PATH (pstats)")
    args = p.parse_args(argv)
    if (
        min(args.incidents, args.envs, args.interval, args.notifications, args.outage, args.default_outage)
        <= 0
    ):
        p.error("counts, --interval and outages must be positive")
    if args.background_envs < 0 or args.background_interval <= 0:
        p.error("--background-envs must be 0 or more, --background-interval positive")
    if args.failure_threshold < 1:
        p.error("--failure-threshold must be at least 1")
    args.envs = min(args.envs, args.incidents)
    return args


async def run(args: argparse.Namespace, tmp: Path) -> list[Section]:
    sections: list[Section] = []
    if not args.skip_latency:
        progress(f"latency: {args.incidents} incidents over {args.envs} environments")
        incidents, facts = await measure_latency(args, tmp)
        sections.append(latency_section(incidents, facts, args))
    if not args.skip_drain:
        progress(f"drain, tuned retry: {args.notifications} notifications, {args.outage:g}s outage")
        tuned = await measure_drain(args, tmp, "drain-tuned", TUNED_RETRY, args.outage, budget=120)
        sections.append(drain_section(tuned, "outage drain, retry tuned (1s / 5s)", "tuned"))
        if not args.skip_defaults:
            progress(
                f"drain, default retry: {args.notifications} notifications, {args.default_outage:g}s outage"
            )
            defaults = await measure_drain(
                args, tmp, "drain-defaults", DEFAULT_RETRY, args.default_outage, budget=90
            )
            title = "outage drain, DEFAULT retry settings (1s / 5m), for comparison"
            sections.append(drain_section(defaults, title, "defaults"))
        sections.append(projection_section(args.notifications))
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup: dict[str, Any] = {
        "machine": machine(),
        "python": f"{platform.python_version()}, aiohttp {aiohttp.__version__}",
        "code": code_state(),
        "started": started_at(),
        "command": command("alerts.py", argv),
    }
    started, busy, own = time.monotonic(), machine_cpu_seconds()[0], time.process_time()
    with tempfile.TemporaryDirectory(prefix="umig-bench-alerts-") as scratch:
        sections = asyncio.run(run(args, Path(scratch)))
    wall = time.monotonic() - started
    # Latencies here are wall clock: anything else busy on the machine meanwhile shows up in them.
    others = (machine_cpu_seconds()[0] - busy) - (time.process_time() - own)
    setup["duration"] = f"{wall:.0f} s"
    setup["other load"] = (
        f"{others:.1f} CPU-s by other processes during the run ({others / wall:.0%} of one core)"
    )
    output(LAYOUT, setup, sections, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
