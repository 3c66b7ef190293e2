"""Mail's job: an action that queues mail wakes the sender by committing, with no call in its
view; without a mail server the job has nothing to send."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator

import croniter
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from portal.accounts.models import Company, User
from portal.app import create_app
from portal.db import Database
from portal.jobs import InProcessRunner, JobEnv
from portal.mail import dispatch
from portal.mail.jobs import JOBS, SEND_OUTBOX
from portal.mail.messages import EmailContent
from portal.mail.models import FAILED, PENDING, OutboxMessage
from portal.mail.outbox import enqueue
from portal.mail.smtp import SmtpSender, sender_for
from portal.settings import Settings, SmtpSettings
from tests.conftest import PortalClient
from tests.mail.conftest import SmtpServer

PERSON = {"display_name": "Carol Danvers", "email": "carol@acme.example", "time_zone": "UTC"}
# Well before the 2-second poll: only a wake delivers this fast (and the poll here is an hour).
PROMPTLY = 1.5


def mail_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    smtp = SmtpSettings(host=smtp_server.host, port=smtp_server.port, tls="none")
    return dataclasses.replace(settings, smtp=smtp, jobs="in-process")


@pytest.fixture
async def woken_app(
    settings: Settings, db: Database, smtp_server: SmtpServer
) -> AsyncIterator[Starlette]:
    """The portal with an in-process runner that looks at the outbox only when woken."""
    application = create_app(mail_settings(settings, smtp_server))
    await application.state.db.dispose()
    application.state.db = db
    only_when_woken = dataclasses.replace(SEND_OUTBOX, poll_seconds=3600)
    env = JobEnv(db, application.state.settings, lambda: sender_for(application.state.settings))
    runner = InProcessRunner(env, (only_when_woken,))
    runner.start()
    application.state.jobs = runner
    await asyncio.sleep(0.1)  # the first look, at start, has found nothing
    yield application
    await runner.stop()


async def arrives(smtp_server: SmtpServer, address: str, count: int = 1) -> float:
    """How long until `count` messages to `address` arrived (fails after PROMPTLY)."""
    began = time.monotonic()
    while len(smtp_server.inbox.to(address)) < count:
        assert time.monotonic() - began < PROMPTLY, f"no mail to {address} within {PROMPTLY} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_adding_a_person_wakes_the_sender_without_a_call_in_the_view(
    woken_app: Starlette, admin: User, smtp_server: SmtpServer
) -> None:
    client = PortalClient(woken_app)
    await client.sign_in(admin.email)
    response = await client.post("/setup/users/new", PERSON)
    assert response.status_code == 303
    await arrives(smtp_server, "carol@acme.example")
    await client.aclose()


async def test_a_password_reset_wakes_the_sender(
    woken_app: Starlette, member: User, smtp_server: SmtpServer
) -> None:
    client = PortalClient(woken_app)
    response = await client.post("/forgot-password", {"email": member.email})
    assert response.status_code == 303
    await arrives(smtp_server, member.email)
    await client.aclose()


async def test_retry_now_wakes_the_sender(
    woken_app: Starlette, admin: User, db: Database, acme: Company, smtp_server: SmtpServer
) -> None:
    smtp_server.inbox.refuse["carol@acme.example"] = "550 5.1.1 No such mailbox"
    client = PortalClient(woken_app)
    await client.sign_in(admin.email)
    await client.post("/setup/users/new", PERSON)
    message = await _eventually_failed(db, acme)
    del smtp_server.inbox.refuse["carol@acme.example"]
    response = await client.post(f"/setup/outbox/{message.id}/retry")
    assert response.status_code == 303
    await arrives(smtp_server, "carol@acme.example")
    await client.aclose()


async def _eventually_failed(db: Database, company: Company) -> OutboxMessage:
    began = time.monotonic()
    while True:
        async with db.session(company_id=company.id) as session:
            message = (await session.execute(select(OutboxMessage))).scalar_one()
        if message.status == FAILED:
            return message
        assert time.monotonic() - began < PROMPTLY, "the refused message never failed"
        await asyncio.sleep(0.02)


def test_the_sender_is_smtp_only_with_a_mail_server(settings: Settings) -> None:
    assert sender_for(settings) is None
    configured = dataclasses.replace(settings, smtp=SmtpSettings(host="mail.acme.example"))
    assert isinstance(sender_for(configured), SmtpSender)
    assert JOBS == (SEND_OUTBOX,) and SEND_OUTBOX.cron == "* * * * * */20"
    assert SEND_OUTBOX.poll_seconds == 2.0  # in-process, the outbox is looked at every 2 s


async def test_without_a_sender_the_job_sends_nothing(
    db: Database, settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    """A worker started without a mail sender factory, say: the messages stay in the outbox."""
    queued_with_server = mail_settings(settings, smtp_server)
    async with db.session(company_id=acme.id, write=True) as session:
        enqueue(
            session,
            queued_with_server,
            company_id=acme.id or 0,
            to_address="carol@acme.example",
            to_name="Carol",
            content=EmailContent(subject="Hello", text="Plain body", html="<p>HTML body</p>"),
            template="test",
        )
        await session.commit()
    await SEND_OUTBOX.run(JobEnv(db, queued_with_server, lambda: None))
    async with db.session(company_id=acme.id) as session:
        message = (await session.execute(select(OutboxMessage))).scalar_one()
    assert message.status == PENDING and not smtp_server.inbox.received


def test_workers_look_at_the_outbox_every_20_seconds() -> None:
    """A dead worker's claims are free 30 s after its last heartbeat: an idle worker must look
    often enough to take them over within a minute (croniter's sixth field is the seconds)."""
    start = dt.datetime(2026, 11, 30, 16, 0, 5, tzinfo=dt.UTC)
    schedule = croniter.croniter(SEND_OUTBOX.cron, start)
    runs = [schedule.get_next(dt.datetime) for _ in range(4)]
    assert [b - a for a, b in itertools.pairwise([start, *runs])][1:] == [
        dt.timedelta(seconds=20)
    ] * 3
    assert dispatch.CLAIM_FOR + dt.timedelta(seconds=20) < dt.timedelta(seconds=60)
