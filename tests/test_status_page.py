"""The status page: the timeline folding as a table of cases, the HTML (structure, escaping, state
classes, nothing external), the timeline read over SQLite rollups and samples, and GET / served by a
running daemon against the simulator (headers, content, the storage-outage page)."""

from __future__ import annotations

import asyncio
import itertools
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.support import ConfigWriter, all_stored, last_outcome_is, until
from umig_monitor.app import Daemon
from umig_monitor.config import parse_config
from umig_monitor.core.alerts import Alert, AlertEvent, AlertState
from umig_monitor.core.deployments import DeploymentEvent, EventType
from umig_monitor.core.drift import Finding
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.page import (
    MIN_SPAN_WIDTH,
    StatusPage,
    ago,
    render,
    render_unavailable,
    timeline_svg,
)
from umig_monitor.core.silences import Silence, parse_matcher
from umig_monitor.core.timeline import NO_DATA, Span, Tally, build_timeline, healthy_share
from umig_monitor.simulator import RunningSimulator
from umig_monitor.storage import Store
from umig_monitor.web import page as status_page

NOW = datetime(2024, 10, 25, 12, 2, 30, tzinfo=UTC)
START = NOW - timedelta(hours=24)
H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.fixture
def daemon_config(simulator: RunningSimulator, write_config: ConfigWriter) -> Path:
    return write_config(simulator, poll_interval="200ms")


# -- the timeline -------------------------------------------------------------------------------


def s(minutes_ago: float, outcome: Outcome = Outcome.HEALTHY, env: str = "production") -> HealthSample:
    return HealthSample(environment=env, ts=NOW - timedelta(minutes=minutes_ago), outcome=outcome)


def states(spans: list[Span]) -> list[tuple[str, dict[str, int]]]:
    return [(span.state, dict(span.counts)) for span in spans]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param([], [(NO_DATA, {})], id="nothing-stored"),
        pytest.param(
            [s(1), s(0.5)],
            [(NO_DATA, {}), ("healthy", {"healthy": 2})],
            id="healthy-slot",
        ),
        pytest.param(
            [s(2), s(1.5, Outcome.DEGRADED), s(1, Outcome.UNHEALTHY)],
            [(NO_DATA, {}), ("unhealthy", {"healthy": 1, "degraded": 1, "unhealthy": 1})],
            id="worst-outcome-wins",
        ),
        pytest.param(
            [s(1, Outcome.TIMEOUT), s(0.5, Outcome.AUTH_ERROR)],
            [(NO_DATA, {}), ("failed", {"failed": 2})],
            id="no-answer-is-failed",
        ),
        pytest.param(
            [s(12), s(7), s(2)],
            [(NO_DATA, {}), ("healthy", {"healthy": 3})],
            id="neighbours-merge",
        ),
        pytest.param(
            [s(22), s(2)],
            [(NO_DATA, {}), ("healthy", {"healthy": 1}), (NO_DATA, {}), ("healthy", {"healthy": 1})],
            id="gap-is-no-data",
        ),
        pytest.param(
            [s(24 * 60 + 5), s(-1), s(1)],
            [(NO_DATA, {}), ("healthy", {"healthy": 1})],
            id="outside-window-ignored",
        ),
    ],
)
def test_timeline_from_samples(
    samples: list[HealthSample], expected: list[tuple[str, dict[str, int]]]
) -> None:
    spans = build_timeline([], samples, START, NOW)
    assert states(spans) == expected
    assert spans[0].start == START
    assert spans[-1].end == NOW
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))


