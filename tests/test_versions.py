"""UMIG version rules as tables: parsing, SemVer precedence, the hotfix tie-break, classification
against the guide's environment matrix, database versions and "releases behind"."""

from __future__ import annotations

import itertools
import re

import pytest

from umig_monitor.core.versions import (
    EnvironmentKind,
    InvalidVersion,
    Version,
    VersionKind,
    conforms,
    expected_pattern,
    kind,
    parse_version,
    release_distance,
    try_parse,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.3.0-dev+ci.1245", Version(1, 3, 0, ("dev",), ("ci", "1245"))),
        ("1.2.0-rc.2", Version(1, 2, 0, ("rc", 2))),
        ("v1.1.2", Version(1, 1, 2)),
        ("1.1.2+hotfix.3", Version(1, 1, 2, (), ("hotfix", "3"))),
        ("1.3.0-dev+feature-x", Version(1, 3, 0, ("dev",), ("feature-x",))),
        ("1.1.2", Version(1, 1, 2)),
        (" 1.1.2\n", Version(1, 1, 2)),
        ("0.0.0", Version(0, 0, 0)),
        ("10.20.30", Version(10, 20, 30)),
        ("1.0.0-alpha-1.0", Version(1, 0, 0, ("alpha-1", 0))),
        ("1.0.0-0A.is.legal", Version(1, 0, 0, ("0A", "is", "legal"))),
        ("1.0.0+001.sha.5114f85", Version(1, 0, 0, (), ("001", "sha", "5114f85"))),  # build: zeros ok
    ],
)
def test_parse_valid(text: str, expected: Version) -> None:
    v = parse_version(text)
    assert v == expected
    assert v.raw == text.strip()
    assert try_parse(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty version"),
        ("   ", "empty version"),
        ("1.2", "expected MAJOR.MINOR.PATCH"),
        ("1.2.3.4", "expected MAJOR.MINOR.PATCH"),
        ("one.two.three", "major 'one' is not a number"),
        ("1.2.x", "patch 'x' is not a number"),
        ("1.2.3-", "empty pre-release"),
        ("1.2.3+", "empty build metadata"),
        ("01.2.3", "major '01' has a leading zero"),
        ("1.02.3", "minor '02' has a leading zero"),
        ("1.2.3-rc.01", "pre-release '01' has a leading zero"),
        ("1.2.3-rc..1", "empty pre-release identifier"),
        ("1.2.3+ci..1", "empty build identifier"),
        ("1.2.3-rc_1", "may only use [0-9A-Za-z-]"),
        ("1.2.3+ci/1", "may only use [0-9A-Za-z-]"),
        ("unknown", "not a UMIG version"),  # what the guide's scripts print when a probe fails
        ("vv1.2.3", "not a number"),
        ("-1.2.3", "expected MAJOR.MINOR.PATCH"),
    ],
)
def test_parse_invalid(text: str, says: str) -> None:
    with pytest.raises(InvalidVersion, match=re.escape(says)):
        parse_version(text)
    assert issubclass(InvalidVersion, ValueError)
    assert try_parse(text) is None


def test_str_is_canonical() -> None:
    assert str(parse_version("v1.3.0-dev+ci.1245")) == "1.3.0-dev+ci.1245"
    assert parse_version("v1.1.2") == parse_version("1.1.2")  # raw is not compared
    assert hash(parse_version("v1.1.2")) == hash(parse_version("1.1.2"))


SEMVER_SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]


@pytest.mark.parametrize(("lower", "higher"), list(itertools.pairwise(SEMVER_SPEC_ORDER)))
def test_semver_spec_precedence(lower: str, higher: str) -> None:
    a, b = parse_version(lower), parse_version(higher)
    assert a.precedence_key() < b.precedence_key()
    assert a < b
    assert a <= b
    assert b > a
    assert b >= a
    assert not b < a


