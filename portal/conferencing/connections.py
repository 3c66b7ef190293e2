"""Connecting a company's conferencing accounts: check the credentials with the provider, keep
the secret ones encrypted, and name each connection (a company may have several)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.conferencing import secrets
from portal.conferencing.interfaces import ConferencingError, Provider, RenewsCredentials
from portal.conferencing.models import (
    CONNECTION_NAME_MAX,
    ConferencingChoice,
    ConferencingConnection,
    ConferencingLogin,
    ConferencingSettings,
    ConnectionMember,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.providers import KINDS, ProviderKind, open_provider
from portal.db import add_or_find, utcnow
from portal.forms import FormErrors
from portal.settings import Settings

CREDENTIAL_MAX = 500
MASK = "••••••••"


async def connections_of(session: AsyncSession) -> list[ConferencingConnection]:
    """The session's company's connections, oldest first."""
    query = select(ConferencingConnection).order_by(col(ConferencingConnection.id))
    return list((await session.execute(query)).scalars())


async def connection_by_id(
    session: AsyncSession, connection_id: int
) -> ConferencingConnection | None:
    """One of the session's company's connections (None: not the company's, or no such one)."""
    query = select(ConferencingConnection).where(col(ConferencingConnection.id) == connection_id)
    return (await session.execute(query)).scalars().first()


async def sitewide_settings(session: AsyncSession, company_id: int) -> ConferencingSettings:
    """The company's sitewide settings: the stored row, or the defaults (not added) if none."""
    stored = (await session.execute(select(ConferencingSettings))).scalars().first()
    return stored if stored is not None else ConferencingSettings(company_id=company_id)


def join_before_host(connection: ConferencingConnection, sitewide: ConferencingSettings) -> bool:
    """The connection's own choice, else the sitewide one."""
    own = connection.join_before_host
    return sitewide.join_before_host if own is None else own


def auto_create(connection: ConferencingConnection, sitewide: ConferencingSettings) -> bool:
    """The connection's own choice, else the sitewide one."""
    own = connection.auto_create
    return sitewide.auto_create if own is None else own


def provisioning_method(connection: ConferencingConnection) -> str:
    """How the connection's accounts are created: its own choice, else its provider's first way
    ("" when the provider has none). A connection made before sitewide creation existed chose
    none, and creation turned on sitewide must still work for it."""
    methods = [value for value, _ in kind_of(connection).provisioning]
    if connection.provisioning in methods:
        return connection.provisioning
    return methods[0] if methods else ""


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
) -> tuple[dict[str, str], dict[str, str]]:
    """The credentials from the form (a blank secret keeps `stored`'s), and an error per field."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field in kind.fields:
        value = str(form.get(field.name) or "").strip()
        if not value and field.secret and stored.get(field.name):
            value = stored[field.name]
        if field.choices and value not in dict(field.choices):
            errors[field.name] = f"Choose the {field.label} from the list."
        elif not value:
            errors[field.name] = f"Enter the {field.label}."
        elif len(value) > CREDENTIAL_MAX or any(c.isspace() or not c.isprintable() for c in value):
            errors[field.name] = (
                f"The {field.label} is a single word of letters, digits and signs: "
                "copy it again from your provider's admin page."
            )
        values[field.name] = value
    # Zoom's retired JWT apps had a key and a secret but no account id: let the adapter say
    # plainly what to do instead of asking for a field the admin's app does not have.
    if kind.key == "zoom" and set(errors) == {"account_id"} and not values["account_id"]:
        errors = {}
    return values, errors


def name_taken(name: str) -> dict[str, str]:
    """The form's error when another connection has the name."""
    return {"name": f"Another connection is named “{name}”: choose another name."}


async def read_name(
    session: AsyncSession, raw: str, default: str, connection_id: int | None = None
) -> tuple[str, dict[str, str]]:
    """The connection's name from the form (blank: `default`), and its error if any: names
    tell connections apart for admins and people, so two may not differ by letter case only."""
    name = " ".join(raw.split()) or default
    if len(name) > CONNECTION_NAME_MAX or not name.isprintable():
        return name, {"name": f"Keep the name to one line of {CONNECTION_NAME_MAX} characters."}
    same = select(col(ConferencingConnection.id)).where(
        func.lower(col(ConferencingConnection.name)) == name.lower(),
        col(ConferencingConnection.id) != (connection_id or 0),
    )
    if (await session.execute(same)).first() is not None:
        return name, name_taken(name)
    return name, {}