def test_timeline_prefers_rollups_for_rolled_up_hours() -> None:
    hour = datetime(2024, 10, 25, 10, tzinfo=UTC)
    rollup = Tally(hour, hour + H, {"healthy": 100, "degraded": 0, "unhealthy": 2, "failed": 0})
    inside = HealthSample("production", hour + 10 * M, Outcome.TIMEOUT)  # already counted by the rollup
    after = HealthSample("production", hour + H + 5 * M, Outcome.HEALTHY)
    spans = build_timeline([rollup], [inside, after], START, NOW)
    assert states(spans) == [
        (NO_DATA, {}),
        ("unhealthy", {"healthy": 100, "degraded": 0, "unhealthy": 2, "failed": 0}),
        (NO_DATA, {}),
        ("healthy", {"healthy": 1}),
        (NO_DATA, {}),
    ]
    assert (spans[1].start, spans[1].end) == (hour, hour + H)
    assert healthy_share(spans) == pytest.approx(101 / 103)


def test_rollup_straddling_the_window_start_is_clipped() -> None:
    first = START.replace(minute=0, second=0)
    spans = build_timeline([Tally(first, first + H, {"healthy": 60})], [], START, NOW)
    assert (spans[0].start, spans[0].end, spans[0].state) == (START, first + H, "healthy")


def test_healthy_share_without_polls_is_none() -> None:
    assert healthy_share(build_timeline([], [], START, NOW)) is None


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=5), "5 s ago"),
        (5 * M, "5 min ago"),
        (5 * H, "5 h ago"),
        (timedelta(days=3), "3 d ago"),
    ],
)
def test_ago(delta: timedelta, text: str) -> None:
    assert ago(delta) == text


# -- the HTML -----------------------------------------------------------------------------------

VOID = {"meta", "link", "br", "img", "input", "hr", "wbr", "source", "col", "area", "base", "embed"}


