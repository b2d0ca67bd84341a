"""Version drift rules from the ops guide's version-drift-monitor, as one pure function: the
versions each environment reports in, findings out. Each finding has a stable key, so the drift
job can keep a finding open while it persists and resolve it the first run it is no longer found.

Decisions the guide leaves open, made here:

* **Production** is ``policy.production_env`` when set (if no environment has that name, there is no
  reference and the outdated/ahead rule is skipped); otherwise the environment of kind
  ``production`` named ``production``, else the first of that kind in input order.
* **Behind / ahead** compare releases: a dev or rc build stands for the release it is building
  towards (``1.2.0-rc.2`` -> ``1.2.0``), on both sides. An rc of a newer release than production
  is ahead; an rc of production's own release is level (no finding); an rc of an older release is
  behind by ``release_distance(1.2.0, production, history)``. Among plain versions, a hotfix build
  is ahead of its release (``1.1.2+hotfix.1`` > ``1.1.2``); other build metadata does not count.
  Every environment except the reference production is compared, other production ones too.
* **Severities.** major: warning (a new major normally starts in development), critical when the
  production environments themselves run different majors. component, outdated, pattern,
  invalid_version: warning; pattern is critical when production runs a pre-release (dev, rc, ...).
  ahead and stale: info (the normal state of development and a quiet environment, not incidents).
* **Drift is a fact about versions, not reachability.** An environment that does not report a
  version now (unreachable, timing out) is judged on the version it last reported, held by the
  caller with ``last_seen``; findings that rest on a held version say "last seen <time>" (and carry
  ``details.last_seen``), but keep their key, so an outage neither resolves nor re-raises them.
  The health job owns the outage itself.
* **Unknown is not invalid.** ``version=None`` (never reported) is skipped by the version rules
  without a finding. A version that does
  not parse is an ``invalid_version`` finding and skipped by the version rules (major, outdated,
  ahead, pattern); component and stale do not read the UMIG version and still apply.
  ``last_deployment=None`` means unknown: no stale finding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from umig_monitor.core.alerts import AlertEvent, Severity, alert_key
from umig_monitor.core.versions import (
    EnvironmentKind,
    InvalidVersion,
    Version,
    conforms,
    expected_pattern,
    kind,
    parse_version,
    release_distance,
    try_parse,
)

KIND = "version_drift"
RULES = ("major", "component", "outdated", "ahead", "pattern", "stale", "invalid_version")
# Alert types the sinks already have headlines for; the other rules are plain version_drift.
ALERT_TYPES: Mapping[str, str] = {
    "major": "major_version_drift",
    "component": "component_drift",
    "outdated": "outdated_environment",
}
_KINDS = frozenset({"development", "uat", "production", "hotfix"})


def _default_stale_after() -> dict[str, timedelta]:
    # The matrix's update frequency with slack: dev several times a day, UAT weekly, production
    # bi-weekly. Hotfix environments deploy "as needed", so they are never stale by default.
    return {"development": timedelta(days=1), "uat": timedelta(days=7), "production": timedelta(days=14)}


@dataclass(frozen=True, slots=True)
class EnvironmentVersions:
    """What one environment reported: the UMIG version and its components (``/admin/version``).
    ``last_seen`` is set when they are held from an earlier poll (the environment reports none
    now): when they were last reported."""

    name: str
    kind: EnvironmentKind
    version: str | None
    components: Mapping[str, str] = field(default_factory=dict)  # database, api, ui, backend
    last_deployment: datetime | None = None
    last_seen: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"environment '{self.name}': unknown kind '{self.kind}'")


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    max_versions_behind: int = 2
    component_pairs: tuple[tuple[str, str], ...] = (("ui", "backend"),)
    stale_after: Mapping[str, timedelta] = field(default_factory=_default_stale_after)
    production_env: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    key: str
    type: str  # one of RULES
    environment: str | None
    severity: Severity
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)  # plain JSON values


def _key(environment: str | None, rule: str, subject: str) -> str:
    return alert_key(KIND, environment, f"{rule}:{subject}")


def _text(env: EnvironmentVersions) -> str:
    return (env.version or "").strip()


def production(envs: Sequence[EnvironmentVersions], policy: DriftPolicy) -> EnvironmentVersions | None:
    """The environment others are compared with (see the module docstring)."""
    if policy.production_env is not None:
        return next((e for e in envs if e.name == policy.production_env), None)
    prods = [e for e in envs if e.kind == "production"]
    return next((e for e in prods if e.name == "production"), prods[0] if prods else None)


def detect(
    envs: Sequence[EnvironmentVersions],
    policy: DriftPolicy,
    now: datetime,
    production_history: Sequence[str],
) -> list[Finding]:
    """All drift found in one run, in a fixed order: major first, then per environment (input
    order) invalid_version, pattern, component, outdated/ahead, stale."""
    parsed: dict[str, Version] = {}
    findings: list[Finding] = []
    invalid: dict[str, list[Finding]] = {}
    for env in envs:
        if env.version is not None:
            try:
                parsed[env.name] = parse_version(env.version)
            except InvalidVersion as e:
                invalid.setdefault(env.name, []).append(_invalid(env, str(e)))
    findings += _major(envs, parsed)

    prod = production(envs, policy)
    prod_version = parsed.get(prod.name) if prod is not None else None
    history = [v for v in (try_parse(t) for t in production_history) if v is not None]
    for env in envs:
        findings += invalid.get(env.name, [])
        version = parsed.get(env.name)
        if version is not None:
            findings += _pattern(env, version)
        findings += _components(env, policy.component_pairs)
        if version is not None and prod is not None and prod_version is not None and env is not prod:
            findings += _position(env, version, prod, prod_version, history, policy.max_versions_behind)
        findings += _stale(env, policy.stale_after.get(env.kind), now)
    by_name: dict[str, list[EnvironmentVersions]] = {}
    for env in envs:
        by_name.setdefault(env.name, []).append(env)
    versioned = [e for e in envs if e.name in parsed]
    return [_held(f, _resting_on(f, by_name, versioned, prod)) for f in findings]


def _resting_on(
    finding: Finding,
    by_name: Mapping[str, list[EnvironmentVersions]],
    versioned: list[EnvironmentVersions],
    prod: EnvironmentVersions | None,
) -> list[EnvironmentVersions]:
    """The environments whose versions a finding is about (stale is about deployments): looked up
    by name, so a run over thousands of environments stays linear in them."""
    if finding.type == "stale":
        return []
    if finding.environment is None:  # major: every environment with a version
        return versioned
    own = list(by_name.get(finding.environment, []))
    if finding.type in ("outdated", "ahead") and prod is not None:
        own.append(prod)
    return own


def seen_text(when: datetime) -> str:
    """``2024-10-25 12:00 UTC``: when a held version was last reported."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _held(finding: Finding, envs: Sequence[EnvironmentVersions]) -> Finding:
    """The finding, saying which of its versions are held and since when."""
    held = [e for e in envs if e.last_seen is not None]
    if not held:
        return finding
    notes = [
        f"last seen {seen_text(e.last_seen)}"
        if e.name == finding.environment
        else f"{e.name} last seen {seen_text(e.last_seen)}"
        for e in held
        if e.last_seen is not None
    ]
    last_seen = {e.name: e.last_seen.isoformat() for e in held if e.last_seen is not None}
    return replace(
        finding,
        summary=f"{finding.summary} ({'; '.join(notes)})",
        details={**finding.details, "last_seen": last_seen},
    )


