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
    NO_ACCOUNT: "No {provider} user has this email",
}


def reason_text(reason: str, provider_label: str) -> str:
    """The sentence the mapping page shows for a reason key."""
    return REASONS.get(reason, reason).format(provider=provider_label)


MANUAL = "manual"
NIGHTLY = "nightly"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"


class ConferencingConnection(TenantScoped, SQLModel, table=True):
    """The company's account at a conferencing provider (one per company for now)."""

    __tablename__ = "conferencing_connection"

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE", unique=True)
    provider: str = Field(max_length=16)
    # The credential fields that are not secret (account and client ids), shown back as entered.
    public_credentials: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    # The secret ones: a Fernet token (see portal.conferencing.secrets), never shown back.
    secret_credentials: str = Field(sa_type=Text)
    # The hour of the nightly sync, in the company's time zone.
    sync_hour: int = Field(default=2)
    auto_create: bool = Field(default=False)
    # The provider's wire value for how accounts are created ("create", "autoCreate", ...).
    provisioning: str = Field(default="", max_length=32)
    join_before_host: bool = Field(default=False)
    allow_jitsi_fallback: bool = Field(default=False)
    connected_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


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
        # At most one running sync per company, across processes.
        Index(
            "uq_conferencing_sync_run_running",
            "company_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    connection_id: int = Field(foreign_key="conferencing_connection.id", ondelete="CASCADE")
    trigger: str = Field(max_length=16)
    status: str = Field(default=RUNNING, max_length=16)
    requested_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
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
