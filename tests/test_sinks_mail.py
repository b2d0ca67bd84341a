"""The mail sink against aiosmtpd servers on free loopback ports: delivery, AUTH, STARTTLS and
implicit TLS with a throwaway CA, and the SMTP reply classes that decide retries."""

from __future__ import annotations

import asyncio
import email
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.sink_cases import CASES, FIRING, check_golden, notification
from tests.support import free_port
from umig_monitor.config.models import MailSink
from umig_monitor.core.alerts import NotificationKind
from umig_monitor.sinks import MailSinkSender, build_sink
from umig_monitor.sinks.mail import subject

RECIPIENTS = ["ops-team@company.com", "oncall@company.com"]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def mail(port: int, **changes: Any) -> MailSink:
    data: dict[str, Any] = {
        "type": "mail",
        "host": "127.0.0.1",
        "port": port,
        "from": "UMIG Monitor <umig-monitor@company.com>",
        "to": RECIPIENTS,
        "timeout": "3s",
    }
    data.update(changes)
    return MailSink.model_validate(data)


class Inbox:
    """An aiosmtpd handler that keeps what it is given, or answers a scripted reply."""

    def __init__(
        self, rcpt_reply: str | None = None, data_reply: str | None = None, refuse: str | None = None
    ) -> None:
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.refuse = refuse  # one recipient refused with 550
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        if address == self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def message(self, index: int = 0) -> EmailMessage:
        raw = self.envelopes[index].content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


@contextmanager
def smtp_server(handler: Inbox, port: int | None = None, **kwargs: Any) -> Iterator[int]:
    port = port or free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@dataclass
class Certs:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def certs() -> Certs:
    try:
        import trustme
    except ImportError:  # like require_tool: skipped on a developer machine, a failure in CI
        if os.environ.get("CI") == "true":
            pytest.fail("trustme is not installed (pip install -e '.[test]')")
        pytest.skip("trustme is not installed")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Certs(server, client)


def accept_one_user(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"alerts",
        b"s3cret",
    )
    return AuthResult(success=ok, handled=False)


# --- pure: subjects and the message -------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
async def test_message_matches_golden(session: aiohttp.ClientSession, case: str) -> None:
    sink = MailSinkSender("mail", mail(587, subject_prefix="[umig]"), session)
    check_golden(f"mail_{case}.eml", sink.build_payload(CASES[case]).as_string())


@pytest.mark.parametrize(
    ("name", "changes", "expected"),
    [
        ("firing_critical", {}, "UMIG Health Alert - production [critical]"),
        ("resolved", {}, "[RESOLVED] UMIG Health Alert - production [critical]"),
        ("repeat", {}, "[REMINDER] UMIG Health Alert - production [critical]"),
        (
            "firing_critical",
            {"kind": NotificationKind.ESCALATION},
            "[ESCALATION] UMIG Health Alert - production [critical]",
        ),
        (
            "firing_critical",
            {"alerts": (replace(FIRING, type="environment_unreachable"),)},
            "UMIG Connection Failure - production [critical]",
        ),
        (
            "firing_critical",
            {"alerts": (replace(FIRING, type="version_drift", environment="uat", severity="warning"),)},
            "UMIG Version Drift Alert - uat [warning]",
        ),
        (
            "firing_critical",
            {"alerts": (replace(FIRING, type="performance_regression", severity="warning"),)},
            "UMIG Performance Alert - production [warning]",
        ),
        (
            "firing_critical",
            {"alerts": (replace(FIRING, type="orchestrator_inactive"),)},
            "UMIG Health Alert - production [critical]",
        ),
        ("deployment_failure", {}, "UMIG Deployment Failed - production [critical]"),
        ("deployment_start", {}, "UMIG Deployment Started - production [info]"),
        ("group", {}, "UMIG Health Alert - production [critical] (2 alerts)"),
        ("report", {}, "UMIG Daily Status Report - 2024-10-25"),
    ],
)
def test_subjects(name: str, changes: dict[str, Any], expected: str) -> None:
    assert subject(notification(name, **changes)) == expected
    assert subject(notification(name, **changes), "[acme]") == f"[acme] {expected}"


async def test_html_is_escaped_and_self_contained(session: aiohttp.ClientSession) -> None:
    hostile = replace(FIRING, summary='<script>alert("x")</script> & <img src="http://evil/x.png">')
    n = notification(alerts=(hostile,), external_url="javascript:alert(1)")
    message = MailSinkSender("mail", mail(25), session).build_payload(n)
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    html = html_part.get_content()
    assert "<script" not in html
    assert "<img" not in html
    assert "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert "src=" not in html.replace("src=&quot;", "")  # no remote resources...
    assert "href" not in html  # ...and no link for a non-http URL
    assert '<script>alert("x")</script>' in text_part.get_content()


async def test_report_uses_its_own_bodies(session: aiohttp.ClientSession) -> None:
    message = MailSinkSender("mail", mail(25), session).build_payload(CASES["report"])
    assert message["Subject"] == "UMIG Daily Status Report - 2024-10-25"
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    assert html_part.get_content() == CASES["report"].html
    assert text_part.get_content() == CASES["report"].text


async def test_idempotency_headers_are_stable(session: aiohttp.ClientSession) -> None:
    sink = MailSinkSender("mail", mail(25), session)
    first = sink.build_payload(CASES["firing_critical"])
    again = sink.build_payload(CASES["firing_critical"])
    other = sink.build_payload(CASES["resolved"])
    assert first["X-Idempotency-Key"] == CASES["firing_critical"].idempotency_key
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] != other["Message-ID"]
    assert str(first["Message-ID"]).endswith("@company.com>")
    assert first.as_string() == again.as_string()


