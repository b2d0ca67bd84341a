"""The daemon's event loop: uvloop on Linux, asyncio's own when asked for (or elsewhere)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from umig_monitor import eventloop


async def running_loop_name() -> str:
    await asyncio.sleep(0)
    return eventloop.loop_name()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uvloop is used on Linux only")
def test_linux_runs_on_uvloop() -> None:
    assert eventloop.fast_loop_factory() is not None
    assert eventloop.run(running_loop_name()) == "uvloop"


def test_the_plain_loop_on_request() -> None:
    assert eventloop.run(running_loop_name(), asyncio.new_event_loop) == "asyncio"


def test_elsewhere_the_default_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert eventloop.fast_loop_factory() is None
    assert eventloop.run(running_loop_name()) == "asyncio"


def test_without_uvloop_the_default_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert eventloop.fast_loop_factory() is None
    assert eventloop.run(running_loop_name()) == "asyncio"