def test_sorting_the_spec_list() -> None:
    shuffled = [parse_version(t) for t in reversed(SEMVER_SPEC_ORDER)]
    assert [str(v) for v in sorted(shuffled)] == SEMVER_SPEC_ORDER


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.2.0-rc.2", "1.2.0-rc.10"),  # numeric, not string, comparison
        ("1.2.0-rc.9", "1.2.0"),
        ("1.2.0-dev", "1.2.0-rc.1"),  # ASCII: "dev" < "rc"
        ("1.1.2", "1.2.0-dev+ci.1"),
        ("1.9.0", "1.10.0"),
        ("1.0.0-1", "1.0.0-alpha"),  # numeric identifiers sort below alphanumeric ones
        ("1.0.0-Z", "1.0.0-a"),  # ASCII order: upper case first
    ],
)
def test_precedence_pairs(lower: str, higher: str) -> None:
    assert parse_version(lower) < parse_version(higher)
    assert parse_version(lower).precedence_key() < parse_version(higher).precedence_key()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.3.0-dev+ci.1245", "1.3.0-dev+ci.1246"),
        ("1.1.2", "1.1.2+hotfix.3"),
        ("1.1.2+hotfix.1", "1.1.2+hotfix.3"),
        ("1.0.0+build", "1.0.0"),
    ],
)
def test_build_metadata_is_ignored_by_precedence_but_versions_stay_distinct(a: str, b: str) -> None:
    va, vb = parse_version(a), parse_version(b)
    assert va.precedence_key() == vb.precedence_key()
    assert va != vb
    assert va.sort_key() != vb.sort_key()  # ... and the total order still tells them apart
    assert (va < vb) != (vb < va)


@pytest.mark.parametrize(
    "ordered",
    [
        ["1.1.2", "1.1.2+hotfix", "1.1.2+hotfix.1", "1.1.2+hotfix.3", "1.1.2+hotfix.10", "1.1.3-rc.1"],
        ["1.1.2+hotfix2", "1.1.2+hotfix-3", "1.1.2+hotfix.4"],
        ["1.1.2-rc.1", "1.1.2", "1.1.2+hotfix.1", "1.1.3"],
    ],
)
def test_hotfixes_sort_after_their_release_by_number(ordered: list[str]) -> None:
    versions = [parse_version(t) for t in ordered]
    assert sorted(reversed(versions)) == versions
    assert max(reversed(versions)) == versions[-1]


@pytest.mark.parametrize(
    ("text", "number"),
    [("1.1.2", None), ("1.1.2+hotfix", 0), ("1.1.2+hotfix.3", 3), ("1.1.2+hotfix7", 7), ("1.1.2+ci.3", None)],
)
def test_hotfix_number(text: str, number: int | None) -> None:
    assert parse_version(text).hotfix_number == number


def test_comparing_with_something_else_is_not_supported() -> None:
    with pytest.raises(TypeError):
        assert parse_version("1.0.0") < "1.0.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.3.0-dev+ci.1245", "dev"),
        ("1.3.0-dev+feature-x", "dev"),
        ("1.3.0-dev", "dev"),
        ("1.2.0-rc.2", "rc"),
        ("1.2.0-rc2", "rc"),
        ("1.1.2", "release"),
        ("v1.1.2", "release"),
        ("1.1.2+build.7", "release"),  # build metadata other than hotfix changes nothing
        ("1.1.2+hotfix.3", "hotfix"),
        ("1.1.2+hotfix", "hotfix"),
        ("1.2.0-rc.1+hotfix.1", "rc"),  # a pre-release wins over a hotfix build
        ("1.0.0-alpha", "prerelease"),
        ("1.0.0-1", "prerelease"),
    ],
)
def test_kind(text: str, expected: VersionKind) -> None:
    assert kind(parse_version(text)) == expected


