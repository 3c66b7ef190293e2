"""SmtpSender against a real aiosmtpd server with TLS and login, using a test CA made by trustme."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from starlette.datastructures import Secret

from portal.accounts.models import Company
from portal.db import Database
from portal.mail.dispatch import send_outbox
from portal.mail.models import PENDING, SENT, OutboxMessage
from portal.mail.recording import DispatchReport
from portal.mail.smtp import SmtpSender
from portal.settings import Settings, SmtpSettings
from tests.mail.conftest import SmtpServer
from tests.mail.test_outbox import make_due, queue, stored

StartServer = Callable[..., SmtpServer]
USERNAME = "portal"
PASSWORD = "right password"


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    return server_context(ca)


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: LoginPassword
) -> AuthResult:
    right = data == LoginPassword(USERNAME.encode(), PASSWORD.encode())
    # handled=False: aiosmtpd answers a refusal with its own 535 reply.
    return AuthResult(success=right, handled=False)


def with_smtp(settings: Settings, server: SmtpServer, tls: str, **login: Any) -> Settings:
    smtp = SmtpSettings(host=server.host, port=server.port, tls=tls, **login)
    return dataclasses.replace(settings, smtp=smtp)


def with_login(settings: Settings, server: SmtpServer, password: str) -> Settings:
    return with_smtp(settings, server, "starttls", username=USERNAME, password=Secret(password))


async def dispatch(
    db: Database, settings: Settings, tls_context: ssl.SSLContext
) -> tuple[DispatchReport, OutboxMessage]:
    """Run the dispatcher once; return its report and the one stored message."""
    sender = SmtpSender(settings.smtp, timeout=5, tls_context=tls_context)
    report = await send_outbox(db, settings, sender)
    (row,) = await stored(db)
    return report, row


async def send_one(
    db: Database, settings: Settings, company: Company, tls_context: ssl.SSLContext
) -> tuple[DispatchReport, OutboxMessage]:
    await queue(db, settings, company)
    return await dispatch(db, settings, tls_context)


async def test_starttls_encrypts_the_session_before_sending(
    db: Database,
    settings: Settings,
    acme: Company,
    start_smtp_server: StartServer,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    server = start_smtp_server(tls_context=server_tls, require_starttls=True)
    report, row = await send_one(db, with_smtp(settings, server, "starttls"), acme, client_tls)
    assert report.sent == 1 and row.status == SENT
    assert server.inbox.tls_versions == ["TLSv1.3"]


async def test_implicit_tls_delivers(
    db: Database,
    settings: Settings,
    acme: Company,
    start_smtp_server: StartServer,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    server = start_smtp_server(implicit_tls=server_tls)
    report, row = await send_one(db, with_smtp(settings, server, "tls"), acme, client_tls)
    assert report.sent == 1 and row.status == SENT
    assert server.inbox.tls_versions == ["TLSv1.3"]


@pytest.fixture
def login_server(start_smtp_server: StartServer, server_tls: ssl.SSLContext) -> SmtpServer:
    return start_smtp_server(
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticate,
    )


async def test_login_with_the_right_password_delivers(
    db: Database,
    settings: Settings,
    acme: Company,
    login_server: SmtpServer,
    client_tls: ssl.SSLContext,
) -> None:
    report, _ = await send_one(db, with_login(settings, login_server, PASSWORD), acme, client_tls)
    assert report.sent == 1 and len(login_server.inbox.received) == 1


async def test_a_refused_login_keeps_the_message_until_the_password_is_fixed(
    db: Database,
    settings: Settings,
    acme: Company,
    login_server: SmtpServer,
    client_tls: ssl.SSLContext,
) -> None:
    wrong = with_login(settings, login_server, "wrong password")
    report, row = await send_one(db, wrong, acme, client_tls)
    assert report.retrying == 1 and row.status == PENDING
    assert row.last_error.startswith("login refused: 535")
    await make_due(db)
    report, row = await dispatch(db, with_login(settings, login_server, PASSWORD), client_tls)
    assert report.sent == 1 and row.status == SENT and row.last_error == ""


async def test_a_refused_login_is_tried_once_per_connection_not_once_per_message(
    db: Database,
    settings: Settings,
    acme: Company,
    start_smtp_server: StartServer,
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    attempts: list[str] = []

    def counting(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: LoginPassword
    ) -> AuthResult:
        attempts.append(mechanism)
        return authenticate(server, session, envelope, mechanism, data)

    server = start_smtp_server(
        tls_context=server_tls, require_starttls=True, auth_required=True, authenticator=counting
    )
    wrong = with_login(settings, server, "wrong password")
    await queue(db, wrong, acme, count=40)
    sender = SmtpSender(wrong.smtp, timeout=5, tls_context=client_tls)
    report = await send_outbox(db, wrong, sender)
    assert report.retrying == 40
    # Four connections, each trying the mechanisms the server offers, then the batch stops.
    assert 0 < len(attempts) <= 4 * 2


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_a_certificate_from_an_untrusted_ca_is_refused_and_kept_for_retry(
    db: Database,
    settings: Settings,
    acme: Company,
    start_smtp_server: StartServer,
    client_tls: ssl.SSLContext,
    tls: str,
) -> None:
    impostor = server_context(trustme.CA())
    if tls == "tls":
        server = start_smtp_server(implicit_tls=impostor)
    else:
        server = start_smtp_server(tls_context=impostor, require_starttls=True)
    report, row = await send_one(db, with_smtp(settings, server, tls), acme, client_tls)
    assert report.retrying == 1 and row.status == PENDING
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert server.inbox.received == []
