"""Where each kind of provider keeps a host's room: a meeting made with the host's own GoTo
password, a RingCentral room asked for once and kept, and the connection a person hosts on
when several serve them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.conferencing import people, secrets
from portal.conferencing.models import (
    CHOSEN,
    DEPARTMENTS,
    LOGIN_REFUSED,
    ConferencingConnection,
    ConferencingLogin,
    ConnectionMember,
    ProviderAccount,
)
from portal.conferencing.services import SETTINGS, PasswordRefused, resolve_room
from portal.db import Database
from portal.forms import FormErrors
from portal.meetings.models import Meeting
from portal.meetings.services import MeetNowRequest, new_request_key, start_meeting
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.goto_simulator import GoToAccount, goto_app, goto_endpoints
from tests.conferencing.ringcentral_simulator import (
    RingCentralAccount,
    ringcentral_app,
    ringcentral_endpoints,
)
from tests.conftest import PortalClient

GOTO_PASSWORD = "organizer-pass"


@pytest.fixture
def goto() -> GoToAccount:
    account = GoToAccount("goto-client", "goto-secret")
    account.add_organizer("bob@acme.example", GOTO_PASSWORD, "bob@acme.example", "Bob", "Member")
    return account


@pytest.fixture
def ringcentral() -> RingCentralAccount:
    return RingCentralAccount("rc-client", "rc-secret", "rc-jwt")


@pytest.fixture
def settings(
    settings: Settings, goto: GoToAccount, ringcentral: RingCentralAccount
) -> Iterator[Settings]:
    with serve(goto_app(goto)) as goto_url, serve(ringcentral_app(ringcentral)) as rc_url:
        endpoints = {**goto_endpoints(goto_url), **ringcentral_endpoints(rc_url)}
        yield dataclasses.replace(settings, provider_endpoints=endpoints)


async def _connect(
    db: Database,
    settings: Settings,
    company: Company,
    name: str,
    provider: str,
    public: dict[str, str],
    secret: dict[str, str],
    **options: object,
) -> ConferencingConnection:
    async with db.transaction(company_id=company.id) as session:
        connection = ConferencingConnection(
            company_id=company.id or 0,
            name=name,
            provider=provider,
            public_credentials=public,
            secret_credentials=secrets.encrypt(settings, company.id or 0, secret),
            **options,
        )
        session.add(connection)
        await session.flush()
        return connection


async def _goto(
    db: Database, settings: Settings, company: Company, **options: object
) -> ConferencingConnection:
    return await _connect(
        db,
        settings,
        company,
        "GoTo",
        "goto",
        {"client_id": "goto-client", "product": "meeting"},
        {"client_secret": "goto-secret"},
        **options,
    )


async def _ringcentral(
    db: Database, settings: Settings, company: Company, **options: object
) -> ConferencingConnection:
    return await _connect(
        db,
        settings,
        company,
        "RingCentral",
        "ringcentral",
        {"client_id": "rc-client"},
        {"client_secret": "rc-secret", "jwt": "rc-jwt"},
        **options,
    )


async def _save_goto_password(
    db: Database, settings: Settings, connection: ConferencingConnection, person: User
) -> None:
    async with db.transaction(company_id=person.company_id) as session:
        await people.save_password(
            session,
            settings,
            connection,
            person,
            {"username": "bob@acme.example", "password": GOTO_PASSWORD},
        )


async def test_a_goto_host_gets_a_new_goto_meeting_made_with_their_password(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    admin: User,
    goto: GoToAccount,
) -> None:
    connection = await _goto(db, settings, acme)
    await _save_goto_password(db, settings, connection, member)
    request = MeetNowRequest(invitee_ids=[str(admin.id)], request_key=new_request_key())
    async with db.transaction(company_id=acme.id) as session:
        started = await start_meeting(session, settings, acme, member, request)
    assert started.meeting.room_url.startswith("https://goto.example/join/")
    assert started.host_room_url.startswith("https://goto.example/start/")
    assert len(goto.meetings) == 1 and goto.meetings[0]["meetingtype"] == "immediate"


async def test_a_goto_password_refused_is_kept_for_the_settings_page(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    admin: User,
    goto: GoToAccount,
) -> None:
    connection = await _goto(db, settings, acme)
    await _save_goto_password(db, settings, connection, member)
    goto.change_password("bob@acme.example", "changed-at-goto")
    request = MeetNowRequest(invitee_ids=[str(admin.id)], request_key=new_request_key())
    async with db.session(company_id=acme.id, write=True) as session:
        with pytest.raises(PasswordRefused) as refused:
            await start_meeting(session, settings, acme, member, request)
        await session.commit()  # as the Meet Now view does with this refusal
    assert refused.value.room.action == SETTINGS
    assert "update your password here" in refused.value.errors["form"]
    async with db.session(company_id=acme.id) as session:
        login = (await session.execute(select(ConferencingLogin))).scalar_one()
        assert (await session.execute(select(Meeting))).first() is None
        # The next Meet Now says so without asking GoTo again.
        asked = len(goto.requests)
        room = await resolve_room(session, settings, member)
    assert login.state == LOGIN_REFUSED
    assert (room.url, room.action) == ("", SETTINGS)
    assert len(goto.requests) == asked


async def test_a_host_without_a_goto_password_is_sent_to_their_settings(
    db: Database, settings: Settings, acme: Company, member: User
) -> None:
    await _goto(db, settings, acme)
    async with db.session(company_id=acme.id) as session:
        room = await resolve_room(session, settings, member)
    assert (room.url, room.action) == ("", SETTINGS)
    assert "Enter your GoTo Meeting, Training or Webinar username and password" in room.reason


async def test_a_ringcentral_room_is_asked_for_once_and_kept(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    ringcentral: RingCentralAccount,
) -> None:
    connection = await _ringcentral(db, settings, acme)
    bob = ringcentral.add_user(member.email, "Bob", "Member")
    async with db.transaction(company_id=acme.id) as session:
        session.add(
            ProviderAccount(
                company_id=acme.id or 0,
                connection_id=connection.id or 0,
                provider_user_id=str(bob["id"]),
                email=member.email,
                email_key=member.email,
                status="active",
                user_id=member.id,
            )
        )
    async with db.transaction(company_id=acme.id) as session:
        first = await resolve_room(session, settings, member)
    asked = len(ringcentral.requests)
    async with db.session(company_id=acme.id) as session:
        again = await resolve_room(session, settings, member)
    assert first.url.startswith("https://v.ringcentral.example/join/")
    assert again.url == first.url
    assert len(ringcentral.requests) == asked


async def test_a_person_served_by_two_connections_hosts_on_the_one_they_choose(
    db: Database, settings: Settings, acme: Company, member: User
) -> None:
    goto = await _goto(db, settings, acme)
    ringcentral = await _ringcentral(db, settings, acme)
    async with db.session(company_id=acme.id) as session:
        room = await resolve_room(session, settings, member)
    assert (room.url, room.action) == ("", SETTINGS)
    assert "choose the one you host on" in room.reason
    async with db.transaction(company_id=acme.id) as session:
        await people.choose(session, member, goto.id or 0)
    async with db.transaction(company_id=acme.id) as session:
        await people.choose(session, member, ringcentral.id or 0)
    async with db.session(company_id=acme.id) as session:
        hosting = await people.hosting(session, member)
    assert hosting.connection is not None and hosting.connection.id == ringcentral.id


async def test_a_connection_serves_only_its_departments_and_chosen_people(
    db: Database, settings: Settings, acme: Company, member: User, admin: User
) -> None:
    sales = await _goto(db, settings, acme, serves=DEPARTMENTS, departments=["Sales"])
    chosen = await _ringcentral(db, settings, acme, serves=CHOSEN)
    async with db.transaction(company_id=acme.id) as session:
        session.add(
            ConnectionMember(
                company_id=acme.id or 0, connection_id=chosen.id or 0, user_id=admin.id or 0
            )
        )
    async with db.session(company_id=acme.id) as session:
        for_member = [c.id for c in await people.serving(session, member)]
        for_admin = [c.id for c in await people.serving(session, admin)]
    assert (for_member, for_admin) == ([sales.id], [chosen.id])


async def test_choosing_a_connection_that_does_not_serve_the_person_is_refused(
    db: Database, settings: Settings, acme: Company, member: User
) -> None:
    other = await _goto(db, settings, acme, serves=DEPARTMENTS, departments=["Research"])
    async with db.transaction(company_id=acme.id) as session:
        with pytest.raises(FormErrors):
            await people.choose(session, member, other.id or 0)


async def test_meet_now_keeps_the_refusal_and_links_to_the_settings_page(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    admin: User,
    goto: GoToAccount,
    client: PortalClient,
) -> None:
    connection = await _goto(db, settings, acme)
    await _save_goto_password(db, settings, connection, member)
    goto.change_password("bob@acme.example", "changed-at-goto")
    await client.sign_in(member.email)
    answer = await client.http.post(
        "/meetings/start",
        data={"csrf_token": await client.csrf(), "invitee": str(admin.id), "request_key": "k" * 32},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 422
    assert "update your password here" in answer.text
    assert '/settings/conferencing">Open Account Settings' in answer.text
    async with db.session(company_id=acme.id) as session:
        login = (await session.execute(select(ConferencingLogin))).scalar_one()
        assert (await session.execute(select(Meeting))).first() is None
    assert login.state == LOGIN_REFUSED
