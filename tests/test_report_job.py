"""The daily report from a real SQLite store: seeded through the store's own write methods (samples,
with the first hours pruned into rollups by retention, alerts, deployments, baselines, drift findings),
built, and checked against figures recomputed with direct store queries and against the pure report
of the same data; the job in a running daemon (files, one delivery per date, an unwritable directory);
and the ``report`` command (JSON, HTML to a file, ``--send``)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from structlog.testing import capture_logs

from tests.report_cases import (
    DAY,
    GENERATED_AT,
    TZ,
    local,
    seeded_alerts,
    seeded_baselines,
    seeded_events,
    seeded_findings,
    seeded_inputs,
    seeded_samples,
)
from tests.support import (
    POSTGRES_URL,
    ConfigWriter,
    Receiver,
    cli,
    free_port,
    running_daemon,
    scratch_database,
    until,
)
from umig_monitor.app import Daemon
from umig_monitor.commands.report import report as report_command
from umig_monitor.config import Settings, load_config
from umig_monitor.core.alerts import AlertEvent
from umig_monitor.core.dora import summarize
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.report import Counts, Period, make_report, previous_day, report_json
from umig_monitor.jobs.report import daily_report
from umig_monitor.ops.reports import build_report
from umig_monitor.pipeline.actions import ActionError
from umig_monitor.simulator import RunningSimulator
from umig_monitor.storage import Store
from umig_monitor.storage.insights import FindingRow

PERIOD = Period.of(DAY, TZ)
# Retention a month later: raw samples older than 30 days are pruned, i.e. those before 06:00 of the day.
PRUNED_AT = local(6) + timedelta(days=30)
ENVIRONMENTS_YAML = """
environments:
  development: {base_url: "http://127.0.0.1:9/development", kind: development}
  uat: {base_url: "http://127.0.0.1:9/uat", kind: uat}
  production: {base_url: "http://127.0.0.1:9/production", kind: production}
