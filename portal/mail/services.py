"""What admins read of the outbox: its messages page by page, and one message's attachments."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.mail.models import FAILED, HELD, PENDING, SENT, OutboxAttachment, OutboxMessage
from portal.mail.redaction import hide_secret_links
from portal.pagination import Page, paginate


class ReadableBodies(NamedTuple):
    """A message as an admin reads it in the outbox: its secret links hidden."""

    text: str
    html: str
    calendar: str | None


class AttachmentInfo(NamedTuple):
    filename: str
    content_type: str


PAGE_SIZE = 50
STATUSES = (PENDING, SENT, FAILED, HELD)


async def messages(
    session: AsyncSession, *, status: str = "", page: int = 1, size: int = PAGE_SIZE
) -> Page[OutboxMessage]:
    """The company's messages, newest first; only those of `status` when it is one."""
    query = select(OutboxMessage).order_by(
        col(OutboxMessage.created_at).desc(), col(OutboxMessage.id).desc()
    )
    if status in STATUSES:
        query = query.where(col(OutboxMessage.status) == status)
    return await paginate(session, query, page, size)


async def message(session: AsyncSession, message_id: int) -> OutboxMessage | None:
    """One of the company's messages, or None."""
    return await session.get(OutboxMessage, message_id)


async def attachments(session: AsyncSession, message: OutboxMessage) -> list[AttachmentInfo]:
    """A message's attachments as (filename, content type), without their data."""
    rows = await session.execute(
        select(col(OutboxAttachment.filename), col(OutboxAttachment.content_type)).where(
            col(OutboxAttachment.message_id) == message.id
        )
    )
    return [AttachmentInfo(filename, content_type) for filename, content_type in rows.all()]


def readable_bodies(message: OutboxMessage) -> ReadableBodies:
    """What an admin may read of `message`: the links that would sign them in as the recipient
    (set-password, join, ...) replaced by a note that one was there. The row is left as sent."""
    return ReadableBodies(
        hide_secret_links(message.body_text),
        hide_secret_links(message.body_html),
        hide_secret_links(message.calendar_ics) if message.calendar_ics else None,
    )
