"""Fetch one UMIG admin endpoint and say what happened, as a value: never an exception."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp

from umig_monitor.config import Environment, Settings
from umig_monitor.config.models import BasicAuth, BearerAuth
from umig_monitor.config.types import SecretFileError, read_secret
from umig_monitor.core.health import Outcome
from umig_monitor.probes.jsondoc import loads_document
from umig_monitor.probes.tls import PeerCertResponse

USER_AGENT = "umig-monitor"


@dataclass(frozen=True, slots=True)
class Fetch:
    """The result of one request. ``failure`` is None when ``body`` holds a parsed JSON document.
    ``cert_expiry``: the earliest expiry of the TLS peer's certificates (https, once connected)."""

    url: str
    status: int | None
    elapsed_ms: float
    body: Any = None
    failure: Outcome | None = None
    detail: str | None = None
    cert_expiry: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def make_session(settings: Settings) -> aiohttp.ClientSession:
    limit = settings.daemon.max_concurrent_polls * 3
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        # Each request sets its own total timeout from the environment's config.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
        auto_decompress=True,
        response_class=PeerCertResponse,
    )


def _first_byte(raw: bytes) -> bytes:
    """The first non-blank byte, without copying the body."""
    for i in range(min(len(raw), 64)):
        if raw[i] not in b" \t\r\n":
            return raw[i : i + 1]
    return b""


@lru_cache(maxsize=64)
def _ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _tls(env: Environment) -> ssl.SSLContext | bool:
    if not env.tls.verify:
        return False
    return _ssl_context(env.tls.ca_file) if env.tls.ca_file else True


