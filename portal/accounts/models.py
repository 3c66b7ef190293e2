"""Companies and the people in them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.db import TenantScoped, UTCDateTime, utcnow

ADMIN = "admin"
MEMBER = "member"
ROLES = (ADMIN, MEMBER)

NAME_MAX = 100
EMAIL_MAX = 254
PHONE_MAX = 40


class Company(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=NAME_MAX)
    slug: str = Field(max_length=60, unique=True)
    default_time_zone: str = Field(default="UTC", max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(TenantScoped, SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("company_id", "email", name="uq_user_company_email"),
        Index("ix_user_email", "email"),
        Index("ix_user_company_name", "company_id", "display_name"),
        # Directory search reads these columns of a company's active people in name order: the
        # index holds them all, so a search scans the index alone, and a page stops early.
        Index(
            "ix_user_company_directory",
            "company_id",
            "active",
            "display_name",
            "id",
            "email",
            "title",
            "department",
        ),
        # The People page's list of departments: distinct values read from the index alone.
        Index("ix_user_company_department", "company_id", "department", "active"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    # Stored lower-cased: one address, one person, whatever case it is typed in.
    email: str = Field(max_length=EMAIL_MAX)
    display_name: str = Field(max_length=NAME_MAX)
    title: str = Field(default="", max_length=NAME_MAX)
    department: str = Field(default="", max_length=NAME_MAX)
    phone: str = Field(default="", max_length=PHONE_MAX)
    time_zone: str = Field(default="UTC", max_length=64)
    role: str = Field(default=MEMBER, max_length=16)
    active: bool = Field(default=True)
    password_hash: str | None = Field(default=None, max_length=255)
    # Kept in the signed session cookie; raising it signs the person out everywhere.
    session_version: int = Field(default=1)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


class LoginThrottle(SQLModel, table=True):
    """Consecutive failed sign-ins per email address, across companies.

    A try counts as a failure from the moment it is claimed, before its password is checked; a
    right password then clears the count (see `portal.accounts.signin.begin_sign_in`).
    """

    __tablename__ = "login_throttle"

    email: str = Field(primary_key=True, max_length=EMAIL_MAX)
    failures: int = Field(default=0)
    locked_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


SOURCE_MAX = 64


class SignInSourceThrottle(SQLModel, table=True):
    """Failed sign-ins from one client address (an IPv6 /64), across every email address."""

    __tablename__ = "sign_in_source_throttle"

    # "203.0.113.7", or "2001:db8:1:2::/64": one person's IPv6 network, not one of its addresses.
    source: str = Field(primary_key=True, max_length=SOURCE_MAX)
    failures: int = Field(default=0)
    locked_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The count starts again from nothing after this: fifteen quiet minutes after the last try
    # or the end of the last wait.
    forget_at: dt.datetime = Field(sa_type=UTCDateTime)
