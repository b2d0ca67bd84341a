"""A document built from storage at most once per max age and served from memory in between, with
an ETag: the status page and the environments document. Requests that arrive while it is being
built wait for that one build (single-flight), however many there are."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property

from aiohttp import web


@dataclass(frozen=True)
class Built:
    body: bytes
    started: float  # loop time the build began reading at; its age is measured from there
    key: object  # what it was built for (the settings object): a reload makes it stale at once

    @cached_property
    def etag(self) -> str:
        """Quoted, strong: a digest of the body, so a new build with new content has a new one.
        Computed when first asked for: /metrics (3.4 MB at 1,000 environments) never is, and
        hashing its body took a tenth of a scrape."""
        return f'"{hashlib.blake2b(self.body, digest_size=12).hexdigest()}"'


class Rendered:
    """``get(key)`` returns a build at most ``max_age`` seconds old made for ``key``, or waits for the
    one build under way. A failed build is not kept: every waiter gets its exception, and the next
    request tries again."""

    def __init__(self, build: Callable[[], Awaitable[bytes]], max_age: Callable[[], float]) -> None:
        self._build = build
        self._max_age = max_age
        self._current: Built | None = None
        self._pending: asyncio.Task[Built] | None = None
        self.builds = 0  # builds begun, for tests and benchmarks

    def fresh(self, key: object, now: float) -> Built | None:
        current = self._current
        if current is not None and current.key is key and now - current.started < self._max_age():
            return current
        return None

    async def get(self, key: object) -> Built:
        loop = asyncio.get_running_loop()
        current = self.fresh(key, loop.time())
        if current is not None:
            return current
        if self._pending is None:
            # A task of its own: a client that goes away while waiting does not cancel the build
            # the others are waiting for.
            self._pending = loop.create_task(self._run(key, loop.time()), name="render")
            # Read here too, so a build whose waiters all went away leaves no unread exception.
            self._pending.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._pending)

    async def _run(self, key: object, started: float) -> Built:
        self.builds += 1
        try:
            body = await self._build()
            built = Built(body, started, key)
            self._current = built
            return built
        finally:
            self._pending = None


def not_modified(request: web.Request, built: Built) -> bool:
    """If-None-Match names this build (weak comparison, as RFC 9110 asks for this header)."""
    tags = request.if_none_match
    if not tags:
        return False
    return any(tag.value == "*" or f'"{tag.value}"' == built.etag for tag in tags)


def respond(request: web.Request, built: Built, content_type: str, headers: dict[str, str]) -> web.Response:
    """200 with the body, or 304 when the client holds this build; the same headers either way."""
    out = {**headers, "ETag": built.etag}
    if not_modified(request, built):
        return web.Response(status=304, headers=out)
    return web.Response(body=built.body, content_type=content_type, charset="utf-8", headers=out)
