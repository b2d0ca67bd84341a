"""When a TLS peer's certificates expire, read from the connection each response came on, as
blackbox_exporter's ``probe_ssl_earliest_cert_expiry``: the earliest notAfter of the chain the
peer sent (leaf and intermediates), whether or not it was verified.

Python 3.11 has no public API for the chain: ``SSLObject.getpeercert()`` gives only the leaf,
and only when verification is on; ``get_unverified_chain()`` is public from 3.13 (as DER bytes).
The private ``_sslobj.get_unverified_chain()`` (3.10+) gives the certificates as decoded objects,
so that is used where it exists, and the verified leaf otherwise."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.connector import Connection


class PeerCertResponse(aiohttp.ClientResponse):
    """A response that knows when its connection's peer certificates expire (None for plain
    HTTP). Read as the response starts: a small body is read with the headers, and the connection
    is back in the pool before the caller sees the response."""

    peer_cert_expiry: datetime | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        transport = connection.transport
        if transport is not None:
            self.peer_cert_expiry = earliest_expiry(transport.get_extra_info("ssl_object"))
        return await super().start(connection)


def earliest_expiry(ssl_object: object) -> datetime | None:
    """The earliest notAfter of the peer's chain, or None when it cannot be read."""
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    stamps = _chain_not_after(ssl_object)
    if not stamps:
        leaf = ssl_object.getpeercert()  # {} without verification
        stamps = [leaf.get("notAfter")] if leaf else []
    times = [t for t in (parse_not_after(s) for s in stamps) if t is not None]
    return min(times, default=None)


def _chain_not_after(ssl_object: ssl.SSLObject) -> list[Any]:
    inner = getattr(ssl_object, "_sslobj", None)
    read_chain = getattr(inner, "get_unverified_chain", None)
    if read_chain is None:
        return []
    try:
        chain: Iterable[Any] = read_chain() or ()
        return [cert.get_info().get("notAfter") for cert in chain]
    except (AttributeError, TypeError, ValueError, ssl.SSLError):
        return []


def parse_not_after(value: Any) -> datetime | None:
    """OpenSSL's ``Jun  1 12:00:00 2025 GMT`` as an aware UTC datetime; None when malformed."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None
