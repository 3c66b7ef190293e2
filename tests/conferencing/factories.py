"""Conferencing rows for tests: a company's connection as an admin would have made it, and a
provider user as a sync would have stored it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from portal.accounts.models import Company, User
from portal.conferencing import secrets
from portal.conferencing.models import (
    EVERYONE,
    ConferencingConnection,
    ConnectionMember,
    ProviderAccount,
)
from portal.conferencing.providers import KINDS
from portal.db import Database
from portal.settings import Settings

ZOOM = {"account_id": "acct-1", "client_id": "client-1", "client_secret": "s3cret-value"}
GOTO = {"client_id": "goto-client", "client_secret": "goto-secret", "product": "meeting"}
WEBEX = {"client_id": "webex-client", "client_secret": "webex-secret", "refresh_token": "r"}


async def add_connection(
    db: Database,
    settings: Settings,
    company: Company,
    provider: str,
    values: Mapping[str, str],
    *,
    name: str = "",
    serves: str = EVERYONE,
    departments: Iterable[str] = (),
    members: Iterable[User] = (),
) -> ConferencingConnection:
    """A connection of `company` to `provider` with these credentials, serving as asked."""
    kind = KINDS[provider]
    secret = {field.name for field in kind.fields if field.secret}
    async with db.transaction(company_id=company.id) as session:
        connection = ConferencingConnection(
            company_id=company.id or 0,
            name=name or kind.label,
            provider=provider,
            public_credentials={k: v for k, v in values.items() if k not in secret},
            secret_credentials=secrets.encrypt(
                settings, company.id or 0, {k: v for k, v in values.items() if k in secret}
            ),
            serves=serves,
            departments=list(departments),
        )
        session.add(connection)
        await session.flush()
        for member in members:
            session.add(
                ConnectionMember(
                    company_id=company.id or 0,
                    connection_id=connection.id or 0,
                    user_id=member.id or 0,
                )
            )
    return connection


async def add_account(
    db: Database,
    connection: ConferencingConnection,
    provider_user_id: str,
    email: str,
    *,
    person: User | None = None,
    reason: str = "",
    manual: bool = False,
    room_url: str = "",
) -> ProviderAccount:
    """A provider user as sync stored it, mapped to `person` (if any) with `reason`."""
    async with db.transaction(company_id=connection.company_id) as session:
        account = ProviderAccount(
            company_id=connection.company_id,
            connection_id=connection.id or 0,
            provider_user_id=provider_user_id,
            email=email,
            email_key=email.lower(),
            name=email.split("@")[0].title(),
            status="active",
            room_url=room_url,
            user_id=person.id if person else None,
            reason=reason,
            manual=manual,
        )
        session.add(account)
    return account
