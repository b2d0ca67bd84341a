"""The health job in a running daemon against the simulator: one alert per incident, the
development action, the health log, the UMIG metrics, the status API and the status/check CLI;
versions that flap are told once per window."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from prometheus_client import CollectorRegistry

from tests.support import (
    ConfigWriter,
    Receiver,
    api,
    cli,
    metrics_text,
    require_tool,
    running_daemon,
    until,
)
from umig_monitor.app import Daemon
from umig_monitor.cli import main
from umig_monitor.config import Settings, load_config
from umig_monitor.core.alerts import Alert, AlertState
from umig_monitor.core.status import iso
from umig_monitor.jobs.health import HealthPoller, poll_environment
from umig_monitor.jobs.samples import SampleWriter
from umig_monitor.metrics import AlertMetrics, UmigMetrics
from umig_monitor.ops.deployments import DeploymentRecorder
from umig_monitor.pipeline import AlertPipeline
from umig_monitor.probes.client import make_session
from umig_monitor.simulator import Fault, FaultKind, RunningSimulator, start_simulator
from umig_monitor.storage import Store

EXTRA = """
jobs:
  health: {failure_threshold: 3, success_threshold: 2}
"""


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter, tmp_path: Path) -> Path:
    path = write_config(simulator, poll_interval="200ms", extra=EXTRA)
    text = path.read_text().replace(
        "    kind: development\n",
        "    kind: development\n    actions: {regenerate_test_data: true}\n"
        f"    health_log: {tmp_path}/dev.log\n",
    )
    path.write_text(text)
    return path


async def polls_of(daemon: Daemon, env: str) -> int:
    await daemon.writer.flush()
    return len(await daemon.store.recent_health_samples(env, 10_000))


async def test_one_alert_per_incident(daemon: Daemon, simulator: RunningSimulator) -> None:
    await until(daemon.first_round_done)
    simulator.simulator.update("production", status="unhealthy")
    await until(lambda: daemon.store.active_alerts("production"))
    start = await polls_of(daemon, "production")
    await until(lambda: polls_of_at_least(daemon, "production", start + 10))  # stays down for 10 more polls
    alerts = await daemon.store.list_alerts(environment="production")
    assert [(a.type, a.state) for a in alerts] == [("environment_unhealthy", AlertState.FIRING)]
    assert alerts[0].severity == "critical"

    simulator.simulator.update("production", status=None)  # back to derived: healthy
    await until(lambda: no_active(daemon, "production"))
    alerts = await daemon.store.list_alerts(environment="production")
    assert [(a.type, a.state) for a in alerts] == [("environment_unhealthy", AlertState.RESOLVED)]
    assert alerts[0].ends_at is not None


async def polls_of_at_least(daemon: Daemon, env: str, n: int) -> bool:
    return await polls_of(daemon, env) >= n


async def no_active(daemon: Daemon, env: str) -> bool:
    return not await daemon.store.active_alerts(env)


async def test_unreachable_incident_type(daemon: Daemon, simulator: RunningSimulator) -> None:
    from umig_monitor.simulator import Fault, FaultKind

    await until(daemon.first_round_done)
    simulator.simulator.add_fault("uat", Fault(FaultKind.CONNECTION_RESET))
    await until(lambda: daemon.store.active_alerts("uat"))
    [alert] = await daemon.store.active_alerts("uat")
    assert (alert.type, alert.severity) == ("environment_unreachable", "warning")


async def test_development_database_action(
    daemon: Daemon, simulator: RunningSimulator, tmp_path: Path
) -> None:
    await until(daemon.first_round_done)
    assert simulator.simulator.request_counts("development").get("regenerate", 0) == 0
    simulator.simulator.update("development", database_status="unhealthy")
    await until(lambda: simulator.simulator.request_counts("development").get("regenerate", 0) >= 1)
    # The simulator healed the database: no second request in this incident, however many polls follow.
    polled = await polls_of(daemon, "development")
    await until(lambda: polls_of_at_least(daemon, "development", polled + 5))
    assert simulator.simulator.request_counts("development")["regenerate"] == 1
    await daemon.writer.flush()
    samples = await daemon.store.recent_health_samples("development", 1000)
    actions = [s.metrics["actions"] for s in samples if "actions" in s.metrics]
    assert actions == [["regenerate_test_data: ok"]]
    # dev-status figures are recorded with development samples
    assert "testDataStatus" in samples[0].metrics
    assert "debugMode" in samples[0].metrics
    # production never regenerates
    assert simulator.simulator.request_counts("production").get("regenerate", 0) == 0


async def test_health_log_lines(daemon: Daemon, simulator: RunningSimulator, tmp_path: Path) -> None:
    from umig_monitor.simulator import Fault, FaultKind

    await until(daemon.first_round_done)
    simulator.simulator.add_fault("development", Fault(FaultKind.CONNECTION_RESET))
    log = tmp_path / "dev.log"
    await until(lambda: log.exists() and "connection_failed" in log.read_text())
    lines = log.read_text().splitlines()
    first = lines[0].split("|")
    assert first[1:] == ["healthy", "1.3.0-dev+ci.1245", "2h 45m"]
    assert first[0].endswith("+00:00")
    assert lines[-1].split("|")[1:] == ["unhealthy", "unknown", "connection_failed"]


async def test_umig_metrics(daemon: Daemon, simulator: RunningSimulator) -> None:
    promtool = require_tool("promtool")
    await until(daemon.first_round_done)
    simulator.simulator.update("uat", version="1.2.0-rc.3")
    await until(lambda: 'version="1.2.0-rc.3"' in metrics_text(daemon))
    text = metrics_text(daemon)
    assert 'umig_version_info{build="' in text
    assert 'version="1.2.0-rc.2"' not in text  # the old series is gone
    assert 'umig_health_status{environment="production"} 1.0' in text
    assert 'umig_uptime_seconds{environment="production"} 459900' in text
    assert 'umig_environment_status{environment="production",status="healthy"} 1.0' in text
    assert 'umig_probe_duration_seconds_bucket{endpoint="health",environment="uat"' in text
    check = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


async def test_environment_status_api(daemon: Daemon, simulator: RunningSimulator) -> None:
    await until(lambda: polls_of_at_least(daemon, "production", 3))
    async with aiohttp.ClientSession() as s:
        async with s.get(daemon.listen_url + "/api/v1/environments") as r:
            data = await r.json()
        async with s.get(daemon.listen_url + "/api/v1/environments/production?limit=3") as r:
            detail = await r.json()
        async with s.get(daemon.listen_url + "/api/v1/environments/nowhere") as r:
            assert r.status == 404
    dev = data["environments"]["development"]
    assert dev["umigVersion"] == "1.3.0-dev+ci.1245"
    assert dev["health"] == "healthy"
    assert dev["status"] == "active"
    assert dev["uptime"] == "2h 45m"
    assert dev["components"] == {
        "database": "032-dev",
        "api": "2.4.0-dev",
        "ui": "1.3.0-dev",
        "backend": "1.3.0-dev",
    }
    # As the environment's own version endpoint says, not when this monitor first saw it.
    assert dev["deployedBy"] == "automation"
    assert dev["deployedAt"] == "2024-10-25T10:15:30Z"
    assert dev["deployedSource"] == "environment"
    assert dev["firstSeen"] is not None
    assert data["environments"]["uat"]["status"] == "testing"
    assert data["environments"]["production"]["status"] == "stable"
    assert len(detail["recentSamples"]) == 3
    assert detail["incident"] is None


async def test_status_cli(
    daemon: Daemon, simulator: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert daemon.config_path is not None
    config = str(daemon.config_path)
    await until(daemon.first_round_done)
    await daemon.writer.flush()
    assert await asyncio.to_thread(main, ["status", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "1.1.2" in out
    assert "ENVIRONMENT" in out
    simulator.simulator.update("production", status="unhealthy")
    await until(lambda: daemon.store.active_alerts("production"))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["status", "--config", config, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["environments"]["production"]["status"] == "incident"


async def test_status_cli_reads_storage_without_a_daemon(
    daemon: Daemon, capsys: pytest.CaptureFixture[str]
) -> None:
    assert daemon.config_path is not None
    await until(daemon.first_round_done)
    await daemon.stop()
    capsys.readouterr()  # the daemon's own log lines
    assert await asyncio.to_thread(main, ["status", "--config", str(daemon.config_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["environments"]["uat"]["umigVersion"] == "1.2.0-rc.2"


async def test_check_cli(
    simulator: RunningSimulator, write_config: ConfigWriter, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(simulator))
    assert await asyncio.to_thread(main, ["check", "production", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "production: healthy" in out
    for word in ("health", "version", "components", "teams", "database", "authentication"):
        assert word in out
    simulator.simulator.update("production", api_status="unhealthy")
    assert await asyncio.to_thread(main, ["check", "production", "--config", config, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["components"]["api"] == "unhealthy"


async def test_a_sample_is_kept_when_incident_memory_cannot_be_read(
    simulator: RunningSimulator, write_config: ConfigWriter, tmp_path: Path
) -> None:
    """Seeding an environment's incident memory reads alerts; when that read fails (here the
    table is really gone) the poll still stores its sample and says why no alert was decided."""
    import sqlite3

    from structlog.testing import capture_logs

    from umig_monitor.storage import Store

    path = write_config(simulator, ("production",))
    settings = load_config(path)
    await (await Store.open(settings.daemon.storage)).close()  # migrated
    with sqlite3.connect(tmp_path / "umig-monitor.db") as db:
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("DROP TABLE alerts")
    d = Daemon(settings, path)
    with capture_logs() as logs:
        await d.start()
        try:
            await until(lambda: "production" in d.polled)
            await d.writer.flush()
            stored = await d.store.recent_health_samples("production", 10)
        finally:
            await d.stop()
    assert stored
    assert stored[0].version == "1.1.2"
    missing = [e for e in logs if e["event"] == "incident_memory_unavailable"]
    assert missing
    assert "alerts" in missing[0]["error"]


def https_context(ca: trustme.CA, expires: datetime) -> ssl.SSLContext:
    """A server context presenting a certificate from ``ca`` that expires at ``expires``."""
    leaf = ca.issue_cert("127.0.0.1", not_before=expires - timedelta(days=365), not_after=expires)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    return ctx


def exported_expiry(daemon: Daemon) -> float | None:
    """umig_tls_cert_expiry_timestamp_seconds{environment="production"}, as /metrics reads."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text(daemon)):
        if family.name == "umig_tls_cert_expiry_timestamp_seconds":
            for series in family.samples:
                if series.labels == {"environment": "production"}:
                    return series.value
    return None


