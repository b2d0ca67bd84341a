"""Drift rules as tables, one per rule: major, component, outdated/ahead, pattern, stale and invalid
versions; the keys stay stable across runs and a fixed drift is no longer found; a version held
through an outage keeps its findings, saying when it was last seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from umig_monitor.core.alerts import Severity
from umig_monitor.core.drift import (
    DriftPolicy,
    EnvironmentVersions,
    Finding,
    alert_event,
    detect,
    production,
    version_matrix,
)
from umig_monitor.core.versions import EnvironmentKind

NOW = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
POLICY = DriftPolicy()
ALIGNED = {"ui": "1.1.2", "backend": "1.1.2"}


def env(
    name: str,
    version: str | None,
    kind: EnvironmentKind | None = None,
    components: Mapping[str, str] | None = None,
    deployed: timedelta | None = None,
) -> EnvironmentVersions:
    return EnvironmentVersions(
        name,
        kind or name,  # type: ignore[arg-type]
        version,
        ALIGNED if components is None else components,
        NOW - deployed if deployed is not None else None,
    )


def guide(
    dev: str = "1.3.0-dev+ci.1245", uat: str | None = "1.2.0-rc.2", prod: str = "1.1.2"
) -> list[EnvironmentVersions]:
    """The guide's Current Environment Status."""
    return [env("development", dev), env("uat", uat), env("production", prod)]


def run(
    envs: Sequence[EnvironmentVersions], policy: DriftPolicy = POLICY, history: Sequence[str] = ()
) -> list[Finding]:
    return detect(envs, policy, NOW, history)


def of(findings: list[Finding], rule: str) -> list[tuple[str | None, Severity, str]]:
    return [(f.environment, f.severity, f.summary) for f in findings if f.type == rule]


# -- 1. major -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envs", "expected"),
    [
        (guide(), []),
        (
            guide(dev="2.0.0-dev+ci.1"),
            [
                (
                    None,
                    "warning",
                    "major version drift across environments: 1.x on uat, production; 2.x on development",
                )
            ],
        ),
        (
            guide(dev="2.0.0-dev", uat=None),
            [
                (
                    None,
                    "warning",
                    "major version drift across environments: 1.x on production; 2.x on development",
                )
            ],
        ),
        (
            guide(dev="not-a-version", uat="2.0.0-rc.1"),
            [(None, "warning", "major version drift across environments: 1.x on production; 2.x on uat")],
        ),
        ([env("development", "2.0.0-dev"), env("production", None)], []),  # one known version: no drift
        (
            [env("production", "1.1.2"), env("production-eu", "2.0.0", "production")],
            [
                (
                    None,
                    "critical",
                    "major version drift across environments: 1.x on production; 2.x on production-eu",
                )
            ],
        ),
    ],
)
def test_major(envs: list[EnvironmentVersions], expected: list[tuple[str | None, Severity, str]]) -> None:
    assert of(run(envs), "major") == expected


def test_major_details_and_key() -> None:
    (finding,) = [f for f in run([*guide(dev="2.0.0-dev"), env("hotfix", None)]) if f.type == "major"]
    assert finding.key == "version_drift/-/major:umig"
    assert finding.details == {
        "environments": "all",
        "versions": {"development": "2.0.0-dev", "uat": "1.2.0-rc.2", "production": "1.1.2"},
        "majors": {"development": 2, "uat": 1, "production": 1},
        "unknown": ["hotfix"],
    }


