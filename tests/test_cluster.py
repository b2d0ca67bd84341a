"""Cluster membership, leases, assignment and outbox claims: the pure rules, and the store on
SQLite and (with ``UMIG_TEST_POSTGRES_URL``) PostgreSQL, including races between processes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import POSTGRES_URL, scratch_database
from umig_monitor.config import ConfigError
from umig_monitor.config.loader import parse_config
from umig_monitor.core.alerts import AlertEvent
from umig_monitor.core.cluster import Lease, Member, assign, live, owned_by, owner, view
from umig_monitor.storage import Store
from umig_monitor.storage.records import OutboxEntry

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ENVS = [f"env{i:02d}" for i in range(30)]
BACKENDS = ["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])]


def member(member_id: str, heartbeat: datetime = T0, polling: int = 0) -> Member:
    return Member(member_id, f"http://{member_id}", "host", 1, T0 - timedelta(hours=1), heartbeat, polling)


# -- assignment -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_environment_has_exactly_one_owner(n: int) -> None:
    members = [f"replica-{i}" for i in range(n)]
    assignment = assign(ENVS, members)
    assert set(assignment) == set(ENVS)
    assert set(assignment.values()) <= set(members)
    shares = [owned_by(m, ENVS, members) for m in members]
    assert sum(len(s) for s in shares) == len(ENVS)
    assert set().union(*shares) == set(ENVS)


def test_assignment_does_not_depend_on_member_order_or_process() -> None:
    members = ["b:1", "a:1", "c:1"]
    assert assign(ENVS, members) == assign(ENVS, sorted(members)) == assign(reversed(ENVS), members[::-1])
    # A fixed point: the hash is blake2b, not hash(), so every replica and every release agrees.
    assert owner("env00", ["a:1", "b:1", "c:1"]) == owner("env00", ["c:1", "b:1", "a:1"])


def test_no_members_no_assignment() -> None:
    assert assign(ENVS, []) == {}
    assert owner("env00", []) is None


def test_load_is_spread() -> None:
    envs = [f"environment-{i}" for i in range(3000)]
    counts = Counter(assign(envs, ["r1", "r2", "r3"]).values())
    assert set(counts) == {"r1", "r2", "r3"}
    assert all(850 <= c <= 1150 for c in counts.values()), counts


def test_a_member_leaving_moves_only_its_own_environments() -> None:
    before = assign(ENVS, ["r1", "r2", "r3"])
    after = assign(ENVS, ["r1", "r3"])
    moved = {env for env in ENVS if before[env] != after[env]}
    assert moved == {env for env, who in before.items() if who == "r2"}


def test_a_member_joining_takes_only_what_it_gains() -> None:
    before = assign(ENVS, ["r1", "r2"])
    after = assign(ENVS, ["r1", "r2", "r3"])
    moved = {env for env in ENVS if before[env] != after[env]}
    assert moved
    assert all(after[env] == "r3" for env in moved)


def test_live_members_are_those_heard_from_within_the_timeout() -> None:
    members = [
        member("a", T0),
        member("b", T0 - timedelta(seconds=7.5)),
        member("c", T0 - timedelta(seconds=8)),
    ]
    assert [m.id for m in live(members, T0, timedelta(seconds=7.5))] == ["a", "b"]


def test_view_shows_members_leader_and_assignments() -> None:
    known = [member("a", polling=15), member("b", polling=15), member("dead", T0 - timedelta(minutes=1))]
    lease = Lease("leader", "b", T0 - timedelta(minutes=5), T0 + timedelta(seconds=10))
    shown = view(known, lease, ENVS, T0, timedelta(seconds=7.5))
    assert shown["leader"]["member"] == "b"
    assert [(m["id"], m["live"], m["leader"]) for m in shown["members"]] == [
        ("a", True, False),
        ("b", True, True),
        ("dead", False, False),
    ]
    assert set(shown["assignments"]) == {"a", "b"}
    assert sorted(e for envs in shown["assignments"].values() for e in envs) == ENVS
    expired = Lease("leader", "b", T0 - timedelta(minutes=5), T0 - timedelta(seconds=1))
    assert view(known, expired, ENVS, T0, timedelta(seconds=7.5))["leader"] is None


def test_lease_must_outlive_two_heartbeats() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("daemon:\n  cluster:\n    heartbeat_interval: 5s\n    lease_ttl: 8s\n", environ={})
    message = str(info.value)
    assert "daemon.cluster" in message, message
    assert "line 2" in message, message
    assert "lease_ttl (8s) must be at least twice heartbeat_interval (5s)" in message
    settings = parse_config(
        "daemon:\n  cluster:\n    heartbeat_interval: 2s\n    lease_ttl: 4s\n", environ={}
    )
    assert settings.daemon.cluster.member_timeout == timedelta(seconds=3)


# -- the store --------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(request.param, tmp_path / "cluster.db") as database:
        yield database


@pytest.fixture
async def store(url: str) -> AsyncIterator[Store]:
    async with await Store.open(url) as opened:
        yield opened


async def test_heartbeats_are_upserted_and_leaving_removes_the_row_and_lease(store: Store) -> None:
    await store.heartbeat(member("a", T0, polling=3))
    await store.heartbeat(member("b", T0))
    await store.heartbeat(member("a", T0 + timedelta(seconds=2), polling=4))
    rows = await store.cluster_members()
    assert [(m.id, m.heartbeat_at, m.polling) for m in rows] == [
        ("a", T0 + timedelta(seconds=2), 4),
        ("b", T0, 0),
    ]
    assert (await store.acquire_lease("leader", "a", T0, timedelta(seconds=15))).holder == "a"
    await store.leave_cluster("a")
    assert [m.id for m in await store.cluster_members()] == ["b"]
    assert await store.lease("leader") is None
    assert await store.forget_members(T0 + timedelta(seconds=1)) == 1
    assert await store.cluster_members() == []


async def test_lease_is_held_renewed_and_taken_over_only_after_expiry(store: Store) -> None:
    ttl = timedelta(seconds=15)
    first = await store.acquire_lease("leader", "a", T0, ttl)
    assert (first.holder, first.acquired_at, first.expires_at) == ("a", T0, T0 + ttl)
    # Held: another member cannot take it.
    refused = await store.acquire_lease("leader", "b", T0 + timedelta(seconds=5), ttl)
    assert refused.holder == "a"
    assert refused.expires_at == T0 + ttl
    # Renewed by its holder: the expiry moves, the start does not.
    renewed = await store.acquire_lease("leader", "a", T0 + timedelta(seconds=10), ttl)
    assert (renewed.holder, renewed.acquired_at, renewed.expires_at) == ("a", T0, T0 + timedelta(seconds=25))
    # Expired: the next member takes it, from now.
    taken = await store.acquire_lease("leader", "b", T0 + timedelta(seconds=25), ttl)
    assert (taken.holder, taken.acquired_at) == ("b", T0 + timedelta(seconds=25))
    assert (await store.acquire_lease("leader", "a", T0 + timedelta(seconds=26), ttl)).holder == "b"
    assert await store.release_lease("leader", "a") is False
    assert await store.release_lease("leader", "b") is True
    assert (await store.acquire_lease("leader", "a", T0 + timedelta(seconds=27), ttl)).holder == "a"


async def test_racing_replicas_elect_exactly_one_leader(url: str) -> None:
    """Separate stores (pools), all trying at the same instant, several rounds."""
    stores = [await Store.open(url) for _ in range(5)]
    try:
        ttl = timedelta(seconds=10)
        for round_ in range(5):
            now = T0 + round_ * timedelta(seconds=11)  # the previous lease has just expired
            results = await asyncio.gather(
                *(s.acquire_lease("leader", f"m{i}", now, ttl) for i, s in enumerate(stores))
            )
            holders = {lease.holder for lease in results}
            assert len(holders) == 1, results
            assert (await stores[0].lease("leader")) == results[0]
    finally:
        for s in stores:
            await s.close()


def entry(key: str, at: datetime = T0, sink: str = "hook") -> OutboxEntry:
    return OutboxEntry(
        sink=sink,
        kind="firing",
        idempotency_key=key,
        payload={"k": key},
        created_at=at,
        deadline=at + timedelta(hours=1),
        alert_id=None,
    )


async def test_claimed_rows_are_not_handed_to_another_deliverer(store: Store) -> None:
    await store.enqueue([entry(f"k{i}") for i in range(5)] + [entry("other", sink="mail")], [])
    now = T0 + timedelta(seconds=1)
    until = now + timedelta(seconds=30)
    mine = await store.claim_deliveries(now, sink="hook", owner="a", until=until, limit=3)
    assert [d.idempotency_key for d in mine] == ["k0", "k1", "k2"]
    theirs = await store.claim_deliveries(now, sink="hook", owner="b", until=until, limit=10)
    assert [d.idempotency_key for d in theirs] == ["k3", "k4"]
    assert await store.claim_deliveries(now, sink="hook", owner="c", until=until) == []
    # The holder may claim its own rows again (extending the claim).
    again = await store.claim_deliveries(now, sink="hook", owner="a", until=until, limit=10)
    assert [d.idempotency_key for d in again] == ["k0", "k1", "k2"]
    # Recording an attempt ends the claim; a retry is claimable by anyone once due.
    await store.delivery_retry(mine[0].id, now, "503")
    await store.delivery_sent(mine[1].id, now)
    assert [
        d.idempotency_key for d in await store.claim_deliveries(now, sink="hook", owner="c", until=until)
    ] == ["k0"]
    # A claim whose holder died is free once it runs out.
    later = until + timedelta(seconds=1)
    freed = await store.claim_deliveries(later, sink="hook", owner="c", until=later + timedelta(seconds=30))
    assert sorted(d.idempotency_key for d in freed) == ["k0", "k2", "k3", "k4"]
    # Handing back unattempted claims.
    assert await store.release_claims("c", sink="hook") == 4
    assert len(await store.claim_deliveries(later, sink="hook", owner="d", until=later)) == 4


async def test_concurrent_claims_split_the_outbox_without_overlap(url: str) -> None:
    stores = [await Store.open(url) for _ in range(4)]
    try:
        await stores[0].enqueue([entry(f"k{i:03d}") for i in range(200)], [])
        now = T0 + timedelta(seconds=1)

        async def drain(s: Store, name: str) -> list[str]:
            got: list[str] = []
            while batch := await s.claim_deliveries(
                now, sink="hook", owner=name, until=now + timedelta(minutes=1), limit=7
            ):
                got += [d.idempotency_key for d in batch]
                for d in batch:
                    await s.delivery_sent(d.id, now)
            return got

        claimed = await asyncio.gather(*(drain(s, f"d{i}") for i, s in enumerate(stores)))
        every = [key for keys in claimed for key in keys]
        assert len(every) == 200
        assert len(set(every)) == 200
    finally:
        for s in stores:
            await s.close()


async def test_two_replicas_firing_the_same_alert_make_one_alert(url: str) -> None:
    stores = [await Store.open(url) for _ in range(2)]
    try:
        event = AlertEvent(
            key="environment_unhealthy:production",
            type="environment_unhealthy",
            environment="production",
            severity="critical",
            summary="production is unhealthy",
            at=T0,
            firing=True,
        )
        results = await asyncio.gather(*(s.fire_alert(event) for s in stores))
        assert sorted(new for _, new in results) == [False, True]
        assert results[0][0].id == results[1][0].id
        assert len(await stores[0].active_alerts()) == 1
    finally:
        for s in stores:
            await s.close()


async def test_a_lapsed_claim_cannot_overwrite_the_new_holders_record(store: Store) -> None:
    await store.enqueue([entry("k")], [])
    now = T0 + timedelta(seconds=1)
    (old,) = await store.claim_deliveries(now, sink="hook", owner="old", until=now + timedelta(seconds=5))
    later = now + timedelta(seconds=6)  # the old holder's claim ran out mid-send
    (new,) = await store.claim_deliveries(
        later, sink="hook", owner="new", until=later + timedelta(seconds=30)
    )
    assert new.id == old.id
    assert await store.delivery_sent(new.id, later, owner="new") is True
    # The old holder's answer arrives afterwards: refused, the row stays as the new holder left it.
    assert await store.delivery_failed(old.id, "timeout", owner="old") is False
    assert await store.delivery_retry(old.id, later, "503", owner="old") is False
    (row,) = await store.list_deliveries()
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)


async def test_next_due_waits_out_claims_held_by_others(store: Store) -> None:
    await store.enqueue([entry("k")], [])
    now = T0 + timedelta(seconds=1)
    until = now + timedelta(seconds=20)
    await store.claim_deliveries(now, sink="hook", owner="a", until=until)
    assert await store.next_due("hook", owner="b", now=now) == until
    assert await store.next_due("hook", owner="a", now=now) == T0
    assert await store.next_due("hook") == T0
