"""Two daemons in one process sharing one database (SQLite file, and PostgreSQL when available):
the split of environments, the leader's jobs, and each fact exported by one replica.

The test drives the cluster: each heartbeat is a ``Coordinator.tick()`` it calls. The daemons' own
loops would tick every half heartbeat interval, an hour here, so no tick happens that the test did
not ask for, and no stall of the shared event loop can expire a member or the lease. The loop at
real intervals, with real processes, is ``tests/test_cluster_process.py``."""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import POSTGRES_URL, ConfigWriter, scratch_database
from tests.support import until
from umig_monitor.app import Daemon
from umig_monitor.cli import main
from umig_monitor.config import load_config
from umig_monitor.simulator import RunningSimulator, start_simulator

ENVS = tuple(f"site{i:02d}" for i in range(12))
LEADER_JOBS = {"retention", "watch_sync", "drift"}
CLUSTER = """
  cluster:
    heartbeat_interval: 1h
    lease_ttl: 2h
"""


@pytest.fixture
async def sites() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(ENVS)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(params=["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(request.param, tmp_path / "shared.db") as url:
        yield url


def replica_config(write_config: ConfigWriter, sites: RunningSimulator, database: str, name: str) -> Path:
    path: Path = write_config(sites, ENVS, poll_interval="500ms", name=name)
    text = path.read_text()
    storage = next(line for line in text.splitlines() if line.strip().startswith("storage:"))
    text = text.replace(storage, f"  storage: {database}\n{CLUSTER.strip(chr(10))}")
    path.write_text(text)
    return path


def ids(daemon: Daemon) -> list[str]:
    """The live members this replica saw at its last heartbeat."""
    return [m.id for m in daemon.cluster.members]


def job_kinds(daemon: Daemon) -> set[str]:
    return {job_id.split(":")[0] for job_id in daemon.scheduler.ids()}


def polled_by_jobs(daemon: Daemon) -> set[str]:
    return {job_id.split(":", 1)[1] for job_id in daemon.scheduler.ids() if job_id.startswith("health:")}


async def get_json(url: str) -> object:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.text()


async def test_two_replicas_split_the_work_and_serve_everything(
    sites: RunningSimulator, write_config: ConfigWriter, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = Daemon(load_config(p := replica_config(write_config, sites, database, "a.yaml")), p)
    second = Daemon(load_config(q := replica_config(write_config, sites, database, "b.yaml")), q)
    try:
        # Alone, the first joins, takes the lease and polls everything.
        await first.start()
        assert first.is_leader
        assert first.mine() == set(ENVS)
        # The second joins behind that lease: it sees both and polls its share; the first does not
        # know of it until its next heartbeat.
        await second.start()
        assert not second.is_leader
        assert ids(second) == sorted([first.cluster.member_id, second.cluster.member_id])
        assert ids(first) == [first.cluster.member_id]
        await first.cluster.tick()

        # Both see both; their shares are disjoint and cover everything.
        assert ids(first) == ids(second)
        assert first.mine()
        assert second.mine()
        assert not first.mine() & second.mine()
        assert first.mine() | second.mine() == set(ENVS)
        assert polled_by_jobs(first) == first.mine()
        assert polled_by_jobs(second) == second.mine()
        # Exactly one leader, the first (it held the lease), and only it runs the cluster-wide jobs.
        leader, follower = first, second
        assert leader.is_leader
        assert not follower.is_leader
        assert job_kinds(leader) >= LEADER_JOBS
        assert not LEADER_JOBS & job_kinds(follower)
        assert "exposition" in job_kinds(follower)

        # Both answer with the same picture.
        views = [await get_json(d.listen_url + "/api/v1/cluster") for d in (first, second)]
        assert all(isinstance(v, dict) for v in views)
        assert {v["leader"]["member"] for v in views} == {leader.cluster.member_id}  # type: ignore[index]
        for daemon, shown in zip((first, second), views, strict=True):
            assert shown["polling"] == sorted(daemon.mine())  # type: ignore[index]
            assert shown["assignments"][daemon.cluster.member_id] == sorted(daemon.mine())  # type: ignore[index]

        # Each environment's series come from the replica that polls it, and only from it; the
        # cluster-wide ones (alerts, outbox, drift) from the leader only (no sinks here).
        await until(first.first_round_done)
        await until(second.first_round_done)

        async def exports_its_own(daemon: Daemon) -> bool:
            text = await get_text(daemon.listen_url + "/metrics")
            health = set(re.findall(r'^umig_health_status\{environment="([^"]+)"\} 1\.0$', text, re.M))
            return health == daemon.mine()

        for daemon in (first, second):
            await until(functools.partial(exports_its_own, daemon), within=10)
        for daemon in (first, second):
            text = await get_text(daemon.listen_url + "/metrics")
            others = set(ENVS) - daemon.mine()
            assert not [line for line in text.splitlines() if any(f'"{env}"' in line for env in others)]
            assert ("umig_alerts_firing{" in text) is daemon.is_leader
        text = await get_text(follower.listen_url + "/metrics")
        assert "umig_monitor_cluster_leader 0.0" in text
        assert "umig_monitor_cluster_members 2.0" in text
        assert "umig_monitor_cluster_leader 1.0" in await get_text(leader.listen_url + "/metrics")

        # The CLI shows the same, from the store every replica shares.
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["cluster", "--json", "--config", str(p)]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert {m["id"] for m in shown["members"]} == {first.cluster.member_id, second.cluster.member_id}
        assert shown["leader"]["member"] == leader.cluster.member_id
        assert await asyncio.to_thread(main, ["cluster", "--assignments", "--config", str(p)]) == 0
        table = capsys.readouterr().out
        assert f"leader: {leader.cluster.member_id} since" in table
        assert all(f"{env}  " in table for env in ENVS)

        # The leader stops cleanly: it gives the lease and its share up at once. With a lease of
        # two hours and members live for an hour and a half, the follower's next heartbeat finds
        # itself alone and leading only if the leader deleted both.
        await leader.stop()
        assert not follower.is_leader
        await follower.cluster.tick()
        assert ids(follower) == [follower.cluster.member_id]
        assert follower.is_leader
        assert follower.mine() == set(ENVS)
        assert job_kinds(follower) >= LEADER_JOBS
        assert polled_by_jobs(follower) == set(ENVS)
        # It exports what it took over at once: every environment's counters at 0, the leader's gauges.
        text = await get_text(follower.listen_url + "/metrics")
        for env in ENVS:
            assert f'umig_deployment_total{{environment="{env}",result="success"}} 0.0' in text
            assert f'umig_probe_failures_total{{environment="{env}",reason="timeout"}} 0.0' in text
        assert "umig_alerts_firing{" in text
    finally:
        for daemon in (first, second):
            if daemon.accepting:
                await daemon.stop()
    # No daemon answers now: the CLI reads the store, where nobody is left and nothing leads.
    assert await asyncio.to_thread(main, ["cluster", "--json", "--config", str(p)]) == 1
    offline = json.loads(capsys.readouterr().out)
    assert offline["members"] == []
    assert offline["leader"] is None