# -- 2. component ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("components", "pairs", "expected"),
    [
        ({"ui": "1.2.0", "backend": "1.2.0"}, (("ui", "backend"),), []),
        ({"ui": "1.2.0", "backend": "1.1.9"}, (("ui", "backend"),), ["uat: ui 1.2.0 != backend 1.1.9"]),
        ({"ui": "v1.2.0", "backend": "1.2.0 "}, (("ui", "backend"),), []),  # canonical versions agree
        ({"ui": "1.3.0-dev", "backend": "1.3.0-dev"}, (("ui", "backend"),), []),
        (
            {"ui": "1.2.0-rc.1", "backend": "1.2.0-rc.2"},
            (("ui", "backend"),),
            ["uat: ui 1.2.0-rc.1 != backend 1.2.0-rc.2"],
        ),
        ({"ui": "build-7", "backend": "build-7"}, (("ui", "backend"),), []),  # unparseable: as strings
        (
            {"ui": "build-7", "backend": "build-8"},
            (("ui", "backend"),),
            ["uat: ui build-7 != backend build-8"],
        ),
        ({"ui": "v1.2.0", "backend": "unknown"}, (("ui", "backend"),), ["uat: ui v1.2.0 != backend unknown"]),
        ({"ui": "1.2.0"}, (("ui", "backend"),), []),  # backend not reported: nothing to compare
        ({}, (("ui", "backend"),), []),
        ({"ui": "1.2.0", "backend": "1.1.9"}, (), []),  # no pairs configured
        (
            {"ui": "1.2.0", "backend": "1.2.0", "api": "2.3.1", "database": "031"},
            (("ui", "backend"), ("api", "backend")),
            ["uat: api 2.3.1 != backend 1.2.0"],
        ),
    ],
)
def test_component(
    components: dict[str, str], pairs: tuple[tuple[str, str], ...], expected: list[str]
) -> None:
    findings = run([env("uat", "1.2.0-rc.2", components=components)], DriftPolicy(component_pairs=pairs))
    assert [(e, s) for e, s, _ in of(findings, "component")] == [("uat", "warning")] * len(expected)
    assert [summary for _, _, summary in of(findings, "component")] == expected


def test_component_key_names_the_pair() -> None:
    (finding,) = run([env("uat", "1.2.0-rc.2", components={"ui": "1.2.0", "backend": "1.1.9"})])
    assert finding.key == "version_drift/uat/component:ui-backend"
    assert finding.details == {"components": {"ui": "1.2.0", "backend": "1.1.9"}}


# -- 3. outdated and ahead ------------------------------------------------------------------------

HISTORY = ("1.1.2", "1.2.0", "1.3.0", "1.4.0", "1.4.0+hotfix.1", "1.5.0")


