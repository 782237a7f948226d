"""A real SMTP server on loopback (aiosmtpd) for the email tests.

It records every accepted message and can answer chosen recipients or
messages with a 4xx or 5xx code, and be stopped and started on the same port
to play an outage.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Received:
    rcpt_tos: list[str]
    message: EmailMessage
    at: float

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    # address -> reply for RCPT TO, e.g. "550 5.1.1 No such user"
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    # replies for DATA, used up one per message before accepting again
    data_replies: list[str] = field(default_factory=list)
    # Message-IDs seen at DATA, accepted or not (to check ids are stable on retry)
    seen_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, _class=EmailMessage, policy=policy.default)
        with self.lock:
            self.seen_ids.append(str(message["Message-ID"]))
            if self.data_replies:
                return self.data_replies.pop(0)
            self.received.append(Received(list(envelope.rcpt_tos), message, time.monotonic()))
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = SinkHandler()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> SmtpSink:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return list(self.received)
            time.sleep(0.05)
        return list(self.received)
