"""Every hot read path is planned on an index of the big tables, never a full read of one: the SQL
each Store method really executes (captured as it runs) is explained on SQLite (``EXPLAIN QUERY
PLAN``) and PostgreSQL (``EXPLAIN (VERBOSE, FORMAT JSON)``, which shows subplans too).

PostgreSQL plans a few-row table with a sequential scan whatever its indexes, so this session turns
sequential scans off: a plan that still has one has no index to use instead. An ordered walk of a
whole index (no condition) is a full read too, allowed only where a LIMIT stops it after a page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.support import POSTGRES_URL, scratch_database
from umig_monitor.core.alerts import AlertEvent, AlertState
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.storage import Store
from umig_monitor.storage.records import LogUpdate, OutboxEntry
from umig_monitor.storage.schema import metadata

BIG = (
    "health_samples",
    "health_rollups_hourly",
    "alerts",
    "deployment_events",
    "deployment_rollups",
    "deployment_days",
    "outbox",
)
# A partial index holds only the rows its condition picks (firing alerts): walking it all is no full read.
PARTIAL = {
    index.name
    for table in metadata.tables.values()
    for index in table.indexes
    if index.dialect_options["postgresql"]["where"] is not None
}
T0 = datetime(2024, 10, 25, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=6)
MIDNIGHT = NOW.replace(hour=0) - timedelta(days=7)
BACKENDS = ["sqlite_file", *(["postgresql"] if POSTGRES_URL else [])]

Call = Callable[[Store], Awaitable[Any]]
RECORDED = [
    DeploymentEvent(f"r-{kind.value}", "r", "prod", kind, NOW - timedelta(days=1, minutes=m), version="1.1.0")
    for m, kind in ((10, EventType.START), (0, EventType.SUCCESS))
]


@dataclass(frozen=True)
class Case:
    name: str
    call: Call
    limited: bool = False  # an ordered index walk is fine: a LIMIT stops it after a page


CASES = [
    # The environments view, the page and drift: every environment's latest state.
    Case("latest_health_samples", lambda s: s.latest_health_samples()),
    Case("last_versioned_samples", lambda s: s.last_versioned_samples(["dev", "prod"])),
    Case("latest_deployments", lambda s: s.latest_deployments()),
    Case("versions_seen", lambda s: s.versions_seen()),
    Case("versions_seen_of_some", lambda s: s.versions_seen(["dev", "prod"])),
    # The page's timelines, the report, the retention job's rollup.
    Case("health_rollups", lambda s: s.health_rollups(NOW - timedelta(hours=24), NOW)),
    Case(
        "health_samples_between",
        lambda s: s.health_samples_between(NOW - timedelta(hours=2), NOW, brief=True),
    ),
    Case("rollup_health", lambda s: s.rollup_health(NOW)),
    # The daily report: a day's raw samples counted per hour, and the last sample (and version) of each.
    # (On these few rows PostgreSQL picks each environment's last by ix_health_samples_ts; with a day of
    # real data it seeks ix_health_samples_environment_ts, as SQLite does here.)
    Case("health_hours", lambda s: s.health_hours(NOW - timedelta(hours=24), NOW)),
    Case("last_health_samples", lambda s: s.last_health_samples(NOW - timedelta(hours=24), NOW)),
    Case(
        "last_health_samples_versioned",
        lambda s: s.last_health_samples(NOW - timedelta(hours=24), NOW, versioned=True),
    ),
    # One environment's detail, the health job.
    Case("recent_health_samples", lambda s: s.recent_health_samples("dev", 50)),
    # First polls: each environment's incident memory, for a batch of them at once.
    Case("recent_versions", lambda s: s.recent_versions(["dev", "prod", "uat"], 100)),
    Case("last_versioned_sample", lambda s: s.last_versioned_sample("dev")),
    # Alerts: every poll (one environment), the dispatcher every second, the page, DORA.
    Case("active_alerts", lambda s: s.active_alerts()),
    Case("active_alerts_of_one", lambda s: s.active_alerts("dev")),
    Case("alerts_for_dispatch", lambda s: s.alerts_for_dispatch()),
    Case(
        "resolved_alerts_page",
        lambda s: s.list_alerts(state=AlertState.RESOLVED, since=NOW - timedelta(hours=24), limit=20),
        limited=True,
    ),
    Case("alerts_of_one_since", lambda s: s.list_alerts(environment="dev", since=NOW - timedelta(days=30))),
    Case("notification_log", lambda s: s.notification_log([1, 2])),
    # Deployment history: the page's latest events, the API's page and count, drift's history.
    Case("latest_events", lambda s: s.deployment_events(limit=10), limited=True),
    Case(
        "history_page",
        lambda s: s.deployment_events(environment="prod", since=NOW - timedelta(days=30), limit=100),
    ),
    # The API's count and summary of an open window: its whole days, then its first day's own rows.
    Case(
        "history_count",
        lambda s: s.count_deployment_events(environment="prod", since=NOW - timedelta(days=30)),
    ),
    Case(
        "history_count_of_types",
        lambda s: s.count_deployment_events(
            environment="prod", since=NOW - timedelta(days=30), types=[EventType.SUCCESS.value]
        ),
    ),
    Case(
        "history_count_from_midnight", lambda s: s.count_deployment_events(environment="prod", since=MIDNIGHT)
    ),
    Case("history_count_all_time", lambda s: s.count_deployment_events(environment="prod")),
    Case(
        "history_count_bounded",
        lambda s: s.count_deployment_events(environment="prod", since=MIDNIGHT, until=NOW),
    ),
    Case(
        "drift_history",
        lambda s: s.deployment_events(
            environment="prod", types=[EventType.SUCCESS.value, EventType.OBSERVED.value], newest_first=False
        ),
    ),
    Case("summary", lambda s: s.deployment_summary(environment="prod", since=NOW - timedelta(days=30))),
    Case("summary_from_midnight", lambda s: s.deployment_summary(environment="prod", since=MIDNIGHT)),
    Case("summary_all_time", lambda s: s.deployment_summary(environment="prod")),
    # Every environment (GET /api/v1/deployments with no environment): the days by day alone.
    Case(
        "history_count_all_environments", lambda s: s.count_deployment_events(since=NOW - timedelta(days=30))
    ),
    Case(
        "history_count_of_types_all_environments",
        lambda s: s.count_deployment_events(since=NOW - timedelta(days=30), types=[EventType.ROLLBACK.value]),
    ),
    Case("summary_all_environments_from_midnight", lambda s: s.deployment_summary(since=MIDNIGHT)),
    Case("summary_all_environments", lambda s: s.deployment_summary(since=NOW - timedelta(days=30, hours=1))),
    Case("summary_bounded", lambda s: s.deployment_summary(environment="prod", since=MIDNIGHT, until=NOW)),
    # Recording events refreshes their deployments' rollups and their days' counts from the indexes.
    Case("record_events", lambda s: s.add_deployment_events(RECORDED, NOW)),
    Case("record_event", lambda s: s.add_deployment_event(replace(RECORDED[0], id="r-again"), NOW)),
    Case("update_event", lambda s: s.update_deployment_event(replace(RECORDED[0], id="d1-deployment_start"))),
    Case("reconcile_days", lambda s: s.reconcile_deployment_days(NOW - timedelta(days=1))),
    Case("recorded_since", lambda s: s.deployments_recorded_since(NOW - timedelta(minutes=1))),
    # The deliverer.
    Case("due_deliveries", lambda s: s.due_deliveries(NOW)),
    Case("claim_deliveries", lambda s: s.claim_deliveries(NOW, sink="ops", owner="me", until=NOW)),
    Case("next_due", lambda s: s.next_due("ops", owner="me", now=NOW)),
    Case("pending_counts", lambda s: s.pending_counts()),
]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with scratch_database(str(request.param), tmp_path / "plans.db") as url:
        opened = await Store.open(url)
        try:
            await seed(opened)
            yield opened
        finally:
            await opened.close()


async def seed(store: Store) -> None:
    """A few rows in every table read, so nothing is planned as empty."""
    await store.add_health_samples(
        [
            HealthSample(
                environment=env, ts=T0 + timedelta(minutes=m), outcome=Outcome.HEALTHY, version="1.0.0"
            )
            for env in ("dev", "prod")
            for m in range(0, 300, 10)
        ]
    )
    await store.rollup_health(NOW)
    await store.add_deployment_events(
        [
            DeploymentEvent(
                id=f"d{i}-{kind.value}",
                deployment_id=f"d{i}",
                environment=env,
                type=kind,
                ts=T0 + timedelta(minutes=i),
                version=f"1.0.{i}",
            )
            for i, env in enumerate(("dev", "prod", "prod"))
            for kind in (EventType.START, EventType.SUCCESS)
        ],
        NOW,
    )
    fired, _ = await store.fire_alert(
        AlertEvent(
            key="health/dev", type="health", environment="dev", severity="critical", summary="down", at=T0
        )
    )
    await store.fire_alert(
        AlertEvent(
            key="health/prod", type="health", environment="prod", severity="warning", summary="slow", at=T0
        )
    )
    await store.resolve_alert("health/prod", T0 + timedelta(minutes=5))
    assert fired.id is not None
    await store.enqueue(
        [OutboxEntry("ops", "firing", "k1", {}, T0, NOW + timedelta(hours=1), alert_id=fired.id)],
        [LogUpdate(fired.id, "ops", "firing", T0, 1, None)],
    )


@contextmanager
def statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The reads (and updates, deletes and inserts from a select) the store sends to the database
    while the block runs."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if re.match(r"\s*(SELECT|WITH|UPDATE|DELETE)\b|\s*INSERT\b.*\bSELECT\b", statement, re.I | re.S):
            seen.append((statement, parameters))

    engine = store._engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)


def _big(name: str) -> bool:
    """A big table, under its own name or an alias ending in it (``newest_health_samples``)."""
    return any(name == table or name.endswith(f"_{table}") for table in BIG)


def sqlite_full_reads(plan: Sequence[Any], limited: bool) -> list[str]:
    details = [str(row[-1]) for row in plan]
    # A LIMIT stops an index walk early only if the walk gives the order (nothing sorts after it).
    stops = limited and "USE TEMP B-TREE FOR ORDER BY" not in details
    out = []
    for detail in details:
        scan = re.match(r"SCAN (\S+)(?: AS \S+)?( USING (?:COVERING )?INDEX \S+)?", detail)
        if scan and _big(scan.group(1)) and not (scan.group(2) and stops):
            out.append(detail)
    return out


def _bounded(node: dict[str, Any], stops: bool) -> bool:
    """An index read with a condition, stopped by a LIMIT, or of a partial index."""
    return "Index Cond" in node or stops or node["Index Name"] in PARTIAL


def postgres_full_reads(node: dict[str, Any], limited: bool) -> list[str]:
    out = []
    relation = str(node.get("Relation Name", ""))
    kind = node["Node Type"]
    if _big(relation):
        if kind == "Seq Scan":
            out.append(f"Seq Scan on {relation}")
        elif kind in ("Index Scan", "Index Only Scan") and not _bounded(node, limited):
            out.append(f"{kind} using {node['Index Name']} on {relation}, no condition")
    # Under a full sort, a LIMIT above no longer stops the read.
    below = limited and kind != "Sort"
    for child in node.get("Plans", ()):
        out += postgres_full_reads(child, below)
    return out


async def explain(store: Store, sql: str, parameters: Any, limited: bool) -> tuple[list[str], str]:
    """The full reads of big tables in the plan of ``sql``, and the plan as text."""
    async with store._engine.connect() as conn:
        if store._engine.dialect.name == "sqlite":
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)).all()
            return sqlite_full_reads(plan, limited), "\n".join(str(row[-1]) for row in plan)
        await conn.exec_driver_sql("SET enable_seqscan = off")
        (document,) = (await conn.exec_driver_sql(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}", parameters)).one()
        await conn.rollback()
        root = document[0]["Plan"]
        return postgres_full_reads(root, limited), str(document)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_read_path_uses_an_index(store: Store, case: Case) -> None:
    with statements(store) as seen:
        await case.call(store)
    assert seen, f"{case.name} sent no statement"
    for sql, parameters in seen:
        full, plan = await explain(store, sql, parameters, case.limited)
        assert not full, f"{case.name} reads a whole table: {full}\n{sql}\n{plan}"


def test_the_checks_see_full_reads() -> None:
    assert sqlite_full_reads([(2, 0, 0, "SCAN health_samples")], limited=False)
    assert sqlite_full_reads([(2, 0, 0, "SCAN alerts USING INDEX ix_x")], limited=False)
    assert not sqlite_full_reads([(2, 0, 0, "SCAN alerts USING INDEX ix_x")], limited=True)
    sorted_walk = [(2, 0, 0, "SCAN alerts USING INDEX ix_x"), (3, 0, 0, "USE TEMP B-TREE FOR ORDER BY")]
    assert sqlite_full_reads(sorted_walk, limited=True)
    assert sqlite_full_reads([(2, 0, 0, "SCAN newest_health_samples USING COVERING INDEX ix")], limited=False)
    assert not sqlite_full_reads([(2, 0, 0, "SCAN names")], limited=False)
    assert not sqlite_full_reads([(2, 0, 0, "SEARCH alerts USING INDEX ix (state=?)")], limited=False)
    seq = {"Node Type": "Limit", "Plans": [{"Node Type": "Seq Scan", "Relation Name": "outbox"}]}
    assert postgres_full_reads(seq, limited=True) == ["Seq Scan on outbox"]
    walk = {"Node Type": "Index Only Scan", "Relation Name": "alerts", "Index Name": "ix"}
    assert postgres_full_reads(walk, limited=False)
    assert not postgres_full_reads({**walk, "Index Cond": "(state = 'firing')"}, limited=False)
    assert not postgres_full_reads({**walk, "Index Name": "uq_alerts_firing_key"}, limited=False)
    assert not postgres_full_reads({"Node Type": "Limit", "Plans": [walk]}, limited=True)
    assert postgres_full_reads({"Node Type": "Sort", "Plans": [walk]}, limited=True)
