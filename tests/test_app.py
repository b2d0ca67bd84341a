"""The daemon in-process against the simulator: probes, reload, rescheduling, start-up failures."""

from __future__ import annotations

import asyncio
import gc
import subprocess
from datetime import timedelta
from pathlib import Path

import aiohttp

from tests.support import ConfigWriter, require_tool, running_daemon, until
from umig_monitor import gcpolicy
from umig_monitor.app import Daemon, async_run
from umig_monitor.config import load_config
from umig_monitor.simulator import RunningSimulator


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def post(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.post(url, headers=headers) as r:
        return r.status, await r.json()


async def test_ready_after_first_poll_round(daemon: Daemon) -> None:
    assert (await get(daemon.listen_url + "/healthz"))[0] == 200
    await until(daemon.first_round_done)
    status, body = await get(daemon.listen_url + "/readyz")
    assert status == 200, body
    await daemon.writer.flush()
    latest = await daemon.store.latest_health_samples()
    assert {e: s.version for e, s in latest.items()} == {
        "development": "1.3.0-dev+ci.1245",
        "uat": "1.2.0-rc.2",
        "production": "1.1.2",
    }


async def test_not_ready_until_first_round(simulator: RunningSimulator, write_config: ConfigWriter) -> None:
    from umig_monitor.simulator import Fault, FaultKind

    simulator.simulator.add_fault(
        "production", Fault(FaultKind("timeout"))
    )  # its first poll takes the full 2 s
    path = write_config(simulator)
    async with running_daemon(path) as d:
        status, body = await get(d.listen_url + "/readyz")
        assert status == 503
        assert "waiting for" in body
        assert "production" in body
        await until(d.first_round_done)
        assert (await get(d.listen_url + "/readyz"))[0] == 200
        # After the first round's collection, each full one freezes what survives it.
        await until(lambda: gcpolicy._freeze_survivors in gc.callbacks, what="gcpolicy started")
    assert gcpolicy._freeze_survivors not in gc.callbacks


async def test_metrics_pass_promtool(daemon: Daemon) -> None:
    promtool = require_tool("promtool")
    await until(daemon.first_round_done)
    status, text = await get(daemon.listen_url + "/metrics")
    assert status == 200
    assert 'umig_monitor_job_runs_total{result="success",task="health"}' in text
    assert "umig_monitor_build_info{" in text
    # Each paced poll says how late it got its slot; skipped starts are there at 0 from the start.
    [lag_count] = [s for s in text.splitlines() if s.startswith("umig_monitor_poll_lag_seconds_count")]
    assert float(lag_count.split()[-1]) >= 3
    assert 'umig_monitor_job_runs_skipped_total{reason="late",task="health"} 0.0' in text
    check = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


async def test_config_endpoint_masks_secrets(daemon: Daemon) -> None:
    status, text = await get(daemon.listen_url + "/api/v1/config")
    assert status == 200
    assert "test-token" not in text
    assert '"last_reload"' in text


async def test_reload_endpoint_needs_the_token(daemon: Daemon) -> None:
    assert (await post(daemon.listen_url + "/-/reload"))[0] == 401
    assert (await post(daemon.listen_url + "/-/reload", "wrong"))[0] == 401
    status, body = await post(daemon.listen_url + "/-/reload", "test-token")
    assert (status, body["reloaded"]) == (200, True)


async def test_mutating_endpoints_closed_without_token(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    path = write_config(simulator, token=None)
    async with running_daemon(path) as d:
        status, body = await post(d.listen_url + "/-/reload", "anything")
        assert status == 403
        assert "no API token configured" in str(body["error"])


async def test_reload_adds_and_removes_environments(
    daemon: Daemon, simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    assert daemon.config_path is not None
    simulator.simulator.add_environment("hotfix")
    write_config(simulator, ("production", "hotfix"), port=daemon.settings.daemon.listen_address[1])
    ok, _ = await daemon.reload()
    assert ok
    job_ids = set(daemon.scheduler.ids())
    assert {"health:production", "health:hotfix"} <= job_ids
    assert "health:uat" not in job_ids
    await until(lambda: "hotfix" in daemon.polled)


async def test_reload_reschedules_changed_interval(
    daemon: Daemon, simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    before = daemon.scheduler.planned("health:uat")
    write_config(simulator, poll_interval="7s", port=daemon.settings.daemon.listen_address[1])
    assert (await daemon.reload())[0]
    after = daemon.scheduler.planned("health:uat")
    assert before is not None
    assert after is not None
    assert after.every == timedelta(seconds=7)
    assert before.every == timedelta(seconds=1)


async def test_bad_reload_keeps_running_config(daemon: Daemon) -> None:
    assert daemon.config_path is not None
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good.replace("poll_interval: 1s", "poll_interval: fast", 1))
    ok, message = await daemon.reload()
    assert not ok
    assert "invalid duration 'fast'" in message
    assert daemon.last_reload["ok"] is False
    assert len(daemon.settings.environments) == 3
    assert "umig_monitor_config_last_reload_successful 0.0" in (await get(daemon.listen_url + "/metrics"))[1]
    daemon.polled.clear()
    await until(daemon.first_round_done)  # still polling with the old config


async def test_unusable_storage_exits_2(
    simulator: RunningSimulator, write_config: ConfigWriter, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = write_config(simulator)
    path.write_text(path.read_text().replace(str(tmp_path / "umig-monitor.db"), str(blocker / "x.db")))
    assert await async_run(load_config(path), path) == 2


async def test_one_bad_environment_does_not_stop_the_others(
    daemon: Daemon, simulator: RunningSimulator
) -> None:
    from umig_monitor.simulator import Fault, FaultKind

    simulator.simulator.add_fault("uat", Fault(FaultKind("malformed_json")))
    daemon.polled.clear()
    await until(daemon.first_round_done)
    await daemon.writer.flush()
    latest = await daemon.store.latest_health_samples()
    assert latest["uat"].outcome.value == "invalid_response"
    assert latest["production"].outcome.value == "healthy"
