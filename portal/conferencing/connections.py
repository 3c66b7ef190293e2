"""Connecting a company's conferencing account: check the credentials with the provider, keep
the secret ones encrypted, and the options the admin chooses."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.conferencing import secrets
from portal.conferencing.interfaces import ConferencingError
from portal.conferencing.models import ConferencingConnection, ProviderAccount, SyncRun
from portal.conferencing.providers import KINDS, ProviderKind, open_provider
from portal.db import add_or_find, utcnow
from portal.forms import FormErrors
from portal.settings import Settings

CREDENTIAL_MAX = 500
MASK = "••••••••"


async def connection_of(session: AsyncSession) -> ConferencingConnection | None:
    """The session's company's connection, if it has one."""
    return (await session.execute(select(ConferencingConnection))).scalars().first()


def kind_of(connection: ConferencingConnection) -> ProviderKind:
    return KINDS[connection.provider]


def masked_credentials(connection: ConferencingConnection) -> list[tuple[str, str]]:
    """(label, value) for the page: non-secret values as entered, secret ones masked."""
    return [
        (field.label, MASK if field.secret else connection.public_credentials.get(field.name, ""))
        for field in kind_of(connection).fields
    ]


def _kind(provider_key: str) -> ProviderKind:
    kind = KINDS.get(provider_key)
    if kind is None:
        raise FormErrors({"provider": "Choose a provider from the list."})
    if not kind.needs_account:
        raise FormErrors({"provider": f"{kind.label} needs no account: there is nothing to map."})
    return kind


def _read_fields(
    kind: ProviderKind, form: Mapping[str, str], stored: Mapping[str, str]
) -> dict[str, str]:
    """The credentials from the form (a blank secret keeps `stored`'s); FormErrors per field."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field in kind.fields:
        value = str(form.get(field.name) or "").strip()
        if not value and field.secret and stored.get(field.name):
            value = stored[field.name]
        if not value:
            errors[field.name] = f"Enter the {field.label}."
        elif len(value) > CREDENTIAL_MAX or any(c.isspace() or not c.isprintable() for c in value):
            errors[field.name] = (
                f"The {field.label} is a single word of letters, digits and signs: "
                "copy it again from your provider's admin page."
            )
        values[field.name] = value
    # Zoom's retired JWT apps had a key and a secret but no account id: let the adapter say
    # plainly what to do instead of asking for a field the admin's app does not have.
    jwt_app = kind.key == "zoom" and set(errors) == {"account_id"} and not values["account_id"]
    if errors and not jwt_app:
        raise FormErrors(errors)
    return values


async def _verify(settings: Settings, kind: ProviderKind, values: Mapping[str, str]) -> None:
    """Raise FormErrors with the provider's own reason unless the credentials work."""
    provider = open_provider(kind.key, values, settings.provider_endpoints)
    try:
        await provider.verify()
    except ConferencingError as error:
        raise FormErrors({"form": str(error)}) from None
    finally:
        await provider.aclose()


def _store(
    settings: Settings,
    connection: ConferencingConnection,
    kind: ProviderKind,
    values: Mapping[str, str],
) -> None:
    secret_names = {field.name for field in kind.fields if field.secret}
    connection.public_credentials = {k: v for k, v in values.items() if k not in secret_names}
    connection.secret_credentials = secrets.encrypt(
        settings,
        connection.company_id,
        {k: v for k, v in values.items() if k in secret_names},
    )
    connection.updated_at = utcnow()


async def connect(
    session: AsyncSession,
    settings: Settings,
    company_id: int,
    provider_key: str,
    form: Mapping[str, str],
) -> ConferencingConnection:
    """Check the credentials with the provider and save the connection; nothing is saved on
    any error (FormErrors: per field, or "form" for what the provider said)."""
    kind = _kind(provider_key)
    values = _read_fields(kind, form, {})
    await _verify(settings, kind, values)
    already = FormErrors({"form": "A conferencing account is connected already: remove it first."})
    if await connection_of(session) is not None:
        raise already
    connection = ConferencingConnection(
        company_id=company_id, provider=kind.key, secret_credentials=""
    )
    _store(settings, connection, kind, values)
    # Another admin's Map may pass the check above before either commits.
    if await add_or_find(session, connection, lambda: connection_of(session)) is not None:
        raise already
    return connection


def credentials(settings: Settings, connection: ConferencingConnection) -> dict[str, str]:
    """All the connection's credentials, the secret ones decrypted (UnreadableSecrets)."""
    secret = secrets.decrypt(settings, connection.company_id, connection.secret_credentials)
    return {**connection.public_credentials, **secret}


async def replace_credentials(
    session: AsyncSession,
    settings: Settings,
    connection: ConferencingConnection,
    form: Mapping[str, str],
) -> None:
    """New credentials for the same provider (a blank secret keeps the stored one), checked
    with the provider before they replace the old ones."""
    kind = kind_of(connection)
    try:
        stored = credentials(settings, connection)
    except secrets.UnreadableSecrets:
        stored = {}  # the admin must type the secret again; the blank field says so
    values = _read_fields(kind, form, stored)
    await _verify(settings, kind, values)
    _store(settings, connection, kind, values)
    await session.flush()


async def update_options(
    session: AsyncSession, connection: ConferencingConnection, form: Mapping[str, str]
) -> None:
    """The sync hour, automatic account creation, join before host and the Jitsi fallback."""
    kind = kind_of(connection)
    errors: dict[str, str] = {}
    raw_hour = str(form.get("sync_hour") or "").strip()
    if not (raw_hour.isascii() and raw_hour.isdigit() and 0 <= int(raw_hour) <= 23):
        errors["sync_hour"] = "Choose an hour from 0 to 23."
    auto_create = _checked(form, "auto_create")
    provisioning = str(form.get("provisioning") or "").strip()
    methods = dict(kind.provisioning)
    if auto_create and not methods:
        errors["auto_create"] = f"{kind.label} accounts cannot be created from the portal."
    elif provisioning and provisioning not in methods:
        errors["provisioning"] = "Choose a way of creating accounts from the list."
    elif auto_create and not provisioning:
        errors["provisioning"] = "Choose how accounts are created."
    if errors:
        raise FormErrors(errors)
    connection.sync_hour = int(raw_hour)
    connection.auto_create = auto_create
    connection.provisioning = provisioning
    connection.join_before_host = _checked(form, "join_before_host")
    connection.allow_jitsi_fallback = _checked(form, "allow_jitsi_fallback")
    connection.updated_at = utcnow()
    await session.flush()


def _checked(form: Mapping[str, str], name: str) -> bool:
    return str(form.get(name) or "").strip().lower() in {"on", "1", "true", "yes"}


async def disconnect(session: AsyncSession, connection: ConferencingConnection) -> None:
    """Remove the connection with its mapping and its sync history: rooms go back to Jitsi."""
    connection_id = connection.id
    # Explicit deletes rather than the foreign keys' cascade: SQLite's needs a PRAGMA per
    # connection, and the scoped session keeps the deletes to the company either way.
    await session.execute(delete(SyncRun).where(col(SyncRun.connection_id) == connection_id))
    await session.execute(
        delete(ProviderAccount).where(col(ProviderAccount.connection_id) == connection_id)
    )
    await session.delete(connection)
    await session.flush()
