"""deploy/grafana/umig-deployment-tracking.json and deploy/prometheus/umig-rules.yml: valid for their
tools, and every metric they query is one the daemon exports, checked against a live /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support import ConfigWriter, Receiver, external_process, free_port, require_tool, until
from umig_monitor.app import Daemon
from umig_monitor.core.deployments import EventType
from umig_monitor.simulator import Fault, FaultKind, RunningSimulator

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "umig-deployment-tracking.json"
RULES = ROOT / "deploy" / "prometheus" / "umig-rules.yml"

GUIDE_PANELS = (
    "Environment Status Overview",
    "Version Distribution",
    "Deployment Frequency",
    "Health Status Timeline",
)


# --- metric names in PromQL ---------------------------------------------------------------------

_STRING_OR_COMMENT = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|\#[^\n]*""")
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]")
_LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE)
_RANGE = re.compile(r"\[[^\]]*\]")
# An identifier not glued to a number (5m, 1e3, 0x1f) or to another name; what follows decides.
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w:])(?P<call>\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    | {"inf", "nan"}
)
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.*?)\s*,\s*\w+\s*\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.DOTALL)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not functions, aggregations,
    keywords, label names (in ``{...}`` or grouping clauses), durations, strings or Grafana
    variables; plus ``{__name__="..."}`` selectors."""
    names = {json.loads(m) if m.startswith('"') else m[1:-1] for m in _NAME_MATCHER.findall(expr)}
    text = _STRING_OR_COMMENT.sub(lambda m: '""' if m.group()[0] in "\"'`" else "", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _LABEL_MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for m in _IDENTIFIER.finditer(text):
        if m.group("call") is None and m.group().lower() not in _KEYWORDS:
            names.add(m.group())
    return names


def grafana_query_metric_names(query: str) -> set[str]:
    """A Grafana Prometheus variable query: ``label_values(selector, label)``, ``label_values(label)``,
    ``query_result(expr)`` or plain PromQL."""
    if m := _LABEL_VALUES.match(query):
        return promql_metric_names(m.group("selector"))
    if re.match(r"^\s*label_values\(\s*\w+\s*\)\s*$", query):
        return set()
    if m := _QUERY_RESULT.match(query):
        return promql_metric_names(m.group("expr"))
    return promql_metric_names(query)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("umig_health_status", {"umig_health_status"}),
        (
            'umig_environment_status{environment=~"$environment", status!="umig_fake"} == 1',
            {"umig_environment_status"},
        ),
        ("count by (version) (umig_version_info)", {"umig_version_info"}),
        ("count by(version)(umig_version_info)", {"umig_version_info"}),
        (
            "histogram_quantile(0.95, sum by (environment, endpoint, le) "
            '(rate(umig_probe_duration_seconds_bucket{environment=~"$environment"}[$__rate_interval])))',
            {"umig_probe_duration_seconds_bucket"},
        ),
        (
            'sum(increase(umig_deployment_total{result="success"}[24h])) by (environment) > bool 0',
            {"umig_deployment_total"},
        ),
        (
            "umig_a / on (environment) group_left (version, build) umig_version_info offset 5m",
            {"umig_a", "umig_version_info"},
        ),
        ("sum without (instance) (umig_b) unless ignoring(sink) umig_c", {"umig_b", "umig_c"}),
        ("max_over_time(umig_outbox_pending[1h:5m]) * 1e3 + Inf - NaN", {"umig_outbox_pending"}),
        ('{__name__="umig_uptime_seconds", environment="uat"}', {"umig_uptime_seconds"}),
        ('label_replace(umig_d, "umig_dst", "$1", "environment", "(.*)")', {"umig_d"}),
        (
            "time() - umig_monitor_job_last_success_timestamp_seconds @ start()",
            {"umig_monitor_job_last_success_timestamp_seconds"},
        ),
        (
            "environment:umig_deployments:increase24h > $threshold",
            {"environment:umig_deployments:increase24h"},
        ),
        ('up{job="umig-monitor"} == 0  # the scrape itself', {"up"}),
        ("vector(1) + scalar(sum(umig_e))", {"umig_e"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_grafana_query_metric_names() -> None:
    assert grafana_query_metric_names("label_values(umig_health_status, environment)") == {
        "umig_health_status"
    }
    assert grafana_query_metric_names('label_values(umig_version_info{environment="uat"}, version)') == {
        "umig_version_info"
    }
    assert grafana_query_metric_names("label_values(environment)") == set()
    assert grafana_query_metric_names("query_result(topk(3, umig_uptime_seconds))") == {"umig_uptime_seconds"}


# --- names a /metrics exposition offers --------------------------------------------------------

_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SERIES_OF_TYPE = {
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count"),
}


def exposition_names(text: str) -> tuple[set[str], set[str]]:
    """(every series name the exposition's families define, the names that have samples now).
    Text format 0.0.4: a counter's family is declared with its ``_total`` name; a histogram family
    ``x`` defines ``x_bucket``, ``x_sum`` and ``x_count``, never ``x`` itself."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            declared.update(family + suffix for suffix in _SERIES_OF_TYPE.get(kind, ("",)))
        elif line.strip() and not line.startswith("#"):
            m = _SAMPLE_NAME.match(line)
            assert m is not None, line
            sampled.add(m.group())
    return declared | sampled, sampled


def test_exposition_names() -> None:
    text = textwrap.dedent(
        """\
        # HELP umig_probe_duration_seconds Time to fetch one admin endpoint.
        # TYPE umig_probe_duration_seconds histogram
        umig_probe_duration_seconds_bucket{endpoint="health",le="+Inf"} 1.0
        umig_probe_duration_seconds_count{endpoint="health"} 1.0
        umig_probe_duration_seconds_sum{endpoint="health"} 0.01
        # HELP umig_deployment_total Deployment events by environment and result.
        # TYPE umig_deployment_total counter
        # HELP umig_health_status UMIG health status.
        # TYPE umig_health_status gauge
        umig_health_status{environment="uat"} 1.0
        """
    )
    declared, sampled = exposition_names(text)
    assert declared == {
        "umig_probe_duration_seconds_bucket",
        "umig_probe_duration_seconds_sum",
        "umig_probe_duration_seconds_count",
        "umig_deployment_total",
        "umig_health_status",
    }
    assert "umig_probe_duration_seconds" not in declared  # a histogram has no series of its bare name
    assert sampled == declared - {"umig_deployment_total"}  # declared, no series yet


# --- the files ------------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def load_rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return data


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and annotation queries."""
    return [node["expr"] for node in walk(dashboard) if isinstance(node.get("expr"), str)]


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for expr in dashboard_exprs(dashboard):
        names |= promql_metric_names(expr)
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            query = variable["query"]
            names |= grafana_query_metric_names(query if isinstance(query, str) else query["query"])
    return names


def rules_metric_names(rules: dict[str, Any]) -> set[str]:
    """Metric names the rules read, less the series the recording rules themselves produce."""
    names: set[str] = set()
    recorded: set[str] = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            names |= promql_metric_names(str(rule["expr"]))
            if "record" in rule:
                recorded.add(rule["record"])
    return names - recorded


def test_rules_pass_promtool() -> None:
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_rules_structure() -> None:
    rules = load_rules()
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert {
        "UmigProductionUnhealthy",
        "UmigEnvironmentUnhealthy",
        "UmigProbeFailures",
        "UmigVersionDrift",
        "UmigOutboxBacklogGrowing",
        "UmigSinkNotDelivering",
        "UmigNotificationsFailing",
        "UmigMonitorJobFailing",
        "UmigMonitorDown",
    } <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "$labels." in rule["annotations"]["summary"] + rule["annotations"]["description"], name
    assert alerts["UmigEnvironmentUnhealthy"]["for"] == "2m"
    assert alerts["UmigMonitorDown"]["expr"] == 'up{job="umig-monitor"} == 0'
    assert any("record" in rule for group in rules["groups"] for rule in group["rules"])
    assert all(name.startswith("umig_") for name in rules_metric_names(rules) - {"up"})


TARGET = {"instance": "umig:9464", "job": "umig-monitor"}


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    """An input series of a promtool rule test, scraped from TARGET."""
    matchers = ", ".join(f'{k}="{v}"' for k, v in {**labels, **TARGET}.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


def fires(
    at: str, alert: str, severity: str, labels: dict[str, str], summary: str, description: str
) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": {"severity": severity, **labels, **TARGET},
                "exp_annotations": {"summary": summary, "description": description},
            }
        ],
    }


def quiet(at: str, alert: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


def test_rules_fire_as_documented(tmp_path: Path) -> None:
    """promtool's rule unit tests: the alerts fire after their `for`, with the documented text."""
    promtool = require_tool("promtool")
    environments = {
        "interval": "1m",
        "input_series": [
            series("umig_health_status", "1 1 0x10", environment="production"),
            series("umig_environment_status", "1 1 0x10", environment="production", status="healthy"),
            series("umig_environment_status", "0 0 1x10", environment="production", status="unreachable"),
            series("umig_health_status", "1x12", environment="uat"),
            series("umig_probe_failures_total", "0+1x20", environment="uat", reason="timeout"),
            series("up", "1 1 1 0x10"),
            series("umig_version_drift", "1x20", environment="uat", type="ahead"),
            series("umig_version_drift", "1x20", environment="uat", type="pattern"),
        ],
        "alert_rule_test": [
            quiet("3m", "UmigProductionUnhealthy"),  # down since 2m: not yet for 2m
            fires(
                "5m",
                "UmigProductionUnhealthy",
                "critical",
                {"environment": "production"},
                "UMIG production is not healthy",
                "umig.status of production (instance umig:9464) has not been healthy for 2 minutes;"
                " last poll outcome: unreachable.",
            ),
            quiet("5m", "UmigEnvironmentUnhealthy"),
            quiet("4m", "UmigMonitorDown"),
            fires(
                "6m",
                "UmigMonitorDown",
                "critical",
                {},
                "umig-monitor umig:9464 is down",
                "Prometheus has not been able to scrape umig-monitor at umig:9464 for 2 minutes: UMIG"
                " environments are not being watched and no notifications are sent.",
            ),
            fires(
                "16m",
                "UmigProbeFailures",
                "warning",
                {"environment": "uat", "reason": "timeout"},
                "UMIG uat polls are failing (timeout)",
                "10 polls of uat got no usable answer (timeout) in the last 10 minutes.",
            ),
            fires(  # "ahead" is informational
                "12m",
                "UmigVersionDrift",
                "warning",
                {"environment": "uat", "type": "pattern"},
                "UMIG version drift: pattern in uat",
                "umig-monitor reports a pattern version drift finding for uat for 10 minutes;"
                " `umig-monitor drift` shows the version matrix.",
            ),
        ],
    }
    daemon = {
        "interval": "1m",
        "input_series": [
            series(
                "umig_monitor_job_runs_total",
                "0 0 1 2 3 4 5 6 7 8 9 10",
                exported_job="drift",
                result="failure",
            ),
            series("umig_monitor_job_runs_total", "0+10x12", exported_job="health", result="success"),
            series("umig_notifications_total", "0+2x30", sink="slack", result="retry"),
            series("umig_notifications_total", "0+1x30", sink="mail", result="retry"),
            series("umig_notifications_total", "0+1x30", sink="mail", result="sent"),
            series("umig_outbox_pending", "0+1x40", sink="slack"),
            series("umig_outbox_pending", "0x40", sink="mail"),
        ],
        "alert_rule_test": [
            fires(
                "9m",
                "UmigMonitorJobFailing",
                "warning",
                {"exported_job": "drift"},
                "umig-monitor job drift is failing",
                "8 runs of the drift job on umig:9464 failed in the last 15 minutes"
                " (see the job_failed log lines).",
            ),
            fires(  # mail retries too, but also delivers
                "25m",
                "UmigSinkNotDelivering",
                "warning",
                {"sink": "slack"},
                "umig-monitor sink slack is not accepting notifications",
                "Deliveries to slack from umig:9464 have been retried for 15 minutes without one succeeding;"
                " `umig-monitor notify-test slack` shows why.",
            ),
            fires(
                "35m",
                "UmigOutboxBacklogGrowing",
                "warning",
                {"sink": "slack"},
                "umig-monitor outbox for sink slack keeps growing",
                "35 notifications are waiting for sink slack on umig:9464 and the backlog has grown"
                " for 15 minutes.",
            ),
            quiet("35m", "UmigNotificationsFailing"),
        ],
    }
    path = tmp_path / "umig-rules.test.yml"
    path.write_text(
        yaml.safe_dump(
            {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [environments, daemon]}
        )
    )
    check = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_dashboard_structure() -> None:
    dashboard = load_dashboard()
    assert dashboard["title"] == "UMIG Deployment Tracking"
    assert dashboard["uid"] == "umig-deployment-tracking"
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert "dashboard" not in dashboard  # the import format, not the guide's HTTP API envelope
    [ds_input] = dashboard["__inputs"]
    assert (ds_input["name"], ds_input["type"], ds_input["pluginId"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required

    [environment] = dashboard["templating"]["list"]
    assert environment["name"] == "environment"
    assert environment["type"] == "query"
    assert environment["query"] == "label_values(umig_health_status, environment)"
    assert environment["datasource"]["uid"] == "${DS_PROMETHEUS}"

    panels = dashboard["panels"]
    titles = [panel["title"] for panel in panels]
    assert len(set(titles)) == len(titles)
    assert len({panel["id"] for panel in panels}) == len(panels)
    for title in (*GUIDE_PANELS, "Probe Latency (p95)", "Alerts Firing", "Outbox Pending"):
        assert title in titles
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert 0 < pos["w"] <= 24 - pos["x"], panel["title"]
        area = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        assert panel["type"] in {r["id"] for r in dashboard["__requires"] if r["type"] == "panel"}, panel[
            "title"
        ]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["refId"]
            assert promql_metric_names(target["expr"]), (
                f"{panel['title']}: {target['expr']} selects no metric"
            )
    for node in walk(dashboard):  # every query goes to the imported data source
        if isinstance(node.get("datasource"), dict) and node["datasource"].get("type") == "prometheus":
            assert node["datasource"]["uid"] == "${DS_PROMETHEUS}"

    by_title = {panel["title"]: panel for panel in panels}
    for title in (*GUIDE_PANELS, "Probe Latency (p95)"):
        assert all("$environment" in t["expr"] for t in by_title[title]["targets"]), title
    # the guide's mistakes, fixed: a counter is read with increase() and its _total name; the
    # status overview shows the last outcome rather than every 0/1 series
    [frequency] = by_title["Deployment Frequency"]["targets"]
    assert "increase(umig_deployment_total{" in frequency["expr"]
    [overview] = by_title["Environment Status Overview"]["targets"]
    assert overview["expr"].replace(" ", "").endswith("==1")


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Every dashboard expression, with Grafana's variables filled in, is valid PromQL to promtool."""
    promtool = require_tool("promtool")
    values = {"environment": ".*", "__rate_interval": "1m", "__interval": "1m", "__range": "1d"}

    def fill(expr: str) -> str:
        return _GRAFANA_VARIABLE.sub(lambda m: values[m.group().strip("${}[]").split(":")[0]], expr)

    rules = [
        {"record": f"dashboard:query_{n}", "expr": fill(expr)}
        for n, expr in enumerate(dashboard_exprs(load_dashboard()))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


# --- against a live daemon ------------------------------------------------------------------------


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter, hook: Receiver) -> Path:
    extra = f"""
jobs:
  health: {{failure_threshold: 2, success_threshold: 1}}
  drift: {{interval: 300ms}}
  baseline: {{samples: 2}}
sinks:
  hook: {{type: webhook, url: '{hook.url}'}}
default_route: {{sinks: [hook]}}
"""
    return write_config(simulator, poll_interval="200ms", extra=extra)


async def live_metrics(daemon: Daemon) -> str:
    async with aiohttp.ClientSession() as session, session.get(daemon.listen_url + "/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def give_every_metric_a_series(daemon: Daemon, simulator: RunningSimulator, hook: Receiver) -> None:
    """Polls, a deployment, a production incident with its alert and notification, probe failures
    (development resets connections), drift findings (the guide's development and UAT are ahead of
    production) and a baseline."""
    from umig_monitor.jobs.baseline import baseline_environment

    await until(daemon.first_round_done)
    await daemon.deployments.record(
        EventType.SUCCESS, "production", datetime.now(UTC), version="1.1.2", duration=60
    )
    simulator.simulator.update("production", status="unhealthy")
    await until(lambda: daemon.store.active_alerts("production"))
    await until(lambda: hook.bodies)
    await baseline_environment(daemon, "uat")
    simulator.simulator.add_fault("development", Fault(FaultKind.CONNECTION_RESET))


async def test_every_queried_metric_is_exported(
    daemon: Daemon, simulator: RunningSimulator, hook: Receiver
) -> None:
    used = {
        "dashboard": dashboard_metric_names(load_dashboard()),
        "rules": rules_metric_names(load_rules()) - {"up"},
    }
    assert "umig_probe_duration_seconds_bucket" in used["dashboard"]
    assert "umig_deployment_total" in used["dashboard"]
    await give_every_metric_a_series(daemon, simulator, hook)

    wanted = used["dashboard"] | used["rules"]
    declared: set[str] = set()
    sampled: set[str] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15  # the alert gauges are refreshed every few seconds
    while not wanted <= sampled and loop.time() < deadline:
        await asyncio.sleep(0.2)
        declared, sampled = exposition_names(await live_metrics(daemon))

    for source, names in used.items():
        assert names <= declared, (
            f"{source} queries metrics the daemon does not export: {sorted(names - declared)}"
        )
    assert wanted <= sampled, f"exported but without a series in this run: {sorted(wanted - sampled)}"


async def prometheus_api(session: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with session.get(url, params=params) as resp:
        body = await resp.json()
        assert body["status"] == "success", body
        return body["data"]


@pytest.mark.slow
async def test_dashboard_and_rules_on_a_real_prometheus(
    daemon: Daemon, simulator: RunningSimulator, hook: Receiver, tmp_path: Path
) -> None:
    """A real Prometheus scrapes the daemon (job umig-monitor, as the rules file assumes) and loads
    the rules: the environment variable lists the environments, every panel's query returns data
    (the job-failure panel has none to show, but the exported_job label it groups by is there),
    every rule evaluates without error and the production incident is pending with its description."""
    binary = require_tool("prometheus")
    await give_every_metric_a_series(daemon, simulator, hook)
    port = free_port()
    prometheus = f"http://127.0.0.1:{port}"
    scrape_target = daemon.listen_url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {"job_name": "umig-monitor", "static_configs": [{"targets": [scrape_target]}]}
                ],
            }
        )
    )
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    values = {"environment": ".*", "__rate_interval": "1m", "__interval": "1s", "__range": "1d"}
    panels = [
        (
            panel["title"],
            _GRAFANA_VARIABLE.sub(lambda m: values[m.group().strip("${}[]").split(":")[0]], t["expr"]),
        )
        for panel in load_dashboard()["panels"]
        for t in panel["targets"]
    ]
    async with external_process(command, prometheus + "/-/ready"), aiohttp.ClientSession() as session:
        query = prometheus + "/api/v1/query"
        empty: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            await asyncio.sleep(0.5)
            scrapes = await prometheus_api(
                session, query, query='count_over_time(up{job="umig-monitor"}[1m])'
            )
            if not scrapes["result"] or float(scrapes["result"][0]["value"][1]) < 3:
                continue
            empty = [
                title
                for title, expr in panels
                if not (await prometheus_api(session, query, query=expr))["result"]
                and title != "Daemon Job Failures"
            ]
            if not empty:
                break
        assert not empty, f"panels without data: {empty}"

        environments = await prometheus_api(
            session, prometheus + "/api/v1/label/environment/values", **{"match[]": "umig_health_status"}
        )
        assert environments == ["development", "production", "uat"]
        overview = dict(panels)["Environment Status Overview"]
        outcomes = {
            r["metric"]["environment"]: r["metric"]["status"]
            for r in (await prometheus_api(session, query, query=overview))["result"]
        }
        assert outcomes == {"development": "unreachable", "uat": "healthy", "production": "unhealthy"}
        jobs = await prometheus_api(
            session, query, query="sum by (exported_job) (umig_monitor_job_runs_total)"
        )
        assert "health" in {r["metric"].get("exported_job") for r in jobs["result"]}

        groups = (await prometheus_api(session, prometheus + "/api/v1/rules"))["groups"]
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        for _ in range(20):
            alerts = (await prometheus_api(session, prometheus + "/api/v1/alerts"))["alerts"]
            if any(a["labels"]["alertname"] == "UmigProductionUnhealthy" for a in alerts):
                break
            await asyncio.sleep(0.5)
        [incident] = [a for a in alerts if a["labels"]["alertname"] == "UmigProductionUnhealthy"]
        assert incident["state"] == "pending"  # for: 2m
        assert incident["annotations"]["description"].endswith("last poll outcome: unhealthy.")
