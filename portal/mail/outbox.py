"""The outbox: writing messages in the caller's transaction, and dispatching them in batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from dataclasses import dataclass, fields
from email.message import Message
from email.utils import make_msgid
from urllib.parse import urlsplit

from sqlalchemy import bindparam, exists, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import col

from portal.db import UNSCOPED, Database, utcnow
from portal.jobs import defer_after_commit
from portal.mail.interfaces import MailSender, SendResult
from portal.mail.messages import EmailContent, OutgoingMessage, build_mime, header_safe
from portal.mail.models import FAILED, HELD, PENDING, SENT, OutboxAttachment, OutboxMessage
from portal.settings import Settings

log = logging.getLogger(__name__)

# The job that sends the outbox (portal.mail.jobs), named here: that module imports this one.
SEND_OUTBOX_JOB = "send_outbox"


def enqueue(
    session: AsyncSession,
    settings: Settings,
    *,
    company_id: int,
    to_address: str,
    to_name: str,
    content: EmailContent,
    template: str,
    reply_to: str = "",
    calendar_method: str = "",
    calendar_ics: str = "",
) -> OutboxMessage:
    """Add a message to the session; it is sent only if, and as soon as, the caller's
    transaction commits."""
    domain = urlsplit(settings.base_url).hostname or "localhost"
    message = OutboxMessage(
        company_id=company_id,
        message_id=make_msgid(domain=domain),
        to_address=to_address,
        to_name=header_safe(to_name),
        reply_to=reply_to,
        subject=content.subject,
        body_text=content.text,
        body_html=content.html,
        template=template,
        calendar_method=calendar_method,
        calendar_ics=calendar_ics,
        status=PENDING if settings.smtp.configured else HELD,
    )
    session.add(message)
    if settings.smtp.configured:
        defer_after_commit(session, SEND_OUTBOX_JOB)
    else:
        log.info("mail held (no SMTP configured): %s to %s", template, to_address)
    return message


async def attach(
    session: AsyncSession, message: OutboxMessage, filename: str, content_type: str, data: bytes
) -> OutboxAttachment:
    """Add a file to a message that `enqueue` put in this session."""
    await session.flush()
    attachment = OutboxAttachment(
        company_id=message.company_id,
        message_id=message.id or 0,
        filename=header_safe(filename),
        content_type=content_type,
        data=data,
    )
    session.add(attachment)
    return attachment


BATCH_SIZE = 250
# Messages built between two looks at the event loop (see _prepare).
BUILD_SLICE = 10
CLAIM_FOR = dt.timedelta(minutes=5)
FIRST_RETRY = dt.timedelta(seconds=30)
LONGEST_RETRY = dt.timedelta(minutes=30)
# Temporary failures are retried for this long before the message is marked failed.
GIVE_UP_AFTER = dt.timedelta(hours=48)


@dataclass
class DispatchReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def add(self, other: DispatchReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff with jitter: 30 s, 1 min, 2 min ... at most 30 min, each ±25%."""
    base = min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_RETRY)
    return base * random.uniform(0.75, 1.25)


# What a claim returns: the columns of OutgoingMessage, as plain rows rather than ORM objects,
# and whether the message has attachments (few do: the others need no second query). The
# claimed row's id is spelled out: in SQLite's RETURNING, SQLAlchemy leaves column names
# unqualified, and a bare "id" inside the subquery would be the attachment's own.
_CLAIMED = [col(getattr(OutboxMessage, field.name)) for field in fields(OutgoingMessage)]
_HAS_ATTACHMENTS = exists().where(
    col(OutboxAttachment.message_id) == literal_column(f"{OutboxMessage.__tablename__}.id")
)


async def claim_batch(
    db: Database, limit: int = BATCH_SIZE
) -> tuple[list[OutgoingMessage], dict[int, list[OutboxAttachment]]]:
    """Take up to `limit` due messages (and their attachments); no other dispatcher gets them."""
    now = utcnow()
    due = (
        select(col(OutboxMessage.id))
        .where(
            col(OutboxMessage.status) == PENDING,
            col(OutboxMessage.next_attempt_at) <= now,
            or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now),
        )
        .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
        .limit(limit)
        # PostgreSQL: concurrent dispatchers skip each other's rows. SQLite: BEGIN IMMEDIATE.
        .with_for_update(skip_locked=True)
    )
    async with db.session(company_id=UNSCOPED, write=True) as session:
        claimed = await session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(due.scalar_subquery()))
            .values(claimed_until=now + CLAIM_FOR, attempts=col(OutboxMessage.attempts) + 1)
            .returning(*_CLAIMED, _HAS_ATTACHMENTS)
            .execution_options(synchronize_session=False)
        )
        rows = claimed.all()
        with_files = [row.id for row in rows if row[-1]]
        attachments = await _attachments(session, with_files) if with_files else {}
        await session.commit()
    messages = sorted((OutgoingMessage(*row[:-1]) for row in rows), key=lambda m: m.id)
    return messages, attachments


