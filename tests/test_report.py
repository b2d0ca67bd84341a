"""The daily report's pure core: a seeded day against golden text and JSON, the empty day, the HTML
(well-formed, self-contained, escaped), and the rules as tables: day boundaries in the report's
timezone, rollups standing in for pruned samples, incidents clipped to the day, percentages.

Golden files live in tests/golden/report/; ``UMIG_REGENERATE_GOLDEN=1 pytest tests/test_report.py``
rewrites them (then review the diff); with CI=true it fails instead."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests import support
from tests.report_cases import (
    DAY,
    ENVIRONMENTS,
    GENERATED_AT,
    TZ,
    local,
    make_alert,
    make_sample,
    sampled,
    seeded_inputs,
)
from umig_monitor.core.health import HealthSample, Outcome
from umig_monitor.core.report import (
    Counts,
    EnvironmentStatus,
    HourlyCounts,
    Period,
    ReportInputs,
    make_report,
    previous_day,
    render_html,
    render_text,
    report_json,
)
from umig_monitor.core.report_html import duration_text, percent

GOLDEN = Path(__file__).parent / "golden" / "report"


def check_golden(name: str, actual: str) -> None:
    support.check_golden(GOLDEN / name, actual)


# -- golden files ---------------------------------------------------------------------------------


def test_seeded_day_text_golden() -> None:
    check_golden("daily-status-2024-10-25.txt", render_text(make_report(seeded_inputs())))


def test_seeded_day_json_golden() -> None:
    document = report_json(make_report(seeded_inputs()))
    check_golden("daily-status-2024-10-25.json", json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def test_empty_day_text_golden() -> None:
    check_golden(
        "daily-status-empty.txt", render_text(make_report(ReportInputs(DAY, TZ, GENERATED_AT, ENVIRONMENTS)))
    )


# -- the empty day --------------------------------------------------------------------------------


def test_empty_day_says_so_and_invents_nothing() -> None:
    report = make_report(ReportInputs(DAY, TZ, GENERATED_AT, ENVIRONMENTS))
    text = render_text(report)
    for sentence in (
        "No deployments recorded for this day.",
        "Success rate: n/a (nothing finished)",
        "No health checks recorded for this day.",
        "No incidents.",
        "No performance baselines recorded for this day.",
        "No alerts raised this day.",
        "No version drift findings active during this day.",
    ):
        assert sentence in text
    assert "production   | n/a" in text
    assert "%" not in text  # no percentage of nothing
    document = report_json(report)
    assert document["total"]["availability"] is None
    assert {e["health"] for e in document["environments"]} == {None}
    assert [len(h["segments"]) for h in document["health"]] == [24, 24, 24]
    render_html(report)  # renders without data too


def test_no_environments_at_all() -> None:
    text = render_text(make_report(ReportInputs(DAY, TZ, GENERATED_AT, ())))
    assert "No environments configured." in text


def test_drift_disabled_is_not_reported_as_no_drift() -> None:
    report = make_report(ReportInputs(DAY, TZ, GENERATED_AT, ENVIRONMENTS, drift_enabled=False))
    assert "Drift detection is disabled" in render_text(report)


def test_partial_day_is_flagged_and_open_incidents_measured_until_generation() -> None:
    open_incident = make_alert(
        1, "environment_health/uat/", "environment_unhealthy", "uat", "warning", local(10), None, "x"
    )
    report = make_report(seeded_inputs(generated_at=local(12), alerts=[open_incident]))
    assert not report.complete
    assert "generated before the day was over" in render_text(report)
    [incident] = report.incidents
    assert (incident.duration, incident.in_period) == (timedelta(hours=2), timedelta(hours=2))


# -- HTML -----------------------------------------------------------------------------------------


class _Balance(HTMLParser):
    """Every element opened is closed in order (void elements aside); collects links and scripts."""

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "background")]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "background")]

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1:] == [tag], f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def test_html_is_well_formed_self_contained_and_escaped() -> None:
    html = render_html(make_report(seeded_inputs()))
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.stack == []
    assert not {"script", "style", "link", "img", "iframe"} & set(parser.tags)
    assert parser.urls == []
    assert "<script" not in html.lower()
    assert "http://" not in html
    assert "https://" not in html
    # a summary quoting what an environment answered is escaped, never markup
    assert "status &lt;unhealthy&gt; &amp; &quot;db&quot; down" in html
    assert "<unhealthy>" not in html
    root = ET.fromstring(html.split("\n", 1)[1])  # XML-well-formed too, after the doctype
    assert root.tag == "html"
    svgs = root.findall(".//svg")
    assert [svg.get("aria-label") for svg in svgs] == [
        f"{env} health, 2024-10-25" for env in ("development", "uat", "production", "legacy")
    ]


def test_html_timeline_one_rect_per_hour_coloured_by_outcome_with_tooltips() -> None:
    report = make_report(seeded_inputs())
    root = ET.fromstring(render_html(report).split("\n", 1)[1])
    production = next(s for s in root.iter("svg") if s.get("aria-label", "").startswith("production"))
    rects = production.findall("rect")
    assert len(rects) == 24
    titles = [r.findtext("title", "") for r in rects]
    assert titles[10] == (
        "production 10:00-11:00: unhealthy, 2 checks (0 healthy, 0 degraded, 2 unhealthy, 0 no answer)"
    )
    assert titles[11].startswith("production 11:00-12:00: no answer, 2 checks")
    assert titles[23].startswith("production 23:00-24:00: healthy")
    colors = {r.findtext("title", "").split(": ")[1].split(",")[0]: r.get("fill") for r in rects}
    assert colors == {"healthy": "#2e9d5b", "unhealthy": "#d0312d", "no answer": "#8a1c1c"}
    widths = {float(r.get("width", "0")) for r in rects}
    assert widths == {20.0}
    uat = next(s for s in root.iter("svg") if s.get("aria-label", "").startswith("uat"))
    uat_titles = [r.findtext("title", "") for r in uat.findall("rect")]
    assert uat_titles[0].endswith("(hourly rollup)")
    assert uat_titles[13] == "uat 13:00-14:00: no data"


# -- the day's boundaries in the report's timezone -------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "ts", "day"),
    [
        ("Europe/Zurich", "2024-10-25T23:30:00+02:00", date(2024, 10, 25)),  # 23:30 local is that day
        ("Europe/Zurich", "2024-10-25T21:30:00+00:00", date(2024, 10, 25)),  # the same instant in UTC
        ("Europe/Zurich", "2024-10-25T00:00:00+02:00", date(2024, 10, 25)),  # midnight opens the day
        ("Europe/Zurich", "2024-10-25T23:59:59.999999+02:00", date(2024, 10, 25)),
        ("Europe/Zurich", "2024-10-26T00:00:00+02:00", date(2024, 10, 26)),  # ... and closes the one before
        ("UTC", "2024-10-25T23:30:00+00:00", date(2024, 10, 25)),
        ("America/New_York", "2024-10-26T03:30:00+00:00", date(2024, 10, 25)),  # 23:30 EDT
        ("Asia/Kolkata", "2024-10-25T18:29:00+00:00", date(2024, 10, 25)),  # 23:59 IST (+05:30)
        ("Asia/Kolkata", "2024-10-25T18:30:00+00:00", date(2024, 10, 26)),
    ],
)
def test_a_sample_belongs_to_its_local_day(timezone: str, ts: str, day: date) -> None:
    when = datetime.fromisoformat(ts)
    sample = make_sample("production", when.astimezone(UTC))
    for candidate in (day - timedelta(days=1), day, day + timedelta(days=1)):
        inputs = ReportInputs(
            candidate, timezone, GENERATED_AT, ENVIRONMENTS, **sampled([sample], candidate, timezone)
        )
        report = make_report(inputs)
        assert (report.total.checks == 1) is (candidate == day), candidate
        assert Period.of(candidate, timezone).contains(when) is (candidate == day)


@pytest.mark.parametrize(
    ("timezone", "day", "hours", "first", "last"),
    [
        ("Europe/Zurich", date(2024, 10, 25), 24, 60, 60),
        ("Europe/Zurich", date(2024, 10, 27), 25, 60, 60),  # summer time ends: 25 hours
        ("Europe/Zurich", date(2024, 3, 31), 23, 60, 60),  # summer time starts: 23 hours
        ("America/Santiago", date(2024, 9, 8), 23, 60, 60),  # the clocks skip midnight itself
        ("Asia/Kolkata", date(2024, 10, 25), 25, 30, 30),  # half-hour offset: half hours at both ends
        ("UTC", date(2024, 10, 25), 24, 60, 60),
    ],
)
def test_segments_cover_the_local_day(timezone: str, day: date, hours: int, first: int, last: int) -> None:
    report = make_report(ReportInputs(day, timezone, GENERATED_AT, ENVIRONMENTS[:1]))
    segments = report.health[0].segments
    assert len(segments) == hours
    assert (segments[0].end - segments[0].start) == timedelta(minutes=first)
    assert (segments[-1].end - segments[-1].start) == timedelta(minutes=last)
    assert (segments[0].start, segments[-1].end) == (report.period.start, report.period.end)
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    assert report.period.end == Period.of(day + timedelta(days=1), timezone).start  # days tile


@pytest.mark.parametrize(
    ("now", "timezone", "day"),
    [
        ("2024-10-26T07:00:00+02:00", "Europe/Zurich", date(2024, 10, 25)),
        ("2024-10-26T00:30:00+00:00", "Europe/Zurich", date(2024, 10, 25)),  # 02:30 local
        ("2024-10-25T23:30:00+00:00", "Europe/Zurich", date(2024, 10, 25)),  # already the 26th there
        ("2024-10-25T23:30:00+00:00", "UTC", date(2024, 10, 24)),
        ("2024-01-01T05:00:00+00:00", "America/New_York", date(2023, 12, 31)),
    ],
)
def test_previous_day_is_local(now: str, timezone: str, day: date) -> None:
    assert previous_day(datetime.fromisoformat(now), timezone) == day


# -- health: raw samples, rollups for pruned hours ------------------------------------------------


def _hour(n: int) -> list[HealthSample]:
    return [make_sample("production", local(10, 1 + i)) for i in range(n)]


@pytest.mark.parametrize(
    ("raw", "rollup", "checks", "source"),
    [
        (_hour(3), None, 3, "samples"),  # not rolled up yet
        ([], Counts(120, 118, 0, 0, 2), 120, "rollup"),  # raw pruned
        (_hour(3), Counts(3, 3, 0, 0, 0), 3, "samples"),  # both complete: not counted twice
        (_hour(2), Counts(3, 3, 0, 0, 0), 3, "rollup"),  # raw partly pruned (cut-off inside the hour)
        ([], None, 0, None),  # nothing: no data, not 0 %
    ],
)
def test_hour_counted_from_samples_or_rollup(
    raw: list[HealthSample], rollup: Counts | None, checks: int, source: str | None
) -> None:
    rollups = [HourlyCounts("production", local(10), rollup)] if rollup else []
    report = make_report(ReportInputs(DAY, TZ, GENERATED_AT, ENVIRONMENTS, **sampled(raw), rollups=rollups))
    production = report.health[2]
    segment = production.segments[10]
    assert (segment.counts.checks, segment.source) == (checks, source)
    assert production.counts.checks == checks


def test_rollup_of_an_hour_only_partly_in_the_day_is_not_used() -> None:
    # Kolkata's day starts at 18:30 UTC: the 18:00 UTC rollup is half the day before.
    day_start = datetime(2024, 10, 24, 18, 30, tzinfo=UTC)
    rollups = [HourlyCounts("production", datetime(2024, 10, 24, 18, tzinfo=UTC), Counts(4, 4, 0, 0, 0))]
    samples = [make_sample("production", day_start + timedelta(minutes=10))]
    report = make_report(
        ReportInputs(
            DAY,
            "Asia/Kolkata",
            GENERATED_AT,
            ENVIRONMENTS,
            **sampled(samples, DAY, "Asia/Kolkata"),
            rollups=rollups,
        )
    )
    assert report.health[2].segments[0].counts.checks == 1


@pytest.mark.parametrize("timezone", [TZ, "Asia/Kolkata"])
def test_each_segment_takes_its_utc_hours_counts_and_hours_outside_are_ignored(timezone: str) -> None:
    # How the store counts a local day's samples per UTC hour is tested against the samples
    # themselves in tests/test_report_job.py (DST days, half-hour offsets, both databases).
    p = Period.of(DAY, timezone)
    first = p.start.replace(minute=0)
    hours = [
        HourlyCounts("production", first + timedelta(hours=i), Counts(i + 1, i + 1, 0, 0, 0))
        for i in range(-2, 27)
    ]
    report = make_report(ReportInputs(DAY, timezone, GENERATED_AT, ENVIRONMENTS, hours=hours))
    production = report.health[2]
    assert [s.counts.checks for s in production.segments] == list(range(1, len(production.segments) + 1))
    assert {s.source for s in production.segments} == {"samples"}
    assert production.counts.checks == sum(range(1, len(production.segments) + 1))
    assert [h.counts.checks for h in report.health if h.name != "production"] == [0, 0]


def test_environment_summary_is_the_last_sample_and_the_last_version_of_the_day() -> None:
    samples = [
        make_sample("uat", local(0, day=26), Outcome.HEALTHY, version="after", uptime_text="1h"),  # next day
        make_sample("uat", local(9), Outcome.HEALTHY, version="1.2.0", uptime_text="2h"),
        make_sample("uat", local(10), Outcome.HEALTHY, version="", uptime_text="3h"),  # empty: no version
        make_sample("uat", local(11), Outcome.UNREACHABLE),
        make_sample("production", local(8), Outcome.HEALTHY, version="1", uptime_text="a"),
        make_sample("production", local(8), Outcome.DEGRADED, version="2", uptime_text="b"),  # same stamp
    ]
    inputs = ReportInputs(DAY, TZ, GENERATED_AT, ENVIRONMENTS, last_samples=samples, last_versioned=samples)
    by_name = {e.name: e for e in make_report(inputs).environments}
    assert (by_name["uat"].health, by_name["uat"].version, by_name["uat"].uptime) == (
        "unreachable",
        "1.2.0",
        None,  # no uptime without an answer
    )
    assert by_name["uat"].last_check == local(11)
    assert (by_name["production"].health, by_name["production"].version, by_name["production"].uptime) == (
        "degraded",
        "2",
        "b",
    )
    assert by_name["development"] == EnvironmentStatus("development", "development", None, None, None, None)


def test_availability_counts_degraded_as_available() -> None:
    samples = [
        make_sample("production", local(1), Outcome.HEALTHY),
        make_sample("production", local(2), Outcome.DEGRADED),
        make_sample("production", local(3), Outcome.UNHEALTHY),
        make_sample("production", local(4), Outcome.AUTH_ERROR),
    ]
    counts = make_report(ReportInputs(DAY, TZ, GENERATED_AT, ENVIRONMENTS, **sampled(samples))).total
    assert counts == Counts(4, 1, 1, 1, 1)
    assert counts.availability == 0.5


# -- formatting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "whole", "digits", "text"),
    [
        (0, 0, 1, "n/a"),
        (0, 10, 1, "0.0%"),
        (10, 10, 1, "100.0%"),
        (1, 3, 1, "33.3%"),
        (99999, 100000, 2, "99.99%"),  # not rounded up to a perfect day
        (1, 100000, 2, "0.01%"),  # one failure is not rounded away
        (1, 3, 0, "33%"),
    ],
)
def test_percent(part: int, whole: int, digits: int, text: str) -> None:
    assert percent(part, whole, digits) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (35, "35s"), (60, "1m"), (2520, "42m"), (3600, "1h"), (94500, "1d 2h 15m"), (-5, "0s")],
)
def test_duration_text(seconds: int, text: str) -> None:
    assert duration_text(timedelta(seconds=seconds)) == text
