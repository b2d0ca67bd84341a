"""The HTTP server's own protection against clients that hold connections: a cap on connections,
a deadline for each request's headers, and eviction of the longest-waiting connection when the
cap is reached, so /healthz still answers under a slowloris of thousands of connections.

aiohttp has a keep-alive timeout but no header-read timeout and no connection cap; this wraps its
protocol (one per connection) without changing how requests are handled."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

import structlog

log = structlog.get_logger("umig_monitor.web")

_END_OF_HEADERS = b"\r\n\r\n"
_WARN_EVERY = 60.0  # seconds between "connections full" warnings


class ConnectionGuard:
    """Counts the server's connections and knows which to give up first when they run out."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.evicted = 0
        self.timed_out = 0
        # Connections waiting for a request's headers, oldest first: the first to go at the cap.
        self._waiting: OrderedDict[GuardedProtocol, None] = OrderedDict()
        # Every admitted connection, least recently active first: the next to go.
        self._active: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self._last_warned = -_WARN_EVERY

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: GuardedProtocol(self, inner())

    def admit(self, connection: GuardedProtocol) -> None:
        """Room for ``connection``: at the cap, the connection waiting longest for its headers is
        closed, or failing that the one least recently active. A new client always gets in, so
        /healthz answers however many connections others hold."""
        if self.open >= self.max_connections:
            victim = next(iter(self._waiting or self._active), None)
            if victim is not None:
                self.evicted += 1
                victim.close()
                self.released(victim)
                self._warn_full()
        self.open += 1
        self._active[connection] = None

    def touched(self, connection: GuardedProtocol) -> None:
        self._active.move_to_end(connection)

    def waiting(self, connection: GuardedProtocol) -> None:
        self._waiting[connection] = None
        self._waiting.move_to_end(connection)

    def busy(self, connection: GuardedProtocol) -> None:
        self._waiting.pop(connection, None)

    def released(self, connection: GuardedProtocol) -> None:
        """``connection`` no longer counts (closed, or being closed); safe to call twice."""
        self._waiting.pop(connection, None)
        if self._active.pop(connection, 0) is None:
            self.open -= 1

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._last_warned >= _WARN_EVERY:  # once per burst, not per connection
            self._last_warned = now
            log.warning(
                "http_connections_full",
                max_connections=self.max_connections,
                evicted_total=self.evicted,
                header_timeouts_total=self.timed_out,
            )


class GuardedProtocol(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, a header deadline around it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the end of the last chunk: a header end can span two reads
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, but not always a subclass: uvloop's implement asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        self._guard.admit(self)
        self._inner.connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._guard.touched(self)
        seen = self._tail + data
        self._tail = seen[-(len(_END_OF_HEADERS) - 1) :]
        if _END_OF_HEADERS in seen:
            self._headers_complete()
        elif self._timer is None:
            self._await_headers()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._guard.released(self)
        self._closed = True
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def close(self) -> None:
        """Close at once (a header deadline passed, or evicted to make room)."""
        self._cancel_timer()
        self._guard.busy(self)
        if self._transport is not None and not self._closed:
            self._transport.abort()

    def _await_headers(self) -> None:
        self._guard.waiting(self)
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.header_timeout, self._header_deadline)

    def _headers_complete(self) -> None:
        self._cancel_timer()
        self._guard.busy(self)

    def _header_deadline(self) -> None:
        self._timer = None
        self._guard.timed_out += 1
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __getattr__(self, name: str) -> Any:  # aiohttp reaches into its protocol (e.g. shutdown)
        return getattr(self._inner, name)
