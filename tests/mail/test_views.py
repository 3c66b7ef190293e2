"""Company Setup > Outbox: an action's email reaches the SMTP server and shows as sent."""

from __future__ import annotations

import dataclasses
import re
from html import escape as html_escape

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from portal.accounts.models import Company, User
from portal.app import create_app
from portal.db import Database
from portal.jobs import InProcessRunner, JobEnv
from portal.mail.jobs import JOBS, SEND_OUTBOX
from portal.mail.models import FAILED, OutboxMessage
from portal.mail.smtp import SmtpSender
from portal.settings import Settings, SmtpSettings
from tests.conftest import PortalClient, make_company, make_user
from tests.mail.conftest import SmtpServer

PERSON = {"display_name": "Carol Danvers", "email": "carol@acme.example", "time_zone": "UTC"}


@pytest.fixture
async def mail_app(settings: Settings, db: Database, smtp_server: SmtpServer) -> Starlette:
    smtp = SmtpSettings(
        host=smtp_server.host,
        port=smtp_server.port,
        tls="none",
        mail_from="Portal <p@acme.example>",
    )
    application = create_app(dataclasses.replace(settings, smtp=smtp))
    await application.state.db.dispose()
    application.state.db = db
    # Not started: each test runs the send itself, when it means to.
    env = JobEnv(db, application.state.settings, lambda: SmtpSender(smtp, timeout=5))
    application.state.jobs = InProcessRunner(env, JOBS)
    return application


async def test_an_action_emails_through_smtp_and_the_admin_sees_it_sent(
    mail_app: Starlette, admin: User, db: Database, acme: Company, smtp_server: SmtpServer
) -> None:
    client = PortalClient(mail_app)
    await client.sign_in(admin.email)
    await client.post("/setup/users/new", PERSON)
    await mail_app.state.jobs.run_once(SEND_OUTBOX)
    (mail,) = smtp_server.inbox.to("carol@acme.example")
    assert mail["Subject"] == "Ada Admin added you to Acme on the portal"
    assert "http://testserver/set-password/" in mail.get_body(("plain",)).get_content()
    listing = await client.get("/setup/outbox")
    assert "carol@acme.example" in listing.text and "status-sent" in listing.text
    async with db.session(company_id=acme.id) as session:
        message = (await session.execute(select(OutboxMessage))).scalar_one()
    detail = await client.get(f"/setup/outbox/{message.id}")
    assert "Sent" in detail.text and html_escape(message.message_id) in detail.text
    html = await client.get(f"/setup/outbox/{message.id}/html")
    assert "Set your password" in html.text
    assert html.headers["content-security-policy"].startswith("sandbox")
    await client.aclose()


async def test_retry_now_requeues_a_failed_message(
    mail_app: Starlette, admin: User, db: Database, acme: Company, smtp_server: SmtpServer
) -> None:
    smtp_server.inbox.refuse["carol@acme.example"] = "550 5.1.1 No such mailbox"
    client = PortalClient(mail_app)
    await client.sign_in(admin.email)
    await client.post("/setup/users/new", PERSON)
    await mail_app.state.jobs.run_once(SEND_OUTBOX)
    async with db.session(company_id=acme.id) as session:
        message = (await session.execute(select(OutboxMessage))).scalar_one()
    assert message.status == FAILED
    detail = await client.get(f"/setup/outbox/{message.id}")
    assert "550 5.1.1 No such mailbox" in detail.text and "Retry now" in detail.text
    failed_list = await client.get("/setup/outbox?status=failed", headers={"HX-Request": "true"})
    assert "carol@acme.example" in failed_list.text and "<html" not in failed_list.text
    del smtp_server.inbox.refuse["carol@acme.example"]
    response = await client.post(f"/setup/outbox/{message.id}/retry")
    assert response.status_code == 303
    await mail_app.state.jobs.run_once(SEND_OUTBOX)
    assert len(smtp_server.inbox.to("carol@acme.example")) == 1
    await client.aclose()


async def test_held_messages_are_readable_without_a_mail_server(
    admin_client: PortalClient, db: Database
) -> None:
    await admin_client.post("/setup/users/new", PERSON)
    page = await admin_client.get("/setup/outbox")
    assert "No mail server is configured" in page.text and "status-held" in page.text


async def test_outbox_is_for_admins_of_the_same_company(
    client: PortalClient, admin_client: PortalClient, new_client, member: User, db: Database
) -> None:
    await admin_client.post("/setup/users/new", PERSON)
    globex = await make_company(db, "Globex")
    other_admin = await make_user(db, globex, "boss@globex.example", admin=True)
    async with db.session(company_id=member.company_id) as session:
        message = (await session.execute(select(OutboxMessage))).scalar_one()
    bob = new_client()
    await bob.sign_in(member.email)
    assert (await bob.get("/setup/outbox")).status_code == 403
    assert (await bob.get(f"/setup/outbox/{message.id}")).status_code == 403
    outsider = new_client()
    await outsider.sign_in(other_admin.email)
    assert "carol@acme.example" not in (await outsider.get("/setup/outbox")).text
    for path in (f"/setup/outbox/{message.id}", f"/setup/outbox/{message.id}/html"):
        assert (await outsider.get(path)).status_code == 404


SECRET_LINK = re.compile(r"/(?:set-password|join)/([A-Za-z0-9_.~%=-]+)")


async def test_the_outbox_shows_that_a_secret_link_was_sent_but_not_the_link(
    admin_client: PortalClient, admin: User, db: Database, acme: Company
) -> None:
    await admin_client.post("/setup/users/new", PERSON)
    await admin_client.post(
        "/meetings/start",
        {"emails": "guest@example.org", "request_key": "outbox-secret-links"},
    )
    async with db.session(company_id=acme.id) as session:
        messages = (await session.execute(select(OutboxMessage))).scalars().all()
    assert {m.template for m in messages} == {"set_password", "meet_now"}
    for message in messages:
        tokens = SECRET_LINK.findall(message.body_text)
        assert tokens and SECRET_LINK.findall(message.body_html)
        detail = await admin_client.get(f"/setup/outbox/{message.id}")
        html = await admin_client.get(f"/setup/outbox/{message.id}/html")
        assert detail.status_code == html.status_code == 200
        for shown in (detail.text, html.text):
            assert not any(token in shown for token in tokens), message.template
            assert not SECRET_LINK.search(shown)
        hidden = (
            "[link to set a password: hidden]"
            if message.template == "set_password"
            else "[link to join the meeting: hidden]"
        )
        assert hidden in detail.text and hidden in html.text
    # What was sent is untouched: only the admin's view hides the links.
    async with db.session(company_id=acme.id) as session:
        stored = (await session.execute(select(OutboxMessage))).scalars().all()
    assert all(SECRET_LINK.search(m.body_text) for m in stored)
