"""What the test modules share: waiting for a fact with a deadline, a running daemon, the API and
the CLI, and golden files. A test module imports its helpers from here, never from another test.

Fixtures, and the pieces they are built from (free_port, serving, scratch_database, Receiver,
running_daemon, ...), are defined in conftest.py, which pytest loads before any test module; they
are re-exported here so that there is one place to import from. Case data shared by several
modules lives beside them: sink_cases.py, report_cases.py."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import aiohttp
import pytest

from tests.conftest import (
    GUIDE_ENVIRONMENTS,
    POSTGRES_URL,
    ConfigWriter,
    Mailbox,
    Receiver,
    Slack,
    external_process,
    free_port,
    require_tool,
    running_daemon,
    scratch_database,
    serving,
)
from umig_monitor.app import Daemon
from umig_monitor.cli import main
from umig_monitor.core.health import Outcome

__all__ = [
    "GUIDE_ENVIRONMENTS",
    "POSTGRES_URL",
    "ConfigWriter",
    "Mailbox",
    "Receiver",
    "Slack",
    "all_stored",
    "api",
    "check_golden",
    "cli",
    "external_process",
    "free_port",
    "last_outcome_is",
    "metrics_text",
    "require_tool",
    "running_daemon",
    "scratch_database",
    "serving",
    "until",
]

T = TypeVar("T")

# -- waiting for a fact ---------------------------------------------------------------------------

# The predicate is typed `Callable[..., ...]`, not `Callable[[], ...]`: mypy cannot infer a lambda
# with a default argument (`lambda d=daemon: covers(d)`, binding a loop variable) against a
# zero-argument callable. until() always calls it without arguments. `T | None`: what until()
# returns is truthy, so a predicate that answers "not yet" with None gives a T.


@overload
async def until(
    predicate: Callable[..., Awaitable[T | None]],
    *,
    within: float = ...,
    what: str | None = ...,
    interval: float = ...,
) -> T: ...
@overload
async def until(
    predicate: Callable[..., T | None], *, within: float = ..., what: str | None = ..., interval: float = ...
) -> T: ...
async def until(
    predicate: Callable[..., Any], *, within: float = 20.0, what: str | None = None, interval: float = 0.05
) -> Any:
    """The first truthy value of ``predicate()`` (awaited when it returns an awaitable), polled every
    ``interval`` seconds. After ``within`` seconds: an AssertionError naming ``what`` (by default the
    predicate's source) and its last value. The deadline is generous because it only costs time when
    the test fails; a predicate that blocks belongs in a thread: ``lambda: asyncio.to_thread(f)``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(
                f"not within {within}s: {what or describe(predicate)}; last value: {value!r}"
            )
        await asyncio.sleep(interval)


def describe(predicate: Callable[..., object]) -> str:
    """A function's name, or a lambda's source line."""
    name = getattr(predicate, "__qualname__", "")
    if name and "<lambda>" not in name:
        return str(name)
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


# -- a daemon in this process ---------------------------------------------------------------------


async def api(
    daemon: Daemon, method: str, path: str, body: Any = None, token: str | None = "test-token"
) -> tuple[int, Any]:
    """One request to the daemon's API: the status and the JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, daemon.listen_url + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def cli(*argv: str) -> int:
    """The CLI's exit code; in a thread, since it runs its own event loop."""
    return await asyncio.to_thread(main, list(argv))


async def all_stored(daemon: Daemon) -> bool:
    """Every environment has a stored sample. Polled is not yet stored: the sample writer batches;
    the page and the API read storage."""
    await daemon.writer.flush()
    return set(await daemon.store.latest_health_samples()) >= set(daemon.settings.environments)


async def last_outcome_is(daemon: Daemon, env: str, outcome: Outcome) -> bool:
    """The environment's latest stored sample has this outcome."""
    await daemon.writer.flush()
    latest = await daemon.store.latest_health_samples()
    return env in latest and latest[env].outcome is outcome


def metrics_text(daemon: Daemon) -> str:
    """The daemon's registry in the Prometheus text format, as /metrics serves it."""
    from prometheus_client import generate_latest

    return generate_latest(daemon.metrics.registry).decode()


# -- golden files ---------------------------------------------------------------------------------


def check_golden(path: Path, actual: str) -> None:
    """``actual`` equals the golden file. ``UMIG_REGENERATE_GOLDEN=1`` rewrites the file instead (then
    review the diff), except in CI (``CI=true``), where the golden files are what is checked."""
    if os.environ.get("UMIG_REGENERATE_GOLDEN") == "1":
        if os.environ.get("CI") == "true":
            pytest.fail("UMIG_REGENERATE_GOLDEN=1 with CI=true: CI checks golden files, never rewrites them")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"missing golden file {path}: run with UMIG_REGENERATE_GOLDEN=1 and review it"
    assert actual == path.read_text(encoding="utf-8"), f"{path.name} differs from its golden file"
