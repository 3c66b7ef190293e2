"""The company's sitewide conferencing settings, and each connection's own settings, which
override them: its name, whom it serves, automatic account creation, join before host and
the hour of its nightly sync."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from portal.conferencing.connections import kind_of, name_taken, read_name, sitewide_settings
from portal.conferencing.models import (
    DEPARTMENTS,
    SERVES,
    ConferencingConnection,
    ConferencingSettings,
)
from portal.conferencing.providers import AUTOMATIC
from portal.db import add_or_find, utcnow
from portal.directory import services as directory
from portal.forms import FormErrors

# The sitewide settings, each a checkbox of the same name.
SITEWIDE = ("auto_create", "join_before_host", "allow_jitsi_fallback", "require_account")
# A connection's choice for a sitewide setting: as sitewide (None), or its own.
OVERRIDES: dict[str, bool | None] = {"": None, "on": True, "off": False}


def _checked(form: Mapping[str, str], name: str) -> bool:
    return str(form.get(name) or "").strip().lower() in {"on", "1", "true", "yes"}


async def update_sitewide(
    session: AsyncSession, company_id: int, form: Mapping[str, str]
) -> ConferencingSettings:
    """Save the sitewide settings from their form's checkboxes (the row is made on first save)."""
    stored = await sitewide_settings(session, company_id)
    if stored.id is None:
        # Two admins saving for the first time at once: the second writes to the first's row.
        twin = await add_or_find(session, stored, lambda: _stored_settings(session, company_id))
        stored = twin or stored
    for name in SITEWIDE:
        setattr(stored, name, _checked(form, name))
    stored.updated_at = utcnow()
    await session.flush()
    return stored


async def _stored_settings(session: AsyncSession, company_id: int) -> ConferencingSettings | None:
    stored = await sitewide_settings(session, company_id)
    return stored if stored.id is not None else None


def _override(form: Mapping[str, str], name: str, errors: dict[str, str]) -> bool | None:
    raw = str(form.get(name) or "").strip()
    if raw not in OVERRIDES:
        errors[name] = "Choose “As sitewide”, “On” or “Off”."
    return OVERRIDES.get(raw)


def _sync_hour(connection: ConferencingConnection, raw: str, errors: dict[str, str]) -> int:
    """The hour from the form; a connection that never syncs keeps the one it has."""
    if kind_of(connection).people != AUTOMATIC:
        return connection.sync_hour
    if not (raw.isascii() and raw.isdigit() and 0 <= int(raw) <= 23):
        errors["sync_hour"] = "Choose an hour from 0 to 23."
        return connection.sync_hour
    return int(raw)


async def _departments(
    session: AsyncSession,
    connection: ConferencingConnection,
    chosen: Sequence[str],
    serves: str,
    errors: dict[str, str],
) -> list[str]:
    """The ticked departments: the company's, or ones the connection has kept since their
    last person left (so that saving again is not refused)."""
    picked = sorted(set(chosen))
    known = {*await directory.departments(session), *connection.departments}
    if any(department not in known for department in picked):
        errors["departments"] = "Choose departments from the list."
    elif serves == DEPARTMENTS and not picked:
        errors["departments"] = "Choose at least one department."
    return picked


def _creation(
    connection: ConferencingConnection, form: Mapping[str, str], errors: dict[str, str]
) -> tuple[bool | None, str]:
    """Automatic account creation and how, for a provider that can create accounts."""
    kind = kind_of(connection)
    methods = dict(kind.provisioning) if kind.people == AUTOMATIC else {}
    auto_create = _override(form, "auto_create", errors)
    if not methods:
        if auto_create:
            errors["auto_create"] = f"{kind.label} accounts cannot be created from the portal."
        return None, ""
    provisioning = str(form.get("provisioning") or "").strip()
    if provisioning not in methods:
        errors["provisioning"] = "Choose how accounts are created, from the list."
    return auto_create, provisioning


async def update_settings(
    session: AsyncSession,
    connection: ConferencingConnection,
    form: Mapping[str, str],
    departments: Sequence[str],
) -> None:
    """Save the connection's settings form (`departments`: its ticked boxes); FormErrors per
    field, and then nothing is changed."""
    name, errors = await read_name(
        session, str(form.get("name") or ""), connection.name, connection.id
    )
    serves = str(form.get("serves") or "")
    if serves not in SERVES:
        errors["serves"] = "Choose whom the connection serves."
    picked = await _departments(session, connection, departments, serves, errors)
    auto_create, provisioning = _creation(connection, form, errors)
    join_before_host = _override(form, "join_before_host", errors)
    hour = _sync_hour(connection, str(form.get("sync_hour") or "").strip(), errors)
    if errors:
        raise FormErrors(errors)
    connection.name, connection.serves, connection.departments = name, serves, picked
    connection.auto_create, connection.provisioning = auto_create, provisioning
    connection.join_before_host, connection.sync_hour = join_before_host, hour
    connection.updated_at = utcnow()
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        # Another admin gave that name to another connection since the check above.
        await session.refresh(connection)
        raise FormErrors(name_taken(name)) from None
