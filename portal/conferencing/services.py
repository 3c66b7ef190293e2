"""Whose room is where: the one question meetings and calendar ask of conferencing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import User
from portal.conferencing import people
from portal.conferencing.connections import (
    credentials,
    join_before_host,
    keep_renewed_credentials,
    sitewide_settings,
)
from portal.conferencing.interfaces import BadCredentials, ConferencingError, MeetingRequest
from portal.conferencing.mapping import usable_account
from portal.conferencing.models import (
    LOGIN_REFUSED,
    ROOM_URL_MAX,
    ConferencingConnection,
    ConferencingSettings,
)
from portal.conferencing.providers import KINDS, open_password_provider, open_provider
from portal.conferencing.rooms import jitsi_room_url
from portal.conferencing.secrets import UnreadableSecrets
from portal.forms import FormErrors
from portal.settings import Settings

# What a host must do before they can host (Room.action).
AUTHORIZE = "authorize"  # authorize the portal at the provider (Webex in SSO mode)
SETTINGS = "settings"  # enter or update their username and password, or pick a connection

INSTANT_MINUTES = 60


@dataclass(frozen=True)
class Room:
    """A meeting room people can be sent to, and which service holds it; no `url` when the
    host has none, and `reason` says why (for the host to read) and `action` what to do."""

    url: str
    provider: str
    reason: str = ""
    # The host's own link where it differs from the attendees' (a GoTo meeting's start link).
    host_url: str = ""
    action: str = ""
    connection_id: int | None = None
    # The address the provider account uses, shown before the host authorizes the portal.
    account_email: str = ""


class HostMustAct(FormErrors):
    """The host has no room until they act (see `room.action`); the form shows `room.reason`."""

    def __init__(self, room: Room, field: str = "form") -> None:
        super().__init__({field: room.reason})
        self.room = room


class PasswordRefused(HostMustAct):
    """The provider refused the host's stored password. The login was marked refused: the
    caller commits that even though it refuses the request, so the settings page says it too."""


async def resolve_room(
    session: AsyncSession,
    settings: Settings,
    host: User,
    *,
    topic: str = "",
    start: dt.datetime | None = None,
    minutes: int = INSTANT_MINUTES,
) -> Room:
    """The host's room on the connection they host on, else Jitsi Meet.

    Where the host's connection keeps personal rooms, the room comes from the mapping sync
    stored (this runs on the request path of pages that list people); a provider is asked
    only for what no sync can know: a meeting made with the host's own password, a room asked
    as the host, or a room link the provider's user list leaves out. `topic`, `start` and
    `minutes` describe the meeting to create where each meeting is its own (instant: no start).
    """
    hosting = await people.hosting(session, host)
    connection = hosting.connection
    if connection is None:
        if hosting.choose:
            return Room(
                url="",
                provider="",
                reason="Several conferencing accounts serve you: choose the one you host on "
                "in Account Settings > Conferencing Accounts.",
                action=SETTINGS,
            )
        return Room(url=jitsi_room_url(settings, host), provider="jitsi")
    sitewide = await sitewide_settings(session, host.company_id)
    kind = KINDS[connection.provider]
    if kind.signs_in:
        request = MeetingRequest(
            topic=topic or f"{host.display_name}'s meeting",
            start=start,
            duration_minutes=minutes,
            time_zone=host.time_zone,
            join_before_host=join_before_host(connection, sitewide),
        )
        return await _signed_in_room(session, settings, host, connection, sitewide, request)
    if kind.host_authorization:
        return await _authorized_room(session, settings, host, connection, sitewide)
    return await _mapped_room(session, settings, host, connection, sitewide)


def _without(
    settings: Settings,
    host: User,
    connection: ConferencingConnection,
    sitewide: ConferencingSettings,
    reason: str,
    action: str = "",
) -> Room:
    """No room on the connection: Jitsi Meet where the admin allows it, else the reason."""
    if sitewide.allow_jitsi_fallback:
        return Room(url=jitsi_room_url(settings, host), provider="jitsi")
    return Room(
        url="",
        provider=connection.provider,
        reason=reason,
        action=action,
        connection_id=connection.id,
    )


async def _mapped_room(
    session: AsyncSession,
    settings: Settings,
    host: User,
    connection: ConferencingConnection,
    sitewide: ConferencingSettings,
) -> Room:
    label = KINDS[connection.provider].label
    account = await usable_account(session, connection, host)
    if account is None:
        return _without(
            settings,
            host,
            connection,
            sitewide,
            f"No {label} account is mapped to you: ask your admin, or the admin can create one.",
        )
    if not account.room_url:
        # The provider's user list carries no room link (RingCentral, Webex): ask once, keep it.
        try:
            provider = open_provider(
                connection.provider, credentials(settings, connection), settings.provider_endpoints
            )
            try:
                room_url = await provider.personal_room(account.provider_user_id)
            finally:
                await provider.aclose()
                await keep_renewed_credentials(session, settings, connection, provider)
        except (ConferencingError, UnreadableSecrets) as error:
            return _without(settings, host, connection, sitewide, str(error))
        if len(room_url) <= ROOM_URL_MAX:
            account.room_url = room_url
            await session.flush()
        return Room(url=room_url, provider=connection.provider, connection_id=connection.id)
    return Room(url=account.room_url, provider=connection.provider, connection_id=connection.id)


async def _signed_in_room(
    session: AsyncSession,
    settings: Settings,
    host: User,
    connection: ConferencingConnection,
    sitewide: ConferencingSettings,
    request: MeetingRequest,
) -> Room:
    label = KINDS[connection.provider].label
    login = await people.login_of(session, connection, host)
    if login is None or not login.secret:
        return _without(
            settings,
            host,
            connection,
            sitewide,
            f"Enter your {label} username and password in Account Settings > Conferencing "
            "Accounts to host there.",
            SETTINGS,
        )
    refused = f"{label} no longer accepts your password: update your password here."
    if login.state == LOGIN_REFUSED:
        return _without(settings, host, connection, sitewide, refused, SETTINGS)
    try:
        password = people.password_of(settings, login)
        provider = open_password_provider(
            connection.provider, credentials(settings, connection), settings.provider_endpoints
        )
    except UnreadableSecrets as error:
        return _without(settings, host, connection, sitewide, str(error), SETTINGS)
    try:
        created = await provider.start_meeting(login.username, password, request)
    except BadCredentials:
        people.refuse(login)
        await session.flush()
        raise PasswordRefused(
            Room(
                url="",
                provider=connection.provider,
                reason=refused,
                action=SETTINGS,
                connection_id=connection.id,
            )
        ) from None
    except ConferencingError as error:
        return _without(settings, host, connection, sitewide, str(error))
    finally:
        await provider.aclose()
    return Room(
        url=created.join_url,
        provider=connection.provider,
        host_url=created.start_url,
        connection_id=connection.id,
    )


async def _authorized_room(
    session: AsyncSession,
    settings: Settings,
    host: User,
    connection: ConferencingConnection,
    sitewide: ConferencingSettings,
) -> Room:
    label = KINDS[connection.provider].label
    account = await usable_account(session, connection, host)
    if account is None:
        return _without(
            settings,
            host,
            connection,
            sitewide,
            f"No {label} account is mapped to you: ask your admin.",
        )
    login = await people.login_of(session, connection, host)
    ask = Room(
        url="",
        provider=connection.provider,
        reason=f"Before you host, {label} asks you to let the portal start meetings for you.",
        action=AUTHORIZE,
        connection_id=connection.id,
        account_email=account.email,
    )
    if login is None or not people.host_authorized(login):
        return ask
    try:
        room_url = await people.hosted_room(session, settings, connection, login)
    except (BadCredentials, UnreadableSecrets):
        return ask
    except ConferencingError as error:
        return _without(settings, host, connection, sitewide, str(error))
    return Room(url=room_url, provider=connection.provider, connection_id=connection.id)


def required(room: Room, field: str = "form") -> Room:
    """The room, or HostMustAct with its reason when the host has none."""
    if not room.url:
        raise HostMustAct(room, field)
    return room
