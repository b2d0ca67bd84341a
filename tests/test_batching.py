"""The batcher behind the health job's storage reads and writes of first polls: a lone call served at
once, a burst in batches of at most ``most``, each caller its own result, a batch's error to each of
its callers only, and a cancelled caller leaving the others alone."""

from __future__ import annotations

import asyncio

import pytest

from umig_monitor.jobs.batching import Batcher
from umig_monitor.storage import StorageError


class Served:
    """A serve function that records its batches; it fails a batch holding ``poison`` and can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def __call__(self, items: list[int]) -> list[str]:
        self.batches.append(items)
        self.started.set()
        await self.release.wait()
        if -1 in items:
            raise StorageError("database is away")
        return [f"r{i}" for i in items]


async def test_a_lone_call_is_served_at_once() -> None:
    served = Served()
    batcher = Batcher(served)
    assert await batcher(7) == "r7"
    assert served.batches == [[7]]


async def test_a_burst_is_served_in_batches_of_at_most_most() -> None:
    served = Served()
    batcher = Batcher(served, most=4)
    results = await asyncio.gather(*(batcher(i) for i in range(10)))
    assert results == [f"r{i}" for i in range(10)]
    assert served.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_calls_made_while_a_batch_is_served_form_the_next() -> None:
    served = Served()
    served.release.clear()
    batcher = Batcher(served)
    first = asyncio.ensure_future(batcher(1))
    await served.started.wait()
    later = [asyncio.ensure_future(batcher(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    served.release.set()
    assert [await first, *[await f for f in later]] == ["r1", "r2", "r3"]
    assert served.batches == [[1], [2, 3]]


async def test_an_error_goes_to_its_batch_only() -> None:
    served = Served()
    batcher = Batcher(served, most=2)
    results = await asyncio.gather(batcher(1), batcher(-1), batcher(3), return_exceptions=True)
    assert isinstance(results[0], StorageError)
    assert isinstance(results[1], StorageError)
    assert results[2] == "r3"
    assert await batcher(4) == "r4"  # and the batcher goes on


async def test_a_cancelled_caller_leaves_the_others_alone() -> None:
    served = Served()
    served.release.clear()
    batcher = Batcher(served)
    gone, stays = asyncio.ensure_future(batcher(1)), asyncio.ensure_future(batcher(2))
    await served.started.wait()
    gone.cancel()
    served.release.set()
    assert await stays == "r2"
    with pytest.raises(asyncio.CancelledError):
        await gone
