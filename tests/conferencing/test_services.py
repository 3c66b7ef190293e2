"""Whose room is where: until a company connects an account, everyone's room is on Jitsi."""

from __future__ import annotations

import dataclasses

import pytest

from portal.accounts.models import User
from portal.conferencing.rooms import jitsi_room_url
from portal.conferencing.services import Room, resolve_room
from portal.db import Database
from portal.settings import Settings

# Derived from the test settings' secret key for person 1 of company 1 before rooms were
# resolved by a service: moving it would move every person's room.
ROOM_OF_PERSON_1 = "https://meet.jit.si/portal-ok7gaichshcmjznanvg6hnr7fu"


async def test_a_persons_room_is_their_stable_jitsi_room(
    db: Database, settings: Settings, admin: User
) -> None:
    async with db.session(company_id=admin.company_id) as session:
        room = await resolve_room(session, settings, admin)
        again = await resolve_room(session, settings, admin)
    assert room == again == Room(url=jitsi_room_url(settings, admin), provider="jitsi")


async def test_the_room_is_where_it_was_before_the_service(
    db: Database, settings: Settings
) -> None:
    person = User(id=1, company_id=1, email="ada@acme.example", display_name="Ada")
    async with db.session(company_id=1) as session:
        room = await resolve_room(session, settings, person)
    assert room.url == ROOM_OF_PERSON_1


def test_a_room_cannot_be_changed_once_resolved() -> None:
    room = Room(url="https://meet.jit.si/portal-x", provider="jitsi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        room.url = "https://elsewhere.example/"  # type: ignore[misc]
