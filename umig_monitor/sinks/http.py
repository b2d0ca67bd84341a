"""One JSON POST for the HTTP sinks (webhook, Alertmanager, Slack), with aiohttp's failures
turned into SendResults. Details name the receiver by its origin only: webhook URLs often carry
their secret in the path (Slack, Teams, Discord) or the query, which redact_url would keep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from umig_monitor.sinks.base import PayloadError, SendResult, parse_retry_after

MAX_ANSWER_BYTES = 4096  # enough for "ok" or an error message; the rest is not read


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: bytes  # the first MAX_ANSWER_BYTES of it
    retry_after: float | None


def origin(url: str) -> str:
    """``https://hooks.example.com:8443`` from a URL: no credentials, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not host:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}"


def encode_json(payload: Any) -> bytes:
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"not JSON-serialisable: {exc}") from exc


async def _read_some(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await resp.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    payload: Any,
    *,
    headers: Mapping[str, str],
    time_limit: float,
    where: str,
    now: datetime,
) -> HttpAnswer | SendResult:
    """POST ``payload`` as JSON. Returns the answer to classify, or a SendResult when there was
    none. ``where`` names the receiver in details; ``now`` dates an HTTP-date Retry-After."""
    data = encode_json(payload)
    request_headers = {**headers, "Content-Type": "application/json"}
    try:
        async with (
            asyncio.timeout(time_limit),
            session.post(url, data=data, headers=request_headers, allow_redirects=False) as resp,
        ):
            body = await _read_some(resp, MAX_ANSWER_BYTES)
            retry_after = None
            if resp.status in (429, 503):
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), now)
            return HttpAnswer(resp.status, body, retry_after)
    except TimeoutError:
        return SendResult.retry(f"no answer from {where} within {time_limit:g}s")
    except aiohttp.InvalidURL:
        # str(exc) would repeat the URL, secret and all.
        return SendResult.failed(f"invalid URL for {where}")
    except aiohttp.ClientConnectorCertificateError as exc:
        return SendResult.failed(f"TLS certificate of {where} not trusted: {exc.certificate_error}")
    except aiohttp.ClientConnectorDNSError:
        return SendResult.retry(f"DNS lookup failed for {where}")
    except aiohttp.ClientConnectorError as exc:
        return SendResult.retry(f"cannot connect to {where}: {exc.strerror or type(exc.os_error).__name__}")
    except aiohttp.ServerDisconnectedError:
        return SendResult.retry(f"{where} closed the connection without an answer")
    except aiohttp.ClientError as exc:
        return SendResult.retry(f"HTTP error talking to {where}: {type(exc).__name__}")
