"""Starting and stopping the simulator.

``start_simulator`` is for tests and the demo; ``serve`` backs ``umig-monitor simulate``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from types import TracebackType

import structlog
from aiohttp import web
from yarl import URL

from umig_monitor.simulator.app import DEFAULT_PREFIX, build_app, normalise_prefix
from umig_monitor.simulator.control import CONTROL_PREFIX
from umig_monitor.simulator.registry import DEFAULT_ENVIRONMENTS, Simulator

# Held requests are released on shutdown, so this only bounds a handler that ignores that.
_SHUTDOWN_TIMEOUT_S = 2.0

log = structlog.get_logger(__name__)


class RunningSimulator:
    """A simulator listening on a port; ``stop()`` (or leaving ``async with``) shuts it down."""

    def __init__(
        self,
        simulator: Simulator,
        runner: web.AppRunner,
        host: str,
        port: int,
        prefix: str,
        scheme: str = "http",
    ) -> None:
        self.simulator = simulator
        self._runner = runner
        self._url = URL.build(scheme=scheme, host=host, port=port)
        self.port = port
        self.api_prefix = prefix
        self._stopped = False

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` when serving TLS)"""
        return str(self._url)

    def base_url(self, environment: str) -> str:
        """What umig-monitor's config calls the environment's ``base_url``: ``http://127.0.0.1:PORT/uat``."""
        return str(self._url.with_path(f"/{environment}"))

    def api_url(self, environment: str, path: str) -> str:
        """``api_url("uat", "admin/health")`` -> ``http://127.0.0.1:PORT/uat/rest/.../admin/health``."""
        return f"{self.base_url(environment)}{self.api_prefix}/{path.lstrip('/')}"

    def control_url(self, path: str = "") -> str:
        """``control_url("environments/uat/faults")`` -> ``http://127.0.0.1:PORT/_control/...``."""
        return str(self._url.with_path(f"{CONTROL_PREFIX}/{path.lstrip('/')}".rstrip("/")))

    async def stop(self) -> None:
        """Stop listening, release requests held by faults, and close every connection. Idempotent."""
        if not self._stopped:
            self._stopped = True
            await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_simulator(
    envs: Sequence[str] = DEFAULT_ENVIRONMENTS,
    host: str = "127.0.0.1",
    port: int = 0,
    prefix: str = DEFAULT_PREFIX,
    *,
    simulator: Simulator | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> RunningSimulator:
    """Serve ``envs`` on ``host:port`` (port 0 picks a free one) and return once it is listening.

    Pass ``simulator`` to drive one you built yourself (e.g. with a fake clock); ``envs`` are then
    added to it if it does not serve them yet. With ``ssl_context`` it serves HTTPS with that
    context's certificate: stop it and start another on the same port and simulator to renew.
    """
    if simulator is None:
        simulator = Simulator(envs)
    else:
        for environment in envs:
            simulator.add_environment(environment)
    api_prefix = normalise_prefix(prefix)
    runner = web.AppRunner(
        build_app(simulator, api_prefix),
        handle_signals=False,
        shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        # A client that gives up (timeout, body limit) should free its handler at once.
        handler_cancellation=True,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port: int = runner.addresses[0][1]
    scheme = "https" if ssl_context is not None else "http"
    return RunningSimulator(simulator, runner, host, bound_port, api_prefix, scheme)


async def serve(
    envs: Sequence[str] = DEFAULT_ENVIRONMENTS,
    host: str = "127.0.0.1",
    port: int = 8090,
    prefix: str = DEFAULT_PREFIX,
) -> None:
    """Run the simulator until cancelled; each environment's base URL is logged at start."""
    running = await start_simulator(envs, host, port, prefix)
    try:
        log.info("simulator_started", url=running.url, api_prefix=running.api_prefix, envs=list(envs))
        for environment in running.simulator.environments:
            log.info("simulator_environment_served", env=environment, url=running.base_url(environment))
        await asyncio.Event().wait()
    finally:
        await running.stop()
        log.info("simulator_stopped", url=running.url)