async def certificate_alerts(daemon: Daemon, state: AlertState) -> list[Alert]:
    return [
        a
        for a in await daemon.store.list_alerts(environment="production")
        if a.type == "certificate_expiring" and a.state is state
    ]


async def test_certificate_expiry_alert_resolves_on_renewal(
    write_config: ConfigWriter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An https environment whose certificate expires in 10 days: the expiry is exported, shown by
    the API, the page and ``check``, and raises a warning; a renewed certificate resolves it."""
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    now = datetime.now(UTC).replace(microsecond=0)
    expiring, renewed = now + timedelta(days=10), now + timedelta(days=90)
    sim = await start_simulator(("production",), ssl_context=https_context(ca, expiring))
    try:
        path = write_config(sim, ("production",), poll_interval="200ms", extra=EXTRA)
        path.write_text(
            path.read_text().replace(
                "    timeout: 2s\n", f"    timeout: 2s\n    tls: {{ca_file: {ca_file}}}\n"
            )
        )
        async with running_daemon(path) as daemon:
            (alert,) = await until(lambda: certificate_alerts(daemon, AlertState.FIRING))
            assert (alert.severity, alert.key) == ("warning", "certificate_expiring/production/warning")
            assert f"TLS certificate expires {expiring:%Y-%m-%d %H:%M} UTC (in " in alert.summary
            assert exported_expiry(daemon) == expiring.timestamp()
            lint = await asyncio.to_thread(
                subprocess.run,
                [require_tool("promtool"), "check", "metrics"],
                input=metrics_text(daemon),
                capture_output=True,
                text=True,
            )
            assert lint.returncode == 0, lint.stdout + lint.stderr

            await daemon.writer.flush()  # the API reads stored samples; the writer is write-behind
            status, doc = await api(daemon, "GET", "/api/v1/environments/production")
            assert status == 200
            assert (doc["tlsCertExpiry"], doc["tlsCertState"]) == (iso(expiring), "warning")
            assert doc["recentSamples"][0]["tlsCertExpiry"] == iso(expiring)
            async with aiohttp.ClientSession() as session, session.get(daemon.listen_url + "/") as resp:
                page = await resp.text()
            (cell,) = re.findall(r'<td class="certificate">(.*?)</td>', page)
            assert cell.startswith('<span class="pill state-degraded">warning</span> <time')

            capsys.readouterr()
            assert await cli("check", "production", "--config", str(path)) == 0
            out = capsys.readouterr().out
            assert f"certificate expires {expiring:%Y-%m-%d %H:%M} UTC (in " in out
            assert out.rstrip().splitlines()[1].endswith("[warning]")

            # Renewal: the server reloads with a new certificate (closing its connections).
            await sim.stop()
            sim = await start_simulator(
                ("production",),
                port=sim.port,
                simulator=sim.simulator,
                ssl_context=https_context(ca, renewed),
            )
            (alert,) = await until(lambda: certificate_alerts(daemon, AlertState.RESOLVED))
            assert alert.key == "certificate_expiring/production/warning"
            assert await certificate_alerts(daemon, AlertState.FIRING) == []
            await until(lambda: exported_expiry(daemon) == renewed.timestamp())
    finally:
        await sim.stop()


FLAPPING = """
jobs:
  drift: {{enabled: false}}
  health: {{version_flap_changes: 3, version_flap_window: 10m}}
sinks:
  hook: {{type: webhook, url: '{url}'}}
default_route: {{sinks: [hook]}}
"""


def notices(hook: Receiver, alertname: str) -> list[dict[str, Any]]:
    return [a for b in hook.bodies for a in b["alerts"] if a["labels"]["alertname"] == alertname]


async def test_flapping_versions_give_one_notice_per_window(
    simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver
) -> None:
    """A new UAT version on every poll (the issue: 31 in 62 s): the first three changes are
    announced as observed deployments, then one flapping notice for the window, with the count."""
    path = write_config(simulator, poll_interval="1h", extra=FLAPPING.format(url=hook.url))
    async with running_daemon(path) as d:
        await until(d.first_round_done)
        for i in range(12):
            simulator.simulator.update("uat", version=f"1.2.0-rc.{10 + i}")
            await poll_environment(d, "uat")
        await d.alerts.evaluate()
        await until(lambda: notices(hook, "version_flapping"), what="the flapping notice")
        await until(lambda: notices(hook, "deployment_observed"), what="the first observed change")
        await until(lambda: no_pending(d))

        [flapping] = notices(hook, "version_flapping")
        assert flapping["labels"]["environment"] == "uat"
        assert "uat: version flapping, 4 changes in " in flapping["annotations"]["summary"]
        assert flapping["annotations"]["summary"].endswith(", now 1.2.0-rc.13")
        # Only the changes before flapping were announced (the recorder may merge changes within
        # one second into one deployment: these polls are milliseconds apart).
        announced = ["1.2.0-rc.10", "1.2.0-rc.11", "1.2.0-rc.12"]
        observed = [a["labels"]["version"] for a in notices(hook, "deployment_observed")]
        assert observed[0] == announced[0]
        assert set(observed) <= set(announced)
        events = await d.store.deployment_events(environment="uat")
        assert {e.version for e in events} <= set(announced)
        # Folded changes are still seen: the version record follows every change.
        seen = await d.store.kv_get("version_seen:uat")
        assert isinstance(seen, dict)
        assert seen["version"] == "1.2.0-rc.21"


async def no_pending(daemon: Daemon) -> bool:
    return not await daemon.store.list_deliveries(status="pending")


@dataclass
class HealthJob:
    """The health job's context, built here as a test (or another caller) would: no daemon."""

    settings: Settings
    session: aiohttp.ClientSession
    store: Store
    writer: SampleWriter
    alerts: AlertPipeline
    deployments: DeploymentRecorder
    umig_metrics: UmigMetrics
    health: HealthPoller


async def test_the_poll_body_runs_without_a_daemon(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    """The job body against the simulator, a real SQLite store and a real pipeline: an outage is
    one alert after the failure threshold, resolved after the success threshold; the poller owns
    the memory and forgets what is no longer configured."""
    settings = load_config(write_config(simulator, poll_interval="1h", extra=EXTRA))
    registry = CollectorRegistry()
    store = await Store.open(settings.daemon.storage)
    session = make_session(settings)
    writer = SampleWriter(store)
    alerts = AlertPipeline(store, AlertMetrics(registry))
    alerts.configure(settings, session)
    try:
        ctx = HealthJob(
            settings,
            session,
            store,
            writer,
            alerts,
            DeploymentRecorder(store, alerts, settings),
            UmigMetrics(registry),
            HealthPoller(settings),
        )
        assert ctx.health.missing(settings.environments) == set(settings.environments)
        await poll_environment(ctx, "uat")
        assert ctx.health.missing(settings.environments) == {"development", "production"}

        simulator.simulator.add_fault("uat", Fault(FaultKind.HTTP_ERROR, status=500))
        for _ in range(2):
            await poll_environment(ctx, "uat")
        assert await store.active_alerts("uat") == []  # below failure_threshold: 3
        await poll_environment(ctx, "uat")
        [alert] = await store.active_alerts("uat")
        assert alert.environment == "uat"

        simulator.simulator.clear_faults("uat")
        await poll_environment(ctx, "uat")
        assert await store.active_alerts("uat") != []  # success_threshold: 2
        await poll_environment(ctx, "uat")
        assert await store.active_alerts("uat") == []

        assert await writer.flush() == 6
        outcomes = [s.outcome.value for s in await store.recent_health_samples("uat", 10_000)]
        # newest first
        assert outcomes == ["healthy", "healthy", "http_error", "http_error", "http_error", "healthy"]
        assert "uat" in ctx.health.trackers
        ctx.health.keep_only({"production"})
        assert ctx.health.trackers == {}
        assert ctx.health.polled == set()
        assert ctx.health.missing({"production"}) == {"production"}
    finally:
        await alerts.close()
        await session.close()
        await writer.close()
        await store.close()


@asynccontextmanager
async def health_job(settings: Settings) -> AsyncIterator[HealthJob]:
    """The health job's context on the settings' store, with a real session and pipeline."""
    registry = CollectorRegistry()
    store = await Store.open(settings.daemon.storage)
    session = make_session(settings)
    writer = SampleWriter(store)
    alerts = AlertPipeline(store, AlertMetrics(registry))
    alerts.configure(settings, session)
    try:
        yield HealthJob(
            settings,
            session,
            store,
            writer,
            alerts,
            DeploymentRecorder(store, alerts, settings),
            UmigMetrics(registry),
            HealthPoller(settings),
        )
    finally:
        await alerts.close()
        await session.close()
        await writer.close()
        await store.close()


class Control:
    """The simulator's control API over HTTP: what a test changes, and the requests it served."""

    def __init__(self, simulator: RunningSimulator, session: aiohttp.ClientSession) -> None:
        self._sim = simulator
        self._session = session

    async def patch(self, env: str, **fields: Any) -> None:
        async with self._session.patch(self._sim.control_url(f"environments/{env}"), json=fields) as r:
            assert r.status == 200, await r.text()

    async def served(self, env: str) -> tuple[int, int, int]:
        """Requests to health, version and components so far."""
        async with self._session.get(self._sim.control_url(f"environments/{env}/requests")) as r:
            counts = (await r.json())["requests"]
        return counts["health"], counts["version"], counts["components"]


def with_full_poll_every(path: Path, every: dict[str, int]) -> Path:
    text = path.read_text()
    for env, n in every.items():
        head = f"  {env}:\n"
        text = text.replace(head, f"{head}    full_poll_every: {n}\n")
    path.write_text(text)
    return path


async def test_version_and_components_are_read_every_nth_poll_and_at_once_on_a_change(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    """full_poll_every 4: while healthy, version and components once per 4 polls, the polls between
    carrying their fields (marked); at once when health turns unhealthy or tells of another
    version, and on every poll until healthy again; full_poll_every 1 reads them on every poll."""
    path = write_config(simulator, ("production", "uat"), poll_interval="1h")
    settings = load_config(with_full_poll_every(path, {"production": 4, "uat": 1}))
    async with health_job(settings) as ctx, aiohttp.ClientSession() as http:
        control = Control(simulator, http)

        async def poll(env: str = "production") -> tuple[int, int, int]:
            await poll_environment(ctx, env)
            return await control.served(env)

        for n in range(1, 7):  # full at 1 and 5
            assert await poll() == (n, (n - 1) // 4 + 1, (n - 1) // 4 + 1)
        await ctx.writer.flush()
        samples = list(reversed(await ctx.store.recent_health_samples("production", 100)))
        assert [s.outcome.value for s in samples] == ["healthy"] * 6
        fresh = samples[0]
        assert fresh.build == "1170"
        assert fresh.deployed_by == "deployment-automation"
        assert fresh.metrics["orchestrator"] == "active"
        assert "detailsReadAt" not in fresh.metrics
        for carried in samples[1:4]:  # read at poll 1, carried by polls 2 to 4
            assert carried.metrics["detailsReadAt"] == fresh.ts.isoformat()
            assert (carried.version, carried.build) == (fresh.version, fresh.build)
            assert carried.component_versions == fresh.component_versions
            assert (carried.deployed_at, carried.deployed_by) == (fresh.deployed_at, fresh.deployed_by)
            assert carried.metrics["orchestrator"] == "active"
        assert "detailsReadAt" not in samples[4].metrics  # poll 5 read them again

        # Poll 7 would read health alone; health says unhealthy: the rest is read in the same poll.
        await control.patch("production", status="unhealthy")
        assert await poll() == (7, 3, 3)
        assert await poll() == (8, 4, 4)  # still not healthy: every poll reads all three
        await control.patch("production", status=None)
        assert await poll() == (9, 5, 5)  # the first healthy one after, too
        assert await poll() == (10, 5, 5)  # then health alone again

        # Another version in health: version and components at once, the new build stored.
        await control.patch("production", version="1.1.3", build="1180", api_version="2.3.1")
        assert await poll() == (11, 6, 6)
        await ctx.writer.flush()
        [latest] = await ctx.store.recent_health_samples("production", 1)
        assert (latest.version, latest.build) == ("1.1.3", "1180")
        assert latest.component_versions["api"] == "2.3.1"
        assert "detailsReadAt" not in latest.metrics
        # A build only the version document tells waits for the next full poll (poll 15).
        await control.patch("production", build="1181")
        assert [await poll() for _ in range(4)] == [(12, 6, 6), (13, 6, 6), (14, 6, 6), (15, 7, 7)]

        for n in range(1, 4):
            assert await poll("uat") == (n, n, n)


async def test_an_orchestrator_going_inactive_is_seen_within_n_polls(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    """The orchestrator is in the components document only: whenever it goes inactive, at most N
    polls later a sample says so (degraded, orchestrator_inactive), and from then on every poll
    reads it, so its recovery is seen on the next poll."""
    every = 4
    path = write_config(simulator, ("production",), poll_interval="1h")
    settings = load_config(with_full_poll_every(path, {"production": every}))
    async with health_job(settings) as ctx, aiohttp.ClientSession() as http:
        control = Control(simulator, http)
        for polls_before in range(every + 1):  # the change after each place in the cycle
            for _ in range(polls_before):
                await poll_environment(ctx, "production")
            await control.patch("production", orchestrator_status="inactive")
            seen_after = None
            for n in range(1, every + 1):
                await poll_environment(ctx, "production")
                await ctx.writer.flush()
                [sample] = await ctx.store.recent_health_samples("production", 1)
                if sample.metrics.get("orchestrator") == "inactive":
                    seen_after = n
                    break
            assert seen_after is not None, f"not seen within {every} polls"
            assert sample.outcome.value == "degraded"
            assert "orchestrator_inactive" in (sample.error or "")
            _, version_reads, _ = await control.served("production")
            await poll_environment(ctx, "production")
            assert (await control.served("production"))[1] == version_reads + 1  # degraded: read again
            await control.patch("production", orchestrator_status="active")
            await poll_environment(ctx, "production")
            await ctx.writer.flush()
            [sample] = await ctx.store.recent_health_samples("production", 1)
            assert sample.outcome.value == "healthy"