@pytest.mark.parametrize(
    ("name", "version", "prod", "history", "expected"),
    [
        # the guide's example: dev and UAT building newer releases are ahead
        (
            "development",
            "1.3.0-dev+ci.1245",
            "1.1.2",
            (),
            [("ahead", "info", "development (1.3.0-dev+ci.1245) is ahead of production (1.1.2)")],
        ),
        (
            "uat",
            "1.2.0-rc.2",
            "1.1.2",
            (),
            [("ahead", "info", "uat (1.2.0-rc.2) is ahead of production (1.1.2)")],
        ),
        # an rc of production's own release is level; of an older release, behind by releases
        ("uat", "1.2.0-rc.2", "1.2.0", HISTORY, []),
        (
            "uat",
            "1.2.0-rc.2",
            "1.5.0",
            HISTORY,
            [("outdated", "warning", "uat 1.2.0-rc.2 is 3 releases behind production 1.5.0")],
        ),
        ("uat", "1.3.0-rc.1", "1.5.0", HISTORY, []),  # 2 behind: within max_versions_behind
        ("uat", "1.4.0-rc.1", "1.5.0", HISTORY, []),
        (
            "uat",
            "1.6.0-rc.1",
            "1.5.0",
            HISTORY,
            [("ahead", "info", "uat (1.6.0-rc.1) is ahead of production (1.5.0)")],
        ),
        (
            "development",
            "1.1.0-dev+ci.3",
            "1.5.0",
            HISTORY,
            [("outdated", "warning", "development 1.1.0-dev+ci.3 is 5 releases behind production 1.5.0")],
        ),
        # production on an rc (itself a critical pattern finding) also stands for its release
        ("uat", "1.2.0-rc.2", "1.2.0-rc.3", (), []),
        (
            "development",
            "1.3.0-dev",
            "1.2.0-rc.3",
            (),
            [("ahead", "info", "development (1.3.0-dev) is ahead of production (1.2.0-rc.3)")],
        ),
        # releases and hotfixes
        (
            "hotfix",
            "1.1.2+hotfix.1",
            "1.1.2",
            (),
            [("ahead", "info", "hotfix (1.1.2+hotfix.1) is ahead of production (1.1.2)")],
        ),
        (
            "hotfix",
            "1.1.2+hotfix.1",
            "1.1.2+hotfix.3",
            (),
            [],
        ),  # older hotfix of the same release: 0 releases
        ("hotfix", "1.1.2+hotfix.3", "1.1.2+hotfix.3", (), []),
        ("uat", "1.1.2-rc.4", "1.1.2+hotfix.1", (), []),
        ("uat", "1.1.2+ci.9", "1.1.2", (), []),  # build metadata other than hotfix is not "ahead"
        # without history: the estimate (one per minor, ten per major)
        (
            "uat",
            "1.1.0-rc.1",
            "1.4.0",
            ("1.4.0",),
            [("outdated", "warning", "uat 1.1.0-rc.1 is 3 releases behind production 1.4.0")],
        ),
        ("uat", "1.2.0-rc.1", "1.4.0", (), []),
        (
            "uat",
            "0.9.0-rc.1",
            "1.0.0",
            (),
            [("outdated", "warning", "uat 0.9.0-rc.1 is 10 releases behind production 1.0.0")],
        ),
        # the history does not parse: ignored, so the estimate applies
        (
            "uat",
            "1.1.0-rc.1",
            "1.4.0",
            ("garbage", "1.4.0"),
            [("outdated", "warning", "uat 1.1.0-rc.1 is 3 releases behind production 1.4.0")],
        ),
    ],
)
def test_position(
    name: EnvironmentKind,
    version: str,
    prod: str,
    history: tuple[str, ...],
    expected: list[tuple[str, Severity, str]],
) -> None:
    findings = run([env(name, version), env("production", prod)], history=history)
    got = [(f.type, f.severity, f.summary) for f in findings if f.type in ("ahead", "outdated")]
    assert got == expected


@pytest.mark.parametrize(
    ("max_behind", "expected"),
    [(0, ["uat 1.4.0-rc.1 is 1 release behind production 1.5.0"]), (1, []), (2, [])],
)
def test_outdated_respects_max_versions_behind(max_behind: int, expected: list[str]) -> None:
    findings = run(
        [env("uat", "1.4.0-rc.1"), env("production", "1.5.0")],
        DriftPolicy(max_versions_behind=max_behind),
        HISTORY,
    )
    assert [s for _, _, s in of(findings, "outdated")] == expected


def test_outdated_details_and_key() -> None:
    (finding,) = of_type(
        run([env("uat", "1.2.0-rc.2"), env("production", "1.5.0")], history=HISTORY), "outdated"
    )
    assert finding.key == "version_drift/uat/outdated:production"
    assert finding.details == {
        "version": "1.2.0-rc.2",
        "compared_as": "1.2.0",
        "production": "production",
        "production_version": "1.5.0",
        "releases_behind": 3,
        "max_versions_behind": 2,
    }


def of_type(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.type == rule]


@pytest.mark.parametrize(
    ("envs", "production_env", "expected"),
    [
        (guide(), None, "production"),
        ([env("prod-eu", "1.1.2", "production"), env("production", "1.1.2")], None, "production"),
        ([env("prod-eu", "1.1.2", "production"), env("prod-us", "1.1.2", "production")], None, "prod-eu"),
        ([env("uat", "1.2.0-rc.1"), env("prod-us", "1.1.2", "production")], "prod-us", "prod-us"),
        ([env("uat", "1.2.0-rc.1"), env("production", "1.1.2")], "prod-xx", None),  # configured, not there
        ([env("development", "1.3.0-dev"), env("uat", "1.2.0-rc.1")], None, None),
    ],
)
def test_production_choice(
    envs: list[EnvironmentVersions], production_env: str | None, expected: str | None
) -> None:
    chosen = production(envs, DriftPolicy(production_env=production_env))
    assert (chosen.name if chosen else None) == expected