@pytest.mark.parametrize(
    ("environment_kind", "text", "ok"),
    [
        ("development", "1.3.0-dev+ci.1245", True),
        ("development", "1.2.0-rc.2", False),
        ("development", "1.1.2", False),
        ("uat", "1.2.0-rc.2", True),
        ("uat", "1.3.0-dev+ci.1245", False),
        ("uat", "1.2.0", False),
        ("production", "1.1.2", True),
        ("production", "1.1.2+hotfix.3", True),  # after an emergency fix: legitimate
        ("production", "1.2.0-rc.2", False),
        ("production", "1.3.0-dev+ci.1245", False),
        ("production", "1.0.0-alpha", False),
        ("hotfix", "1.1.2+hotfix.3", True),
        ("hotfix", "1.1.2", False),
        ("hotfix", "1.2.0-rc.2", False),
    ],
)
def test_conforms_to_the_environment_matrix(environment_kind: EnvironmentKind, text: str, ok: bool) -> None:
    assert conforms(environment_kind, parse_version(text)) is ok


@pytest.mark.parametrize(
    ("environment_kind", "pattern"),
    [
        ("development", "1.x.y-dev+…"),
        ("uat", "1.x.y-rc.n"),
        ("production", "1.x.y (or 1.x.y+hotfix.n)"),
        ("hotfix", "1.x.y+hotfix.n"),
    ],
)
def test_expected_pattern(environment_kind: EnvironmentKind, pattern: str) -> None:
    assert expected_pattern(environment_kind) == pattern


def test_unknown_environment_kind() -> None:
    with pytest.raises(ValueError, match="unknown environment kind 'staging'"):
        conforms("staging", parse_version("1.0.0"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown environment kind"):
        expected_pattern("staging")  # type: ignore[arg-type]


PROD_HISTORY = [
    parse_version(t)
    for t in (
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "1.1.1",
        "1.1.1+hotfix.1",  # a hotfix is not another release
        "1.1.1+hotfix.2",
        "1.1.2",
        "1.2.0-rc.1",  # never ran in production, but ignored if it did
    )
]


@pytest.mark.parametrize(
    ("older", "newer", "history", "distance"),
    [
        # with history: distinct releases R, older < R <= newer
        ("1.0.0", "1.1.2", PROD_HISTORY, 4),  # 1.0.1, 1.1.0, 1.1.1, 1.1.2
        ("1.1.1", "1.1.2", PROD_HISTORY, 1),
        ("1.1.1+hotfix.2", "1.1.2", PROD_HISTORY, 1),
        ("1.1.1", "1.1.1+hotfix.2", PROD_HISTORY, 0),  # behind by a hotfix only
        ("1.1.0-rc.3", "1.1.2", PROD_HISTORY, 3),  # 1.1.0 itself counts: the rc preceded it
        ("1.1.2", "1.1.2", PROD_HISTORY, 0),
        ("1.2.0-rc.2", "1.1.2", PROD_HISTORY, 0),  # ahead, not behind
        ("1.3.0-dev+ci.1245", "1.1.2", PROD_HISTORY, 0),
        ("0.9.0", "1.0.1", PROD_HISTORY, 2),  # 1.0.0, 1.0.1
        ("1.1.1", "1.1.3", PROD_HISTORY, 2),  # newer (what production runs now) counts as run: 1.1.2, 1.1.3
        # without enough history: 10 per major, else per minor, else per patch
        ("1.1.2", "1.2.0", [], 1),
        ("1.0.5", "1.3.0", [], 3),
        ("1.1.0", "1.1.4", [], 4),
        ("0.9.9", "1.0.0", [], 10),
        ("1.9.0", "3.0.0", [parse_version("3.0.0")], 20),  # one known release is not a history
        ("1.2.0-rc.2", "1.2.0", [], 1),
        ("1.2.0-rc.2", "1.2.0-rc.3", [], 0),  # no release between them
        ("1.1.2", "1.1.2+hotfix.1", [], 0),
        ("1.2.0", "1.1.2", [], 0),
    ],
)
def test_release_distance(older: str, newer: str, history: list[Version], distance: int) -> None:
    assert release_distance(parse_version(older), parse_version(newer), history) == distance
