"""A deployment watch's decision after each look at the version endpoint (the guide's
deployment-status-monitor): keep waiting, validate, or give up at the deadline."""

from __future__ import annotations

import enum
from datetime import datetime


class Step(enum.StrEnum):
    WAITING_FOR_SERVICE = "waiting"  # no version answer
    WAITING_FOR_VERSION = "old_version"  # another version still runs
    ARRIVED = "arrived"  # the expected version answers: validate now
    TIMED_OUT = "timeout"


def watch_step(expected: str, current: str | None, now: datetime, deadline: datetime) -> Step:
    if current == expected:
        return Step.ARRIVED
    if now >= deadline:
        return Step.TIMED_OUT
    return Step.WAITING_FOR_SERVICE if current is None else Step.WAITING_FOR_VERSION


def progress(expected: str, current: str | None) -> str:
    """The guide's progress lines."""
    if current is None:
        return "waiting for service to respond"
    if current == expected:
        return f"version {expected} confirmed"
    return f"current version: {current}, expecting: {expected}"