class Outline(HTMLParser):
    """Tags in order, checking that every non-void element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def env_doc(version: str, health: str = "healthy", **extra: object) -> dict[str, object]:
    return {
        "umigVersion": version,
        "deployedAt": "2024-10-24T09:00:00Z",
        "deployedBy": "ci",
        "status": "stable",
        "health": health,
        "uptime": "5d 7h 45m",
        "kind": "production",
        "build": "1170",
        "lastCheck": "2024-10-25T12:02:00Z",
        "error": None,
        **extra,
    }


EVIL = '<script>alert("x")</script>'


def evil_page() -> StatusPage:
    return StatusPage(
        now=NOW,
        tz=UTC,
        window_start=START,
        environments={
            "uat": env_doc("1.2.0-rc.2"),
            'prod"<b>': env_doc(EVIL, "unreachable", error=f"HTTP 500 {EVIL}", deployedBy=EVIL),
        },
        timelines={"uat": build_timeline([], [s(1, env="uat")], START, NOW)},
        findings=[Finding("drift/uat", "pattern", "uat", "warning", f"uat runs {EVIL}")],
        alerts=[
            Alert(
                "health/x",
                "environment_unhealthy",
                "uat",
                "critical",
                AlertState.FIRING,
                EVIL,
                NOW - H,
                acked_by=EVIL,
            )
        ],
        deployments=[
            DeploymentEvent("d1-failure", "d1", "uat", EventType.FAILURE, NOW - H, version=EVIL, error=EVIL)
        ],
        silenced_by={"health/x": EVIL},
    )


def test_every_value_is_escaped() -> None:
    html = render(evil_page())
    assert "<script" not in html
    assert "<b>" not in html
    assert html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 8
    assert 'data-environment="prod&quot;&lt;b&gt;"' in html
    outline(html)


def test_structure_is_semantic_and_self_contained() -> None:
    html = render(evil_page())
    parsed = outline(html)
    tags = [t for t, _ in parsed.tags]
    assert tags.count("main") == 1
    assert tags.count("h1") == 1
    assert tags.count("table") == tags.count("caption") == 3
    headers = [a for t, a in parsed.tags if t == "th"]
    assert all(a.get("scope") in ("col", "row") for a in headers)
    assert "script" not in tags
    assert not [a for _, a in parsed.tags if "src" in a]  # nothing loaded
    links = [a["href"] or "" for t, a in parsed.tags if t == "link"]
    assert len(links) == 1
    assert links[0].startswith("data:image/svg+xml,")
    hrefs = [a["href"] or "" for t, a in parsed.tags if t == "a"]
    assert hrefs
    assert not [h for h in hrefs if ":" in h or h.startswith("//")]  # same origin only
    refresh = [a for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "refresh"]
    assert refresh == [{"http-equiv": "refresh", "content": "30"}]
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)


def test_health_cells_and_headline_follow_the_state() -> None:
    html = render(evil_page())
    assert '<td class="health state-healthy"><span class="pill state-healthy">healthy</span></td>' in html
    assert '<td class="health state-failed"><span class="pill state-failed">unreachable</span></td>' in html
    assert (
        '<p class="overall state-failed" role="status">Attention: prod&quot;&lt;b&gt; unreachable</p>' in html
    )
    healthy = StatusPage(NOW, UTC, START, {"uat": env_doc("1.2.0-rc.2"), "production": env_doc("1.1.2")}, {})
    assert '<p class="overall state-healthy" role="status">All 2 environments healthy</p>' in render(healthy)


def test_the_page_does_not_reassure_while_alerts_fire() -> None:
    """Healthy polls with critical alerts firing (error rate, orchestrator) are not green, and the
    headline counts the alerts by severity; a silenced alert pages nobody and does not count."""
    firing = [
        Alert(f"{kind}/production", kind, "production", "critical", AlertState.FIRING, kind, NOW - H)
        for kind in ("high_error_rate", "orchestrator_inactive")
    ]
    warning = Alert("drift/uat", "version_drift", "uat", "warning", AlertState.FIRING, "drift", NOW - H)
    envs = {"uat": env_doc("1.2.0-rc.2"), "production": env_doc("1.1.2", "degraded")}
    html = render(StatusPage(NOW, UTC, START, envs, {}, alerts=[*firing, warning]))
    assert (
        '<p class="overall state-unhealthy" role="status">'
        "Attention: 3 alerts firing (2 critical, 1 warning), production degraded</p>"
    ) in html
    assert '<td class="health state-unhealthy"><span class="pill state-unhealthy">degraded</span>' in html
    assert '<td class="health state-degraded"><span class="pill state-degraded">healthy</span>' in html
    silenced = StatusPage(
        NOW, UTC, START, {"uat": env_doc("1.2.0-rc.2")}, {}, alerts=[warning], silenced_by={"drift/uat": "s1"}
    )
    assert '<p class="overall state-healthy" role="status">Healthy</p>' in render(silenced)


def test_deployments_show_what_they_are() -> None:
    events = [
        DeploymentEvent("o1-observed", "o1", "uat", EventType.OBSERVED, NOW - H, version="1.2.0-rc.3"),
        DeploymentEvent("d2-success", "d2", "uat", EventType.SUCCESS, NOW - 2 * H, version="1.2.0-rc.2"),
        DeploymentEvent("d2-start", "d2", "uat", EventType.START, NOW - 3 * H, version="1.2.0-rc.2"),
        DeploymentEvent("d3-start", "d3", "production", EventType.START, NOW - H, version="1.1.3"),
    ]
    html = render(StatusPage(NOW, UTC, START, {"uat": env_doc("1.2.0-rc.3")}, {}, deployments=events))
    assert '<span class="pill state-no_data">observed, not reported</span>' in html
    assert '<span class="pill state-no_data">started</span>' in html  # d2 finished
    assert '<span class="pill state-degraded">in progress</span>' in html  # d3 did not


def test_timeline_segments_have_tooltips() -> None:
    html = render(evil_page())
    svg = re.search(r'<div class="timeline" data-environment="uat">.*?</svg>', html, re.S)
    assert svg is not None
    rects = re.findall(r'<rect class="state-(\w+)" x="([\d.]+)" y="0" width="([\d.]+)"', svg.group(0))
    assert [r[0] for r in rects] == [NO_DATA, "healthy"]
    assert float(rects[0][1]) == 0
    assert float(rects[0][2]) == pytest.approx(24 * 60 - 2.5)
    assert float(rects[1][1]) + float(rects[1][2]) == pytest.approx(24 * 60)
    assert "<title>uat: 2024-10-25 12:00 UTC – 12:02: healthy (1 healthy)</title>" in svg.group(0)
    assert 'aria-label="uat: 100.0% of polls healthy in 24 h"' in svg.group(0)


def test_a_short_incident_stays_visible_at_the_end_of_the_bar() -> None:
    spans = build_timeline([], [s(30), s(1.5, Outcome.UNHEALTHY), s(1, Outcome.UNHEALTHY)], START, NOW)
    svg = timeline_svg("production", spans, START, NOW, UTC)
    rects = re.findall(r'<rect class="state-(\w+)" x="([\d.]+)" y="0" width="([\d.]+)"', svg)
    assert [r[0] for r in rects] == [NO_DATA, NO_DATA, "healthy", "unhealthy"]  # worst drawn last
    _, x, w = rects[-1]
    assert float(w) == pytest.approx(24 * 60 * MIN_SPAN_WIDTH)  # 2.5 minutes drawn as 7.2
    assert float(x) + float(w) == pytest.approx(24 * 60)
    assert "12:00 UTC – 12:02: unhealthy (2 unhealthy)" in svg


def test_times_are_shown_in_the_daemon_timezone() -> None:
    page = StatusPage(NOW, ZoneInfo("Europe/Zurich"), START, {"uat": env_doc("1.2.0-rc.2")}, {})
    html = render(page)
    assert 'title="2024-10-24 11:00 CEST">27 h ago</time>' in html  # deployedAt 09:00Z
    assert "times in CEST" in html


def test_storage_outage_page() -> None:
    html = render_unavailable("reading alerts failed: <disk> gone", NOW)
    outline(html)
    assert "&lt;disk&gt; gone" in html
    assert "Storage unavailable" in html


# -- reading stored health ----------------------------------------------------------------------


async def test_timelines_read_rollups_then_recent_samples(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'page.db'}")
    try:
        old = [s(m, env="uat") for m in (300, 299, 180)] + [s(170, Outcome.UNREACHABLE, env="uat")]
        await store.add_health_samples(old)
        await store.rollup_health(NOW - 2 * H)  # hours up to 09:00 rolled up; later ones stay raw
        await store.add_health_samples([s(60, env="uat"), s(1, Outcome.DEGRADED, env="uat")])
        spans = (await status_page.health_timelines(store, ["uat", "dev"], START, NOW))["uat"]
    finally:
        await store.close()
    drawn = [(sp.start.strftime("%H:%M"), sp.end.strftime("%H:%M"), sp.state, sp.polls) for sp in spans]
    assert drawn == [
        ("12:02", "07:00", NO_DATA, 0),
        ("07:00", "08:00", "healthy", 2),  # rollup of 07:02 and 07:03
        ("08:00", "09:00", NO_DATA, 0),
        ("09:00", "10:00", "failed", 2),  # rollup: 09:02 healthy, 09:12 unreachable
        ("10:00", "11:00", NO_DATA, 0),
        ("11:00", "11:05", "healthy", 1),  # raw sample at 11:02
        ("11:05", "12:00", NO_DATA, 0),
        ("12:00", "12:02", "degraded", 1),  # raw sample at 12:01
    ]


async def test_the_page_says_which_silence_holds_an_alert_from_storage(tmp_path: Path) -> None:
    """As the alerts API says it: read from the stored silences and the config, not from one
    replica's dispatcher (a follower, or a page built before the dispatcher ran, knows none)."""
    store = await Store.open(f"sqlite:///{tmp_path / 'page.db'}")
    settings = parse_config("environments:\n  uat: {base_url: 'http://127.0.0.1:1/uat', kind: uat}\n")
    now = datetime.now(UTC)
    try:
        await store.fire_alert(
            AlertEvent("environment_health/uat", "environment_health", "uat", "critical", "uat down", now)
        )
        await store.add_silence(Silence("s1", (parse_matcher("environment=uat"),), now, now + H), now)
        page = await status_page.gather_page(store, settings, now)
    finally:
        await store.close()
    assert page.silenced_by == {"environment_health/uat": "s1"}