def test_other_production_environments_are_compared_with_the_reference() -> None:
    envs = [env("production", "1.5.0"), env("prod-eu", "1.2.0", "production")]
    assert [f.summary for f in of_type(run(envs, history=HISTORY), "outdated")] == [
        "prod-eu 1.2.0 is 3 releases behind production 1.5.0"
    ]


@pytest.mark.parametrize("prod", [None, "unknown"])
def test_no_comparison_without_a_production_version(prod: str | None) -> None:
    findings = run([env("uat", "1.0.0-rc.1"), env("production", prod)], history=HISTORY)
    assert of_type(findings, "outdated") == of_type(findings, "ahead") == []


# -- 4. pattern -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "version", "expected"),
    [
        ("development", "1.3.0-dev+ci.1245", None),
        ("uat", "1.2.0-rc.2", None),
        ("production", "1.1.2", None),
        ("production", "v1.1.2", None),
        ("production", "1.1.2+hotfix.3", None),  # after an emergency fix: not drift
        ("hotfix", "1.1.2+hotfix", None),
        ("uat", "1.3.0-dev+ci.7", ("warning", "uat runs 1.3.0-dev+ci.7 but expects 1.x.y-rc.n")),
        ("uat", "1.2.0", ("warning", "uat runs 1.2.0 but expects 1.x.y-rc.n")),
        ("development", "1.2.0-rc.1", ("warning", "development runs 1.2.0-rc.1 but expects 1.x.y-dev+…")),
        ("hotfix", "1.1.2", ("warning", "hotfix runs 1.1.2 but expects 1.x.y+hotfix.n")),
        (
            "production",
            "1.2.0-rc.2",
            ("critical", "production runs 1.2.0-rc.2 but expects 1.x.y (or 1.x.y+hotfix.n)"),
        ),
        (
            "production",
            "1.3.0-dev+ci.1",
            ("critical", "production runs 1.3.0-dev+ci.1 but expects 1.x.y (or 1.x.y+hotfix.n)"),
        ),
        (
            "production",
            "1.2.0-beta.1",
            ("critical", "production runs 1.2.0-beta.1 but expects 1.x.y (or 1.x.y+hotfix.n)"),
        ),
    ],
)
def test_pattern(kind: EnvironmentKind, version: str, expected: tuple[Severity, str] | None) -> None:
    findings = of_type(run([env(kind, version)]), "pattern")
    assert [(f.severity, f.summary) for f in findings] == ([expected] if expected else [])
    assert all(f.key == f"version_drift/{kind}/pattern:umig" for f in findings)


# -- 5. stale -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "deployed", "stale_after", "expected"),
    [
        ("development", timedelta(hours=23), None, None),
        ("development", timedelta(days=1), None, None),  # exactly the limit is not stale
        (
            "development",
            timedelta(days=1, minutes=5),
            None,
            "development: last deployment 1d 0h ago, expected at least every 1d 0h",
        ),
        ("uat", timedelta(days=6, hours=23), None, None),
        (
            "uat",
            timedelta(days=9, hours=2),
            None,
            "uat: last deployment 9d 2h ago, expected at least every 7d 0h",
        ),
        ("production", timedelta(days=13), None, None),
        (
            "production",
            timedelta(days=15),
            None,
            "production: last deployment 15d 0h ago, expected at least every 14d 0h",
        ),
        ("hotfix", timedelta(days=400), None, None),  # no default for hotfix environments
        (
            "hotfix",
            timedelta(days=31),
            {"hotfix": timedelta(days=30)},
            "hotfix: last deployment 31d 0h ago, expected at least every 30d 0h",
        ),
        (
            "uat",
            timedelta(hours=7),
            {"uat": timedelta(hours=6, minutes=30)},
            "uat: last deployment 7h 0m ago, expected at least every 6h 30m",
        ),
        ("uat", None, None, None),  # unknown: no finding
        ("uat", -timedelta(hours=1), None, None),  # clock skew: in the future is not stale
    ],
)
def test_stale(
    kind: EnvironmentKind,
    deployed: timedelta | None,
    stale_after: dict[str, timedelta] | None,
    expected: str | None,
) -> None:
    policy = DriftPolicy(stale_after=stale_after) if stale_after is not None else POLICY
    version = {
        "development": "1.3.0-dev",
        "uat": "1.2.0-rc.1",
        "production": "1.1.2",
        "hotfix": "1.1.2+hotfix.1",
    }
    findings = of_type(run([env(kind, version[kind], deployed=deployed)], policy), "stale")
    assert [(f.severity, f.summary) for f in findings] == ([("info", expected)] if expected else [])


