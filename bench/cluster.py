"""Cluster benchmark (issue 9): three replicas on one PostgreSQL polling 3,000 simulated environments
every 30 s; the CPU each replica spends, how long the lease takes to pass when the leader is killed,
and whether any notification reaches the receiver twice across those kills.

Run it from the repository root (the package is installed editable, so ``import umig_monitor`` works):

    python bench/cluster.py                                  # 3,000 environments, 10 leader kills (~8 min)
    python bench/cluster.py --envs 300 --kills 3 --steady 20 # a quick look
    python bench/cluster.py --heartbeat 1 --lease-ttl 3      # faster failover, more heartbeat traffic
    python bench/cluster.py --postgres-url postgresql://postgres@127.0.0.1:5432/empty_db
    python bench/cluster.py --json > cluster.json            # one JSON document; `.figures` is key -> value

What happens, in order (everything on 127.0.0.1, every child process stopped in a ``finally``):

1. **PostgreSQL**: a throwaway cluster of its own (``initdb`` + ``pg_ctl`` from Debian's postgresql,
   fsync off, as the postgres user when run as root), unless ``--postgres-url`` names an empty
   database to use instead.
2. **Simulator**: ``python -m umig_monitor simulate`` with ``--envs`` environments, in its own
   process, so its CPU is not counted against the replicas.
3. **Receiver**: an aiohttp webhook receiver in this process. It refuses the first attempt of every
   Idempotency-Key (503, Retry-After: 0), so every notification is pending and retried at least
   once and a kill is more likely to find some in flight; it answers after ``--receiver-delay``.
   Each replica's sink adds an ``X-Replica`` header, so the receiver knows who sent what.
4. **Replicas**: three ``python -m umig_monitor run`` processes with one generated config each
   (every environment ``kind: production`` at ``--interval``, ``daemon.cluster`` with
   ``--heartbeat`` and ``--lease-ttl``, a webhook sink to the receiver, ``default_route`` grouped by
   environment, alerts on the first bad poll), JSON logs to files.
5. **Steady CPU**: once every environment has a stored sample (the first round), a short warm-up,
   then ``--steady`` seconds: utime + stime of each replica from ``/proc/<pid>/stat`` per wall
   second, and per poll: polls are the health samples stored in the window for the environments
   the replica was assigned (``/api/v1/cluster`` at both edges; a change of assignment in between
   is reported). The simulator's, PostgreSQL's and the whole machine's CPU are printed as facts.
6. **Failover**, ``--kills`` times: a random pause, then SIGKILL of the replica holding the
   ``leader`` lease (read from ``cluster_leases``), and the time until another replica holds it:
   its ``acquired_at`` minus the wall clock of the kill (p50 and max; the time this script saw it,
   polling the table every 20 ms, is a fact). The killed replica is restarted with the same config
   (so the same member id) and the next kill waits until all three see each other again. Before each
   kill ``--flips`` environments turn unhealthy and the previous ones healthy again, through the
   simulator's control API, so notifications keep coming during the kills.
7. **Duplicates**: after the last kill, one poll interval for the last flips to be seen, then until
   the outbox has nothing pending; a duplicate is an Idempotency-Key the receiver answered 200 more
   than once (target 0). Keys missing at the receiver and rows that failed are counted too.

It prints figures and asserts nothing; targets are shown with PASS or MISS; progress goes to stderr.
On a 2-CPU machine the simulator, PostgreSQL and three replicas share two cores: the load line and
the machine's busy share say how close to saturation the run was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from common import (
    HOST,
    Layout,
    Section,
    ThrowawayPostgres,
    code_state,
    command,
    free_port,
    judged,
    load,
    machine,
    machine_cpu_seconds,
    output,
    percentile,
    proc_cpu_seconds,
    progress,
    started_under_load,
)

from umig_monitor.simulator import DEFAULT_PREFIX

LAYOUT = Layout(
    "umig-monitor cluster benchmark",
    label=44,
    shown=16,
    whole=lambda f: f.unit in ("polls", "kills", "keys", "rows", "envs"),
)
REPLICAS = 3
LEASE = "leader"


# --- child processes -------------------------------------------------------------------------------


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A child with its output appended to ``log``; Ctrl-C and SIGTERM are held while it starts, so
    an interrupt cannot leave a running child that nothing refers to."""
    held: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, _frame: held.append(signum)) for sig in signals}
    try:
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held:
        stop(proc)
        raise KeyboardInterrupt
    return proc


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class Replica:
    name: str
    port: int
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    member: str = ""  # its member id, as its /api/v1/cluster says
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.proc = start(
            [sys.executable, "-m", "umig_monitor", "run", "--config", str(self.config)], self.log
        )
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


