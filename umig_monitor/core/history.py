"""The deployment-history file: our JSONL records out, ours and the guide's records in. Pure.

Import is lenient about the file and strict about each record: every record is validated like a
reported event (``build_event``); a bad one is reported with its line number and skipped, and the
rest still import. The guide's ``log-deployment-event.sh`` echoes a multi-line JSON object per
event (``echo "$log_entry"`` of an indented literal), so a record may span lines; jq reads that
fine, and so do we: a record's line number is that of its first line.

The guide's records carry no ``deploymentId`` and a new ``id`` per event (``deploy-{env}-{time}``,
taken when each event is logged), so a start and its success do not share one. We derive them:
a start is its own deployment (its ``id``); a success or failure joins the latest still-open
start of the same environment and version earlier in the file, else it is its own deployment
flagged ``success_without_start``; a rollback is the outcome of the latest deployment of the
version it rolls back earlier in the file (``core.rollouts``), else its own. The event id
becomes ``{id}-{start|success|…}``, unique and stable, so importing the same file twice adds
nothing. Such events are flagged
``imported``. A guide failure with an empty ``error`` keeps its place in the history with the
error "not recorded" rather than being dropped. Our own records (those with ``deploymentId``)
round-trip exactly."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import replace
from typing import Any

from umig_monitor.core.deployments import (
    IMPORTED,
    SHORT_NAME,
    STATUS,
    SUCCESS_WITHOUT_START,
    DeploymentEvent,
    EventError,
    EventType,
    build_event,
    format_timestamp,
    parse_timestamp,
    shown,
)
from umig_monitor.core.versions import try_parse

MAX_RECORD_LINES = 100  # a guide record spans ~9 lines; an object still open after 100 is a broken file
NOT_RECORDED = "not recorded"
_STRINGS = (
    "id",
    "type",
    "timestamp",
    "environment",
    "version",
    "initiatedBy",
    "error",
    "status",
    "fromVersion",
    "toVersion",
    "deploymentId",
)


def _seconds(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value.is_integer() else value


def event_to_record(e: DeploymentEvent) -> dict[str, Any]:
    """One JSONL line's object, in the guide's key order; ``timestamp`` in UTC with ``Z``,
    ``duration`` in seconds (a number), keys without a value left out."""
    record: dict[str, Any] = {
        "id": e.id,
        "type": e.type.value,
        "timestamp": format_timestamp(e.ts),
        "environment": e.environment,
        "version": e.version,
        "initiatedBy": e.initiated_by,
        "duration": _seconds(e.duration_seconds),
        "error": e.error,
        "status": e.status,
        "fromVersion": e.from_version,
        "toVersion": e.to_version,
        "deploymentId": e.deployment_id,
        "metadata": dict(e.metadata) or None,
        "flags": list(e.flags) or None,
    }
    return {k: v for k, v in record.items() if v is not None}


class _Incomplete(Exception):
    """The text so far is the start of a JSON value that continues on the next line."""


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:  # brackets nested thousands deep: not a record
        raise json.JSONDecodeError("nested too deep", text[:80], 0) from None
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) and text.lstrip().startswith("{"):
            raise _Incomplete from None
        raise


def _objects(lines: Iterable[str]) -> Iterator[tuple[int, Any, str | None]]:
    """(first line number, value, None) per JSON value, or (line number, None, error)."""
    pending: list[str] = []
    first = 0
    skipping = False  # after a broken multi-line record: its remaining lines are not records
    for number, line in enumerate(lines, 1):
        if pending:
            pending.append(line)
            try:
                yield first, _load("\n".join(pending)), None
                pending = []
                continue
            except _Incomplete:
                if len(pending) < MAX_RECORD_LINES:
                    continue
                yield first, None, f"JSON object not closed within {MAX_RECORD_LINES} lines"
            except json.JSONDecodeError as exc:
                yield first, None, f"invalid JSON: {exc}"
            pending, skipping = [], True
        if not line.strip():
            continue
        if skipping and not line.lstrip().startswith("{"):
            continue
        skipping = False
        try:
            yield number, _load(line), None
        except _Incomplete:
            pending, first = [line], number
        except json.JSONDecodeError as exc:
            yield number, None, f"invalid JSON: {exc}"
    if pending:
        yield first, None, "the file ends inside this JSON object"


def _check_shape(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise EventError("record", "not a JSON object")
    for key in _STRINGS:
        if record.get(key) is not None and not isinstance(record[key], str):
            raise EventError(key, f"must be a string, got {shown(record[key])}")
    for key in ("id", "type", "timestamp", "environment"):
        if not record.get(key):
            raise EventError(key, "missing")
    duration = record.get("duration")
    if isinstance(duration, bool) or not isinstance(duration, str | int | float | None):
        raise EventError("duration", f"must be seconds or text like 4m30s, got {shown(duration)}")
    if not isinstance(record.get("metadata"), dict | None):
        raise EventError("metadata", "must be an object of strings")
    flags = record.get("flags")
    if flags is not None and not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
        raise EventError("flags", "must be a list of strings")
    return record


def _decode(
    raw: Any,
    known_environments: Collection[str] | None,
    open_starts: dict[tuple[str, str], list[str]],
    deployed: dict[tuple[str, str], str],
) -> DeploymentEvent:
    record = _check_shape(raw)
    try:
        type_ = EventType.from_cli(record["type"])
    except ValueError:
        raise EventError("type", f"unknown event type '{record['type']}'") from None
    status = record.get("status")
    if status is not None and status != STATUS[type_]:
        raise EventError("status", f"'{status}' does not go with {type_.value} ('{STATUS[type_]}')")
    try:
        ts = parse_timestamp(record["timestamp"])
    except ValueError:
        raise EventError("timestamp", f"'{record['timestamp']}' is not ISO-8601 with a UTC offset") from None
    environment = record["environment"]
    ours = record.get("deploymentId") is not None
    parsed = try_parse(record.get("version") or "")
    pair_key = (environment, str(parsed)) if parsed else None
    opened = open_starts.get(pair_key, []) if pair_key else []
    error = record.get("error")
    paired = False
    if ours:
        deployment_id, event_id = record["deploymentId"], record["id"]
    else:
        event_id = f"{record['id']}-{SHORT_NAME[type_]}"
        paired = type_ in (EventType.SUCCESS, EventType.FAILURE) and bool(opened)
        deployment_id = opened[-1] if paired else record["id"]
        if type_ is EventType.ROLLBACK:
            # The outcome of the latest deployment of the version it rolls back (core.rollouts).
            rolled = try_parse(record.get("fromVersion") or record.get("version") or "")
            if rolled is not None:
                deployment_id = deployed.get((environment, str(rolled)), deployment_id)
        if type_ is EventType.FAILURE and not (error or "").strip():
            error = NOT_RECORDED
    event = build_event(
        type=type_,
        environment=environment,
        now=ts,
        known_environments=known_environments if known_environments is not None else (environment,),
        entropy="",
        version=record.get("version"),
        to_version=record.get("toVersion"),
        from_version=record.get("fromVersion"),
        event_id=event_id,
        deployment_id=deployment_id,
        initiated_by=record.get("initiatedBy"),
        duration=record.get("duration"),
        error=error,
        metadata=record.get("metadata"),
        timestamp=ts,
    )
    if ours:
        return replace(event, flags=tuple(record.get("flags") or ()))
    flags = [IMPORTED]
    if type_ in (EventType.SUCCESS, EventType.FAILURE):
        if paired:
            opened.pop()
        else:
            flags.append(SUCCESS_WITHOUT_START)
    elif type_ is EventType.START and pair_key is not None:
        open_starts.setdefault(pair_key, []).append(event.deployment_id)
    if type_ is not EventType.ROLLBACK and pair_key is not None:
        deployed[pair_key] = event.deployment_id
    return replace(event, flags=tuple(flags))


def parse_history(
    lines: Iterable[str], known_environments: Collection[str] | None
) -> tuple[list[DeploymentEvent], list[tuple[int, str]]]:
    """Events in file order, and (1-based line number, reason) for every record skipped.
    ``known_environments=None`` accepts any environment name."""
    events: list[DeploymentEvent] = []
    errors: list[tuple[int, str]] = []
    open_starts: dict[tuple[str, str], list[str]] = {}
    deployed: dict[tuple[str, str], str] = {}  # the latest deployment of each environment and version
    for number, value, problem in _objects(lines):
        if problem is not None:
            errors.append((number, problem))
            continue
        try:
            events.append(_decode(value, known_environments, open_starts, deployed))
        except EventError as exc:
            errors.append((number, str(exc)))
    return events, errors
