"""Instant meetings: who invited whom to which room, and who joined when."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.accounts.models import EMAIL_MAX, NAME_MAX
from portal.db import TenantScoped, UTCDateTime, utcnow

MESSAGE_MAX = 500
REQUEST_KEY_MAX = 64
ROOM_URL_MAX = 500


class Meeting(TenantScoped, SQLModel, table=True):
    __table_args__ = (
        # One Send, one meeting: a repeated request with the same key finds the first.
        UniqueConstraint("host_id", "request_key", name="uq_meeting_host_request"),
        Index("ix_meeting_host_started", "host_id", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    host_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    # The room as it was when the meeting started, so history and old links stay truthful.
    room_url: str = Field(max_length=ROOM_URL_MAX)
    message: str = Field(default="", max_length=MESSAGE_MAX)
    request_key: str = Field(max_length=REQUEST_KEY_MAX)
    started_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MeetingInvitee(TenantScoped, SQLModel, table=True):
    __tablename__ = "meeting_invitee"
    __table_args__ = (Index("ix_meeting_invitee_meeting", "meeting_id"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    meeting_id: int = Field(foreign_key="meeting.id", ondelete="CASCADE")
    # None for someone invited by email address who has no account here.
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    email: str = Field(max_length=EMAIL_MAX)
    name: str = Field(default="", max_length=NAME_MAX)
    join_token: str = Field(max_length=64, unique=True)
    # When the join link leads to the room: an instant meeting's opens as it starts and closes
    # 12 hours later; a calendar event's will open shortly before it starts and close at its end.
    opens_at: dt.datetime = Field(sa_type=UTCDateTime)
    closes_at: dt.datetime = Field(sa_type=UTCDateTime)
    first_joined_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class MeetingJoin(TenantScoped, SQLModel, table=True):
    """One click on a join link: a log entry, not a change anyone could forge against."""

    __tablename__ = "meeting_join"
    __table_args__ = (Index("ix_meeting_join_invitee", "invitee_id"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    invitee_id: int = Field(foreign_key="meeting_invitee.id", ondelete="CASCADE")
    # Who was signed in when the link was used, if anyone (links get forwarded).
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    joined_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
