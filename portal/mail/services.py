"""What admins read of the outbox: its messages page by page, and one message's attachments."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.mail.models import FAILED, HELD, PENDING, SENT, OutboxAttachment, OutboxMessage
from portal.pagination import Page, paginate


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
