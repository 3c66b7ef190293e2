"""A Webex host authorizes the portal the first time they host, through the app and the Webex
simulator's own authorization page; it holds 3 months from the last hosted session."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from portal import db as portal_db
from portal.accounts.models import Company, User
from portal.conferencing import people, secrets
from portal.conferencing.models import ConferencingConnection, ConferencingLogin, ProviderAccount
from portal.conferencing.services import AUTHORIZE, resolve_room
from portal.db import Database
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.webex_simulator import WebexAccount, webex_app, webex_endpoints
from tests.conftest import PortalClient, make_company, make_user

HOST_EMAIL = "bob@acme.example"


@pytest.fixture
def webex() -> WebexAccount:
    account = WebexAccount("webex-client", "webex-secret")
    account.add_person(HOST_EMAIL, "Bob Member")
    return account


@pytest.fixture
def webex_url(webex: WebexAccount) -> Iterator[str]:
    with serve(webex_app(webex)) as url:
        yield url


@pytest.fixture
def settings(settings: Settings, webex_url: str) -> Settings:
    return dataclasses.replace(settings, provider_endpoints=webex_endpoints(webex_url))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.timedelta]:
    """Moves the clock host authorization reads: set `clock[0]` to the offset."""
    offset = [dt.timedelta(0)]
    real = portal_db.utcnow
    monkeypatch.setattr(people, "utcnow", lambda: real() + offset[0])
    return offset


async def _connect_webex(
    db: Database, settings: Settings, company: Company, webex: WebexAccount
) -> ConferencingConnection:
    async with db.transaction(company_id=company.id) as session:
        connection = ConferencingConnection(
            company_id=company.id or 0,
            name="Webex",
            provider="webex",
            public_credentials={"client_id": webex.client_id},
            secret_credentials=secrets.encrypt(
                settings,
                company.id or 0,
                {
                    "client_secret": webex.client_secret,
                    "refresh_token": webex.admin_refresh_token,
                },
            ),
        )
        session.add(connection)
        await session.flush()
        return connection


async def _map(db: Database, connection: ConferencingConnection, person: User) -> None:
    async with db.transaction(company_id=connection.company_id) as session:
        session.add(
            ProviderAccount(
                company_id=connection.company_id,
                connection_id=connection.id or 0,
                provider_user_id="webex-bob",
                email=person.email,
                email_key=person.email,
                status="active",
                user_id=person.id,
            )
        )


@pytest.fixture
async def connection(
    db: Database, settings: Settings, acme: Company, member: User, webex: WebexAccount
) -> ConferencingConnection:
    connection = await _connect_webex(db, settings, acme, webex)
    await _map(db, connection, member)
    return connection


@pytest.fixture
async def host(client: PortalClient, member: User) -> PortalClient:
    await client.sign_in(member.email)
    return client


async def _meet_now(host: PortalClient, colleague: User) -> httpx.Response:
    return await host.http.post(
        "/meetings/start",
        data={
            "csrf_token": await host.csrf(),
            "invitee": str(colleague.id),
            "request_key": "k" * 32,
        },
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/people"},
    )


async def _authorize_at_webex(
    host: PortalClient, connection: ConferencingConnection, *, accept: bool = True
) -> httpx.Response:
    """Proceed, then Accept (or Cancel) on Webex's page: the portal's answer to the return."""
    proceed = await host.get(f"/conferencing/{connection.id}/authorize?next=/people")
    assert proceed.status_code == 303
    page_url = proceed.headers["location"]
    async with httpx.AsyncClient() as browser:
        page = await browser.get(page_url)
        assert "Sign in to Webex" in page.text
        fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
        fields = {name: unescape(value) for name, value in fields.items()}
        answer = await browser.post(
            page_url.split("?")[0],
            data={**fields, "email": HOST_EMAIL, "action": "accept" if accept else "cancel"},
        )
    assert answer.status_code == 302
    back = urlsplit(answer.headers["location"])
    assert back.path == "/conferencing/authorized"
    return await host.get(f"{back.path}?{back.query}")


async def _login(db: Database, company: Company) -> ConferencingLogin | None:
    async with db.session(company_id=company.id) as session:
        return (await session.execute(select(ConferencingLogin))).scalars().first()


async def test_a_first_time_host_sees_their_webex_email_and_proceed(
    db: Database, connection: ConferencingConnection, host: PortalClient, admin: User
) -> None:
    answer = await _meet_now(host, admin)
    assert answer.status_code == 422
    assert HOST_EMAIL in answer.text
    assert "Proceed" in answer.text
    assert f"/conferencing/{connection.id}/authorize?next=/people" in answer.text


async def test_authorizing_at_webex_lets_the_host_host_in_their_room(
    db: Database,
    acme: Company,
    connection: ConferencingConnection,
    host: PortalClient,
    admin: User,
    webex: WebexAccount,
) -> None:
    back = await _authorize_at_webex(host, connection)
    assert back.status_code == 303 and back.headers["location"] == "/people"
    login = await _login(db, acme)
    assert login is not None and login.host_authorized_until is not None
    assert "webex-secret" not in login.secret and login.secret
    started = await _meet_now(host, admin)
    assert started.status_code == 200, started.text
    bob = webex.by_email(HOST_EMAIL)
    assert bob is not None
    assert webex.rooms[bob["id"]] in started.headers["HX-Trigger"]


async def test_the_authorization_lasts_three_months_from_the_last_hosted_session(
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    connection: ConferencingConnection,
    host: PortalClient,
    clock: list[dt.timedelta],
) -> None:
    await _authorize_at_webex(host, connection)
    first = await _login(db, acme)
    assert first is not None and first.host_authorized_until is not None
    # Hosting two months later moves the end 3 months on from then.
    clock[0] = dt.timedelta(days=60)
    async with db.transaction(company_id=acme.id) as session:
        room = await resolve_room(session, settings, member)
    assert room.url
    hosted = await _login(db, acme)
    assert hosted is not None and hosted.host_authorized_until is not None
    assert hosted.host_authorized_until - first.host_authorized_until >= dt.timedelta(days=59)
    # A day past that end, the host is asked again.
    clock[0] = hosted.host_authorized_until - portal_db.utcnow() + dt.timedelta(days=1, hours=1)
    async with db.session(company_id=acme.id) as session:
        again = await resolve_room(session, settings, member)
    assert (again.url, again.action, again.account_email) == ("", AUTHORIZE, HOST_EMAIL)


async def test_a_cancelled_authorization_says_so_and_keeps_nothing(
    db: Database, acme: Company, connection: ConferencingConnection, host: PortalClient
) -> None:
    back = await _authorize_at_webex(host, connection, accept=False)
    assert back.status_code == 303
    page = await host.get(back.headers["location"])
    assert "You did not authorize the portal at Webex (SSO)" in unescape(page.text)
    assert await _login(db, acme) is None


async def test_a_replayed_return_is_refused(
    db: Database,
    acme: Company,
    connection: ConferencingConnection,
    host: PortalClient,
) -> None:
    proceed = await host.get(f"/conferencing/{connection.id}/authorize")
    state = parse_qs(urlsplit(proceed.headers["location"]).query)["state"][0]
    await host.get(f"/conferencing/authorized?error=access_denied&state={state}")
    replay = await host.get(f"/conferencing/authorized?code=anything&state={state}")
    page = await host.get(replay.headers["location"])
    assert "already used or began in another browser" in unescape(page.text)
    assert await _login(db, acme) is None


async def test_a_state_made_for_another_person_is_refused(
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    connection: ConferencingConnection,
    host: PortalClient,
) -> None:
    # The admin's state, sent back in the host's browser (whose own round trip is under way).
    await host.get(f"/conferencing/{connection.id}/authorize")
    theirs, _ = people.authorization_state(settings, connection, admin)
    answer = await host.get(f"/conferencing/authorized?code=x&state={theirs}")
    page = await host.get(answer.headers["location"])
    assert "already used or began in another browser" in unescape(page.text)
    assert await _login(db, acme) is None


async def test_an_old_state_is_refused(
    db: Database,
    acme: Company,
    connection: ConferencingConnection,
    host: PortalClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proceed = await host.get(f"/conferencing/{connection.id}/authorize")
    state = parse_qs(urlsplit(proceed.headers["location"]).query)["state"][0]
    monkeypatch.setattr(people, "STATE_MAX_AGE", -1)
    answer = await host.get(f"/conferencing/authorized?code=x&state={state}")
    page = await host.get(answer.headers["location"])
    assert "took too long" in unescape(page.text)


async def test_a_code_webex_refuses_keeps_nothing(
    db: Database, acme: Company, connection: ConferencingConnection, host: PortalClient
) -> None:
    proceed = await host.get(f"/conferencing/{connection.id}/authorize")
    state = parse_qs(urlsplit(proceed.headers["location"]).query)["state"][0]
    answer = await host.get(f"/conferencing/authorized?code=made-up&state={state}")
    assert answer.status_code == 303
    assert await _login(db, acme) is None


async def test_another_companys_webex_connection_is_not_found(
    db: Database,
    settings: Settings,
    webex: WebexAccount,
    connection: ConferencingConnection,
    host: PortalClient,
) -> None:
    globex = await make_company(db, "Globex")
    theirs = await _connect_webex(db, settings, globex, webex)
    answer = await host.get(f"/conferencing/{theirs.id}/authorize")
    assert answer.status_code == 404


async def test_a_connection_that_does_not_serve_the_host_is_not_found(
    db: Database,
    acme: Company,
    connection: ConferencingConnection,
    client: PortalClient,
) -> None:
    async with db.transaction(company_id=acme.id) as session:
        stored = await session.get(ConferencingConnection, connection.id)
        assert stored is not None
        stored.serves, stored.departments = "departments", ["Research"]
    await make_user(db, acme, "cy@acme.example", department="Sales")
    await client.sign_in("cy@acme.example")
    answer = await client.get(f"/conferencing/{connection.id}/authorize")
    assert answer.status_code == 404
