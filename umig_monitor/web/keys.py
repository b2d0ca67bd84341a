"""What the HTTP handlers may use of the running daemon, as one typed interface (``WebContext``),
and the app key it is stored under. A module of its own so that the handler modules and the
server that mounts them do not import each other, and so that ``web`` depends on this interface,
not on ``app.Daemon`` (which provides it)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from aiohttp import web

if TYPE_CHECKING:
    from umig_monitor.cluster import Coordinator
    from umig_monitor.config import Settings
    from umig_monitor.jobs.samples import SampleWriter
    from umig_monitor.metrics import SelfMetrics
    from umig_monitor.ops.deployments import DeploymentRecorder
    from umig_monitor.pipeline import AlertPipeline
    from umig_monitor.storage import Store
    from umig_monitor.storage.deployments import Watch


class WebContext(Protocol):
    """The services the API, the status page and the probes of the daemon itself use."""

    settings: Settings
    metrics: SelfMetrics
    last_reload: dict[str, Any]

    @property
    def store(self) -> Store: ...
    @property
    def alerts(self) -> AlertPipeline: ...
    @property
    def deployments(self) -> DeploymentRecorder: ...
    @property
    def writer(self) -> SampleWriter: ...
    @property
    def cluster(self) -> Coordinator: ...
    @property
    def timezone(self) -> ZoneInfo: ...
    @property
    def accepting(self) -> bool: ...
    @property
    def polled(self) -> set[str]: ...
    def mine(self) -> frozenset[str]: ...
    def alive(self) -> bool: ...
    def settings_token(self) -> str | None: ...
    async def reload(self) -> tuple[bool, str]: ...
    async def start_watch(
        self, deployment_id: str, environment: str, version: str, within: timedelta | None
    ) -> Watch: ...


DAEMON_KEY: web.AppKey[WebContext] = web.AppKey("daemon")