"""


def write_settings(tmp_path: Path, extra: str = "", storage: str | None = None) -> Path:
    path = tmp_path / "umig-monitor.yaml"
    storage = storage or f"sqlite:///{tmp_path / 'umig-monitor.db'}"
    path.write_text(
        "daemon:\n"
        f"  storage: {storage}\n"
        f"  timezone: {TZ}\n"
        "  listen: 127.0.0.1:9\n" + ENVIRONMENTS_YAML + extra
    )
    return path


async def seed(store: Store) -> None:
    """The data set of tests/test_report.py, through the store's write methods. uat's first six hours
    are written as raw samples and pruned into rollups by retention, as in production."""
    early_uat = [
        HealthSample("uat", local(hour, minute), Outcome.HEALTHY, umig_status="healthy", version="1.2.0-rc.2")
        for hour in range(6)
        for minute in (0, 30)
    ]
    await store.add_health_samples([*early_uat, *seeded_samples()])
    await store.prune(
        PRUNED_AT,
        raw_samples=timedelta(days=30),
        hourly_rollups=timedelta(days=400),
        alerts=timedelta(days=400),
        outbox_sent=timedelta(days=30),
    )
    for alert in sorted(seeded_alerts(), key=lambda a: a.starts_at):
        await store.fire_alert(
            AlertEvent(
                alert.key, alert.type, alert.environment, alert.severity, alert.summary, alert.starts_at
            )
        )
        if alert.ends_at is not None:
            await store.resolve_alert(alert.key, alert.ends_at)
    await store.add_deployment_events(seeded_events(), GENERATED_AT)
    for b in seeded_baselines():
        endpoints = {name: asdict(stats) for name, stats in b.endpoints.items()}
        await store.add_baseline(b.environment, b.version, b.ts, endpoints, dict(b.figures))
    # Drift runs that reproduce seeded_findings' first_seen and resolved_at.
    f = {
        x.type: FindingRow(f"version_drift/{x.type}", x.type, x.environment, x.severity, x.summary, {})
        for x in seeded_findings()
    }
    for rows, at in (
        ([f["stale"]], local(8, day=1)),
        ([f["stale"], f["outdated"]], local(8, day=20)),
        ([f["outdated"]], local(9, day=24)),
        ([f["outdated"], f["component"]], local(10)),
        ([f["outdated"]], local(12)),
        ([f["outdated"], f["ahead"]], local(3, day=26)),
    ):
        await store.sync_findings(rows, at)


@pytest.fixture(params=["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])])
async def seeded(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Store, Settings, Path]]:
    """The same seeded store on both backends: the report must not depend on the database."""
    async with scratch_database(request.param, tmp_path / "umig-monitor.db") as url:
        path = write_settings(tmp_path, storage=url)
        settings = load_config(path)
        store = await Store.open(settings.daemon.storage)
        try:
            await seed(store)
            yield store, settings, path
        finally:
            await store.close()


async def test_figures_agree_with_direct_queries(seeded: tuple[Store, Settings, Path]) -> None:
    store, settings, _ = seeded
    report = await build_report(store, settings, DAY, GENERATED_AT)
    start, end = PERIOD.start, PERIOD.end

    # Health: raw samples by outcome, plus the rollups of hours whose raw samples were pruned.
    raw = await store.health_samples_between(start, end)
    rollups = await store.health_rollups(start, end)
    raw_hours = {(s.environment, s.ts.replace(minute=0, second=0, microsecond=0)) for s in raw}
    expected: dict[str, Counter[str]] = {}
    for s in raw:
        expected.setdefault(s.environment, Counter())[
            s.outcome.value if s.outcome.answered else "failed"
        ] += 1
    for r in rollups:
        if (r.environment, r.hour) not in raw_hours:
            counts = expected.setdefault(r.environment, Counter())
            counts.update(healthy=r.healthy, degraded=r.degraded, unhealthy=r.unhealthy, failed=r.failed)
    for h in report.health:
        c = expected.get(h.name, Counter())
        assert (h.counts.healthy, h.counts.degraded, h.counts.unhealthy, h.counts.failed) == (
            c["healthy"],
            c["degraded"],
            c["unhealthy"],
            c["failed"],
        ), h.name
        assert h.counts.checks == sum(c.values())
    assert report.total.checks == sum(sum(c.values()) for c in expected.values()) == 143
    assert {h.name: h.rollup_hours for h in report.health} == {
        "development": 6,
        "uat": 6,
        "production": 6,
        "legacy": 0,
    }  # pruned before 06:00: from rollups for everyone now

    # The environment summary: the last sample of the day.
    last = {s.environment: s for s in raw}
    for e in report.environments:
        assert (e.health, e.last_check) == (last[e.name].outcome.value, last[e.name].ts)

    # Deployments.
    events = await store.deployment_events(since=start, until=end)
    assert len(report.deployments) == await store.count_deployment_events(since=start, until=end) == 5
    assert report.deployment_summary == summarize(events)

    # Alerts raised during the day, by severity; and the health incidents overlapping it.
    alerts = await store.list_alerts(since=start)
    raised = [a for a in alerts if start <= a.starts_at < end]
    assert report.alerts.raised == len(raised) == 6
    assert {s: n for s, n in report.alerts.by_severity.items() if n} == dict(
        Counter(a.severity for a in raised)
    )
    assert [a.id for a in report.alerts.recent] == [a.id for a in raised[:5]]  # list_alerts is newest first
    incidents = [a for a in alerts if a.key.startswith("environment_health/") and a.starts_at < end]
    assert {(i.environment, i.starts_at) for i in report.incidents} == {
        (a.environment, a.starts_at) for a in incidents
    }

    # Performance: the median of the day's production baselines.
    stored = await store.baselines(environment="production", before=end)
    teams_p50 = sorted(b.endpoints["teams"]["p50_ms"] for b in stored if b.ts >= start)
    production = next(p for p in report.performance if p.name == "production")
    assert production.baselines == len(teams_p50) == 3
    teams = next(f for f in production.endpoints if f.endpoint == "teams")
    assert teams.p50_ms == teams_p50[1]

    # Drift: the findings active at some time during the day.
    findings = await store.drift_findings(active_only=False)
    active = {
        f.type
        for f in findings
        if f.first_seen is not None
        and f.first_seen < end
        and (f.resolved_at is None or f.resolved_at >= start)
    }
    assert {f.type for f in report.drift} == active == {"outdated", "component"}


async def test_store_report_matches_the_pure_report_of_the_same_data(
    seeded: tuple[Store, Settings, Path],
) -> None:
    store, settings, _ = seeded
    from_store = report_json(await build_report(store, settings, DAY, GENERATED_AT))
    pure = report_json(make_report(seeded_inputs()))
    for key in (
        "environments",
        "deployments",
        "deploymentSummary",
        "total",
        "incidents",
        "performance",
        "drift",
    ):
        assert from_store[key] == pure[key], key
    for key in ("raised", "bySeverity", "firingAtEnd"):
        assert from_store["alerts"][key] == pure["alerts"][key], key
    assert [a["summary"] for a in from_store["alerts"]["recent"]] == [
        a["summary"] for a in pure["alerts"]["recent"]
    ]


@pytest.mark.parametrize("backend", ["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])])
@pytest.mark.parametrize(
    ("timezone", "day", "hours"),
    [
        ("Europe/Zurich", date(2024, 10, 27), 25),  # summer time ends
        ("Europe/Zurich", date(2024, 3, 31), 23),  # summer time starts
        ("America/Santiago", date(2024, 9, 8), 23),  # the clocks skip midnight itself
        ("Asia/Kolkata", date(2024, 10, 25), 25),  # half-hour offset: half hours at both ends
    ],
)
async def test_a_local_days_health_from_the_store_is_its_samples(
    backend: str, timezone: str, day: date, hours: int, tmp_path: Path
) -> None:
    # The store counts the day's samples per UTC hour in SQL: every segment must hold exactly the
    # samples stamped inside it, and the summary the day's last sample and last version.
    p = Period.of(day, timezone)
    outcomes = list(Outcome)
    samples = [
        HealthSample(
            env,
            p.start + timedelta(minutes=7 * i - 30 + j),
            outcomes[(i + j) % len(outcomes)],
            version=f"1.{i // 60}.{j}" if i % 5 else None,
            uptime_text=f"{i}m",
        )
        for i in range(240)  # from half an hour before the day to hours past its end
        for j, env in enumerate(("uat", "production"))
    ]
    async with scratch_database(backend, tmp_path / "day.db") as url:
        settings = load_config(write_settings(tmp_path, storage=url))
        daemon = settings.daemon.model_copy(update={"timezone": timezone})
        settings = settings.model_copy(update={"daemon": daemon})
        async with await Store.open(url) as store:
            await store.add_health_samples(samples[::-1])  # stored newest first
            report = await build_report(store, settings, day, p.end + timedelta(days=1))
    for health, status in zip(report.health, report.environments, strict=True):
        mine = [s for s in samples if s.environment == health.name]
        assert len(health.segments) == hours
        for segment in health.segments:
            assert segment.counts == Counts.of(s for s in mine if segment.start <= s.ts < segment.end)
        inside = [s for s in mine if p.contains(s.ts)]
        assert health.counts.checks == len(inside)
        assert not mine or (mine[0].ts < p.start and mine[-1].ts >= p.end and inside)
        last = inside[-1] if inside else None
        version = next((s.version for s in reversed(inside) if s.version), None)
        assert (status.last_check, status.version) == (last and last.ts, version), health.name


# -- the job in a running daemon ------------------------------------------------------------------

REPORT_ROUTE = """
sinks:
  hook: {{type: webhook, url: "{url}"}}
