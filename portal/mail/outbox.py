"""Writing messages to the outbox, in the caller's transaction."""

from __future__ import annotations

import logging
from email.utils import make_msgid
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from portal.mail.messages import EmailContent, header_safe
from portal.mail.models import HELD, PENDING, OutboxMessage
from portal.settings import Settings

log = logging.getLogger(__name__)


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
) -> OutboxMessage:
    """Add a message to the session; it is sent only if the caller's transaction commits."""
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
        status=PENDING if settings.smtp.configured else HELD,
    )
    session.add(message)
    if not settings.smtp.configured:
        log.info("mail held (no SMTP configured): %s to %s", template, to_address)
    return message
