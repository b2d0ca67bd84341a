"""UMIG version parsing, ordering and classification (dev / rc / release / hotfix), so drift and
deployment rules compare versions as versions, never as strings. Pure.

Two orders, on purpose:

* ``Version.precedence_key()`` is SemVer 2.0 precedence and nothing else: numeric pre-release
  identifiers compare as numbers and below alphanumeric ones, a pre-release sorts before its
  release, and build metadata is ignored, so ``1.1.2+hotfix.3`` has the same precedence as ``1.1.2``.
* ``Version.sort_key()`` (and therefore ``<``, ``max()``, ``sorted()``) is a total order for
  "which is newer" and "releases behind". It is SemVer precedence first; among versions of equal
  precedence a hotfix build sorts after the plain release and hotfixes sort by number
  (``1.1.2 < 1.1.2+hotfix < 1.1.2+hotfix.1 < 1.1.2+hotfix.3``): the guide ships emergency fixes as
  ``1.x.y+hotfix`` builds of an existing release, and production running the hotfix *is* newer.
  A last tie-break on the remaining build identifiers (``ci.1245`` < ``ci.1246``) only makes the
  order total and consistent with ``==``; it carries no meaning.

``==`` compares the parsed parts (``v1.1.2 == 1.1.2``; ``1.3.0-dev+ci.1245 != 1.3.0-dev+ci.1246``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

VersionKind = Literal["dev", "rc", "release", "hotfix", "prerelease"]
EnvironmentKind = Literal["development", "uat", "production", "hotfix"]

# The guide's Environment State Matrix. Production may also run a hotfix build: after an emergency
# fix it legitimately does until the next regular release, and that is not drift.
_ALLOWED: dict[str, frozenset[VersionKind]] = {
    "development": frozenset({"dev"}),
    "uat": frozenset({"rc"}),
    "production": frozenset({"release", "hotfix"}),
    "hotfix": frozenset({"hotfix"}),
}
_PATTERN = {
    "development": "1.x.y-dev+…",
    "uat": "1.x.y-rc.n",
    "production": "1.x.y (or 1.x.y+hotfix.n)",
    "hotfix": "1.x.y+hotfix.n",
}

_IDENT = re.compile(r"[0-9A-Za-z-]+", re.ASCII)
_NUMBER = re.compile(r"[0-9]+", re.ASCII)
_HOTFIX_SUFFIX = re.compile(r"hotfix-?([0-9]+)", re.ASCII)
_EXPECTED = "expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.2.0-rc.2"

# One pre-release or build identifier as a comparable, homogeneous tuple:
# numeric (0, n, text) sorts before alphanumeric (1, 0, text).
_IdentKey = tuple[int, int, str]


MAX_VERSION = 256  # characters; longer is not a version (and would be a huge label)


class InvalidVersion(ValueError):
    """Text that is not a UMIG (SemVer) or database component version."""


def _ident_key(ident: str | int) -> _IdentKey:
    if isinstance(ident, int):
        return (0, ident, "")
    if _NUMBER.fullmatch(ident):  # build identifiers may be numeric with leading zeros
        return (0, int(ident), ident)
    return (1, 0, ident)


@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...] = ()
    build: tuple[str, ...] = ()
    raw: str = field(default="", compare=False)  # the text as given (stripped), for messages

    def __str__(self) -> str:
        """Canonical form: no ``v`` prefix."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def release(self) -> Version:
        """The plain ``major.minor.patch`` release this version belongs to."""
        return Version(self.major, self.minor, self.patch)

    @property
    def hotfix_number(self) -> int | None:
        """``+hotfix.3`` -> 3, ``+hotfix3``/``+hotfix-3`` -> 3, ``+hotfix`` -> 0; None if no hotfix."""
        if not self.build or not self.build[0].startswith("hotfix"):
            return None
        if self.build[0] == "hotfix":
            return int(self.build[1]) if len(self.build) > 1 and _NUMBER.fullmatch(self.build[1]) else 0
        m = _HOTFIX_SUFFIX.fullmatch(self.build[0])
        return int(m.group(1)) if m else 0

    def precedence_key(self) -> tuple[int, int, int, int, tuple[_IdentKey, ...]]:
        """SemVer 2.0 precedence; build metadata ignored. A release (1) sorts after any
        pre-release (0); pre-releases compare identifier by identifier, a longer one wins a tie."""
        pre = tuple(_ident_key(p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if pre else 1, pre)

    def sort_key(
        self,
    ) -> tuple[tuple[int, int, int, int, tuple[_IdentKey, ...]], int, tuple[_IdentKey, ...]]:
        """Precedence, then hotfix number (no hotfix first), then the build identifiers."""
        hotfix = self.hotfix_number
        return (
            self.precedence_key(),
            -1 if hotfix is None else hotfix,
            tuple(_ident_key(b) for b in self.build),
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.sort_key() >= other.sort_key()


def _number(part: str, what: str, text: str) -> int:
    if not _NUMBER.fullmatch(part):
        raise InvalidVersion(f"'{text}' is not a UMIG version: {what} '{part}' is not a number ({_EXPECTED})")
    if len(part) > 1 and part[0] == "0":
        raise InvalidVersion(f"'{text}' is not a UMIG version: {what} '{part}' has a leading zero")
    return int(part)


def _identifiers(part: str, what: str, text: str) -> list[str]:
    idents = part.split(".")
    for ident in idents:
        if not ident:
            raise InvalidVersion(f"'{text}' is not a UMIG version: empty {what} identifier")
        if not _IDENT.fullmatch(ident):
            raise InvalidVersion(
                f"'{text}' is not a UMIG version: {what} identifier '{ident}' may only use [0-9A-Za-z-]"
            )
    return idents


def parse_version(text: str) -> Version:
    """``1.3.0-dev+ci.1245``, ``1.2.0-rc.2``, ``v1.1.2``, ``1.1.2+hotfix.3``; surrounding whitespace
    and one leading ``v`` are ignored. Raises InvalidVersion saying what is wrong."""
    raw = text.strip()
    if not raw:
        raise InvalidVersion(f"empty version ({_EXPECTED})")
    if len(raw) > MAX_VERSION:
        raise InvalidVersion(f"'{raw[:40]}…' is not a UMIG version: longer than {MAX_VERSION} characters")
    rest = raw[1:] if raw[0] == "v" else raw
    rest, plus, build_text = rest.partition("+")
    if plus and not build_text:
        raise InvalidVersion(f"'{raw}' is not a UMIG version: empty build metadata after '+'")
    core, dash, pre_text = rest.partition("-")
    if dash and not pre_text:
        raise InvalidVersion(f"'{raw}' is not a UMIG version: empty pre-release after '-'")
    parts = core.split(".")
    if len(parts) != 3:
        raise InvalidVersion(f"'{raw}' is not a UMIG version ({_EXPECTED})")
    major, minor, patch = (
        _number(p, w, raw) for p, w in zip(parts, ("major", "minor", "patch"), strict=True)
    )
    prerelease: list[str | int] = []
    if dash:
        for ident in _identifiers(pre_text, "pre-release", raw):
            prerelease.append(_number(ident, "pre-release", raw) if _NUMBER.fullmatch(ident) else ident)
    build = _identifiers(build_text, "build", raw) if plus else []
    return Version(major, minor, patch, tuple(prerelease), tuple(build), raw)


def try_parse(text: str) -> Version | None:
    try:
        return parse_version(text)
    except InvalidVersion:
        return None


def kind(v: Version) -> VersionKind:
    """dev / rc by the first pre-release identifier, hotfix by the build metadata, release when
    neither. A pre-release wins over a hotfix build (``1.2.0-rc.1+hotfix.1`` is an rc); any other
    pre-release (``-alpha``, ``-beta``) is ``prerelease``, which no environment expects."""
    if v.prerelease:
        first = v.prerelease[0]
        if isinstance(first, str) and first.startswith("dev"):
            return "dev"
        if isinstance(first, str) and first.startswith("rc"):
            return "rc"
        return "prerelease"
    return "hotfix" if v.hotfix_number is not None else "release"


def _allowed(environment_kind: str) -> frozenset[VersionKind]:
    try:
        return _ALLOWED[environment_kind]
    except KeyError:
        raise ValueError(f"unknown environment kind '{environment_kind}'") from None


def conforms(environment_kind: EnvironmentKind, version: Version) -> bool:
    """Whether the version has the shape the guide's matrix expects for this kind of environment."""
    return kind(version) in _allowed(environment_kind)


def expected_pattern(environment_kind: EnvironmentKind) -> str:
    """The matrix's version pattern, for messages: ``uat`` -> ``1.x.y-rc.n``."""
    _allowed(environment_kind)
    return _PATTERN[environment_kind]


def _semantic_distance(older: Version, newer: Version) -> int:
    if newer.major != older.major:
        return 10 * (newer.major - older.major)
    if newer.minor != older.minor:
        return newer.minor - older.minor
    if newer.patch != older.patch:
        return newer.patch - older.patch
    # Same major.minor.patch: older is a pre-release of it; behind by that release if it is out.
    return 0 if newer.prerelease else 1


def release_distance(older: Version, newer: Version, history: Sequence[Version]) -> int:
    """How many releases ``older`` is behind ``newer`` (usually production's current version).

    With a history (the versions production has run) of at least two distinct releases: the number
    of distinct releases R (hotfixes collapsed to their release, dev/rc ignored; ``newer`` itself
    counts as run) with ``older < R <= newer`` in SemVer precedence. So ``1.2.0-rc.2`` is one
    behind ``1.2.0``, and ``1.1.2`` is zero behind ``1.1.2+hotfix.3`` (a hotfix is not a release).
    With less history, an estimate: 10 per major, else one per minor, else one per patch between
    them; a pre-release of ``newer``'s own release is one behind. 0 when ``older`` is not behind."""
    if older.precedence_key() >= newer.precedence_key():
        return 0
    releases = {v.release for v in history if kind(v) in ("release", "hotfix")}
    if len(releases) < 2:
        return _semantic_distance(older, newer)
    if not newer.prerelease:
        releases.add(newer.release)
    low, high = older.precedence_key(), newer.precedence_key()
    return sum(1 for r in releases if low < r.precedence_key() <= high)
