"""Which polls read ``/admin/version`` and ``/admin/components``, and what the polls between carry.

The health document carries status and version; the version document (build, component versions,
deployed at and by) and the components document (the orchestrator) change rarely. So they are read
on an environment's first poll, on every ``full_poll_every``-th poll, at once when the health
document's version or build changes, and whenever a poll is not healthy (that very poll, and every
poll until one is healthy again). A poll between keeps the last reading's fields in its sample,
marked with the time of that reading (``metrics.detailsReadAt``) so it is not taken for a fresh one."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from umig_monitor.core.health import HealthSample, Outcome

# The sample's metrics key telling that its version and components fields were carried forward,
# and from when: the ISO time of the poll that read them.
CARRIED_MARK = "detailsReadAt"


@dataclass(frozen=True, slots=True)
class HealthMark:
    """What the health document says of the running build: a change is a reason to read now."""

    version: str | None = None
    build: str | None = None


def mark_of(health: Any) -> HealthMark:
    """``umig.version`` and ``umig.build`` of a health document (any shape: absent is None)."""
    umig = health.get("umig") if isinstance(health, Mapping) else None
    if not isinstance(umig, Mapping):
        return HealthMark()
    version, build = umig.get("version"), umig.get("build")
    return HealthMark(
        str(version)[:256] if version is not None else None,
        str(build)[:256] if build is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Details:
    """The last reading of the version and components documents, as that poll's sample had it;
    ``polls_since``: the polls since, that read health alone."""

    read_at: datetime
    mark: HealthMark
    version: str | None = None
    build: str | None = None
    component_versions: Mapping[str, str] = field(default_factory=dict)
    deployed_at: datetime | None = None
    deployed_by: str | None = None
    orchestrator: Any = None
    polls_since: int = 0


def full_poll_due(details: Details | None, every: int, last_outcome: Outcome | None) -> bool:
    """Whether this poll reads all three documents from the start: nothing read yet, the
    ``every``-th poll since the last reading, or the last poll was not healthy."""
    return details is None or details.polls_since + 1 >= every or last_outcome is not Outcome.HEALTHY


def details_needed(sample: HealthSample, mark: HealthMark, details: Details) -> bool:
    """After a poll that read health alone: read the rest now? Yes when health answered and either
    the poll is not healthy or health tells of another version or build than at the last reading.
    (When health did not answer, the others would change nothing: assess stops at health.)"""
    return sample.outcome.answered and (sample.outcome is not Outcome.HEALTHY or mark != details.mark)


def remember(sample: HealthSample, mark: HealthMark, head_start: int = 0) -> Details:
    """The reading a poll of all three documents made, to carry into the polls that follow.
    ``head_start`` counts that many polls as already made since: the next full poll comes that
    much sooner (never later), so environments started together do not all read everything on
    the same rounds."""
    return Details(
        polls_since=head_start,
        read_at=sample.ts,
        mark=mark,
        version=sample.version,
        build=sample.build,
        component_versions=sample.component_versions,
        deployed_at=sample.deployed_at,
        deployed_by=sample.deployed_by,
        orchestrator=sample.metrics.get("orchestrator"),
    )


def carry(sample: HealthSample, details: Details) -> HealthSample:
    """A sample from health alone, with the last reading's fields and the mark saying so. Its
    version is the reading's too: health said the same as then (else the rest was read now), and
    the version document's spelling is the one every full poll stores."""
    metrics = dict(sample.metrics)
    if details.orchestrator is not None:
        metrics["orchestrator"] = details.orchestrator
    metrics[CARRIED_MARK] = details.read_at.isoformat()
    return replace(
        sample,
        version=details.version if details.version is not None else sample.version,
        build=details.build,
        component_versions=details.component_versions,
        deployed_at=details.deployed_at,
        deployed_by=details.deployed_by,
        metrics=metrics,
    )


def head_start(name: str, every: int) -> int:
    """A stable share of the first interval between full polls, per environment: 0 to every - 1."""
    return zlib.crc32(name.encode()) % max(1, every)


def polled_without(details: Details) -> Details:
    """One more poll that read health alone."""
    return replace(details, polls_since=details.polls_since + 1)
