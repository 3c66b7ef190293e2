"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives and can be told to fail."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Inbox:
    """What the server received, and the replies it should give next."""

    received: list[EmailMessage] = field(default_factory=list)
    # address -> the reply to RCPT TO for it, e.g. "550 5.1.1 No such user"
    refuse: dict[str, str] = field(default_factory=dict)
    # replies to the next DATA commands, used up one per message
    data_replies: list[str] = field(default_factory=list)
    # after accepting this many more messages, drop the connection when the next one starts
    drop_after: int | None = None

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.received if address in str(m["To"])]


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.inbox.drop_after == 0:
            self.inbox.drop_after = None
            server.transport.close()  # type: ignore[union-attr]
            return "421 4.4.2 Connection dropped"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.inbox.refuse:
            return self.inbox.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.inbox.data_replies:
            return self.inbox.data_replies.pop(0)
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.inbox.received.append(message)
        if self.inbox.drop_after:
            self.inbox.drop_after -= 1
        return "250 Message accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(_Handler(self.inbox), hostname=self.host, port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port(), Inbox())
    server.start()
    yield server
    server.stop()
