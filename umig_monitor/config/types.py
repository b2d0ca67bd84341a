"""Config value types ops write by hand: durations such as ``30s``/``5m``, ``host:port``, secrets."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator, PlainSerializer, SecretStr
from pydantic_core import PydanticCustomError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``30s``, ``5m``, ``1h30m``, ``1d``, a bare number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise PydanticCustomError("duration", "invalid duration '{value}'", {"value": value})
    if isinstance(value, int | float):
        if value < 0:
            raise PydanticCustomError("duration", "invalid duration '{value}': negative", {"value": value})
        return timedelta(seconds=value)
    text = str(value).strip().replace(" ", "")
    pos = 0
    total = 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise PydanticCustomError(
            "duration", "invalid duration '{value}' (use e.g. 30s, 5m, 1h, 1d)", {"value": value}
        )
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, for API output and docs: 90s -> '1m30s'."""
    seconds = value.total_seconds()
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


def parse_positive_duration(value: Any) -> timedelta:
    result = parse_duration(value)
    if result <= timedelta(0):
        raise PydanticCustomError(
            "duration", "duration must be greater than 0, got '{value}'", {"value": value}
        )
    return result


PositiveDuration = Annotated[
    timedelta, BeforeValidator(parse_positive_duration), PlainSerializer(format_duration, return_type=str)
]


def split_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:9464``, ``[::1]:9464`` or ``:9464`` (all interfaces) -> (host, port)."""
    text = str(value).strip()
    m = re.fullmatch(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})", text)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise PydanticCustomError(
            "listen",
            "invalid listen address '{value}' (use host:port, e.g. 127.0.0.1:9464)",
            {"value": value},
        )
    host = m.group("v6") or m.group("host") or "0.0.0.0"
    return host, int(m.group("port"))


def _check_listen(value: Any) -> str:
    split_listen(str(value))
    return str(value).strip()


# Kept as text (a tuple would make pydantic-settings expect JSON in UMIG_MONITOR_DAEMON__LISTEN).
Listen = Annotated[str, BeforeValidator(_check_listen)]


class SecretFileError(OSError):
    """A ``*_file`` secret could not be read; the message names the file and the reason."""


def read_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """The secret's current value. Files are read at use time (as Alertmanager does) so a
    rotated secret is picked up without a reload."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return None
    try:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SecretFileError(f"cannot read secret file {file}: {exc.strerror or exc}") from exc


def redact_url(url: str) -> str:
    """Drop credentials and query strings from a URL before it is logged or shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username or parts.password:
        netloc = f"***@{netloc}"
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
