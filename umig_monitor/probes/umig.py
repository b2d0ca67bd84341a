"""One poll of a UMIG environment: health, version and components, fetched concurrently."""

from __future__ import annotations

import aiohttp

from umig_monitor.config import Environment
from umig_monitor.config.types import SecretFileError
from umig_monitor.core.assess import Documents
from umig_monitor.core.health import Outcome
from umig_monitor.probes.client import Fetch, auth_headers, cert_expiry, fetch_all

PATHS = ("/admin/health", "/admin/version", "/admin/components")


async def probe_environment(
    session: aiohttp.ClientSession, env: Environment
) -> tuple[Documents, list[Fetch]]:
    try:
        headers = auth_headers(env)
    except SecretFileError as exc:
        return Documents(health=None, health_failure=(Outcome.AUTH_ERROR, str(exc))), []
    health, version, components = await fetch_all(session, env, PATHS, headers)
    failure = (health.failure, health.detail or health.failure.value) if health.failure else None
    docs = Documents(
        health=health.body,
        version=version.body if version.ok else None,
        components=components.body if components.ok else None,
        health_failure=failure,
        response_ms=round(health.elapsed_ms, 3),
        tls_cert_expiry=cert_expiry([health, version, components]),
    )
    return docs, [health, version, components]
