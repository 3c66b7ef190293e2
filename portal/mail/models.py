"""The outbox: every message the portal means to send, written with the action that caused it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from portal.db import TenantScoped, UTCDateTime, utcnow

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
# Kept, not sent: the embedded default has no mail server until one is configured.
HELD = "held"


class OutboxMessage(TenantScoped, SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_claimed_by", "claimed_by"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE", index=True)
    message_id: str = Field(max_length=255, unique=True)
    to_address: str = Field(max_length=320)
    to_name: str = Field(default="", max_length=200)
    reply_to: str = Field(default="", max_length=320)
    subject: str = Field(max_length=300)
    body_text: str = Field(sa_type=Text)
    body_html: str = Field(sa_type=Text)
    template: str = Field(max_length=60)
    # A text/calendar part (and the same calendar as invite.ics), for invitations and their updates.
    calendar_method: str = Field(default="", max_length=16)
    calendar_ics: str = Field(default="", sa_type=Text)
    status: str = Field(default=PENDING, max_length=16)
    attempts: int = Field(default=0)
    last_error: str = Field(default="", sa_type=Text)
    next_attempt_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set while a dispatcher holds the message: who (host, process and run) and until when. The
    # holder's heartbeat moves `claimed_until` on every few seconds; a dispatcher that died
    # stops beating, and its claims are free 30 seconds later.
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxAttachment(TenantScoped, SQLModel, table=True):
    """A file sent with an outbox message."""

    __tablename__ = "outbox_attachment"

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    message_id: int = Field(foreign_key="outbox_message.id", ondelete="CASCADE", index=True)
    filename: str = Field(max_length=200)
    content_type: str = Field(max_length=100)
    data: bytes = Field(sa_type=LargeBinary)