routes:
  - name: reports
    match: {{type: daily_report}}
    sinks: [hook]
jobs:
  daily_report: {{route: reports}}
"""


def with_report_directory(settings: Settings, directory: Path) -> Settings:
    """``jobs.daily_report.directory`` set, whether or not the config schema has the key yet."""
    job = settings.jobs.daily_report.model_copy(update={"directory": directory})
    return settings.model_copy(update={"jobs": settings.jobs.model_copy(update={"daily_report": job})})


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver) -> Path:
    return write_config(simulator, extra=REPORT_ROUTE.format(url=hook.url))


async def test_daily_job_writes_the_files_and_sends_once_per_date(
    daemon: Daemon, hook: Receiver, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    daemon.settings = with_report_directory(daemon.settings, reports)
    now = datetime.now(UTC)
    day = previous_day(now, daemon.settings.daemon.timezone)
    with capture_logs() as logs:
        await daily_report(daemon, now)
        await daily_report(daemon, now)  # a re-run for the same day
    await until(lambda: hook.bodies)
    await until(lambda: no_pending(daemon.store))
    [body] = hook.bodies
    title = f"UMIG Daily Status Report - {day.isoformat()}"
    assert (body["kind"], body["title"], body["receiver"], body["status"]) == (
        "report",
        title,
        "reports",
        "resolved",
    )
    assert body["text"].startswith(
        f"==================================\nUMIG Daily Status Report\nDate: {day}\n"
    )
    assert sorted(p.name for p in reports.iterdir()) == [
        f"daily-status-{day}.html",
        f"daily-status-{day}.json",
        f"daily-status-{day}.txt",
    ]
    written = (reports / f"daily-status-{day}.txt").read_text()
    assert "Environment Status Summary:" in written
    assert json.loads((reports / f"daily-status-{day}.json").read_text())["date"] == day.isoformat()
    assert [e["event"] for e in logs if e["event"].startswith("report_")] == [
        "report_written",
        "report_queued",
        "report_written",
        "report_already_queued",
    ]


async def no_pending(store: Store) -> bool:
    return not await store.list_deliveries(status="pending")


async def test_unwritable_directory_is_logged_and_the_report_still_sent(
    daemon: Daemon, hook: Receiver, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the reports directory should be")
    daemon.settings = with_report_directory(daemon.settings, blocked)
    with capture_logs() as logs:
        await daily_report(daemon)
    failure = next(e for e in logs if e["event"] == "report_write_failed")
    assert (failure["log_level"], failure["path"]) == ("error", str(blocked))
    await until(lambda: hook.bodies)
    assert hook.bodies[0]["kind"] == "report"


async def test_report_without_a_sink_is_logged_not_queued(
    simulator: RunningSimulator, write_config: ConfigWriter
) -> None:
    path = write_config(simulator)
    async with running_daemon(path) as d:
        with capture_logs() as logs:
            await daily_report(d)
        assert "report_not_routed" in [e["event"] for e in logs]
        assert await d.store.list_deliveries() == []


# -- the report command ---------------------------------------------------------------------------


def args(**kwargs: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "date": DAY.isoformat(),
        "format": "text",
        "output": None,
        "send": False,
        "wait": 10.0,
    }
    return argparse.Namespace(**(values | kwargs))


async def test_report_command_json_for_a_past_day(
    seeded: tuple[Store, Settings, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, settings, _ = seeded
    assert await report_command(settings, args(format="json")) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = report_json(await build_report(store, settings, DAY, GENERATED_AT))
    for document in (printed, expected):  # built now, not at 07:00 the next day:
        del document["generatedAt"]
        del document["incidents"][-1]["duration"]  # the incident still open is measured until then
    assert printed == expected
    assert printed["total"]["checks"] == 143


async def test_report_command_html_to_a_file(seeded: tuple[Store, Settings, Path], tmp_path: Path) -> None:
    _, settings, _ = seeded
    out = tmp_path / "report.html"
    assert await report_command(settings, args(format="html", output=str(out))) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("date", "message"), [("25.10.2024", "is not a date"), ("2999-01-01", "has not started")]
)
async def test_report_command_refuses_bad_dates(
    seeded: tuple[Store, Settings, Path], date: str, message: str
) -> None:
    _, settings, _ = seeded
    with pytest.raises(ActionError, match=message):
        await report_command(settings, args(date=date))


async def test_report_command_sends_once_and_reports_failure(
    tmp_path: Path, hook: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_settings(
        tmp_path, f'sinks:\n  hook: {{type: webhook, url: "{hook.url}"}}\ndefault_route: {{sinks: [hook]}}\n'
    )
    settings = load_config(path)
    assert await report_command(settings, args(send=True)) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(
        "==================================\nUMIG Daily Status Report\nDate: 2024-10-25"
    )
    assert "hook: sent" in captured.err
    assert [b["title"] for b in hook.bodies] == ["UMIG Daily Status Report - 2024-10-25"]

    assert await report_command(settings, args(send=True)) == 0  # the same date again: nothing new
    assert "was queued before" in capsys.readouterr().err
    assert len(hook.bodies) == 1

    hook.script = [400]  # another day, refused by the receiver
    assert await report_command(settings, args(send=True, date="2024-10-24")) == 1
    assert "hook: failed" in capsys.readouterr().err


async def test_report_command_without_a_sink_fails_to_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_config(write_settings(tmp_path))
    assert await report_command(settings, args(send=True)) == 1
    assert "no sink takes the report" in capsys.readouterr().err


def _wired() -> bool:
    """True once cli.py has the report command."""
    import contextlib
    import io

    from umig_monitor.cli import build_parser

    with contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args(["report", "--date", "2024-10-25", "--format", "json", "--send"])
        except SystemExit:
            return False
    return True


@pytest.mark.skipif(not _wired(), reason="the report command is not in cli.py yet")
async def test_report_command_through_the_cli(
    seeded: tuple[Store, Settings, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, path = seeded
    assert await cli("report", "--date", "2024-10-25", "--format", "json", "--config", str(path)) == 0
    assert json.loads(capsys.readouterr().out)["total"]["checks"] == 143
    assert await cli("report", "--date", "not-a-date", "--config", str(path)) == 2


# -- a day that is not over ----------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that keeps the messages it is given."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content
        assert isinstance(raw, bytes)
        self.subjects.append(str(message_from_bytes(raw, policy=default_policy)["Subject"]))
        return "250 Message accepted"


MAIL_REPORT_ROUTE = """
sinks:
  mail: {{type: mail, host: 127.0.0.1, port: {port}, from: umig-monitor@example.com, to: [ops@example.com]}}
