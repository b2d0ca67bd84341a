"""The certificate expiry a poll reads from an https environment: the simulator serving TLS with
certificates made by trustme, verified or not, with an intermediate that expires first."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from umig_monitor.config import Environment, parse_config
from umig_monitor.probes.client import make_session
from umig_monitor.probes.tls import parse_not_after
from umig_monitor.probes.umig import probe_environment
from umig_monitor.simulator import RunningSimulator, start_simulator

NOW = datetime.now(UTC).replace(microsecond=0)


def server_context(*pems: bytes, key: bytes, tmp_path: Path) -> ssl.SSLContext:
    """A server context presenting the chain ``pems`` (leaf first)."""
    chain = tmp_path / f"chain-{len(list(tmp_path.iterdir()))}.pem"
    chain.write_bytes(key + b"".join(pems))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(chain)
    return ctx


def leaf_context(ca: trustme.CA, not_after: datetime, tmp_path: Path) -> ssl.SSLContext:
    leaf = ca.issue_cert("127.0.0.1", not_before=NOW - timedelta(days=30), not_after=not_after)
    pems = [blob.bytes() for blob in leaf.cert_chain_pems]
    return server_context(*pems, key=leaf.private_key_pem.bytes(), tmp_path=tmp_path)


def intermediate(root: trustme.CA, not_after: datetime) -> tuple[trustme.CA, bytes]:
    """A CA below ``root`` that expires at ``not_after`` (trustme's own never do soon), and its PEM."""
    root_cert = x509.load_pem_x509_certificate(root.cert_pem.bytes())
    root_key = serialization.load_pem_private_key(root.private_key_pem.bytes(), None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "umig intermediate")]))
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return trustme.CA.from_pem(pem, key_pem), pem


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = make_session(parse_config(""))
    try:
        yield s
    finally:
        await s.close()


async def https_simulator(ctx: ssl.SSLContext) -> RunningSimulator:
    return await start_simulator(("production",), ssl_context=ctx)


def environment(sim: RunningSimulator, tls: str) -> Environment:
    text = f"environments:\n  production:\n    base_url: {sim.base_url('production')}\n    tls: {tls}\n"
    return parse_config(text).environments["production"]


async def test_verified_leaf(
    ca: trustme.CA, ca_file: Path, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    expires = NOW + timedelta(days=5)
    async with await https_simulator(leaf_context(ca, expires, tmp_path)) as sim:
        assert sim.url.startswith("https://")
        docs, fetches = await probe_environment(session, environment(sim, f"{{ca_file: {ca_file}}}"))
    assert docs.health_failure is None
    assert [f.cert_expiry for f in fetches] == [expires] * 3
    assert docs.tls_cert_expiry == expires


async def test_unverified_and_expired(ca: trustme.CA, tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Without verification the chain is still read: here a certificate that expired yesterday."""
    expired = NOW - timedelta(days=1)
    async with await https_simulator(leaf_context(ca, expired, tmp_path)) as sim:
        docs, _ = await probe_environment(session, environment(sim, "{verify: false}"))
        # with verification the handshake fails, and no certificate is read
        verified, fetches = await probe_environment(session, environment(sim, "{verify: true}"))
    assert docs.health_failure is None
    assert docs.tls_cert_expiry == expired
    assert verified.health_failure is not None
    assert "certificate" in verified.health_failure[1]
    assert verified.tls_cert_expiry is None
    assert [f.cert_expiry for f in fetches] == [None] * 3


async def test_earliest_of_the_chain(
    ca: trustme.CA, ca_file: Path, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """A leaf valid for 90 days below an intermediate that expires in 3: the intermediate counts."""
    soon = NOW + timedelta(days=3)
    issuer, issuer_pem = intermediate(ca, soon)
    leaf = issuer.issue_cert(
        "127.0.0.1", not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=90)
    )
    ctx = server_context(
        leaf.cert_chain_pems[0].bytes(), issuer_pem, key=leaf.private_key_pem.bytes(), tmp_path=tmp_path
    )
    async with await https_simulator(ctx) as sim:
        docs, _ = await probe_environment(session, environment(sim, f"{{ca_file: {ca_file}}}"))
    assert docs.health_failure is None
    assert docs.tls_cert_expiry == soon


async def test_plain_http_reads_none(session: aiohttp.ClientSession) -> None:
    async with await start_simulator(("production",)) as sim:
        docs, fetches = await probe_environment(session, environment(sim, "{verify: true}"))
    assert docs.health_failure is None
    assert docs.tls_cert_expiry is None
    assert [f.cert_expiry for f in fetches] == [None] * 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Jun  1 12:00:00 2025 GMT", datetime(2025, 6, 1, 12, 0, tzinfo=UTC)),
        ("Dec 31 23:59:59 9999 GMT", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("not a date", None),
        ("", None),
        (None, None),
        (1717243200, None),
        ("Jun  1 12:00:00 2025 GMT" + " " * 100, None),  # over the bound
    ],
)
def test_parse_not_after(text: object, expected: datetime | None) -> None:
    assert parse_not_after(text) == expected
