"""Whose room is where: the one question meetings and calendar ask of conferencing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.conferencing.models import ConferencingConnection, ProviderAccount
from portal.conferencing.providers import KINDS
from portal.conferencing.rooms import jitsi_room_url
from portal.settings import Settings


@dataclass(frozen=True)
class Room:
    """A meeting room people can be sent to, and which service holds it; no `url` when the
    host has none, and `reason` says why (for the host to read)."""

    url: str
    provider: str
    reason: str = ""


async def resolve_room(session: AsyncSession, settings: Settings, host: User) -> Room:
    """The host's personal room: the mapped one on the company's provider, else Jitsi Meet.

    Read from the mapping sync stored, never asked of the provider: this runs on the request
    path of pages that list people.
    """
    connection = (await session.execute(select(ConferencingConnection))).scalars().first()
    if connection is None:
        return Room(url=jitsi_room_url(settings, host), provider="jitsi")
    room_url = (
        await session.execute(
            select(col(ProviderAccount.room_url)).where(
                col(ProviderAccount.connection_id) == connection.id,
                col(ProviderAccount.user_id) == host.id,
                col(ProviderAccount.reason) == "",
                col(ProviderAccount.room_url) != "",
            )
        )
    ).scalar()
    if room_url:
        return Room(url=room_url, provider=connection.provider)
    if connection.allow_jitsi_fallback:
        return Room(url=jitsi_room_url(settings, host), provider="jitsi")
    label = KINDS[connection.provider].label
    return Room(
        url="",
        provider=connection.provider,
        reason=f"No {label} account is mapped to you: ask your admin, or the admin can create one.",
    )