routes:
  - name: reports
    match: {{type: daily_report}}
    sinks: [mail]
jobs:
  daily_report: {{route: reports}}
"""


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


async def test_sending_a_day_not_over_is_refused_and_the_scheduled_report_is_sent_once(
    simulator: RunningSimulator,
    write_config: ConfigWriter,
    mailbox: tuple[Mailbox, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    box, port = mailbox
    path = write_config(simulator, extra=MAIL_REPORT_ROUTE.format(port=port))
    settings = load_config(path)
    tz = settings.daemon.timezone
    today = datetime.now(UTC).astimezone(ZoneInfo(tz)).date()

    # By hand during the day: refused before anything is printed or queued, with exit 2.
    assert await cli("report", "--date", today.isoformat(), "--send", "--config", str(path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--send: {today} is not over yet in {tz}" in captured.err
    with pytest.raises(ActionError, match="is not over yet"):
        await report_command(settings, args(send=True, date=today.isoformat()))
    # Without --send the day so far is printed as before.
    assert await report_command(settings, args(date=today.isoformat())) == 0
    assert f"Date: {today}" in capsys.readouterr().out

    # The scheduled job the next morning has that date's slot, and sends it once.
    async with running_daemon(path) as d:
        assert await d.store.list_deliveries() == []
        next_morning = Period.of(today, tz).end + timedelta(hours=7)
        await daily_report(d, next_morning)
        await daily_report(d, next_morning)  # a re-run (a restart, a second replica)
        await until(lambda: box.subjects, what="report mail")
        await until(lambda: no_pending(d.store))
        assert box.subjects == [f"UMIG Daily Status Report - {today.isoformat()}"]
        [delivery] = await d.store.list_deliveries()
        assert delivery.status == "sent"
