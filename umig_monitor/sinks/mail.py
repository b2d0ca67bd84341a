"""The mail sink: the guide's ``mail -s "UMIG Health Alert"`` done properly, over SMTP with
aiosmtplib: plain, STARTTLS or implicit TLS, AUTH when a username is set, text and HTML parts.

SMTP reply classes decide retries: 4xx is the server saying "later" (retryable), 5xx is "never"
(not retryable); a refused or timed-out connection is retryable, a refused login or an
untrusted certificate is a configuration problem (not)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiohttp
import aiosmtplib

from umig_monitor.config.models import MailSink
from umig_monitor.core.alerts import Notification
from umig_monitor.sinks.base import PayloadError, SendResult, SinkSender, snippet
from umig_monitor.sinks.content import one_line, title, utc
from umig_monitor.sinks.mail_body import render_html, render_text
from umig_monitor.sinks.ratelimit import Clock, Sleep


def subject(notification: Notification, prefix: str = "") -> str:
    """``[ops] [RESOLVED] UMIG Health Alert - production [critical]``."""
    return one_line(f"{prefix} {title(notification)}")


def _digest(notification: Notification) -> str:
    return hashlib.sha256(notification.idempotency_key.encode()).hexdigest()


def message_id(notification: Notification, sender: str) -> str:
    """Stable across retries, so a mail client shows a retried message once."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "umig-monitor.invalid"
    return f"<{_digest(notification)[:32]}@{domain}>"


def build_message(notification: Notification, config: MailSink) -> EmailMessage:
    """The whole message, headers included; deterministic (Date is the notification's time, the
    MIME boundary comes from the idempotency key) so it can be compared with a golden file."""
    n = notification
    try:
        msg = EmailMessage()
        msg["Subject"] = subject(n, config.subject_prefix)
        msg["From"] = config.from_
        msg["To"] = ", ".join(config.to)
        msg["Date"] = format_datetime(utc(n.created_at))
        msg["Message-ID"] = message_id(n, config.from_)
        msg["X-Idempotency-Key"] = one_line(n.idempotency_key)
        msg["X-UMIG-Notification"] = n.kind.value
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to alerts
        msg.set_content(render_text(n), subtype="plain", cte="quoted-printable")
        msg.add_alternative(render_html(n), subtype="html", cte="quoted-printable")
        # "=_" cannot occur in quoted-printable text, so this boundary never collides.
        msg.set_boundary(f"=_umig_{_digest(n)[:24]}")
    except (ValueError, TypeError, MessageError) as exc:
        raise PayloadError(str(exc)) from exc
    return msg


def _ssl_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a failure; aiosmtplib wraps handshake errors in SMTPConnectError."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# A connection dropped mid-handshake may go better next time; other TLS errors are a mismatch
# between the config (tls/starttls, port) and the server, or an untrusted certificate.
_TRANSIENT_TLS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def _reply(code: int, message: str) -> str:
    return f"{code} {snippet(message)}"


def classify_smtp(exc: Exception, where: str) -> SendResult:
    """One SMTP failure -> SendResult, by reply class (RFC 5321 section 4.2.1)."""
    tls = _ssl_failure(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        return SendResult.failed(f"TLS certificate of {where} not trusted: {tls.verify_message}")
    if tls is not None and not isinstance(tls, _TRANSIENT_TLS):
        return SendResult.failed(
            f"TLS with {where} failed (check tls/starttls and port): {tls.reason or tls}"
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = [(r.recipient, r.code, r.message) for r in exc.recipients]
        said = "; ".join(f"{rcpt}: {_reply(code, msg)}" for rcpt, code, msg in refusals)
        detail = f"{where} refused every recipient: {said}"
        transient = bool(refusals) and all(400 <= code < 500 for _, code, _ in refusals)
        return SendResult.retry(detail) if transient else SendResult.failed(detail)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SendResult.failed(f"{where} refused the login: {_reply(exc.code, exc.message)}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        detail = f"{where} answered {_reply(exc.code, exc.message)}"
        return SendResult.retry(detail) if 400 <= exc.code < 500 else SendResult.failed(detail)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or type(exc) is aiosmtplib.SMTPException:
        # aiosmtplib raises the bare class when the server lacks what the config asks for:
        # STARTTLS or AUTH not offered. Only a config change helps.
        return SendResult.failed(f"{where}: {snippet(str(exc))}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SendResult.retry(f"{where} timed out: {snippet(str(exc))}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return SendResult.retry(f"{where}: {snippet(str(exc))}")
    if tls is not None:
        return SendResult.retry(f"TLS connection to {where} dropped: {snippet(str(tls))}")
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return SendResult.retry(f"{where}: {type(exc).__name__}: {snippet(str(exc))}")
    return SendResult.failed(f"{where}: unexpected {type(exc).__name__}: {snippet(str(exc))}")


class MailSinkSender(SinkSender[MailSink, EmailMessage]):
    sink_type = "mail"
    config_type = MailSink

    def __init__(
        self,
        name: str,
        config: MailSink,
        session: aiohttp.ClientSession,
        *,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``tls_context`` replaces the default (system CAs, hostname checked), e.g. to trust a
        private CA; the config has no CA option yet."""
        super().__init__(name, config, session, clock=clock, sleep=sleep, wall_clock=wall_clock)
        self.tls_context = tls_context

    def build_payload(self, notification: Notification) -> EmailMessage:
        return build_message(notification, self.config)

    async def deliver(self, notification: Notification) -> SendResult:
        config = self.config
        password = config.read_password()
        if config.username and password is None:
            return SendResult.failed("mail sink has a username but no password or password_file")
        message = self.build_payload(notification)
        where = f"SMTP server {config.host}:{config.port}"
        try:
            refused, _ = await aiosmtplib.send(
                message,
                sender=parseaddr(config.from_)[1] or config.from_,
                recipients=config.to,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=password if config.username else None,
                use_tls=config.tls,
                start_tls=config.starttls,
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except Exception as exc:
            return classify_smtp(exc, where)
        if refused:
            said = "; ".join(f"{rcpt}: {_reply(r.code, r.message)}" for rcpt, r in sorted(refused.items()))
            # Resending would duplicate the mail for the recipients who got it.
            return SendResult.delivered(f"sent via {where}, but these recipients were refused: {said}")
        return SendResult.delivered(f"sent via {where} to {len(config.to)} recipient(s)")
