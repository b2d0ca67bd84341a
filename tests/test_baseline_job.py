"""Baselines against the simulator: measured, stored per version, compared; raised latency is a
regression, small jitter is not; the CLI, the API and the metric."""

from __future__ import annotations

import json

import pytest

from tests.support import ConfigWriter, cli, metrics_text, running_daemon
from umig_monitor.config import load_config
from umig_monitor.simulator import Endpoint, Fault, FaultKind, RunningSimulator
from umig_monitor.storage import Store


async def test_baseline_cli_regression_and_jitter(
    simulator: RunningSimulator, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(simulator, extra="jobs: {baseline: {samples: 5}}\n")
    args = ["baseline", "production", "--json", "--config", str(config)]
    for _ in range(3):  # this version's history: three quick baselines
        assert await cli(*args) == 0
    capsys.readouterr()
    # Small jitter (+20 ms) on a fast endpoint: under the 50 ms minimum, not a regression.
    simulator.simulator.add_fault(
        "production", Fault(FaultKind.LATENCY, endpoint=Endpoint.TEAMS, latency_ms=20)
    )
    assert await cli(*args) == 0
    capsys.readouterr()
    simulator.simulator.clear_faults("production")
    simulator.simulator.add_fault(
        "production", Fault(FaultKind.LATENCY, endpoint=Endpoint.TEAMS, latency_ms=300)
    )
    assert await cli(*args) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == "1.1.2"
    assert data["endpoints"]["teams"]["p50_ms"] >= 300
    assert data["endpoints"]["health"]["errors"] == 0
    assert data["figures"]["dbConnections"] == 12
    assert any(r.startswith("teams p50") for r in data["regressions"])
    assert all("health" not in r for r in data["regressions"])
    settings = load_config(config)
    store = await Store.open(settings.daemon.storage)
    try:
        stored = await store.baselines(environment="production")
    finally:
        await store.close()
    assert len(stored) == 5
    assert {b.version for b in stored} == {"1.1.2"}


async def test_baseline_version_mismatch(
    simulator: RunningSimulator, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(simulator)
    assert await cli("baseline", "production", "--version", "1.2.0", "--config", str(config)) == 2
    assert "runs 1.1.2, not 1.2.0" in capsys.readouterr().err


async def test_baseline_job_in_the_daemon_raises_and_resolves(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    from umig_monitor.jobs.baseline import baseline_environment

    path = write_config(simulator, extra="jobs: {baseline: {samples: 3}}\n")
    async with running_daemon(path) as daemon:
        for _ in range(3):
            assert await baseline_environment(daemon, "uat") == []
        simulator.simulator.add_fault(
            "uat", Fault(FaultKind.LATENCY, endpoint=Endpoint.USERS, latency_ms=250)
        )
        regressions = await baseline_environment(daemon, "uat")
        assert {r.endpoint for r in regressions} == {"users"}
        active = [a for a in await daemon.store.active_alerts("uat") if a.type == "performance_regression"]
        assert active
        assert "users" in active[0].summary
        assert 'umig_baseline_latency_seconds{endpoint="users",environment="uat",stat="p50"}' in metrics_text(
            daemon
        )
        simulator.simulator.clear_faults("uat")
        assert await baseline_environment(daemon, "uat") == []
        assert not [a for a in await daemon.store.active_alerts("uat") if a.type == "performance_regression"]
