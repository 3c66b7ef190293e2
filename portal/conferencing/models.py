"""A company's conferencing account, its users as sync last saw them, and the sync runs."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from portal.accounts.models import EMAIL_MAX
from portal.db import TenantScoped, UTCDateTime, utcnow

PROVIDER_USER_ID_MAX = 128
PROVIDER_NAME_MAX = 200
ROOM_URL_MAX = 500

# Why a provider user is not (or not usably) mapped; "" means mapped and usable.
NO_PERSON = "no_person"
TWO_PEOPLE = "two_people"
DEACTIVATED = "deactivated"
TAKEN = "taken"
NOT_LICENSED = "not_licensed"
PENDING_CONFIRMATION = "pending"
INACTIVE_AT_PROVIDER = "inactive"
DUPLICATE_EMAIL = "duplicate_email"
EMPTY_EMAIL = "empty_email"
GONE = "gone"
UNMAPPED_BY_HAND = "unmapped"
NOT_SERVED = "not_served"  # the person with this email is not among those the connection serves
# A portal person's reason only: no provider user has their email.
NO_ACCOUNT = "no_account"

REASONS = {
    NO_PERSON: "No portal person has this email",
    TWO_PEOPLE: "Two portal people have this email",
    DEACTIVATED: "The portal person with this email is deactivated",
    TAKEN: "The portal person is mapped to another {provider} user",
    NOT_LICENSED: "Not licensed at {provider}",
    PENDING_CONFIRMATION: "Pending confirmation at {provider}",
    INACTIVE_AT_PROVIDER: "Deactivated at {provider}",
    DUPLICATE_EMAIL: "Another {provider} user has the same email",
    EMPTY_EMAIL: "No email at {provider}",
    GONE: "No longer at {provider}",
    UNMAPPED_BY_HAND: "Unmapped by hand",
    NOT_SERVED: "The portal person with this email is not served by this connection",
    NO_ACCOUNT: "No {provider} user has this email",
}


def reason_text(reason: str, provider_label: str) -> str:
    """The sentence the mapping page shows for a reason key."""
    return REASONS.get(reason, reason).format(provider=provider_label)


MANUAL = "manual"
NIGHTLY = "nightly"
PERSON = "person"  # one person's own sync, from their Conferencing Accounts page
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"


# Whom a connection serves.
EVERYONE = "everyone"
DEPARTMENTS = "departments"
CHOSEN = "chosen"  # the people an admin picked (ConnectionMember)
SERVES = {
    EVERYONE: "Everyone",
    DEPARTMENTS: "People of some departments",
    CHOSEN: "People chosen by hand",
}
CONNECTION_NAME_MAX = 80


class ConferencingSettings(TenantScoped, SQLModel, table=True):
    """What applies to every connection of the company unless a connection says otherwise."""

    __tablename__ = "conferencing_settings"

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE", unique=True)
    auto_create: bool = Field(default=False)
    join_before_host: bool = Field(default=False)
    # A host with no account on their connection gets a Jitsi Meet room instead of a refusal.
    allow_jitsi_fallback: bool = Field(default=False)
    # People without a linked account land on their Conferencing Accounts page at sign-in.
    require_account: bool = Field(default=False)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConferencingConnection(TenantScoped, SQLModel, table=True):
    """One of the company's accounts at a conferencing provider."""

    __tablename__ = "conferencing_connection"
    __table_args__ = (
        # Two admins' Map of the same thing at once makes one connection, not two.
        UniqueConstraint("company_id", "name", name="uq_conferencing_connection_name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    # What admins and people see it as ("Zoom", "Zoom for Sales").
    name: str = Field(max_length=CONNECTION_NAME_MAX)
    provider: str = Field(max_length=16)
    # The credential fields that are not secret (account and client ids), shown back as entered.
    public_credentials: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    # The secret ones: a Fernet token (see portal.conferencing.secrets), never shown back.
    secret_credentials: str = Field(sa_type=Text)
    # The hour of the nightly sync, in the company's time zone.
    sync_hour: int = Field(default=2)
    serves: str = Field(default=EVERYONE, max_length=16)
    departments: list[str] = Field(default_factory=list, sa_type=JSON)
    # None: as the company's ConferencingSettings say.
    auto_create: bool | None = Field(default=None)
    # The provider's wire value for how accounts are created ("create", "autoCreate", ...).
    provisioning: str = Field(default="", max_length=32)
    join_before_host: bool | None = Field(default=None)
    connected_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConnectionMember(TenantScoped, SQLModel, table=True):
    """A person an admin chose for a connection that serves people chosen by hand."""

    __tablename__ = "conferencing_member"
    __table_args__ = (
        UniqueConstraint("connection_id", "user_id", name="uq_conferencing_member"),
        Index("ix_conferencing_member_person", "user_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    connection_id: int = Field(foreign_key="conferencing_connection.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")


# A person's login: how the provider last answered.
LOGIN_OK = "ok"
LOGIN_REFUSED = "refused"  # the provider stopped accepting the password: the person must update it


class ConferencingLogin(TenantScoped, SQLModel, table=True):
    """A person's own sign-in at a connection: the username and password they entered (password
    providers), or the tokens of their host authorization (Webex in SSO mode)."""

    __tablename__ = "conferencing_login"
    __table_args__ = (UniqueConstraint("connection_id", "user_id", name="uq_conferencing_login"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    connection_id: int = Field(foreign_key="conferencing_connection.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    username: str = Field(default="", max_length=EMAIL_MAX)
    # A Fernet token (portal.conferencing.secrets) of the password, or of the host's tokens.
    secret: str = Field(default="", sa_type=Text)
    # Who the provider said they are.
    provider_user_id: str = Field(default="", max_length=PROVIDER_USER_ID_MAX)
    email: str = Field(default="", max_length=EMAIL_MAX)
    name: str = Field(default="", max_length=PROVIDER_NAME_MAX)
    room_url: str = Field(default="", max_length=ROOM_URL_MAX)
    state: str = Field(default=LOGIN_OK, max_length=16)
    checked_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Host authorization: valid until then; each hosted session moves it 3 months on.
    host_authorized_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ConferencingChoice(TenantScoped, SQLModel, table=True):
    """The connection a person served by several hosts their meetings on."""

    __tablename__ = "conferencing_choice"

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", unique=True)
    connection_id: int = Field(foreign_key="conferencing_connection.id", ondelete="CASCADE")


class ProviderAccount(TenantScoped, SQLModel, table=True):
    """A provider user as the last sync saw them, and the portal person they are mapped to."""

    __tablename__ = "conferencing_account"
    __table_args__ = (
        UniqueConstraint("connection_id", "provider_user_id", name="uq_conferencing_account_user"),
        # resolve_room: a host's mapped account.
        Index("ix_conferencing_account_person", "user_id", "connection_id"),
        # The page's lists: mapped (reason ""), and unmapped by reason, in email order.
        Index("ix_conferencing_account_list", "connection_id", "reason", "email_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    connection_id: int = Field(foreign_key="conferencing_connection.id", ondelete="CASCADE")
    provider_user_id: str = Field(max_length=PROVIDER_USER_ID_MAX)
    email: str = Field(default="", max_length=EMAIL_MAX)
    # The email trimmed and lower-cased: what matching compares.
    email_key: str = Field(default="", max_length=EMAIL_MAX)
    name: str = Field(default="", max_length=PROVIDER_NAME_MAX)
    status: str = Field(max_length=16)
    licensed: bool = Field(default=True)
    room_url: str = Field(default="", max_length=ROOM_URL_MAX)
    # Kept once matched, so that an email changed on either side does not lose the mapping.
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    reason: str = Field(default="", max_length=32)
    # Mapped or unmapped by an admin: sync leaves `user_id` as the admin set it.
    manual: bool = Field(default=False)
    # When sync (or an admin) last changed the row: an unchanged re-sync writes nothing.
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SyncRun(TenantScoped, SQLModel, table=True):
    """One sync of a company's provider users, with its progress and its summary."""

    __tablename__ = "conferencing_sync_run"
    __table_args__ = (
        Index("ix_conferencing_sync_run_history", "connection_id", "started_at"),
        # At most one running sync of a connection's users, across processes...
        Index(
            "uq_conferencing_sync_run_running",
            "connection_id",
            unique=True,
            sqlite_where=text("status = 'running' AND person_id IS NULL"),
            postgresql_where=text("status = 'running' AND person_id IS NULL"),
        ),
        # ...and of each person's own account.
        Index(
            "uq_conferencing_sync_run_person",
            "connection_id",
            "person_id",
            unique=True,
            sqlite_where=text("status = 'running' AND person_id IS NOT NULL"),
            postgresql_where=text("status = 'running' AND person_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    connection_id: int = Field(foreign_key="conferencing_connection.id", ondelete="CASCADE")
    trigger: str = Field(max_length=16)
    status: str = Field(default=RUNNING, max_length=16)
    requested_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    # A person's own sync (trigger PERSON): only their account is looked up.
    person_id: int | None = Field(default=None, foreign_key="users.id", ondelete="CASCADE")
    started_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Written with each page: a running run whose heartbeat stopped was left by a dead process.
    heartbeat_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    pages_read: int = Field(default=0)
    users_seen: int = Field(default=0)
    # While reading: provider users whose email is an active person's; then: people mapped.
    people_matched: int = Field(default=0)
    newly_mapped: int = Field(default=0)
    still_unmapped: int = Field(default=0)
    no_longer_at_provider: int = Field(default=0)
    accounts_created: int = Field(default=0)
    error: str = Field(default="", sa_type=Text)

    @property
    def finished(self) -> bool:
        return self.status != RUNNING