def replica_config(
    replica: Replica, args: argparse.Namespace, storage: str, envs: Sequence[str], sim_port: int, hook: str
) -> str:
    interval = f"{round(args.interval * 1000)}ms"
    lines = [
        "daemon:",
        f"  listen: {HOST}:{replica.port}",
        f"  storage: {storage}",
        "  log_format: json",
        "  shutdown_timeout: 5s",
        "  cluster: {"
        f"heartbeat_interval: {round(args.heartbeat * 1000)}ms, lease_ttl: {round(args.lease_ttl * 1000)}ms"
        "}",
        "jobs:",
        "  health: {failure_threshold: 1, success_threshold: 1}",
        "  drift: {enabled: false}",
        "  baseline: {enabled: false}",
        "  daily_report: {enabled: false}",
        "sinks:",
        f"  hook: {{type: webhook, url: '{hook}', headers: {{X-Replica: {replica.name}}},"
        " retry: {initial_backoff: 1s, max_backoff: 5s}}",
        "default_route: {sinks: [hook], group_by: [environment]}",
        "environments:",
    ]
    lines += [
        f"  {env}: {{base_url: 'http://{HOST}:{sim_port}/{env}', kind: production, poll_interval: {interval},"
        " timeout: 5s}"
        for env in envs
    ]
    return "\n".join(lines) + "\n"


# --- the receiver ----------------------------------------------------------------------------------