# --- over SMTP --------------------------------------------------------------------------------


async def test_plain_delivery_to_several_recipients(session: aiohttp.ClientSession) -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        result = await build_sink("ops-mail", mail(port), session).send(CASES["group"])
    assert result.ok, result.detail
    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "umig-monitor@company.com"
    assert envelope.rcpt_tos == RECIPIENTS
    message = inbox.message()
    assert message["Subject"] == "UMIG Health Alert - production [critical] (2 alerts)"
    assert message["To"] == ", ".join(RECIPIENTS)
    assert message["X-Idempotency-Key"] == CASES["group"].idempotency_key
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    assert "error rate 0.12 above 0.05" in text_part.get_content()
    assert "average response time 4200ms above 3000ms" in html_part.get_content()


async def test_starttls_with_auth(session: aiohttp.ClientSession, certs: Certs) -> None:
    inbox = Inbox()
    server: dict[str, Any] = {
        "tls_context": certs.server,
        "authenticator": accept_one_user,
        "auth_required": True,
    }
    with smtp_server(inbox, **server) as port:
        good = mail(port, starttls=True, username="alerts", password="s3cret")
        result = await MailSinkSender("m", good, session, tls_context=certs.client).send(
            CASES["firing_critical"]
        )
        bad = mail(port, starttls=True, username="alerts", password="wrong")
        refused = await MailSinkSender("m", bad, session, tls_context=certs.client).send(
            CASES["firing_critical"]
        )
    assert result.ok, result.detail
    assert len(inbox.envelopes) == 1
    assert (refused.ok, refused.retryable) == (False, False)
    assert "535" in refused.detail
    assert "wrong" not in refused.detail


async def test_untrusted_certificate_is_not_retryable(session: aiohttp.ClientSession, certs: Certs) -> None:
    with smtp_server(Inbox(), tls_context=certs.server) as port:
        result = await build_sink("m", mail(port, starttls=True), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, False)
    assert "certificate" in result.detail


async def test_implicit_tls(session: aiohttp.ClientSession, certs: Certs) -> None:
    inbox = Inbox()
    with smtp_server(inbox, ssl_context=certs.server) as port:
        sink = MailSinkSender("m", mail(port, tls=True), session, tls_context=certs.client)
        result = await sink.send(CASES["resolved"])
    assert result.ok, result.detail
    assert inbox.message()["Subject"].startswith("[RESOLVED]")


async def test_refused_connection_is_retryable_until_the_server_is_back(
    session: aiohttp.ClientSession,
) -> None:
    port = free_port()
    sink = build_sink("ops-mail", mail(port), session)
    down = await sink.send(CASES["firing_critical"])
    assert (down.ok, down.retryable) == (False, True)
    inbox = Inbox()
    with smtp_server(inbox, port=port):
        up = await sink.send(CASES["firing_critical"])
    assert up.ok, up.detail
    assert len(inbox.envelopes) == 1


@pytest.mark.parametrize(
    ("inbox", "retryable", "said"),
    [
        (Inbox(rcpt_reply="451 4.3.0 try later"), True, "451"),
        (Inbox(data_reply="451 4.3.0 try later"), True, "451"),
        (Inbox(data_reply="452 4.3.1 insufficient storage"), True, "452"),
        (Inbox(rcpt_reply="550 5.1.1 no such user"), False, "no such user"),
        (Inbox(data_reply="554 5.7.1 rejected as spam"), False, "554"),
    ],
)
async def test_reply_classes(
    session: aiohttp.ClientSession, inbox: Inbox, retryable: bool, said: str
) -> None:
    with smtp_server(inbox) as port:
        result = await build_sink("ops-mail", mail(port), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, retryable)
    assert said in result.detail


async def test_one_refused_recipient_does_not_resend_to_the_others(session: aiohttp.ClientSession) -> None:
    inbox = Inbox(refuse=RECIPIENTS[1])
    with smtp_server(inbox) as port:
        result = await build_sink("ops-mail", mail(port), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (True, False)
    assert f"{RECIPIENTS[1]}: 550" in result.detail
    assert inbox.envelopes[0].rcpt_tos == RECIPIENTS[:1]


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"starttls": True}, "STARTTLS"),
        ({"tls": True}, "check tls/starttls"),
        ({"username": "alerts", "password": "s3cret"}, "AUTH"),
    ],
)
async def test_config_the_server_cannot_meet_is_not_retryable(
    session: aiohttp.ClientSession, changes: dict[str, Any], said: str
) -> None:
    with smtp_server(Inbox()) as port:  # plain: no TLS, no AUTH
        result = await build_sink("m", mail(port, **changes), session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, False)
    assert said in result.detail
    assert "s3cret" not in result.detail


async def test_silent_server_times_out_as_retryable(session: aiohttp.ClientSession) -> None:
    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(never_greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await build_sink("m", mail(port, timeout="300ms"), session).send(CASES["firing_critical"])
    finally:
        server.close()
        await server.wait_closed()
    assert (result.ok, result.retryable) == (False, True)
    assert "timed out" in result.detail


async def test_unreadable_password_file_is_not_retryable(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = mail(free_port(), username="alerts", password_file=tmp_path / "nope")
    result = await build_sink("m", config, session).send(CASES["firing_critical"])
    assert (result.ok, result.retryable) == (False, False)
    assert "nope" in result.detail
