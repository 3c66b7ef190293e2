"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives and can be told to fail."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers import free_port


@dataclass
class Inbox:
    """What the server received, and the replies it should give next."""

    received: list[EmailMessage] = field(default_factory=list)
    # the TLS version each received message came over, "" for plain text
    tls_versions: list[str] = field(default_factory=list)
    # address -> the reply to RCPT TO for it, e.g. "550 5.1.1 No such user"
    refuse: dict[str, str] = field(default_factory=dict)
    # replies to the next DATA commands, used up one per message
    data_replies: list[str] = field(default_factory=list)
    # after accepting this many more messages, drop the connection when the next one starts
    drop_after: int | None = None
    # seconds each message waits, once its data has arrived, for the server's "250" (a slow
    # relay: messages are in flight that long, and a test can stop or kill a sender meanwhile)
    delay: float = 0.0

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
        if self.inbox.delay:
            await asyncio.sleep(self.inbox.delay)
        if self.inbox.data_replies:
            return self.inbox.data_replies.pop(0)
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.inbox.received.append(message)
        tls = server.transport.get_extra_info("ssl_object") if server.transport else None
        self.inbox.tls_versions.append(tls.version() if tls else "")
        if self.inbox.drop_after:
            self.inbox.drop_after -= 1
        return "250 Message accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox
    controller: Controller | None = None
    # wraps the port itself in TLS, as on port 465
    implicit_tls: ssl.SSLContext | None = None
    # passed on to aiosmtpd's SMTP, e.g. tls_context, require_starttls, authenticator
    options: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self.controller = Controller(
            _Handler(self.inbox),
            hostname=self.host,
            port=self.port,
            ssl_context=self.implicit_tls,
            **self.options,
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def start_smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Starts servers with the given TLS and login options; all are stopped after the test."""
    servers: list[SmtpServer] = []

    def start(implicit_tls: ssl.SSLContext | None = None, **options: Any) -> SmtpServer:
        server = SmtpServer(
            "127.0.0.1", free_port(), Inbox(), implicit_tls=implicit_tls, options=options
        )
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(start_smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    return start_smtp_server()
