"""Whose room is where: on Jitsi until a company connects an account; then the mapped room,
or the reason there is none (or Jitsi, when the admin allows it)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.calendar.forms import EventInput
from portal.calendar.models import CalendarEvent
from portal.calendar.services import create_event
from portal.conferencing.models import (
    ConferencingConnection,
    ConferencingSettings,
    ProviderAccount,
)
from portal.conferencing.rooms import jitsi_room_url
from portal.conferencing.services import Room, resolve_room
from portal.db import Database
from portal.forms import FormErrors
from portal.meetings.models import Meeting
from portal.meetings.services import MeetNowRequest, new_request_key, start_meeting
from portal.settings import Settings
from tests.conftest import make_company

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


# Once a company connects an account: the mapped room, else the reason or the Jitsi fallback.


async def _connected(db: Database, company_id: int, **options: object) -> ConferencingConnection:
    async with db.transaction(company_id=company_id) as session:
        connection = ConferencingConnection(
            company_id=company_id, name="Zoom", provider="zoom", secret_credentials="", **options
        )
        session.add(connection)
        await session.flush()
        return connection


async def _allow_jitsi(db: Database, company_id: int) -> None:
    async with db.transaction(company_id=company_id) as session:
        session.add(ConferencingSettings(company_id=company_id, allow_jitsi_fallback=True))


async def _map(
    db: Database, connection: ConferencingConnection, person: User, room_url: str, reason: str = ""
) -> None:
    async with db.transaction(company_id=connection.company_id) as session:
        session.add(
            ProviderAccount(
                company_id=connection.company_id,
                connection_id=connection.id or 0,
                provider_user_id=f"zu-{person.id}",
                email=person.email,
                email_key=person.email,
                status="active",
                room_url=room_url,
                user_id=person.id,
                reason=reason,
            )
        )


async def test_a_mapped_host_gets_their_room_at_the_provider(
    db: Database, settings: Settings, admin: User
) -> None:
    connection = await _connected(db, admin.company_id)
    await _map(db, connection, admin, "https://zoom.us/j/8000000001")
    async with db.session(company_id=admin.company_id) as session:
        room = await resolve_room(session, settings, admin)
    assert room == Room(
        url="https://zoom.us/j/8000000001", provider="zoom", connection_id=connection.id
    )


@pytest.mark.parametrize("reason", ["", "pending"])
async def test_an_unmapped_host_is_told_why_unless_the_admin_allows_jitsi(
    db: Database, settings: Settings, admin: User, member: User, reason: str
) -> None:
    connection = await _connected(db, admin.company_id)
    # Someone else's mapping, or the host's own that is not usable yet.
    await _map(db, connection, member if not reason else admin, "https://zoom.us/j/1", reason)
    async with db.session(company_id=admin.company_id) as session:
        room = await resolve_room(session, settings, admin)
    assert room.url == ""
    assert room.reason == (
        "No Zoom account is mapped to you: ask your admin, or the admin can create one."
    )
    await _allow_jitsi(db, admin.company_id)
    async with db.session(company_id=admin.company_id) as session:
        room = await resolve_room(session, settings, admin)
    assert room == Room(url=jitsi_room_url(settings, admin), provider="jitsi")


async def test_another_companys_connection_leaves_rooms_on_jitsi(
    db: Database, settings: Settings, admin: User
) -> None:
    globex = await make_company(db, "Globex")
    await _connected(db, globex.id or 0)
    async with db.session(company_id=admin.company_id) as session:
        room = await resolve_room(session, settings, admin)
    assert room.provider == "jitsi"


async def test_meet_now_without_a_room_tells_the_host_and_writes_nothing(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    await _connected(db, admin.company_id)
    request = MeetNowRequest(invitee_ids=[str(member.id)], request_key=new_request_key())
    async with db.session(company_id=admin.company_id, write=True) as session:
        with pytest.raises(FormErrors) as raised:
            await start_meeting(session, settings, acme, admin, request)
    assert "No Zoom account is mapped to you" in raised.value.errors["form"]
    async with db.session(company_id=admin.company_id) as session:
        assert (await session.execute(select(Meeting))).first() is None


async def test_an_event_in_the_organizers_room_without_one_says_why(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    await _connected(db, admin.company_id)
    data = EventInput(
        title="Planning",
        start_date="2026-12-01",
        start_time="09:00",
        end_date="2026-12-01",
        end_time="10:00",
        time_zone="Europe/Berlin",
        uses_room=True,
    )
    async with db.session(company_id=admin.company_id, write=True) as session:
        with pytest.raises(FormErrors) as raised:
            await create_event(session, settings, acme, admin, data)
    assert "No Zoom account is mapped to you" in raised.value.errors["uses_room"]
    async with db.session(company_id=admin.company_id) as session:
        assert (await session.execute(select(CalendarEvent))).first() is None