def auth_headers(env: Environment) -> dict[str, str]:
    """Authorization for one environment; secret files are read at use time so rotation works."""
    auth = env.auth
    if isinstance(auth, BasicAuth):
        password = read_secret(auth.password, auth.password_file) or ""
        token = base64.b64encode(f"{auth.username}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    if isinstance(auth, BearerAuth):
        return {"Authorization": f"Bearer {read_secret(auth.token, auth.token_file) or ''}"}
    return {}


def cert_expiry(fetches: Sequence[Fetch]) -> datetime | None:
    """The earliest certificate expiry any of a poll's requests saw."""
    return min((f.cert_expiry for f in fetches if f.cert_expiry is not None), default=None)


def _failed(url: str, started: float, failure: Outcome, detail: str) -> Fetch:
    return Fetch(url, None, (time.perf_counter() - started) * 1000, None, failure, detail)


async def fetch_json(
    session: aiohttp.ClientSession,
    env: Environment,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> Fetch:
    url = env.endpoint(path)
    started = time.perf_counter()
    try:
        request_headers = headers if headers is not None else auth_headers(env)
    except SecretFileError as exc:
        return _failed(url, started, Outcome.AUTH_ERROR, str(exc))
    try:
        async with asyncio.timeout(env.timeout.total_seconds()):
            return await _fetch(session, env, url, method, request_headers, started)
    except TimeoutError:
        return _failed(url, started, Outcome.TIMEOUT, _no_answer(env))


async def fetch_all(
    session: aiohttp.ClientSession, env: Environment, paths: Sequence[str], headers: dict[str, str]
) -> list[Fetch]:
    """GET ``paths`` concurrently under one deadline (the environment's timeout, as each would have
    alone): one timer per poll instead of one per request. Requests that answered in time keep
    their results; only those still running at the deadline are timeouts."""
    started = time.perf_counter()
    urls = [env.endpoint(path) for path in paths]
    results: list[Fetch | None] = [None] * len(paths)

    async def one(i: int) -> None:
        results[i] = await _fetch(session, env, urls[i], "GET", headers, time.perf_counter())

    # On expiry the timeout cancels gather, which cancels and waits for the requests still running.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(env.timeout.total_seconds()):
            if len(paths) == 1:  # most polls (health alone): no task of its own to schedule
                await one(0)
            else:
                await asyncio.gather(*(one(i) for i in range(len(paths))))
    return [
        fetch if fetch is not None else _failed(url, started, Outcome.TIMEOUT, _no_answer(env))
        for fetch, url in zip(results, urls, strict=True)
    ]


def _no_answer(env: Environment) -> str:
    return f"no answer within {env.timeout.total_seconds():g}s"


async def _fetch(
    session: aiohttp.ClientSession,
    env: Environment,
    url: str,
    method: str,
    request_headers: dict[str, str],
    started: float,
) -> Fetch:
    """One request without a timeout of its own: the caller sets the deadline."""

    expiry: datetime | None = None

    def done(status: int | None, failure: Outcome | None, detail: str | None, body: Any = None) -> Fetch:
        elapsed = (time.perf_counter() - started) * 1000
        return Fetch(url, status, elapsed, body, failure, detail, expiry)

    limit = env.max_body_bytes
    try:
        async with session.request(
            method, url, headers=request_headers, ssl=_tls(env), allow_redirects=False
        ) as resp:
            expiry = resp.peer_cert_expiry if isinstance(resp, PeerCertResponse) else None
            status = resp.status
            if status in (401, 403):
                return done(status, Outcome.AUTH_ERROR, f"HTTP {status}")
            if 300 <= status < 400:
                location = resp.headers.get("Location", "")[:256]
                kind = Outcome.AUTH_ERROR if "login" in location.lower() else Outcome.HTTP_ERROR
                return done(status, kind, f"HTTP {status} redirect to {location or '?'} (not followed)")
            if status >= 400 or status < 200:
                return done(status, Outcome.HTTP_ERROR, f"HTTP {status}")
            if resp.content_length is not None and resp.content_length > limit:
                return done(
                    status,
                    Outcome.INVALID_RESPONSE,
                    f"body of {resp.content_length} bytes exceeds {limit}",
                )
            if resp.content_length is not None:
                raw = await resp.read()  # announced and within the limit: one read
            else:
                chunks = []
                size = 0
                async for chunk in resp.content.iter_any():
                    size += len(chunk)
                    if size > limit:
                        return done(status, Outcome.INVALID_RESPONSE, f"body exceeds {limit} bytes (cut off)")
                    chunks.append(chunk)
                raw = b"".join(chunks)
            content_type = resp.content_type
    except TimeoutError:  # aiohttp's own (connect, read): they are ClientErrors too, but timeouts first
        return done(None, Outcome.TIMEOUT, _no_answer(env))
    except aiohttp.ClientConnectorCertificateError as exc:
        return done(None, Outcome.UNREACHABLE, f"TLS certificate error: {exc.certificate_error}")
    except aiohttp.ClientSSLError as exc:
        return done(None, Outcome.UNREACHABLE, f"TLS error: {exc}")
    except aiohttp.ClientConnectorDNSError as exc:
        return done(None, Outcome.UNREACHABLE, f"DNS lookup failed for {exc.host}")
    except aiohttp.ClientConnectorError as exc:
        return done(None, Outcome.UNREACHABLE, f"connection failed: {exc.strerror or exc}")
    except aiohttp.ServerDisconnectedError:
        return done(None, Outcome.UNREACHABLE, "server closed the connection without a response")
    except (aiohttp.ClientPayloadError, aiohttp.ClientOSError, ConnectionResetError) as exc:
        return done(None, Outcome.UNREACHABLE, f"connection reset: {exc}")
    except aiohttp.ClientError as exc:
        return done(None, Outcome.UNREACHABLE, f"{type(exc).__name__}: {exc}")
    if content_type == "text/html" or _first_byte(raw) == b"<":
        return done(status, Outcome.INVALID_RESPONSE, "HTML page (a login page?) instead of JSON")
    try:
        body = loads_document(raw)
    except ValueError as exc:
        return done(status, Outcome.INVALID_RESPONSE, str(exc))
    return done(status, None, None, body)