def test_stale_details() -> None:
    (finding,) = of_type(run([env("uat", "1.2.0-rc.1", deployed=timedelta(days=8))]), "stale")
    assert finding.key == "version_drift/uat/stale:deployment"
    assert finding.details == {
        "last_deployment": "2026-04-26T08:00:00+00:00",
        "age_seconds": 8 * 86400,
        "stale_after_seconds": 7 * 86400,
    }


# -- 6. invalid versions --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["unknown", "", "1.2", "1.2.x-rc.1", "v1.02.0", "1.2.0-"])
def test_invalid_version_is_a_finding_and_skipped_by_version_rules(bad: str) -> None:
    envs = [
        env("development", "2.0.0-dev"),
        env("uat", bad, deployed=timedelta(days=30)),
        env("production", "1.1.2"),
    ]
    findings = run(envs, history=HISTORY)
    uat = [f for f in findings if f.environment == "uat"]
    # component and stale do not read the UMIG version, so they still apply
    assert [f.type for f in uat] == ["invalid_version", "stale"]
    (invalid,) = of_type(uat, "invalid_version")
    assert invalid.severity == "warning"
    assert invalid.key == "version_drift/uat/invalid_version:umig"
    assert invalid.summary == f"uat reports version '{bad.strip()}', which is not a UMIG version"
    assert invalid.details["version"] == bad
    assert invalid.details["reason"]
    (major,) = of_type(findings, "major")
    assert "uat" not in major.details["versions"]


def test_unknown_version_is_not_invalid() -> None:
    assert run([env("development", None), env("uat", None), env("production", None)]) == []


# -- keys: stable while the drift persists, gone once it is fixed ----------------------------------

DRIFTED = [
    env("development", "2.0.0-dev+ci.1", deployed=timedelta(days=3)),
    env("uat", "1.2.0-rc.2", components={"ui": "1.2.0", "backend": "1.1.9"}),
    env("production", "1.2.0-rc.3"),
    env("hotfix", "1.1.x"),
]


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("version_drift/-/major:umig", {"development": "1.3.0-dev+ci.2"}),
        ("version_drift/uat/component:ui-backend", {"uat_components": {"ui": "1.2.0", "backend": "1.2.0"}}),
        ("version_drift/production/pattern:umig", {"production": "1.2.0"}),
        ("version_drift/development/stale:deployment", {"development_deployed": timedelta(hours=1)}),
        ("version_drift/hotfix/invalid_version:umig", {"hotfix": "1.1.2+hotfix.1"}),
    ],
)
def test_finding_disappears_when_fixed(key: str, fix: dict[str, object]) -> None:
    first = run(DRIFTED)
    assert key in {f.key for f in first}
    assert [f.key for f in run(DRIFTED)] == [f.key for f in first]  # same drift, same keys
    fixed = [_fixed(e, fix) for e in DRIFTED]
    second = run(fixed)
    assert key not in {f.key for f in second}
    assert {f.key for f in second} < {f.key for f in first}  # nothing else appeared


