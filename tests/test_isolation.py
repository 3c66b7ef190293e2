"""Companies never see each other's data: every route with an id, tried with another's ids."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Mount, Route

from portal import features
from portal.accounts.models import Company, User
from portal.app import named_routes
from portal.calendar.models import CalendarEvent
from portal.conferencing.models import (
    ConferencingConnection,
    ConnectionMember,
    ProviderAccount,
    SyncRun,
)
from portal.db import Database, utcnow
from portal.mail.messages import EmailContent
from portal.mail.outbox import enqueue
from portal.notifications.services import notify, unread_count
from portal.settings import Settings
from tests.conftest import PortalClient, make_company, make_user

# Path parameters that are not ids of a company's rows, with why.
NOT_IDS = {"token"}  # a signed link: checked by signature, tested in test_set_password


async def test_every_route_answers_404_to_another_companys_ids(
    admin_client: PortalClient, db: Database, acme: Company, member: User, settings: Settings
) -> None:
    globex = await make_company(db, "Globex")
    victim = await make_user(db, globex, "victim@globex.example", admin=True)
    async with db.session(company_id=globex.id, write=True) as session:
        mail = enqueue(
            session,
            settings,
            company_id=globex.id or 0,
            to_address="victim@globex.example",
            to_name="Victim",
            content=EmailContent("victim secret", "t", "h"),
            template="test",
        )
        notice = await notify(
            session, recipient=victim, actor=None, kind="test", text="victim secret", url="/people"
        )
        event = _event_of(victim)
        session.add(event)
        account, run = await _conferencing_of(session, victim)
        await session.commit()
    # The viewer's company has a connection too: a route that looked a connection up by the
    # company alone would find it and go on to the victim's account or run.
    async with db.session(company_id=acme.id, write=True) as session:
        session.add(
            ConferencingConnection(
                company_id=acme.id or 0, name="Zoom", provider="zoom", secret_credentials=""
            )
        )
        await session.commit()
    ids = {
        "user_id": victim.id,
        "message_id": mail.id,
        "notification_id": notice.id,
        "event_id": event.id,
        "connection_id": account.connection_id,
        "account_id": account.id,
        "run_id": run.id,
    }
    walked = 0
    for prefix, route in named_routes(features.routes()):
        # Every route is a Route once mounts are walked: a named mount would hide its routes.
        assert isinstance(route, Route), f"{prefix}{route.path}: walk this {type(route).__name__}"
        params = set(route.param_convertors) - NOT_IDS
        if not params:
            continue
        missing = params - ids.keys()
        assert not missing, f"{prefix}{route.path}: add its {missing} to this test"
        path = prefix + route.path.format(**{name: ids[name] for name in params})
        for method in sorted(route.methods or {"GET"}):
            if method == "HEAD":
                continue
            if method == "GET":
                response = await admin_client.get(path)
            else:
                response = await admin_client.post(
                    path, {"display_name": "Hacked", "email": "x@acme.example"}
                )
            assert response.status_code == 404, (method, path, response.status_code)
            assert "victim" not in response.text.lower()
            walked += 1
    assert walked >= 37
    async with db.session(company_id=globex.id) as session:
        stored = await session.get(User, victim.id)
    assert stored is not None and stored.active and stored.display_name != "Hacked"
    async with db.session(company_id=globex.id) as session:
        assert await unread_count(session, victim) == 1
        kept = await session.get(CalendarEvent, event.id)
    assert kept is not None and kept.title == "victim secret" and kept.cancelled_at is None
    async with db.session(company_id=globex.id) as session:
        mapped = await session.get(ProviderAccount, account.id)
        connection = await session.get(ConferencingConnection, account.connection_id)
        members = (await session.execute(select(ConnectionMember))).scalars().all()
    assert mapped is not None and mapped.user_id == victim.id and not mapped.manual
    assert connection is not None and connection.name == "Victim Zoom"
    assert [member.user_id for member in members] == [victim.id]


async def _conferencing_of(session: AsyncSession, victim: User) -> tuple[ProviderAccount, SyncRun]:
    """A Zoom connection with the victim mapped and chosen, and one sync run: what conferencing
    routes try."""
    connection = ConferencingConnection(
        company_id=victim.company_id, name="Victim Zoom", provider="zoom", secret_credentials=""
    )
    session.add(connection)
    await session.flush()
    account = ProviderAccount(
        company_id=victim.company_id,
        connection_id=connection.id or 0,
        provider_user_id="victim-zoom-id",
        email=victim.email,
        email_key=victim.email,
        name="Victim",
        status="active",
        user_id=victim.id,
    )
    run = SyncRun(
        company_id=victim.company_id,
        connection_id=connection.id or 0,
        trigger="manual",
        status="failed",
        error="victim secret",
    )
    member = ConnectionMember(
        company_id=victim.company_id, connection_id=connection.id or 0, user_id=victim.id or 0
    )
    session.add_all([account, run, member])
    await session.flush()
    return account, run


def _event_of(organizer: User) -> CalendarEvent:
    """A meeting in the organizer's room, tomorrow: what every calendar route is tried on."""
    start = utcnow().replace(microsecond=0) + dt.timedelta(days=1)
    return CalendarEvent(
        company_id=organizer.company_id,
        organizer_id=organizer.id or 0,
        uid="victim-event@globex.example",
        title="victim secret",
        time_zone="UTC",
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        last_ends_at=start + dt.timedelta(hours=1),
        uses_room=True,
        room_url="https://meet.jit.si/portal-victim",
    )


async def test_lists_and_search_show_only_the_viewers_company(
    admin_client: PortalClient, db: Database, member: User
) -> None:
    globex = await make_company(db, "Globex")
    await make_user(db, globex, "bob@globex.example", name="Bob Other", department="Sales")
    for path in ("/people?q=bob", "/people?department=Sales", "/setup/users?q=bob", "/setup/users"):
        page = await admin_client.get(path)
        assert "Bob Member" in page.text or "bob@acme" in page.text, path
        assert "Bob Other" not in page.text and "globex" not in page.text.lower(), path


async def test_a_person_signed_in_to_one_company_cannot_open_a_link_to_anothers_setup(
    client: PortalClient, db: Database, acme: Company
) -> None:
    globex = await make_company(db, "Globex")
    outsider = await make_user(db, globex, "eve@globex.example", admin=True)
    target = await make_user(db, acme, "target@acme.example")
    await client.sign_in(outsider.email)
    assert (await client.get(f"/setup/users/{target.id}")).status_code == 404
    response = await client.post(f"/setup/users/{target.id}/deactivate")
    assert response.status_code == 404
    async with db.session(company_id=acme.id) as session:
        stored = await session.get(User, target.id)
    assert stored is not None and stored.active


def test_the_walk_finds_the_routes_inside_mounts() -> None:
    mounted = [route for route in features.routes() if isinstance(route, Mount)]
    assert mounted, "Company Setup is a mount: the walk must see inside it"
    walked = {prefix + route.path for prefix, route in named_routes(features.routes())}
    assert "/setup/outbox/{message_id}/retry" in walked
    assert "/setup/users/{user_id}" in walked
    assert "/setup/conferencing/{connection_id}/members/{user_id}/remove" in walked
