"""The shared test helpers: until() returns the first truthy value and, at its deadline, says what
it waited for and what it last saw."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import until


async def test_until_returns_the_first_truthy_value() -> None:
    calls: list[int] = []

    def third_time() -> list[int]:
        calls.append(len(calls))
        return calls if len(calls) >= 3 else []

    assert await until(third_time, interval=0) == [0, 1, 2]

    async def answer() -> str:
        await asyncio.sleep(0)
        return "ready"

    assert await until(answer) == "ready"
    assert await until(lambda: answer()) == "ready"  # a lambda around a coroutine function


async def test_until_names_what_it_waited_for_and_what_it_last_saw() -> None:
    seen = iter(range(1000))
    with pytest.raises(AssertionError, match=r"not within 0\.1s: the count; last value: False$"):
        await until(lambda: next(seen) < 0 and 1, within=0.1, what="the count")
    empty: list[str] = []
    with pytest.raises(AssertionError, match=r"not within 0\.1s: .*lambda: empty, within.*last value: \[\]$"):
        await until(lambda: empty, within=0.1)  # no `what`: the source line says it