def _fixed(e: EnvironmentVersions, fix: dict[str, object]) -> EnvironmentVersions:
    changes: dict[str, object] = {}
    if e.name in fix:
        changes["version"] = fix[e.name]
    if f"{e.name}_components" in fix:
        changes["components"] = fix[f"{e.name}_components"]
    if f"{e.name}_deployed" in fix:
        changes["last_deployment"] = NOW - fix[f"{e.name}_deployed"]  # type: ignore[operator]
    return replace(e, **changes)  # type: ignore[arg-type]


def test_outdated_resolves_when_uat_catches_up() -> None:
    prod = env("production", "1.5.0")
    before = run([env("uat", "1.2.0-rc.2"), prod], history=HISTORY)
    after = run([env("uat", "1.6.0-rc.1"), prod], history=HISTORY)
    assert [f.key for f in before] == ["version_drift/uat/outdated:production"]
    assert [f.key for f in after] == ["version_drift/uat/ahead:production"]


def test_findings_come_in_a_fixed_order() -> None:
    assert [f.type for f in run(DRIFTED)] == [
        "major",
        "ahead",
        "stale",
        "component",
        "pattern",
        "invalid_version",
    ]


# -- around the rules ------------------------------------------------------------------------------


def test_unknown_environment_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kind 'staging'"):
        EnvironmentVersions("staging", "staging", "1.0.0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "alert_type"),
    [
        ("major", "major_version_drift"),
        ("component", "component_drift"),
        ("outdated", "outdated_environment"),
        ("ahead", "version_drift"),
        ("pattern", "version_drift"),
        ("stale", "version_drift"),
        ("invalid_version", "version_drift"),
    ],
)
def test_alert_event(rule: str, alert_type: str) -> None:
    finding = Finding(f"version_drift/uat/{rule}:x", rule, "uat", "warning", "s", {"a": 1})
    event = alert_event(finding, NOW)
    assert (
        event.key,
        event.type,
        event.environment,
        event.severity,
        event.summary,
        event.at,
        event.firing,
    ) == (
        finding.key,
        alert_type,
        "uat",
        "warning",
        "s",
        NOW,
        True,
    )
    assert event.details == {"rule": rule, "a": 1}


def test_version_matrix() -> None:
    envs = [
        env("development", "1.3.0-dev+ci.1245", components={"ui": "1.3.0-dev"}, deployed=timedelta(hours=2)),
        env("uat", "1.3.0-dev+ci.7"),
        env("production", None),
        env("hotfix", "garbage"),
    ]
    assert version_matrix(envs) == [
        {
            "environment": "development",
            "kind": "development",
            "version": "1.3.0-dev+ci.1245",
            "version_kind": "dev",
            "conforms": True,
            "expected": "1.x.y-dev+…",
            "components": {"ui": "1.3.0-dev"},
            "last_deployment": "2026-05-04T06:00:00+00:00",
            "last_seen": None,
        },
        {
            "environment": "uat",
            "kind": "uat",
            "version": "1.3.0-dev+ci.7",
            "version_kind": "dev",
            "conforms": False,
            "expected": "1.x.y-rc.n",
            "components": ALIGNED,
            "last_deployment": None,
            "last_seen": None,
        },
        {
            "environment": "production",
            "kind": "production",
            "version": None,
            "version_kind": None,
            "conforms": None,
            "expected": "1.x.y (or 1.x.y+hotfix.n)",
            "components": ALIGNED,
            "last_deployment": None,
            "last_seen": None,
        },
        {
            "environment": "hotfix",
            "kind": "hotfix",
            "version": "garbage",
            "version_kind": "invalid",
            "conforms": None,
            "expected": "1.x.y+hotfix.n",
            "components": ALIGNED,
            "last_deployment": None,
            "last_seen": None,
        },
    ]


# -- holding: drift is a fact about versions, not reachability --------------------------------------

SEEN = NOW - timedelta(seconds=40)


def held(e: EnvironmentVersions, at: datetime = SEEN) -> EnvironmentVersions:
    """``e`` unreachable now: its last reported version held, last seen ``at``."""
    return replace(e, last_seen=at)


