"""The event loop the daemon runs on: uvloop on Linux (measured: about 5% of a poll's CPU), asyncio's
own elsewhere or when uvloop cannot be imported. Nothing depends on which: both are asyncio loops."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def fast_loop_factory() -> LoopFactory | None:
    """uvloop's loop factory where it is used; None means asyncio's default loop."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import uvloop
    except ImportError:  # an install without it (or a build that cannot load): the default loop
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], loop_factory: LoopFactory | None = None) -> T:
    """``asyncio.run`` on the fast loop (or on ``loop_factory``'s, e.g. for a comparison)."""
    with asyncio.Runner(loop_factory=loop_factory or fast_loop_factory()) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: which implementation runs ``loop`` (the running one by default)."""
    running = loop or asyncio.get_running_loop()
    return type(running).__module__.split(".", 1)[0]
