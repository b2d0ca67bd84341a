"""The app's typed keys, in a module of their own so that the handler modules and the server that
mounts them do not import each other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from umig_monitor.app import Daemon

DAEMON_KEY: web.AppKey[Daemon] = web.AppKey("daemon")
