"""Documents served from memory between builds: one build for any number of concurrent requests,
a new build after the max age or a reload, failures not kept; over HTTP, the status page and the
environments document with their ETags and 304s, against a running daemon and the simulator."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.support import ConfigWriter, all_stored, metrics_text, running_daemon, until
from umig_monitor.app import Daemon
from umig_monitor.simulator import RunningSimulator
from umig_monitor.web.rendered import Rendered


def config(simulator: RunningSimulator, write_config: ConfigWriter, max_age: str, poll: str = "1s") -> Path:
    path = write_config(simulator, poll_interval=poll)
    text = path.read_text().replace("daemon:\n", f"daemon:\n  http:\n    page_max_age: {max_age}\n", 1)
    path.write_text(text)
    return path


class Gate:
    """A build that waits until it is let through, and counts how often it ran."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.calls = 0
        self.fail: Exception | None = None

    async def __call__(self) -> bytes:
        self.calls += 1
        await self.open.wait()
        if self.fail is not None:
            raise self.fail
        return f"build {self.calls}".encode()


async def test_concurrent_requests_wait_for_one_build() -> None:
    gate = Gate()
    rendered = Rendered(gate, lambda: 60.0)
    key = object()
    waiting = [asyncio.create_task(rendered.get(key)) for _ in range(50)]
    await until(lambda: gate.calls == 1)
    assert not any(t.done() for t in waiting)
    gate.open.set()
    built = await asyncio.gather(*waiting)
    assert {b.body for b in built} == {b"build 1"}
    assert len({id(b) for b in built}) == 1
    assert (gate.calls, rendered.builds) == (1, 1)
    assert await rendered.get(key) is built[0]  # within the max age: served, not built
    assert gate.calls == 1


async def test_a_waiter_that_goes_away_does_not_cancel_the_build() -> None:
    gate = Gate()
    rendered = Rendered(gate, lambda: 60.0)
    key = object()
    first = asyncio.create_task(rendered.get(key))
    second = asyncio.create_task(rendered.get(key))
    await until(lambda: gate.calls == 1)
    first.cancel()
    gate.open.set()
    assert (await second).body == b"build 1"
    assert gate.calls == 1


async def test_rebuilt_after_the_max_age_and_for_another_key() -> None:
    gate = Gate()
    gate.open.set()
    max_age = 60.0
    rendered = Rendered(gate, lambda: max_age)
    old_settings, new_settings = object(), object()
    first = await rendered.get(old_settings)
    assert await rendered.get(old_settings) is first
    reloaded = await rendered.get(new_settings)  # a reload: stale at once
    assert reloaded.body == b"build 2"
    assert reloaded.etag != first.etag
    max_age = 0.0
    assert (await rendered.get(new_settings)).body == b"build 3"
    assert reloaded.started < (await rendered.get(new_settings)).started


async def test_a_failed_build_is_not_kept() -> None:
    gate = Gate()
    gate.fail = RuntimeError("storage down")
    rendered = Rendered(gate, lambda: 60.0)
    key = object()
    waiting = [asyncio.create_task(rendered.get(key)) for _ in range(5)]
    await until(lambda: gate.calls == 1)
    gate.open.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert gate.calls == 1
    gate.fail = None
    assert (await rendered.get(key)).body == b"build 2"


# -- over HTTP ------------------------------------------------------------------------------------


def builds(daemon: Daemon, page: str) -> int:
    m = re.search(rf'^umig_monitor_page_builds_total\{{page="{page}"\}} (\S+)$', metrics_text(daemon), re.M)
    assert m is not None
    return int(float(m[1]))


async def get(url: str, etag: str | None = None) -> tuple[int, str | None, str]:
    headers = {"If-None-Match": etag} if etag else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, resp.headers.get("ETag"), await resp.text()


def generated(html: str) -> datetime:
    m = re.search(r'Generated <time datetime="([^"]+)">', html)
    assert m is not None
    return datetime.fromisoformat(m[1])


