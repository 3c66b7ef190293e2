"""The outbox against a real SMTP server: delivery, MIME shape, and the faults a mail server has."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Sequence
from email.message import Message

import icalendar
import pytest
from sqlalchemy import select, update

from portal.accounts.models import Company
from portal.db import UNSCOPED, Database, utcnow
from portal.mail import dispatch
from portal.mail.dispatch import send_outbox
from portal.mail.interfaces import MaySend, OnResult, SendResult
from portal.mail.messages import EmailContent
from portal.mail.models import FAILED, PENDING, SENT, OutboxMessage
from portal.mail.outbox import attach, enqueue
from portal.mail.smtp import SmtpSender
from portal.settings import Settings, SmtpSettings
from tests.mail.conftest import SmtpServer

CONTENT = EmailContent(subject="Join me now", text="Plain body", html="<p>HTML body</p>")
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//portal//test//EN\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:event-1@portal\r\nDTSTAMP:20261123T120000Z\r\nDTSTART:20261124T090000Z\r\n"
    "DTEND:20261124T093000Z\r\nSUMMARY:Planning\r\nSEQUENCE:0\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture
def mail_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    smtp = SmtpSettings(
        host=smtp_server.host,
        port=smtp_server.port,
        tls="none",
        mail_from="Portal <portal@acme.example>",
    )
    return dataclasses.replace(settings, smtp=smtp)


def sender(settings: Settings) -> SmtpSender:
    return SmtpSender(settings.smtp, timeout=5)


async def queue(
    db: Database, settings: Settings, company: Company, count: int = 1, **kwargs: object
) -> list[int]:
    async with db.session(company_id=company.id, write=True) as session:
        messages = [
            enqueue(
                session,
                settings,
                company_id=company.id or 0,
                to_address=f"person{i}@acme.example",
                to_name=f"Person {i}",
                content=CONTENT,
                template="test",
                **kwargs,  # type: ignore[arg-type]
            )
            for i in range(count)
        ]
        await session.commit()
    return [m.id or 0 for m in messages]


async def stored(db: Database) -> list[OutboxMessage]:
    async with db.session(company_id=UNSCOPED) as session:
        return list(
            (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars()
        )


async def make_due(db: Database) -> None:
    async with db.session(company_id=UNSCOPED, write=True) as session:
        await session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        await session.commit()


async def test_a_rolled_back_action_sends_nothing(
    db: Database, mail_settings: Settings, acme: Company
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        enqueue(
            session,
            mail_settings,
            company_id=acme.id or 0,
            to_address="a@acme.example",
            to_name="A",
            content=CONTENT,
            template="test",
        )
        await session.rollback()
    assert await stored(db) == []


async def test_delivers_multipart_mail_with_a_stable_message_id(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    await queue(db, mail_settings, acme, reply_to="ada@acme.example")
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    assert report.sent == 1
    (mail,) = smtp_server.inbox.received
    (row,) = await stored(db)
    assert row.status == SENT and row.sent_at is not None and row.attempts == 1
    assert mail["Message-ID"] == row.message_id
    assert mail["Subject"] == "Join me now" and mail["Reply-To"] == "ada@acme.example"
    assert mail["To"] == "Person 0 <person0@acme.example>"
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail.get_body(("plain",)).get_content().strip() == "Plain body"


async def test_calendar_invitations_have_the_shape_mail_clients_answer(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    (message_id,) = await queue(
        db, mail_settings, acme, calendar_method="REQUEST", calendar_ics=ICS
    )
    async with db.session(company_id=acme.id, write=True) as session:
        message = await session.get(OutboxMessage, message_id)
        assert message is not None
        await attach(session, message, "agenda.txt", "text/plain", b"1. plans")
        await session.commit()
    await send_outbox(db, mail_settings, sender(mail_settings))
    (mail,) = smtp_server.inbox.received
    assert mail.get_content_type() == "multipart/mixed"
    alternative, ics_file, agenda = mail.iter_parts()
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    calendar_part = list(alternative.iter_parts())[2]
    assert calendar_part.get_param("method") == "REQUEST"
    assert ics_file.get_filename() == "invite.ics"
    assert agenda.get_filename() == "agenda.txt" and agenda.get_content() == "1. plans"
    parsed = icalendar.Calendar.from_ical(calendar_part.get_content())
    assert parsed["METHOD"] == "REQUEST"
    (event,) = parsed.walk("VEVENT")
    assert str(event["UID"]) == "event-1@portal"


async def test_server_down_keeps_the_message_then_delivers_it_exactly_once(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    await queue(db, mail_settings, acme)
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    assert report.retrying == 1
    (row,) = await stored(db)
    assert row.status == PENDING and row.attempts == 1 and row.last_error
    assert row.next_attempt_at > utcnow()
    # Not due yet: a second pass sends nothing.
    smtp_server.start()
    assert (await send_outbox(db, mail_settings, sender(mail_settings))).sent == 0
    await make_due(db)
    assert (await send_outbox(db, mail_settings, sender(mail_settings))).sent == 1
    await make_due(db)
    assert (await send_outbox(db, mail_settings, sender(mail_settings))).sent == 0
    assert len(smtp_server.inbox.received) == 1
    (row,) = await stored(db)
    assert row.status == SENT and row.attempts == 2 and row.last_error == ""


async def test_a_451_is_retried_and_a_550_fails_with_the_reply(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    smtp_server.inbox.refuse["person1@acme.example"] = "550 5.1.1 No such mailbox"
    smtp_server.inbox.data_replies.append("451 4.3.0 Try again later")
    await queue(db, mail_settings, acme, count=2)
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    assert (report.sent, report.retrying, report.failed) == (0, 1, 1)
    first, second = await stored(db)
    assert first.status == PENDING and "451 4.3.0 Try again later" in first.last_error
    assert second.status == FAILED and "550 5.1.1 No such mailbox" in second.last_error
    await make_due(db)
    assert (await send_outbox(db, mail_settings, sender(mail_settings))).sent == 1
    assert [m["To"] for m in smtp_server.inbox.received] == ["Person 0 <person0@acme.example>"]


async def test_a_connection_dropped_mid_batch_still_delivers_the_rest(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    smtp_server.inbox.drop_after = 3
    await queue(db, mail_settings, acme, count=12)
    single = SmtpSender(mail_settings.smtp, connections=1, timeout=5)
    first = await send_outbox(db, mail_settings, single)
    assert first.sent >= 10 and first.sent + first.retrying == 12
    await make_due(db)
    await send_outbox(db, mail_settings, single)
    assert sorted(str(m["To"]) for m in smtp_server.inbox.received) == sorted(
        f"Person {i} <person{i}@acme.example>" for i in range(12)
    )
    assert {m.status for m in await stored(db)} == {SENT}


async def test_temporary_failures_give_up_after_48_hours(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    await queue(db, mail_settings, acme)
    async with db.session(company_id=UNSCOPED, write=True) as session:
        await session.execute(
            update(OutboxMessage).values(created_at=utcnow() - dt.timedelta(hours=49))
        )
        await session.commit()
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    assert report.failed == 1
    (row,) = await stored(db)
    assert row.status == FAILED and row.last_error.startswith("gave up after 48 hours")


async def test_two_dispatchers_never_send_a_message_twice(
    mail_settings: Settings, db: Database, acme: Company, smtp_server: SmtpServer
) -> None:
    await queue(db, mail_settings, acme, count=250)
    other = Database(mail_settings.database_url)
    try:
        reports = await asyncio.gather(
            send_outbox(db, mail_settings, sender(mail_settings)),
            send_outbox(other, mail_settings, sender(mail_settings)),
        )
    finally:
        await other.dispose()
    assert sum(r.sent for r in reports) == 250
    addresses = [str(m["To"]) for m in smtp_server.inbox.received]
    assert len(addresses) == 250 and len(set(addresses)) == 250


async def test_several_batches_send_each_message_once_and_mark_it(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Small batches, so one run claims, sends and marks several while the next is prepared.
    monkeypatch.setattr(dispatch, "BATCH_SIZE", 3)
    ids = await queue(db, mail_settings, acme, count=11)
    async with db.session(company_id=acme.id, write=True) as session:
        message = await session.get(OutboxMessage, ids[6])
        assert message is not None
        await attach(session, message, "agenda.txt", "text/plain", b"1. plans")
        await session.commit()
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    assert report.sent == 11
    assert sorted(str(m["To"]) for m in smtp_server.inbox.received) == sorted(
        f"Person {i} <person{i}@acme.example>" for i in range(11)
    )
    with_files = [
        m for m in smtp_server.inbox.received if m.get_content_type() != "multipart/alternative"
    ]
    assert [str(m["To"]) for m in with_files] == ["Person 6 <person6@acme.example>"]
    assert all(row.status == SENT and row.attempts == 1 for row in await stored(db))


class FailsOnSecondBatch:
    """An SMTP sender whose second batch fails with an error no send result describes."""

    def __init__(self, settings: Settings) -> None:
        self.smtp = sender(settings)
        self.batches = 0

    async def send_batch(
        self,
        messages: Sequence[Message],
        *,
        on_result: OnResult | None = None,
        stop: asyncio.Event | None = None,
        may_send: MaySend | None = None,
    ) -> list[SendResult]:
        self.batches += 1
        if self.batches == 2:
            raise RuntimeError("the dispatcher stopped")
        return await self.smtp.send_batch(
            messages, on_result=on_result, stop=stop, may_send=may_send
        )

    async def close(self) -> None:
        await self.smtp.close()


async def test_what_the_server_accepted_is_marked_when_a_later_batch_fails(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dispatch, "BATCH_SIZE", 3)
    await queue(db, mail_settings, acme, count=8)
    with pytest.raises(RuntimeError):
        await send_outbox(db, mail_settings, FailsOnSecondBatch(mail_settings))
    rows = await stored(db)
    assert [row.status for row in rows[:3]] == [SENT, SENT, SENT]
    # Claimed but never sent: let go of at once, as if never claimed, for the next run.
    assert all(row.status == PENDING and row.claimed_until is None for row in rows[3:])
    assert all(row.claimed_by is None and row.attempts == 0 for row in rows[3:])
    assert len(smtp_server.inbox.received) == 3


async def test_header_injection_is_refused(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        enqueue(
            session,
            mail_settings,
            company_id=acme.id or 0,
            to_address="a@acme.example",
            to_name="Eve\r\nBcc: victim@evil.example",
            content=EmailContent(
                subject="Hi =?utf-8?q?=0ABcc:_x@evil.example?=", text="t", html="h"
            ),
            template="test",
        )
        await session.commit()
    await send_outbox(db, mail_settings, sender(mail_settings))
    (mail,) = smtp_server.inbox.received
    assert mail["Bcc"] is None
    assert "\n" not in str(mail["To"]) and "=?" not in str(mail["Subject"])


async def test_a_long_subject_beyond_ascii_arrives_as_it_was_written(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    subject = (
        "Updated invitation: Quarterly planning with the whole team"
        " @ Tue 1 Dec 2026 14:00–15:30 (Europe/Berlin)"
    )
    async with db.session(company_id=acme.id, write=True) as session:
        enqueue(
            session,
            mail_settings,
            company_id=acme.id or 0,
            to_address="a@acme.example",
            to_name="A",
            content=EmailContent(subject=subject, text="t", html="h"),
            template="test",
        )
        await session.commit()
    await send_outbox(db, mail_settings, sender(mail_settings))
    (mail,) = smtp_server.inbox.received
    assert mail["Subject"] == subject
