"""The outbox: messages written in the caller's transaction, sent once it commits."""

from __future__ import annotations

import logging
from email.utils import make_msgid
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from portal.db import utcnow
from portal.jobs import defer_after_commit
from portal.mail.messages import EmailContent, header_safe
from portal.mail.models import HELD, PENDING, OutboxAttachment, OutboxMessage
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


async def retry_now(session: AsyncSession, message: OutboxMessage) -> None:
    """An admin's "Retry now": a failed (or held) message goes back to the queue at once."""
    message.status = PENDING
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    message.claimed_by = None
    defer_after_commit(session, SEND_OUTBOX_JOB)
