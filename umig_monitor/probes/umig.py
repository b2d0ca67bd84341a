"""One poll of a UMIG environment: health, version and components, fetched concurrently; or health
alone, completed with the other two when what it says calls for them (see core.details)."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from umig_monitor.config import Environment
from umig_monitor.config.types import SecretFileError
from umig_monitor.core.assess import Documents
from umig_monitor.core.health import Outcome
from umig_monitor.probes.client import Fetch, auth_headers, cert_expiry, fetch_all

PATHS = ("/admin/health", "/admin/version", "/admin/components")


async def probe_environment(
    session: aiohttp.ClientSession, env: Environment, *, full: bool = True
) -> tuple[Documents, list[Fetch]]:
    """``full``: the three documents at once; else health alone (``read_details`` adds the rest).
    The fetches come in the order of PATHS."""
    try:
        headers = auth_headers(env)
    except SecretFileError as exc:
        return Documents(health=None, health_failure=(Outcome.AUTH_ERROR, str(exc))), []
    fetches = await fetch_all(session, env, PATHS if full else PATHS[:1], headers)
    return documents(fetches), fetches


async def read_details(
    session: aiohttp.ClientSession, env: Environment, fetches: list[Fetch]
) -> tuple[Documents, list[Fetch]]:
    """A poll that read health alone, completed with version and components (concurrently, under
    a deadline of their own)."""
    try:
        headers = auth_headers(env)
    except SecretFileError:  # readable a moment ago for health: the poll stays as it was
        return documents(fetches), fetches
    completed = [*fetches[:1], *await fetch_all(session, env, PATHS[1:], headers)]
    return documents(completed), completed


def documents(fetches: Sequence[Fetch]) -> Documents:
    """What the fetches (health first, then version and components if read) give assess."""
    health = fetches[0]
    version = fetches[1] if len(fetches) > 1 else None
    components = fetches[2] if len(fetches) > 2 else None
    failure = (health.failure, health.detail or health.failure.value) if health.failure else None
    return Documents(
        health=health.body,
        version=version.body if version is not None and version.ok else None,
        components=components.body if components is not None and components.ok else None,
        health_failure=failure,
        response_ms=round(health.elapsed_ms, 3),
        tls_cert_expiry=cert_expiry(fetches),
    )