@dataclass
class Receiver:
    """Refuses the first attempt of each Idempotency-Key, accepts the rest; notes every request."""

    delay: float
    url: str = ""
    seen: set[str] = field(default_factory=set)
    # (wall clock of arrival, key, replica, status answered)
    requests: list[tuple[float, str, str, int]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        arrived = time.time()
        key = request.headers.get("Idempotency-Key", "")
        status = 200 if key in self.seen else 503
        self.seen.add(key)
        self.requests.append((arrived, key, request.headers.get("X-Replica", ""), status))
        if self.delay:
            await asyncio.sleep(self.delay)
        if status == 200:
            return web.Response(text="ok")
        return web.Response(status=503, text="busy", headers={"Retry-After": "0"})

    def accepted(self) -> list[tuple[float, str, str]]:
        return [(at, key, replica) for at, key, replica, status in self.requests if status == 200]


# --- the run ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.envs = [f"e{i:04d}" for i in range(1, args.envs + 1)]
        self.replicas: list[Replica] = []
        self.sim: subprocess.Popen[bytes] | None = None
        self.sim_port = 0
        self.pg: ThrowawayPostgres | None = None
        self.db: asyncpg.Connection | None = None
        self.http: aiohttp.ClientSession | None = None
        self.receiver = Receiver(args.receiver_delay)
        self.kills: list[tuple[float, str]] = []  # (wall clock, replica name)
        self.setup: dict[str, Any] = {}
        self.unsettled: list[str] = []  # what the replicas said each time they did not agree
        self.started = 0.0  # time.monotonic() when the replicas were started

    # -- helpers ------------------------------------------------------------------------------------

    async def get(self, url: str) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else await resp.text()
            return resp.status, body

    async def views(self) -> dict[str, dict[str, Any] | None]:
        async def one(replica: Replica) -> dict[str, Any] | None:
            try:
                status, body = await self.get(replica.base + "/api/v1/cluster")
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return None
            return body if status == 200 else None

        bodies = await asyncio.gather(*(one(r) for r in self.replicas))
        return {r.name: body for r, body in zip(self.replicas, bodies, strict=True)}

    async def until_agreed(self, within: float) -> dict[str, dict[str, Any]] | None:
        """All three answer, see the same three live members and the same leader: their views.
        None if they do not within ``within`` seconds (what they said is kept in ``unsettled``)."""
        deadline = time.monotonic() + within
        last: Any = None
        while time.monotonic() < deadline:
            for replica in self.replicas:
                if replica.exited() is not None:
                    raise RuntimeError(f"{replica.name} exited with {replica.exited()}; see {replica.log}")
            views = await self.views()
            if all(views.values()):
                seen = {k: v for k, v in views.items() if v is not None}
                ids = sorted(v["member"] for v in seen.values())
                live = [sorted(m["id"] for m in v["members"] if m["live"]) for v in seen.values()]
                leaders = {(v["leader"] or {}).get("member") for v in seen.values()}
                if all(x == ids for x in live) and len(leaders) == 1 and leaders <= set(ids):
                    for replica in self.replicas:
                        replica.member = seen[replica.name]["member"]
                    return seen
                last = {"live": live, "leaders": leaders}
            else:
                last = {k: bool(v) for k, v in views.items()}
            await asyncio.sleep(0.2)
        self.unsettled.append(str(last))
        progress(f"the replicas did not agree within {within:g} s: {last}")
        return None

    async def lease(self) -> tuple[str | None, datetime | None]:
        assert self.db is not None
        row = await self.db.fetchrow("SELECT holder, acquired_at FROM cluster_leases WHERE name = $1", LEASE)
        return (row["holder"], row["acquired_at"]) if row else (None, None)

    async def flip(self, env: str, status: str | None) -> None:
        assert self.http is not None
        url = f"http://{HOST}:{self.sim_port}/_control/environments/{env}"
        async with self.http.patch(url, json={"status": status}) as resp:
            resp.raise_for_status()

    # -- setting up ---------------------------------------------------------------------------------

    async def start_postgres(self) -> str:
        if self.args.postgres_url:
            self.setup["postgres"] = f"{self.args.postgres_url} (given)"
            return str(self.args.postgres_url)
        progress("starting a throwaway PostgreSQL")
        self.pg = await asyncio.to_thread(ThrowawayPostgres.create)
        self.setup["postgres"] = f"PostgreSQL {self.pg.version}, throwaway on port {self.pg.port}, fsync off"
        return self.pg.url

    async def check_empty(self) -> None:
        assert self.db is not None
        if await self.db.fetchval("SELECT to_regclass('outbox')") is not None:
            rows = await self.db.fetchval("SELECT count(*) FROM outbox")
            samples = await self.db.fetchval("SELECT count(*) FROM health_samples")
            if rows or samples:
                raise SystemExit(
                    f"--postgres-url: the database holds {rows} outbox rows and {samples} samples"
                )

    async def start_simulator(self) -> None:
        progress(f"starting the simulator with {len(self.envs)} environments")
        probe = f"/{self.envs[-1]}{DEFAULT_PREFIX}/admin/health"
        for _ in range(3):
            self.sim_port = free_port()
            argv = [sys.executable, "-m", "umig_monitor", "simulate", "--envs", ",".join(self.envs)]
            self.sim = start([*argv, "--port", str(self.sim_port)], self.tmp / "simulator.log")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.sim.poll() is None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    if (await self.get(f"http://{HOST}:{self.sim_port}{probe}"))[0] == 200:
                        self.setup["simulator"] = f"pid {self.sim.pid}, port {self.sim_port}, own process"
                        return
                await asyncio.sleep(0.2)
            stop(self.sim)
        raise RuntimeError(f"the simulator did not start; see {self.tmp / 'simulator.log'}")

    async def start_receiver(self, runner: web.AppRunner) -> None:
        port = free_port()
        await web.TCPSite(runner, HOST, port).start()
        self.receiver.url = f"http://{HOST}:{port}/hook"

    async def start_replicas(self, storage: str) -> None:
        progress(f"starting {REPLICAS} replicas")
        for i in range(1, REPLICAS + 1):
            name = f"r{i}"
            replica = Replica(name, free_port(), self.tmp / f"{name}.yaml", self.tmp / f"{name}.log")
            replica.config.write_text(
                replica_config(replica, self.args, storage, self.envs, self.sim_port, self.receiver.url)
            )
            self.replicas.append(replica)
        # All three at once, as a deployment starts them (the migrations are serialised by an
        # advisory lock); one started alone would take the whole first round on its own.
        self.started = time.monotonic()
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            await self.until_one_answers(replica, 120)
        # The first round (every environment's first poll loads its memory from the database) is
        # the heaviest time; the three may only settle once it is over.
        within = max(self.args.settle, 2 * self.args.interval + 30)
        if await self.until_agreed(within) is None:
            self.setup["start"] = f"not agreed {within:g} s after the start: {self.unsettled[-1]}"

    async def until_one_answers(self, replica: Replica, within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if replica.exited() is not None:
                raise RuntimeError(f"{replica.name} exited with {replica.exited()}; see {replica.log}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                status, body = await self.get(replica.base + "/api/v1/cluster")
                if status == 200:
                    replica.member = body["member"]  # "<hostname>:<port>": the same after a restart
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{replica.name} did not answer within {within:g} s; see {replica.log}")

    # -- 1. steady CPU ------------------------------------------------------------------------------

    async def first_round(self) -> float:
        """Seconds from the replicas' start until every environment has a stored sample (given up
        after 2 intervals + 30 s)."""
        assert self.db is not None
        deadline = time.monotonic() + 2 * self.args.interval + 30
        query = "SELECT count(DISTINCT environment) FROM health_samples"
        while (have := await self.db.fetchval(query)) < len(self.envs):
            if time.monotonic() > deadline:
                self.setup["first_round"] = f"incomplete: {have} of {len(self.envs)} environments sampled"
                progress(self.setup["first_round"])
                break
            await asyncio.sleep(1)
        return time.monotonic() - self.started

    def postgres_cpu(self) -> float | None:
        """utime + stime of the postmaster and its children (the backends), if it is ours."""
        if self.pg is None or (postmaster := self.pg.postmaster_pid()) is None:
            return None
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if int(entry.name) == postmaster or ppid == postmaster:
                with contextlib.suppress(OSError, ValueError):
                    total += proc_cpu_seconds(int(entry.name))
        return total

    async def own_polling(self) -> dict[str, set[str]]:
        """What each replica says it polls (its own ``polling``), empty if it does not answer."""
        views = await self.views()
        return {name: set(view["polling"]) if view else set() for name, view in views.items()}

    def cpu_edges(self) -> dict[str, float]:
        edge = {r.name: proc_cpu_seconds(r.pid) for r in self.replicas}
        edge["simulator"] = proc_cpu_seconds(self.sim.pid) if self.sim else 0.0
        edge["postgres"] = self.postgres_cpu() or 0.0
        edge["machine"], edge["steal"] = machine_cpu_seconds()
        return edge

    async def steady(self) -> tuple[Section, Section]:
        assert self.db is not None
        args = self.args
        progress("waiting for the first round of polls")
        first = await self.first_round()
        progress(
            f"first round done ({first:.0f} s after the start);"
            f" {args.warmup:g} s warm-up, {args.steady:g} s window"
        )
        await asyncio.sleep(args.warmup)
        agreed = await self.until_agreed(args.settle)
        leader = (next(iter(agreed.values()))["leader"] or {}).get("member") if agreed else None
        polling = await self.own_polling()
        t0, w0, cpu0 = time.monotonic(), datetime.now(UTC), self.cpu_edges()
        await asyncio.sleep(args.steady)
        t1, w1, cpu1 = time.monotonic(), datetime.now(UTC), self.cpu_edges()
        polling_after = await self.own_polling()
        wall = t1 - t0
        rows = await self.db.fetch(
            "SELECT environment, count(*) AS n FROM health_samples"
            " WHERE ts >= $1 AND ts < $2 GROUP BY environment",
            w0,
            w1,
        )
        per_env = {r["environment"]: int(r["n"]) for r in rows}
        table = Section(
            "per replica, steady state",
            f"utime+stime from /proc/<pid>/stat over {wall:.1f} s, after the first round (done {first:.0f} s"
            " after the start)"
            f" and a {args.warmup:g} s warm-up; a replica's polls = health samples stored in the window"
            " for the environments its /api/v1/cluster said it polled at the start of the window (an"
            " environment two replicas poll counts for both)",
        )
        cpu_per_s: list[float] = []
        for replica in self.replicas:
            mine = polling[replica.name]
            polls = sum(per_env.get(env, 0) for env in mine)
            cpu = cpu1[replica.name] - cpu0[replica.name]
            role = "leader" if replica.member == leader else "follower"
            cpu_per_s.append(cpu / wall)
            table.add(
                f"{replica.name}_cpu", f"{replica.name} ({role}) CPU", cpu / wall, "s/s", f"{cpu:.2f} s"
            )
            table.add(
                f"{replica.name}_polls",
                f"{replica.name} polls in the window",
                polls,
                "polls",
                f"{len(mine)} environments",
            )
            if polls:
                table.add(
                    f"{replica.name}_cpu_ms_per_poll",
                    f"{replica.name} CPU per poll",
                    1000 * cpu / polls,
                    "ms",
                )
            else:
                table.absent(
                    f"{replica.name}_cpu_ms_per_poll", f"{replica.name} CPU per poll", "no polls counted"
                )
        counted = Counter(env for mine in polling.values() for env in mine)
        most = int(wall / args.interval) + 1
        overlap = sum(1 for n in counted.values() if n > 1)
        table.add(
            "overlap",
            "environments polled by 2+ replicas",
            overlap,
            "envs",
            "if not 0, the replicas polled each other's share",
            **judged("0", overlap == 0),
        )
        table.facts = {
            "polls_expected": round(len(self.envs) * wall / args.interval),
            "polls_stored": sum(per_env.values()),
            "environments_polled_by_none": len(set(self.envs) - set(counted)),
            f"environments_with_more_than_{most}_samples": sum(1 for n in per_env.values() if n > most),
            "environments_without_a_sample": len(set(self.envs) - set(per_env)),
            "assignment_changed_in_window": polling != polling_after,
            "simulator_cpu_s_per_s": round((cpu1["simulator"] - cpu0["simulator"]) / wall, 3),
            "postgres_cpu_s_per_s": round((cpu1["postgres"] - cpu0["postgres"]) / wall, 3)
            if self.pg is not None
            else "n/a (--postgres-url)",
            "machine_busy_cpus": round((cpu1["machine"] - cpu0["machine"]) / wall, 2),
            "machine_steal_cpus": round((cpu1["steal"] - cpu0["steal"]) / wall, 3),
            "cpus": os.cpu_count(),
            "agreed_at_start": agreed is not None,
            "load": load(),
        }
        summary = Section("summary", "the headline figures of the sections above")
        summary.add("cpu_per_replica_mean", "CPU per replica (mean of 3)", statistics.mean(cpu_per_s), "s/s")
        summary.add("cpu_per_replica_max", "CPU per replica (max)", max(cpu_per_s), "s/s")
        summary.figures.append(table.figures[-1])  # the overlap: whether the CPU figures mean a 1/3 split
        total_cpu = sum(cpu1[r.name] - cpu0[r.name] for r in self.replicas)
        if per_env:
            stored = sum(per_env.values())
            summary.add(
                "cpu_ms_per_poll",
                "CPU per poll (3 replicas / samples stored)",
                1000 * total_cpu / stored,
                "ms",
            )
        else:
            summary.absent("cpu_ms_per_poll", "CPU per poll", "no samples stored in the window")
        return table, summary

    # -- 2. failover --------------------------------------------------------------------------------

    async def failovers(self) -> Section:
        args = self.args
        pool = list(self.envs)
        random.shuffle(pool)
        flipped: list[str] = []
        seen: list[float] = []  # kill -> this script sees another holder (read every 20 ms)
        stamped: list[float] = []  # kill -> the new holder's acquired_at
        restart: list[float] = []
        problems: list[str] = []
        for n in range(1, args.kills + 1):
            for env in flipped:
                await self.flip(env, None)
            flipped = [pool.pop() for _ in range(min(args.flips, len(pool)))]
            for env in flipped:
                await self.flip(env, "unhealthy")
            await asyncio.sleep(random.uniform(2, 2 + args.heartbeat))
            holder, _ = await self.lease()
            victim = next((r for r in self.replicas if r.member == holder), None)
            if victim is None:
                problems.append(f"kill {n}: no replica held the lease (holder {holder!r}); skipped")
                progress(problems[-1])
                continue
            killed_at, killed_mono = time.time(), time.monotonic()
            victim.kill()
            self.kills.append((killed_at, victim.name))
            new: str | None = None
            while time.monotonic() - killed_mono < args.lease_ttl + 30:
                new, acquired = await self.lease()
                if new is not None and new != victim.member and acquired is not None:
                    seen.append(time.monotonic() - killed_mono)
                    stamped.append(acquired.timestamp() - killed_at)
                    progress(
                        f"kill {n}/{args.kills}: {victim.name}; {new} holds the lease {seen[-1]:.2f} s later"
                    )
                    break
                await asyncio.sleep(0.02)
            else:
                problems.append(
                    f"kill {n}: no new leader {args.lease_ttl + 30:g} s after killing {victim.name}"
                )
                progress(problems[-1])
            t = time.monotonic()
            victim.start()
            if await self.until_agreed(args.settle) is None:
                problems.append(f"kill {n}: not agreed {args.settle:g} s after the restart")
            else:
                restart.append(time.monotonic() - t)
        for env in flipped:
            await self.flip(env, None)
        section = Section(
            "failover (SIGKILL of the leader)",
            f"{len(seen)} kills, each after a pause of U(2, 2 + heartbeat) s; time = from the SIGKILL"
            " until another replica holds the leader row of cluster_leases (read every 20 ms); the"
            " killed replica restarted each time",
        )
        bound = args.lease_ttl + 1
        if seen:
            p50, most = percentile(seen, 50), max(seen)
            section.add("failover_p50", "failover p50", p50, "s", **judged(f"<= {bound:g} s", p50 <= bound))
            section.add("failover_max", "failover max", most, "s", **judged(f"<= {bound:g} s", most <= bound))
        else:
            section.absent("failover_p50", "failover p50", "no kill was followed by a new leader")
            section.absent("failover_max", "failover max", "no kill was followed by a new leader")
        section.add("kills", "leader kills with a new leader", len(seen), "kills", f"of {args.kills}")
        section.facts = {
            "lease_ttl_s": args.lease_ttl,
            "heartbeat_s": args.heartbeat,
            "failover_s": [round(x, 2) for x in seen],
            # The acquiring tick's clock at its start: earlier than the takeover if the tick waited.
            "acquired_at_minus_kill_s": [round(x, 2) for x in stamped],
            "restart_until_three_agree_p50_s": round(percentile(restart, 50), 1) if restart else "n/a",
            "environments_flipped": args.flips * len(self.kills),
            "problems": problems or "none",
        }
        return section

    # -- 3. duplicates ------------------------------------------------------------------------------

    def sent_logged(self) -> Counter[str]:
        """Idempotency-Key -> ``alert_sent`` lines in the replicas' logs (one per recorded send)."""
        counts: Counter[str] = Counter()
        for replica in self.replicas:
            for line in replica.log.read_text(errors="replace").splitlines():
                if '"alert_sent"' in line:
                    with contextlib.suppress(ValueError):
                        counts[json.loads(line).get("idempotency_key", "")] += 1
        return counts

    async def duplicates(self) -> Section:
        assert self.db is not None
        wait = self.args.interval + 10
        progress(f"{wait:g} s for the last flips to be polled, then until nothing is pending")
        await asyncio.sleep(wait)
        deadline = time.monotonic() + 60
        while await self.db.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        rows = await self.db.fetch("SELECT idempotency_key, status FROM outbox")
        status = Counter(r["status"] for r in rows)
        accepted = self.receiver.accepted()
        counts = Counter(key for _, key, _ in accepted)
        twice = {key: n for key, n in counts.items() if n > 1}
        # A delivery accepted by the receiver whose sender was SIGKILLed before it recorded the row
        # sent (its claim, lease_ttl long, then lapses and the next leader sends it again) is the
        # at-least-once case the Idempotency-Key is for; anything else would be two senders at once.
        logged = self.sent_logged()
        in_flight = 0
        details = []
        for key in twice:
            times = sorted((at, sender) for at, k, sender in accepted if k == key)
            (first, sender), (second, _) = times[0], times[1]
            killed = [at for at, name in self.kills if name == sender and first <= at <= second]
            unrecorded = logged[key] < len(times)
            in_flight += bool(killed and unrecorded)
            t0 = times[0][0]
            details.append(
                f"{key[:12]}: accepted {', '.join(f'+{at - t0:.2f}s from {who}' for at, who in times)};"
                f" {sender} SIGKILLed {f'+{killed[0] - t0:.2f}s' if killed else 'never in between'};"
                f" alert_sent logged {logged[key]}x"
            )
        sent = {r["idempotency_key"] for r in rows if r["status"] == "sent"}
        section = Section(
            "notifications across the kills",
            "the receiver refuses each key's first attempt; a duplicate is a key it answered 200 more"
            " than once",
        )
        section.add("duplicates", "duplicate notifications", len(twice), "keys", **judged("0", not twice))
        section.add("notifications", "notifications delivered (distinct keys)", len(counts), "keys")
        section.add("outbox_rows", "outbox rows", len(rows), "rows")
        section.add(
            "missing",
            "sent rows the receiver never accepted",
            len(sent - set(counts)),
            "keys",
            **judged("0", sent <= set(counts)),
        )
        senders = Counter(sender for _, _, sender in accepted)
        section.facts = {
            "outbox_by_status": dict(status),
            "duplicates_sender_killed_before_recording_it_sent": in_flight,
            "duplicate_details": details or "none",
            "requests": len(self.receiver.requests),
            "accepted_by_replica": dict(sorted(senders.items())),
        }
        return section

    async def run(self) -> list[Section]:
        app = web.Application()
        app.router.add_post("/hook", self.receiver.handle)
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        self.http = aiohttp.ClientSession()
        try:
            storage = await self.start_postgres()
            self.db = await asyncpg.connect(storage)
            await self.check_empty()
            await self.start_receiver(runner)
            await self.start_simulator()
            await self.start_replicas(storage)
            table, summary = await self.steady()
            progress(f"{self.args.kills} leader kills")
            failover = await self.failovers()
            dupes = await self.duplicates()
            wanted = ("failover_p50", "failover_max", "duplicates")
            summary.figures += [f for s in (failover, dupes) for f in s.figures if f.key in wanted]
            summary.facts = {"load": load()}
            self.check_logs()
            return [table, failover, dupes, summary]
        finally:
            for replica in self.replicas:
                stop(replica.proc)
            stop(self.sim)
            await self.http.close()
            await runner.cleanup()
            if self.db is not None:
                await self.db.close()
            if self.pg is not None:
                await asyncio.to_thread(self.pg.cleanup)

    def check_logs(self) -> None:
        for replica in self.replicas:
            text = replica.log.read_text(errors="replace")
            crashes = text.count("Traceback") + text.count('"exception"')
            if crashes:
                progress(f"{replica.name}: {crashes} tracebacks or logged exceptions in {replica.log}")
                self.setup[f"{replica.name}_crashes"] = crashes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", type=int, default=3000, help="simulated environments (default 3000)")
    p.add_argument("--interval", type=float, default=30.0, help="poll interval, seconds (default 30)")
    p.add_argument("--kills", type=int, default=10, help="leader kills (default 10)")
    p.add_argument(
        "--heartbeat", type=float, default=5.0, help="daemon.cluster.heartbeat_interval, s (default 5)"
    )
    p.add_argument("--lease-ttl", type=float, default=15.0, help="daemon.cluster.lease_ttl, s (default 15)")
    p.add_argument("--steady", type=float, default=60.0, help="steady CPU window, seconds (default 60)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds after the first round (default 10)")
    p.add_argument(
        "--flips", type=int, default=3, help="environments turned unhealthy before each kill (default 3)"
    )
    p.add_argument(
        "--receiver-delay", type=float, default=0.05, help="receiver answer delay, s (default 0.05)"
    )
    p.add_argument(
        "--settle", type=float, default=30.0, help="seconds to wait for the three to agree (default 30)"
    )
    p.add_argument(
        "--postgres-url", help="an empty PostgreSQL database to use instead of a throwaway cluster"
    )
    p.add_argument(
        "--keep", metavar="DIR", help="keep configs and logs in DIR (default: a temporary directory)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    args = p.parse_args(argv)
    if min(args.envs, args.interval, args.kills, args.heartbeat, args.steady) <= 0:
        p.error("--envs, --interval, --kills, --heartbeat and --steady must be positive")
    if args.lease_ttl < 2 * args.heartbeat:
        p.error("--lease-ttl must be at least twice --heartbeat (as daemon.cluster requires)")
    if args.flips * args.kills > args.envs:
        p.error("--flips x --kills must not exceed --envs")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup: dict[str, Any] = {
        "machine": machine(),
        "python": f"{platform.python_version()}, aiohttp {aiohttp.__version__},"
        f" asyncpg {asyncpg.__version__}",
        "code": code_state(at_top=True),
        "started": started_under_load(),
        "command": command("cluster.py", argv),
        "cluster": f"{REPLICAS} replicas, {args.envs} environments every {args.interval:g} s, "
        f"heartbeat {args.heartbeat:g} s, lease_ttl {args.lease_ttl:g} s",
    }
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = Path(args.keep)
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="umig-bench-cluster-")))
        bench = Bench(args, tmp)
        bench.setup = setup
        sections = asyncio.run(bench.run())
    output(LAYOUT, setup, sections, args.json)
    return 0


if __name__ == "__main__":
    # SIGTERM (a CI timeout, `kill`) becomes a Ctrl-C, which asyncio.run turns into cancelling its
    # main task; either way the finally blocks stop the children.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: os.kill(os.getpid(), signal.SIGINT))
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("[bench] interrupted; child processes stopped", file=sys.stderr)
        sys.exit(130)