async def _attachments(session: AsyncSession, ids: list[int]) -> dict[int, list[OutboxAttachment]]:
    found: dict[int, list[OutboxAttachment]] = {}
    rows = await session.execute(
        select(OutboxAttachment).where(col(OutboxAttachment.message_id).in_(ids))
    )
    for attachment in rows.scalars():
        found.setdefault(attachment.message_id, []).append(attachment)
    return found


async def _record(
    db: Database, messages: list[OutgoingMessage], results: list[SendResult]
) -> DispatchReport:
    report = DispatchReport()
    now = utcnow()
    sent_ids = [m.id for m, r in zip(messages, results, strict=True) if r.accepted]
    async with db.session(company_id=UNSCOPED, write=True) as session:
        if sent_ids:
            # The ids are written into the statement rather than bound one by one: 250 bound
            # parameters cost more to render and (on PostgreSQL) to parse than the update.
            sent: BindParameter[list[int]] = bindparam(
                "sent", sent_ids, expanding=True, literal_execute=True
            )
            await session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(sent))
                .values(status=SENT, sent_at=now, claimed_until=None, last_error="")
                .execution_options(synchronize_session=False)
            )
            report.sent = len(sent_ids)
        for message, result in zip(messages, results, strict=True):
            if result.accepted:
                continue
            gave_up = now - message.created_at > GIVE_UP_AFTER
            error = result.error
            if gave_up and not result.permanent:
                error = f"gave up after {GIVE_UP_AFTER // dt.timedelta(hours=1)} hours: {error}"
            values: dict[str, object] = {"claimed_until": None, "last_error": error[:2000]}
            if result.permanent or gave_up:
                values["status"] = FAILED
                report.failed += 1
            else:
                values["next_attempt_at"] = now + retry_delay(message.attempts)
                report.retrying += 1
            await session.execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id) == message.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        await session.commit()
    return report


@dataclass(frozen=True)
class _Batch:
    messages: list[OutgoingMessage]
    mimes: list[Message]


async def _prepare(db: Database, settings: Settings) -> _Batch:
    messages, attachments = await claim_batch(db, BATCH_SIZE)
    mail_from = settings.smtp.mail_from
    mimes: list[Message] = []
    for count, message in enumerate(messages, start=1):
        mimes.append(build_mime(message, attachments.get(message.id, []), mail_from))
        if count % BUILD_SLICE == 0:
            # This runs while the batch before sends: a few messages at a time, so the SMTP
            # replies that arrive meanwhile are answered now rather than after the whole batch.
            await asyncio.sleep(0)
    return _Batch(messages, mimes)


async def send_outbox(db: Database, settings: Settings, sender: MailSender) -> DispatchReport:
    """Send every message that is due now, in batches.

    While one batch sends, the next is claimed and built and the one before is marked, so the
    SMTP connections wait only for the first claim.
    """
    total = DispatchReport()
    upcoming: asyncio.Task[_Batch] | None = None
    marking: asyncio.Task[DispatchReport] | None = None
    try:
        batch = await _prepare(db, settings)
        while batch.messages:
            if len(batch.messages) == BATCH_SIZE:
                upcoming = asyncio.create_task(_prepare(db, settings))
            results = await sender.send_batch(batch.mimes)
            if marking is not None:
                total.add(await marking)
            # Marked only now that the server has answered for each message (at least once).
            marking = asyncio.create_task(_record(db, batch.messages, results))
            batch = await upcoming if upcoming is not None else _Batch([], [])
            upcoming = None
    finally:
        if upcoming is not None:
            upcoming.cancel()
        try:
            # Even when sending failed: what the server accepted must not be sent again.
            if marking is not None:
                total.add(await marking)
        finally:
            await sender.close()
    if total.sent or total.retrying or total.failed:
        log.info(
            "outbox: %d sent, %d retrying, %d failed", total.sent, total.retrying, total.failed
        )
    return total


async def retry_now(session: AsyncSession, message: OutboxMessage) -> None:
    """An admin's "Retry now": a failed (or held) message goes back to the queue at once."""
    message.status = PENDING
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    defer_after_commit(session, SEND_OUTBOX_JOB)
    await session.commit()