def _invalid(env: EnvironmentVersions, reason: str) -> Finding:
    return Finding(
        _key(env.name, "invalid_version", "umig"),
        "invalid_version",
        env.name,
        "warning",
        f"{env.name} reports version '{_text(env)}', which is not a UMIG version",
        {"version": env.version, "reason": reason},
    )


def _major(envs: Sequence[EnvironmentVersions], parsed: Mapping[str, Version]) -> list[Finding]:
    majors = {e.name: parsed[e.name].major for e in envs if e.name in parsed}
    if len(set(majors.values())) < 2:
        return []
    prod_majors = {majors[e.name] for e in envs if e.kind == "production" and e.name in majors}
    by_major: dict[int, list[str]] = {}
    for name, major in majors.items():
        by_major.setdefault(major, []).append(name)
    listing = "; ".join(f"{m}.x on {', '.join(names)}" for m, names in sorted(by_major.items()))
    return [
        Finding(
            _key(None, "major", "umig"),
            "major",
            None,
            "critical" if len(prod_majors) > 1 else "warning",
            f"major version drift across environments: {listing}",
            {
                "environments": "all",
                "versions": {e.name: _text(e) for e in envs if e.name in parsed},
                "majors": majors,
                "unknown": [e.name for e in envs if e.version is None],
            },
        )
    ]


def _canonical(a: str, b: str) -> tuple[str, str]:
    va, vb = try_parse(a), try_parse(b)
    if va is not None and vb is not None:
        return str(va), str(vb)
    return a.strip(), b.strip()


def _components(env: EnvironmentVersions, pairs: Sequence[tuple[str, str]]) -> list[Finding]:
    out = []
    for a, b in pairs:
        va, vb = env.components.get(a), env.components.get(b)
        if va is None or vb is None:  # one side not reported: nothing to compare
            continue
        ca, cb = _canonical(va, vb)
        if ca != cb:
            out.append(
                Finding(
                    _key(env.name, "component", f"{a}-{b}"),
                    "component",
                    env.name,
                    "warning",
                    f"{env.name}: {a} {va.strip()} != {b} {vb.strip()}",
                    {"components": {a: va, b: vb}},
                )
            )
    return out