async def _verify(provider: Provider) -> None:
    """Raise FormErrors with the provider's own reason unless the credentials work; the adapter
    is closed after."""
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
    """Check the credentials with the provider and save a new connection named `form["name"]`
    (blank: the provider's label); nothing is saved on any error (FormErrors: per field, or
    "form" for what the provider said)."""
    kind = _kind(provider_key)
    name, errors = await read_name(session, str(form.get("name") or ""), kind.label)
    values, field_errors = _read_fields(kind, form, {})
    if errors or field_errors:
        raise FormErrors({**errors, **field_errors})
    provider = open_provider(kind.key, values, settings.provider_endpoints)
    await _verify(provider)
    connection = ConferencingConnection(
        company_id=company_id, name=name, provider=kind.key, secret_credentials=""
    )
    # Checking may have renewed one (Webex's refresh token): the one entered may be dead now.
    _store(settings, connection, kind, {**values, **_renewed(values, provider)})

    async def twin() -> ConferencingConnection | None:
        query = select(ConferencingConnection).where(col(ConferencingConnection.name) == name)
        return (await session.execute(query)).scalars().first()

    # Another admin's Map under the same name may pass the check above before either commits.
    if await add_or_find(session, connection, twin) is not None:
        raise FormErrors(name_taken(name))
    return connection


def credentials(settings: Settings, connection: ConferencingConnection) -> dict[str, str]:
    """All the connection's credentials, the secret ones decrypted (UnreadableSecrets)."""
    secret = secrets.decrypt(settings, connection.company_id, connection.secret_credentials)
    return {**connection.public_credentials, **secret}


def _renewed(opened: Mapping[str, str], provider: object) -> dict[str, str]:
    """The credential fields `provider` holds anew since it was opened over `opened`."""
    if not isinstance(provider, RenewsCredentials):
        return {}
    return {
        name: value for name, value in provider.credentials().items() if opened.get(name) != value
    }


def renewed_credentials(
    settings: Settings, connection: ConferencingConnection, provider: object
) -> dict[str, str]:
    """The credential fields the provider gave `provider` anew since it was opened over the
    connection's (a refresh token Webex rotated); {} when none."""
    return _renewed(credentials(settings, connection), provider)


async def keep_renewed_credentials(
    session: AsyncSession, settings: Settings, connection: ConferencingConnection, provider: object
) -> bool:
    """Store the credentials the provider renewed for `provider`, which was opened over
    `connection`'s, encrypted like the rest (flushed; the caller commits). False when it renewed
    none, or when an admin entered other credentials meanwhile: theirs stand.

    Call it once the adapter is done, whether its work succeeded or not: a refresh token Webex
    rotated is the only one that works from then on. `connection` may be a copy read before the
    adapter was opened (a job's): the row is read again in `session`.
    """
    opened = credentials(settings, connection)
    renewed = _renewed(opened, provider)
    if not renewed:
        return False
    row = await session.get(ConferencingConnection, connection.id)
    if row is None:
        return False  # disconnected meanwhile
    try:
        stored = credentials(settings, row)
    except secrets.UnreadableSecrets:
        return False
    # Webex's documentation does not say whether a refresh token stays good for a while once a
    # refresh was answered with a new one (developer.webex.com's integration pages describe the
    # answer, refresh_token and refresh_token_expires_in, and nothing of the old token;
    # integrators' guides say to keep the new one): no grace is assumed, so the new one is kept
    # at once. Two adapters refreshing the same stored token at once: if Webex answers both,
    # each writes its own and the last write wins; if it refuses the second, that one's work
    # fails and the first one's token stays. Only a change to a field the adapter did not renew
    # (a new client secret, say) means an admin replaced the credentials meanwhile.
    if any(stored.get(name) != value for name, value in opened.items() if name not in renewed):
        return False
    _store(settings, row, kind_of(row), {**stored, **renewed})
    await session.flush()
    return True


async def replace_credentials(
    session: AsyncSession,
    settings: Settings,
    connection: ConferencingConnection,
    form: Mapping[str, str],
) -> None:
    """New credentials for the same provider (a blank secret keeps the stored one), checked
    with the provider before they replace the old ones. A refusal (FormErrors) writes nothing
    but what the provider renewed of the stored ones, which the caller keeps all the same."""
    kind = kind_of(connection)
    try:
        stored = credentials(settings, connection)
    except secrets.UnreadableSecrets:
        stored = {}  # the admin must type the secret again; the blank field says so
    values, errors = _read_fields(kind, form, stored)
    if errors:
        raise FormErrors(errors)
    provider = open_provider(kind.key, values, settings.provider_endpoints)
    try:
        await _verify(provider)
    except FormErrors:
        if values == stored:
            # The stored credentials checked again: a refresh token Webex renewed before it
            # refused (a server error after the token call) is the only one that works now.
            await keep_renewed_credentials(session, settings, connection, provider)
        raise
    _store(settings, connection, kind, {**values, **_renewed(values, provider)})
    await session.flush()


async def disconnect(session: AsyncSession, connection: ConferencingConnection) -> None:
    """Remove the connection with everything kept for it (mapping, sync history, the people
    chosen for it, people's sign-ins and choices of it): their rooms go elsewhere."""
    connection_id = connection.id
    # Explicit deletes rather than the foreign keys' cascade: the scoped session keeps them to
    # the company, and no row is left should a database run without the cascade.
    kept = (SyncRun, ProviderAccount, ConnectionMember, ConferencingLogin, ConferencingChoice)
    for table in kept:
        await session.execute(delete(table).where(col(table.connection_id) == connection_id))
    await session.delete(connection)
    await session.flush()
