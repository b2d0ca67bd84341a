"""Config value types ops write by hand: durations such as ``30s``/``5m``, ``host:port``, secrets."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator, PlainSerializer, SecretStr
from pydantic_core import PydanticCustomError

from umig_monitor.core import timetext
from umig_monitor.core.timetext import format_duration


def parse_duration(value: Any) -> timedelta:
    """The core parser (``30s``, ``5m``, ``1h30m``, ``1d``, ``2w``, seconds; at most a century),
    its ValueError as a pydantic error so the config message names the key."""
    try:
        return timetext.parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


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