# -- GET / on a running daemon ------------------------------------------------------------------


async def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.request(method, url) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_served_page_shows_environments_and_incident(
    daemon: Daemon, simulator: RunningSimulator
) -> None:
    await until(lambda: all_stored(daemon))
    base = daemon.listen_url
    status, headers, html = await fetch(base + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"  # kept, asked about again: If-None-Match
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    for env, version in (
        ("development", "1.3.0-dev+ci.1245"),
        ("uat", "1.2.0-rc.2"),
        ("production", "1.1.2"),
    ):
        assert re.search(rf'<tr data-environment="{env}">.*?<td class="version">{re.escape(version)} ', html)
    assert "All 3 environments healthy" in html
    outline(html)

    simulator.simulator.update("production", status="unhealthy")
    await until(lambda: daemon.store.active_alerts("production"))
    await until(lambda: last_outcome_is(daemon, "production", Outcome.UNHEALTHY))

    async def page_with_incident() -> str | None:  # the page served may be up to page_max_age old
        _, _, html = await fetch(base + "/")
        return html if "alert firing" in html else None

    html = await until(page_with_incident)
    row = re.search(r'<tr data-environment="production">.*?</tr>', html)
    assert row is not None
    assert '<td class="health state-unhealthy"><span class="pill state-unhealthy">unhealthy</span>' in row[0]
    assert '<span class="pill state-unhealthy">incident</span>' in row[0]
    assert "Attention: 1 alert firing (1 critical), production unhealthy" in html
    assert "environment_unhealthy" in html  # in the alerts table
    head_status, head_headers, _ = await fetch(base + "/", "HEAD")
    assert (head_status, head_headers["Cache-Control"]) == (200, "no-cache")


async def test_storage_outage_is_an_html_503(daemon: Daemon, tmp_path: Path) -> None:
    def break_storage() -> None:  # a table the page reads goes missing under the running daemon
        with sqlite3.connect(tmp_path / "umig-monitor.db") as conn:
            conn.execute("ALTER TABLE drift_findings RENAME TO drift_findings_gone")

    await asyncio.to_thread(break_storage)
    status, headers, html = await fetch(daemon.listen_url + "/")
    assert status == 503
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    assert "Storage unavailable" in html
    assert "no such table: drift_findings" in html


def test_certificate_column() -> None:
    soon = (NOW + timedelta(days=5, hours=2)).isoformat()
    later = (NOW + timedelta(days=80)).isoformat()
    page = StatusPage(
        NOW,
        UTC,
        START,
        {
            "production": env_doc("1.1.2", tlsCertExpiry=soon, tlsCertState="critical"),
            "uat": env_doc("1.2.0-rc.2", tlsCertExpiry=later, tlsCertState="ok"),
            "development": env_doc("1.3.0-dev", tlsCertExpiry=None, tlsCertState=None),  # plain HTTP
        },
        {},
    )
    html = render(page)
    outline(html)
    assert '<th scope="col">Certificate</th>' in html
    cells = re.findall(r'<td class="certificate">(.*?)</td>', html)
    assert len(cells) == 3
    critical, ok, plain = cells
    assert critical.startswith('<span class="pill state-unhealthy">critical</span> <time datetime=')
    assert ">in 5d 2h</time>" in critical
    assert "pill" not in ok
    assert ">in 80d</time>" in ok
    assert plain == "—"
