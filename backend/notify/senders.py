"""Email senders behind one interface: SMTP, .eml files and the console.

A sender delivers one message to one recipient (the outbox keeps one row per
recipient, so a refusal of one address never blocks the others). It answers with
nothing on success and raises `TransientSendError` (try again later: connection
refused, timeout, 4xx) or `PermanentSendError` (5xx: do not retry).
"""

from __future__ import annotations

import hashlib
import logging
import os
import smtplib
import ssl
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol, TextIO

from backend.config import Settings

log = logging.getLogger(__name__)


class SendError(Exception):
    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    """Worth retrying: the server or the network may recover."""


class PermanentSendError(SendError):
    """The server refused this recipient or message for good."""


class Sender(Protocol):
    def send(self, message: EmailMessage, recipient: str) -> None: ...

    def close(self) -> None: ...


def _classify_smtp_code(code: int, text: str) -> SendError:
    if 400 <= code < 500:
        return TransientSendError(f"{code} {text}", code=code)
    return PermanentSendError(f"{code} {text}", code=code)


def _decode(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


class SmtpSender:
    """smtplib over plain, STARTTLS or implicit TLS, with login and timeouts.

    The connection is opened lazily and reused for the messages of one delivery
    run; any error closes it so the next message starts on a fresh one.
    """

    def __init__(self, settings: Settings) -> None:
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.security = settings.smtp_security
        self.timeout = settings.smtp_timeout_seconds
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        conn: smtplib.SMTP
        if self.security == "tls":
            conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            conn.ehlo()
            if self.security == "starttls":
                conn.starttls(context=context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except BaseException:
            _quiet_close(conn)
            raise
        return conn

    def send(self, message: EmailMessage, recipient: str) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            refused = self._conn.send_message(message, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._reset()
            raise _classify_smtp_code(code, _decode(text)) from exc
        except smtplib.SMTPSenderRefused as exc:
            self.close()
            raise _classify_smtp_code(exc.smtp_code, _decode(exc.smtp_error)) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise _classify_smtp_code(exc.smtp_code, _decode(exc.smtp_error)) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            # Connection refused, reset, timeout, TLS failure, server went away.
            self.close()
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        if refused:  # pragma: no cover - one recipient: refusal raises above
            code, text = next(iter(refused.values()))
            raise _classify_smtp_code(code, _decode(text))

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rset()
            except (smtplib.SMTPException, OSError):
                self.close()

    def close(self) -> None:
        if self._conn is not None:
            _quiet_close(self._conn)
            self._conn = None


def _quiet_close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


class FileSender:
    """Writes each message as an .eml file (the embedded default).

    The file name comes from the Message-ID and recipient, so a retried message
    overwrites its own file instead of adding a second one.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path_for(self, message: EmailMessage, recipient: str) -> Path:
        key = f"{message['Message-ID']}|{recipient}".encode()
        return self.directory / f"{hashlib.sha256(key).hexdigest()[:24]}.eml"

    def send(self, message: EmailMessage, recipient: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            target = self.path_for(message, recipient)
            tmp = target.with_suffix(".tmp")
            data = message.as_bytes()
            tmp.write_bytes(b"X-Envelope-To: " + recipient.encode() + b"\r\n" + data)
            os.replace(tmp, target)
        except OSError as exc:
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        return None


class ConsoleSender:
    """Prints each message (development)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, message: EmailMessage, recipient: str) -> None:
        self.stream.write(f"--- email to {recipient}\n{message.as_string()}\n")
        self.stream.flush()

    def close(self) -> None:
        return None


def make_sender(settings: Settings) -> Sender:
    if settings.email_backend == "smtp":
        return SmtpSender(settings)
    if settings.email_backend == "console":
        return ConsoleSender()
    if settings.email_backend == "file":
        return FileSender(settings.email_dir)
    raise ValueError(f"unknown email_backend {settings.email_backend!r}")
