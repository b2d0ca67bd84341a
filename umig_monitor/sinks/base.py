"""The sink contract, after Alertmanager's notify.go: ``send()`` never raises, it answers whether
the message went out and, if not, whether trying again can help. The outbox retries on that
answer alone, so every failure is classified here or in the sink, once."""

from __future__ import annotations

import asyncio
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import aiohttp

from umig_monitor.config.models import SinkBase
from umig_monitor.config.types import SecretFileError
from umig_monitor.core.alerts import Notification
from umig_monitor.sinks.ratelimit import Clock, RateGate, Sleep

SNIPPET_CHARS = 200


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one delivery attempt came to. ``retry_after`` (seconds) is the receiver's own wish,
    from a 429/503 ``Retry-After``; the retry stage should wait at least that long."""

    ok: bool
    retryable: bool
    detail: str
    retry_after: float | None = None

    @classmethod
    def delivered(cls, detail: str = "delivered") -> SendResult:
        return cls(True, False, detail)

    @classmethod
    def retry(cls, detail: str, retry_after: float | None = None) -> SendResult:
        return cls(False, True, detail, retry_after)

    @classmethod
    def failed(cls, detail: str) -> SendResult:
        return cls(False, False, detail)


class PayloadError(ValueError):
    """The notification cannot be turned into a message for this sink; retrying cannot help."""


class Sink(Protocol):
    """What the notify stage needs from a sink."""

    @property
    def name(self) -> str: ...

    @property
    def timeout(self) -> float:
        """The longest one send can take, in seconds."""
        ...

    def build_payload(self, notification: Notification) -> Any: ...

    async def send(self, notification: Notification) -> SendResult: ...


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110).
    Unparseable values are ignored rather than trusted."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" dates parse naive; HTTP-dates are GMT by definition
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def snippet(body: bytes | str, limit: int = SNIPPET_CHARS) -> str:
    """A receiver's answer, cut short and on one line, for a ``detail``."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify_http(status: int, body: bytes, retry_after: float | None, where: str) -> SendResult:
    """Alertmanager's rule (notify/util.go) plus 429/408: the server may recover from 5xx and
    from 'too many requests' or 'request timeout'; any other 4xx means our request is wrong."""
    said = f": {snippet(body)}" if body.strip() else ""
    if 200 <= status < 300:
        return SendResult.delivered(f"HTTP {status} from {where}")
    if status in (408, 429) or status >= 500:
        return SendResult.retry(f"HTTP {status} from {where}{said}", retry_after)
    if 300 <= status < 400:
        return SendResult.failed(f"HTTP {status} from {where}: redirects are not followed")
    return SendResult.failed(f"HTTP {status} from {where}{said}")


ConfigT = TypeVar("ConfigT", bound=SinkBase)
PayloadT = TypeVar("PayloadT")


class SinkSender(ABC, Generic[ConfigT, PayloadT]):
    """The shared half of every sink: pacing, the receiver's holds, and the promise that
    ``send()`` returns a SendResult whatever happens. Subclasses write ``build_payload`` (pure)
    and ``deliver`` (I/O, classifies the errors it knows)."""

    sink_type: ClassVar[str]
    config_type: ClassVar[type[SinkBase]]

    def __init__(
        self,
        name: str,
        config: ConfigT,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not isinstance(config, self.config_type):
            raise TypeError(f"sink {name!r}: {type(self).__name__} needs {self.config_type.__name__}")
        self._name = name
        self.config = config
        self.session = session
        self.wall_clock = wall_clock
        self.gate = RateGate(config.rate_limit_per_second, clock=clock, sleep=sleep)

    @property
    def name(self) -> str:
        return self._name

    @property
    def timeout(self) -> float:
        return self.config.timeout.total_seconds()

    @abstractmethod
    def build_payload(self, notification: Notification) -> PayloadT:
        """The message for this notification. Pure: no I/O, no clock, same input -> same output."""

    @abstractmethod
    async def deliver(self, notification: Notification) -> SendResult:
        """One attempt; may raise SecretFileError or PayloadError, ``send`` classifies those."""

    async def send(self, notification: Notification) -> SendResult:
        held = self.gate.held_for()
        if held > 0:
            return SendResult.retry(f"receiver asked to wait {held:.1f}s more", held)
        try:
            await self.gate.wait()
            held = self.gate.held_for()  # another send may have been told to back off meanwhile
            if held > 0:
                return SendResult.retry(f"receiver asked to wait {held:.1f}s more", held)
            result = await self.deliver(notification)
        except SecretFileError as exc:
            return SendResult.failed(f"bad sink configuration: {exc}")
        except PayloadError as exc:
            return SendResult.failed(f"cannot build the message: {exc}")
        except OSError as exc:  # network trouble a specific handler did not name
            return SendResult.retry(f"{type(exc).__name__}: {snippet(str(exc))}")
        except Exception as exc:  # the contract: a sink answers, it does not raise
            return SendResult.failed(f"unexpected {type(exc).__name__}: {snippet(str(exc))}")
        if result.retry_after:
            self.gate.hold(result.retry_after)
        return result