def _pattern(env: EnvironmentVersions, version: Version) -> list[Finding]:
    if conforms(env.kind, version):
        return []
    version_kind = kind(version)
    pre_in_production = env.kind == "production" and bool(version.prerelease)
    expected = expected_pattern(env.kind)
    return [
        Finding(
            _key(env.name, "pattern", "umig"),
            "pattern",
            env.name,
            "critical" if pre_in_production else "warning",
            f"{env.name} runs {_text(env)} but expects {expected}",
            {"version": _text(env), "version_kind": version_kind, "kind": env.kind, "expected": expected},
        )
    ]


def _newer(a: Version, b: Version) -> bool:
    """For ahead/behind: SemVer precedence, then the hotfix number; other build metadata ignored."""
    if a.precedence_key() != b.precedence_key():
        return a.precedence_key() > b.precedence_key()
    return _hotfix(a) > _hotfix(b)


def _compared_as(v: Version) -> Version:
    """A dev or rc build stands for the release it builds towards."""
    return v.release if v.prerelease else v


def _hotfix(v: Version) -> int:
    number = v.hotfix_number
    return -1 if number is None else number


def _position(
    env: EnvironmentVersions,
    version: Version,
    prod: EnvironmentVersions,
    prod_version: Version,
    history: Sequence[Version],
    max_behind: int,
) -> list[Finding]:
    target, prod_target = _compared_as(version), _compared_as(prod_version)
    details: dict[str, Any] = {
        "version": _text(env),
        "compared_as": str(target),
        "production": prod.name,
        "production_version": _text(prod),
    }
    if _newer(target, prod_target):
        return [
            Finding(
                _key(env.name, "ahead", prod.name),
                "ahead",
                env.name,
                "info",
                f"{env.name} ({_text(env)}) is ahead of {prod.name} ({_text(prod)})",
                details,
            )
        ]
    behind = release_distance(target, prod_target, history)
    if behind <= max_behind:
        return []
    releases = "release" if behind == 1 else "releases"
    return [
        Finding(
            _key(env.name, "outdated", prod.name),
            "outdated",
            env.name,
            "warning",
            f"{env.name} {_text(env)} is {behind} {releases} behind {prod.name} {_text(prod)}",
            {**details, "releases_behind": behind, "max_versions_behind": max_behind},
        )
    ]


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m"


def _stale(env: EnvironmentVersions, limit: timedelta | None, now: datetime) -> list[Finding]:
    if limit is None or env.last_deployment is None:
        return []
    age = now - env.last_deployment
    if age <= limit:
        return []
    return [
        Finding(
            _key(env.name, "stale", "deployment"),
            "stale",
            env.name,
            "info",
            f"{env.name}: last deployment {_age(age)} ago, expected at least every {_age(limit)}",
            {
                "last_deployment": env.last_deployment.isoformat(),
                "age_seconds": int(age.total_seconds()),
                "stale_after_seconds": int(limit.total_seconds()),
            },
        )
    ]


def alert_event(finding: Finding, at: datetime) -> AlertEvent:
    """The firing alert for a finding, typed so the sinks' drift headlines apply."""
    return AlertEvent(
        key=finding.key,
        type=ALERT_TYPES.get(finding.type, KIND),
        environment=finding.environment,
        severity=finding.severity,
        summary=finding.summary,
        at=at,
        details={"rule": finding.type, **finding.details},
    )


def version_matrix(envs: Sequence[EnvironmentVersions]) -> list[dict[str, Any]]:
    """The guide's Environment State Matrix as observed, one plain (JSON-ready) row per environment.
    ``version_kind`` is None when the version is unknown and ``"invalid"`` when it does not parse;
    ``conforms`` is None unless the version parsed; ``last_seen`` is set when the version is held."""
    rows = []
    for env in envs:
        version = try_parse(env.version) if env.version is not None else None
        if version is not None:
            version_kind: str | None = kind(version)
        else:
            version_kind = None if env.version is None else "invalid"
        rows.append(
            {
                "environment": env.name,
                "kind": env.kind,
                "version": env.version,
                "version_kind": version_kind,
                "conforms": conforms(env.kind, version) if version is not None else None,
                "expected": expected_pattern(env.kind),
                "components": dict(env.components),
                "last_deployment": env.last_deployment.isoformat() if env.last_deployment else None,
                "last_seen": env.last_seen.isoformat() if env.last_seen else None,
            }
        )
    return rows