SAID = "last seen 2026-05-04 07:59 UTC"


# (environments, the one unreachable now) -> the findings, by (rule, environment), that say when the
# held version was last seen; every other finding is exactly as when all were reachable.
@pytest.mark.parametrize(
    ("envs", "holding", "notes"),
    [
        # the case: a new major in UAT, UAT out for 40 s
        (
            guide(uat="2.0.0-rc.1"),
            "uat",
            {("major", None): f"(uat {SAID})", ("ahead", "uat"): f"({SAID})"},
        ),
        # a -dev build in UAT: pattern, about UAT itself
        (
            guide(uat="1.3.0-dev+ci.7"),
            "uat",
            {("pattern", "uat"): f"({SAID})", ("ahead", "uat"): f"({SAID})"},
        ),
        # UAT far behind production: the outdated finding rests on both versions
        (guide(uat="1.0.0-rc.1", prod="1.3.0"), "production", {("outdated", "uat"): f"(production {SAID})"}),
        (guide(uat="1.0.0-rc.1", prod="1.3.0"), "uat", {("outdated", "uat"): f"({SAID})"}),
        # UI and backend apart in production, production out: every comparison with it is held
        (
            [*guide()[:2], env("production", "1.1.2", components={"ui": "1.1.2", "backend": "1.1.1"})],
            "production",
            {
                ("component", "production"): f"({SAID})",
                ("ahead", "development"): f"(production {SAID})",
                ("ahead", "uat"): f"(production {SAID})",
            },
        ),
        # an unparsable version stays invalid through an outage
        (guide(dev="garbage"), "development", {("invalid_version", "development"): f"({SAID})"}),
    ],
)
def test_a_held_version_keeps_its_findings(
    envs: list[EnvironmentVersions], holding: str, notes: Mapping[tuple[str, str | None], str]
) -> None:
    reachable = run(envs)
    outage = run([held(e) if e.name == holding else e for e in envs])
    # Same findings by key, type and severity: nothing resolves, nothing new fires.
    assert [(f.key, f.type, f.severity) for f in outage] == [(f.key, f.type, f.severity) for f in reachable]
    noted = set()
    for before, during in zip(reachable, outage, strict=True):
        note = notes.get((before.type, before.environment))
        if note is None:
            assert during == before
        else:
            noted.add((before.type, before.environment))
            assert during.summary == f"{before.summary} {note}"
            assert during.details == {**before.details, "last_seen": {holding: SEEN.isoformat()}}
    assert noted == set(notes)


def test_the_major_finding_names_every_held_environment() -> None:
    envs = guide(dev="2.0.0-dev")
    outage = [held(envs[0], NOW - timedelta(hours=2)), held(envs[1]), envs[2]]
    (finding,) = [f for f in run(outage) if f.type == "major"]
    assert finding.summary.endswith(
        "(development last seen 2026-05-04 06:00 UTC; uat last seen 2026-05-04 07:59 UTC)"
    )
    assert finding.details["unknown"] == []
    assert finding.details["last_seen"] == {
        "development": (NOW - timedelta(hours=2)).isoformat(),
        "uat": SEEN.isoformat(),
    }


def test_stale_is_about_deployments_not_the_held_version() -> None:
    quiet = env("uat", "1.2.0-rc.2", deployed=timedelta(days=9))
    assert run([held(quiet)]) == run([quiet])


def test_a_version_never_reported_is_not_held() -> None:
    """Without a last known version (never polled successfully) there is nothing to judge."""
    assert of(run(guide(dev="2.0.0-dev", uat=None)), "major")[0][2].endswith("2.x on development")
    assert "last_seen" not in run(guide(dev="2.0.0-dev", uat=None))[0].details


def test_the_matrix_shows_when_a_held_version_was_seen() -> None:
    (row,) = version_matrix([held(env("uat", "1.2.0-rc.2"))])
    assert (row["version"], row["last_seen"]) == ("1.2.0-rc.2", SEEN.isoformat())
