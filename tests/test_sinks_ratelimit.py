"""The pacing gate, on an injected clock: spacing, queueing of concurrent senders, holds."""

from __future__ import annotations

import asyncio

import pytest

from umig_monitor.sinks.ratelimit import RateGate


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_no_rate_never_waits() -> None:
    t = FakeTime()
    gate = RateGate(None, clock=t.clock, sleep=t.sleep)
    for _ in range(5):
        assert await gate.wait() == 0
    assert t.slept == []


async def test_sends_are_spaced_by_the_interval() -> None:
    t = FakeTime()
    gate = RateGate(2.0, clock=t.clock, sleep=t.sleep)
    await gate.wait()
    await gate.wait()
    t.now += 0.2  # some time passes on its own
    await gate.wait()
    assert t.slept == [0.5, pytest.approx(0.3)]


async def test_an_idle_gate_lets_the_next_send_through() -> None:
    t = FakeTime()
    gate = RateGate(1.0, clock=t.clock, sleep=t.sleep)
    await gate.wait()
    t.now += 5
    assert await gate.wait() == 0


async def test_concurrent_senders_queue_one_interval_apart() -> None:
    t = FakeTime()
    released: list[float] = []

    async def sleep(seconds: float) -> None:  # sleeps overlap: the clock does not move
        t.slept.append(seconds)
        await asyncio.sleep(0)

    gate = RateGate(4.0, clock=t.clock, sleep=sleep)

    async def sender() -> None:
        released.append(await gate.wait())

    await asyncio.gather(*(sender() for _ in range(4)))
    assert sorted(released) == [0, 0.25, 0.5, 0.75]


async def test_hold() -> None:
    t = FakeTime()
    gate = RateGate(None, clock=t.clock, sleep=t.sleep)
    assert gate.held_for() == 0
    gate.hold(30)
    gate.hold(10)  # a shorter hold does not cut a longer one
    t.now += 12
    assert gate.held_for() == pytest.approx(18)
    t.now += 18
    assert gate.held_for() == 0


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateGate(0)