@pytest.mark.parametrize("path", ["/", "/api/v1/environments"])
async def test_unchanged_document_keeps_its_etag_and_answers_304(
    simulator: RunningSimulator, write_config: ConfigWriter, path: str
) -> None:
    async with running_daemon(config(simulator, write_config, "5m")) as daemon:
        await until(lambda: all_stored(daemon))
        page = "status" if path == "/" else "environments"
        url = daemon.listen_url + path
        status, etag, body = await get(url)
        assert status == 200
        assert etag
        assert body
        assert await get(url) == (200, etag, body)
        status, again, empty = await get(url, etag)
        assert (status, again, empty) == (304, etag, "")
        assert (await get(url, f'W/{etag}, "other"'))[0] == 304  # weak comparison, a list
        assert (await get(url, '"other"'))[0] == 200
        assert builds(daemon, page) == 1


@pytest.mark.parametrize("path", ["/", "/api/v1/environments"])
async def test_concurrent_requests_cause_one_build(
    simulator: RunningSimulator, write_config: ConfigWriter, path: str
) -> None:
    async with running_daemon(config(simulator, write_config, "5m")) as daemon:
        await until(lambda: all_stored(daemon))
        page = "status" if path == "/" else "environments"
        url = daemon.listen_url + path
        async with aiohttp.ClientSession() as session:

            async def one() -> tuple[int, str | None]:
                async with session.get(url) as resp:
                    await resp.read()
                    return resp.status, resp.headers.get("ETag")

            answers = await asyncio.gather(*(one() for _ in range(40)))
        assert len(set(answers)) == 1
        assert answers[0][0] == 200
        assert builds(daemon, page) == 1


async def test_page_is_rebuilt_after_a_change(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    """An alert fires: the page served after the max age is a new build, showing it, with the
    time of that build."""
    async with running_daemon(config(simulator, write_config, "300ms", "200ms")) as daemon:
        await until(lambda: all_stored(daemon))
        url = daemon.listen_url + "/"
        before = datetime.now(UTC).replace(microsecond=0)
        status, first_etag, html = await get(url)
        assert status == 200
        assert "All 3 environments healthy" in html
        assert before <= generated(html) <= datetime.now(UTC)
        first_builds = builds(daemon, "status")

        simulator.simulator.update("production", status="unhealthy")
        await until(lambda: daemon.store.active_alerts("production"))
        asked = datetime.now(UTC).replace(microsecond=0)

        async def rebuilt() -> str | None:
            status, etag, html = await get(url, first_etag)
            return html if status == 200 and etag != first_etag and "alert firing" in html else None

        html = await until(rebuilt)
        assert builds(daemon, "status") > first_builds
        # "Generated" is when the build served began, never the time of an older one
        assert asked - timedelta(seconds=1) <= generated(html) <= datetime.now(UTC)


async def test_reload_rebuilds_at_once(simulator: RunningSimulator, write_config: ConfigWriter) -> None:
    async with running_daemon(config(simulator, write_config, "5m")) as daemon:
        await until(lambda: all_stored(daemon))
        url = daemon.listen_url + "/"
        await get(url)
        assert builds(daemon, "status") == 1
        assert (await daemon.reload())[0]
        await get(url)
        assert builds(daemon, "status") == 2


async def test_max_age_zero_shares_only_the_build_under_way() -> None:
    """/metrics: concurrent scrapes share one exposition, and the next scrape gets a new one."""
    gate = Gate()
    rendered = Rendered(gate, lambda: 0.0)
    waiting = [asyncio.create_task(rendered.get(None)) for _ in range(10)]
    await until(lambda: gate.calls == 1)
    gate.open.set()
    assert {b.body for b in await asyncio.gather(*waiting)} == {b"build 1"}
    assert (await rendered.get(None)).body == b"build 2"
