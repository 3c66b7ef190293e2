"""In-app notices: what happened that a person should know about, and whether they have seen it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Text
from sqlalchemy.orm import relationship
from sqlmodel import Field, Relationship, SQLModel

from portal.accounts.models import User
from portal.db import TenantScoped, UTCDateTime, utcnow

KIND_MAX = 40
TEXT_MAX = 1000
URL_MAX = 500


class Notification(TenantScoped, SQLModel, table=True):
    __table_args__ = (
        # The bell's count: a range of the recipient's unread rows.
        Index("ix_notification_user_unread", "user_id", "read_at"),
        # The list: the recipient's newest first.
        Index("ix_notification_user_recent", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    # Who caused it; None for the portal itself.
    actor_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    kind: str = Field(max_length=KIND_MAX)
    # Plain text, escaped wherever it is shown.
    text: str = Field(sa_type=Text)
    # A path inside the portal, such as /join/<token>; never another site.
    url: str = Field(max_length=URL_MAX)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    read_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)

    # Shown beside every notice, so loaded with it (a second query, one per batch of notices).
    actor: User | None = Relationship(
        sa_relationship=relationship(User, foreign_keys="Notification.actor_id", lazy="selectin")
    )
