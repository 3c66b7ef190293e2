"""Whose room is where: the one question meetings and calendar ask of conferencing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import User
from portal.conferencing.rooms import jitsi_room_url
from portal.settings import Settings


@dataclass(frozen=True)
class Room:
    """A meeting room people can be sent to, and which service holds it."""

    url: str
    provider: str


async def resolve_room(session: AsyncSession, settings: Settings, host: User) -> Room:
    """The host's personal room: today on Jitsi Meet, derived from the host's id.

    Async and given the session because a company's conferencing account (read from the
    database, and sometimes asked of the provider) will decide this once one is connected.
    """
    return Room(url=jitsi_room_url(settings, host), provider="jitsi")
