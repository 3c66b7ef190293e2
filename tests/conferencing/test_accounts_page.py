"""Account Settings > Conferencing Accounts through the app, against the Zoom and GoTo
simulators: a username and password saved, refused or removed; an account linked by the
person's own sync while the page polls; Reassociate; the default connection; the landing page
at sign-in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from html import unescape

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.conferencing.models import (
    LOGIN_REFUSED,
    PENDING_CONFIRMATION,
    RUNNING,
    ConferencingChoice,
    ConferencingConnection,
    ConferencingLogin,
    ConferencingSettings,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.person_sync import run_person_sync
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.rooms import jitsi_room_url
from portal.db import Database
from portal.htmx import STOP_POLLING
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.factories import GOTO, WEBEX, ZOOM, add_account, add_connection
from tests.conferencing.goto_simulator import GoToAccount, goto_app, goto_endpoints
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints
from tests.conftest import PortalClient, make_company

PAGE = "/settings/conferencing"
BOB_GOTO = ("bob.goto", "goto pass 1")
GOTO_LABEL = "GoTo Meeting, Training or Webinar"
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that is down is tried again at once: the tests check what follows."""
    monkeypatch.setattr(base, "DEFAULT_RETRY", RetryPolicy(2, 0.01, 0.01, 0, 0.01))


@pytest.fixture
def goto() -> GoToAccount:
    account = GoToAccount(GOTO["client_id"], GOTO["client_secret"])
    account.add_organizer(*BOB_GOTO, "bob@goto.example", "Bob", "Goto")
    return account


@pytest.fixture
def settings(settings: Settings, zoom: ZoomAccount, goto: GoToAccount) -> Iterator[Settings]:
    with serve(zoom_app(zoom)) as zoom_url, serve(goto_app(goto)) as goto_url:
        endpoints = {**zoom_endpoints(zoom_url), **goto_endpoints(goto_url)}
        yield dataclasses.replace(settings, provider_endpoints=endpoints)


@pytest.fixture
async def bob(client: PortalClient, member: User) -> PortalClient:
    """The member, signed in."""
    await client.sign_in(member.email)
    return client


def text_of(html: str) -> str:
    """The page's words, without tags: what the person reads."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def _logins(db: Database, company_id: int) -> list[ConferencingLogin]:
    async with db.session(company_id=company_id) as session:
        return list((await session.execute(select(ConferencingLogin))).scalars())


async def _person_runs(db: Database, person: User) -> list[SyncRun]:
    async with db.session(company_id=person.company_id) as session:
        query = select(SyncRun).where(col(SyncRun.person_id) == person.id)
        return list((await session.execute(query.order_by(col(SyncRun.id)))).scalars())


async def _followed(client: PortalClient, response: httpx.Response) -> str:
    """The words of the page a 303 leads to."""
    assert response.status_code == 303, response.text
    return text_of((await client.get(response.headers["location"])).text)


# The panel and the empty state.


async def test_account_settings_has_a_panel_marking_the_page_shown(bob: PortalClient) -> None:
    for path, current in (("/settings/profile", "Profile"), (PAGE, "Conferencing Accounts")):
        html = (await bob.get(path)).text
        nav = re.search(
            r'<nav class="settings-nav" aria-label="Account Settings">(.*?)</nav>', html, re.S
        )
        assert nav is not None, path
        links = re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav.group(1))
        assert [(href.split("testserver")[-1], label) for href, _, label in links] == [
            ("/settings/profile", "Profile"),
            ("/settings/conferencing", "Conferencing Accounts"),
        ]
        assert [label for _, marked, label in links if marked] == [current]


async def test_without_a_connection_serving_them_a_person_has_jitsi_and_nothing_to_do(
    bob: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    # Serves another department only: not listed, and its routes are not this person's.
    other = await add_connection(
        db, settings, acme, "zoom", ZOOM, serves="departments", departments=["Engineering"]
    )
    page = await bob.get(PAGE)
    words = text_of(page.text)
    assert "Your meetings use Jitsi Meet rooms: nothing to set up." in words
    assert jitsi_room_url(settings, member) in words
    assert "Zoom" not in words and await _person_runs(db, member) == []
    for method, path in (
        ("GET", f"{PAGE}/{other.id}/status"),
        ("POST", f"{PAGE}/{other.id}/reassociate"),
        ("POST", f"{PAGE}/{other.id}/password"),
        ("POST", f"{PAGE}/{other.id}/password/remove"),
    ):
        response = await (bob.get(path, headers=HTMX) if method == "GET" else bob.post(path))
        assert response.status_code == 404, (method, path)


async def test_another_companys_connection_is_not_found(
    bob: PortalClient, db: Database, settings: Settings
) -> None:
    globex = await make_company(db, "Globex")
    zoom = await add_connection(db, settings, globex, "zoom", ZOOM)
    goto = await add_connection(db, settings, globex, "goto", GOTO)
    for method, path in (
        ("GET", f"{PAGE}/{zoom.id}/status"),
        ("POST", f"{PAGE}/{zoom.id}/reassociate"),
        ("POST", f"{PAGE}/{goto.id}/password"),
        ("POST", f"{PAGE}/{goto.id}/password/remove"),
        ("GET", f"{PAGE}/x/status"),
        ("POST", f"{PAGE}/99999999999/password"),
    ):
        form = {"username": BOB_GOTO[0], "password": BOB_GOTO[1]}
        response = await (bob.get(path, headers=HTMX) if method == "GET" else bob.post(path, form))
        assert response.status_code == 404, (method, path)
    assert await _logins(db, globex.id or 0) == []
    chose = await bob.post(f"{PAGE}/default", {"default": str(zoom.id)})
    assert chose.status_code == 400


# Username and password (GoTo).


async def test_a_person_saves_their_username_and_password_and_sees_the_account(
    bob: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    connection = await add_connection(db, settings, acme, "goto", GOTO)
    page = await bob.get(PAGE)
    assert page.status_code == 200
    assert f'id="username-{connection.id}"' in page.text and 'type="password"' in page.text
    assert "Remove" not in text_of(page.text)
    saved = await bob.post(
        f"{PAGE}/{connection.id}/password",
        {"username": BOB_GOTO[0], "password": BOB_GOTO[1]},
    )
    words = await _followed(bob, saved)
    assert f"Your {GOTO_LABEL} account is linked." in words
    assert f"Username {BOB_GOTO[0]}" in words and "bob@goto.example" in words
    assert "Bob Goto" in words and "Remove" in words
    page = await bob.get(PAGE)
    assert BOB_GOTO[1] not in page.text
    (login,) = await _logins(db, acme.id or 0)
    assert login.user_id == member.id and BOB_GOTO[1] not in login.secret


async def test_a_wrong_password_is_explained_and_nothing_is_saved(
    bob: PortalClient, db: Database, settings: Settings, acme: Company
) -> None:
    connection = await add_connection(db, settings, acme, "goto", GOTO)
    refused = await bob.post(
        f"{PAGE}/{connection.id}/password", {"username": BOB_GOTO[0], "password": "wrong one"}
    )
    assert refused.status_code == 400
    words = text_of(refused.text)
    assert "GoTo" in words and "password" in words.lower()
    assert f'id="e-password-{connection.id}"' in refused.text
    # What was typed stays, but never the password.
    assert f'value="{BOB_GOTO[0]}"' in refused.text and "wrong one" not in refused.text
    empty = await bob.post(f"{PAGE}/{connection.id}/password", {"username": "", "password": ""})
    assert empty.status_code == 400 and "Enter your" in text_of(empty.text)
    assert await _logins(db, acme.id or 0) == []


async def test_a_provider_that_is_down_saves_nothing_and_says_so(
    bob: PortalClient, db: Database, settings: Settings, acme: Company, goto: GoToAccount
) -> None:
    connection = await add_connection(db, settings, acme, "goto", GOTO)
    goto.fail_next(503, count=10)
    refused = await bob.post(
        f"{PAGE}/{connection.id}/password", {"username": BOB_GOTO[0], "password": BOB_GOTO[1]}
    )
    assert refused.status_code == 400
    assert "Nothing was saved." in text_of(refused.text)
    assert await _logins(db, acme.id or 0) == []


async def test_a_refused_password_asks_for_a_new_one_and_can_be_removed(
    bob: PortalClient, db: Database, settings: Settings, acme: Company
) -> None:
    connection = await add_connection(db, settings, acme, "goto", GOTO)
    form = {"username": BOB_GOTO[0], "password": BOB_GOTO[1]}
    await bob.post(f"{PAGE}/{connection.id}/password", form)
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(update(ConferencingLogin).values(state=LOGIN_REFUSED))
    words = text_of((await bob.get(PAGE)).text)
    sentence = f"{GOTO_LABEL} no longer accepts your password: update your password here."
    assert sentence in words
    assert words.index(sentence) < words.index(f"{GOTO_LABEL} password")
    # Saved again: accepted, and the warning is gone.
    words = await _followed(bob, await bob.post(f"{PAGE}/{connection.id}/password", form))
    assert sentence not in words
    removed = await bob.post(f"{PAGE}/{connection.id}/password/remove")
    words = await _followed(bob, removed)
    assert f"Your {GOTO_LABEL} username and password are removed." in words
    assert "Remove" not in words and await _logins(db, acme.id or 0) == []


# Accounts linked automatically (Zoom): the person's own sync, polled.


async def _poll(client: PortalClient, connection: ConferencingConnection) -> httpx.Response:
    return await client.get(f"{PAGE}/{connection.id}/status", headers=HTMX)


async def test_the_page_syncs_the_person_and_polls_until_their_account_is_linked(
    bob: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    zoom: ZoomAccount,
) -> None:
    user = zoom.add_user(member.email, "Bob", "Member")
    connection = await add_connection(db, settings, acme, "zoom", ZOOM)
    page = await bob.get(PAGE)
    status = f"{PAGE}/{connection.id}/status"
    assert "Syncing…" in text_of(page.text)
    assert f'hx-get="http://testserver{status}" hx-trigger="every 1s"' in page.text
    (run,) = await _person_runs(db, member)
    assert run.status == RUNNING and run.connection_id == connection.id
    # Opened again (another tab) while it runs: the same run.
    await bob.get(PAGE)
    assert len(await _person_runs(db, member)) == 1

    polled = await _poll(bob, connection)
    assert polled.status_code == 200 and "every 1s" in polled.text and "<html" not in polled.text
    assert "HX-Request" in polled.headers["vary"]
    await run_person_sync(db, settings, acme.id or 0, run.id or 0)
    polled = await _poll(bob, connection)
    assert polled.status_code == STOP_POLLING and "hx-trigger" not in polled.text
    words = text_of(polled.text)
    assert member.email in words and user["personal_meeting_url"] in words
    assert "personal room: the same link for every meeting" in words
    # Linked: the page shows it and asks nothing of the provider any more.
    page = await bob.get(PAGE)
    assert user["personal_meeting_url"] in page.text and "Syncing" not in page.text
    assert len(await _person_runs(db, member)) == 1
    # Without htmx the poll's address is the page.
    plain = await bob.get(status)
    assert plain.status_code == 303 and plain.headers["location"].endswith(PAGE)


async def test_a_person_zoom_has_no_user_for_is_told_why(
    bob: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    connection = await add_connection(db, settings, acme, "zoom", ZOOM)
    await bob.get(PAGE)
    (run,) = await _person_runs(db, member)
    await run_person_sync(db, settings, acme.id or 0, run.id or 0)
    polled = await _poll(bob, connection)
    assert polled.status_code == STOP_POLLING
    assert f"No Zoom user has this email ({member.email}): ask your admin." in text_of(polled.text)
    # Opened again at once: the answer is shown, the provider is not asked again.
    page = await bob.get(PAGE)
    assert "No Zoom user has this email" in text_of(page.text)
    assert len(await _person_runs(db, member)) == 1


async def test_an_account_that_cannot_host_yet_says_why(
    bob: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    connection = await add_connection(db, settings, acme, "zoom", ZOOM)
    await add_account(
        db, connection, "zu-1", member.email, person=member, reason=PENDING_CONFIRMATION
    )
    await bob.get(PAGE)
    (run,) = await _person_runs(db, member)
    await run_person_sync(db, settings, acme.id or 0, run.id or 0)  # Zoom has no such user now
    words = text_of((await _poll(bob, connection)).text)
    assert "Pending confirmation at Zoom: ask your admin." in words


async def test_a_provider_that_is_down_during_the_sync_is_reported(
    bob: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    zoom: ZoomAccount,
) -> None:
    connection = await add_connection(db, settings, acme, "zoom", ZOOM)
    await bob.get(PAGE)
    (run,) = await _person_runs(db, member)
    zoom.fail_next(503, count=10)
    await run_person_sync(db, settings, acme.id or 0, run.id or 0)
    words = text_of((await _poll(bob, connection)).text)
    assert "Zoom could not be asked:" in words


async def test_reassociate_relinks_and_says_what_it_found(
    bob: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    zoom: ZoomAccount,
) -> None:
    connection = await add_connection(db, settings, acme, "zoom", ZOOM)
    await add_account(db, connection, "old-id", "bob-old@acme.example", person=member)
    zoom.add_user(member.email, "Bob")
    page = await bob.get(PAGE)
    assert "Reassociate my account" in text_of(page.text)
    done = await bob.post(f"{PAGE}/{connection.id}/reassociate")
    words = await _followed(bob, done)
    assert (
        "Found your Zoom account bob@acme.example (it was linked to bob-old@acme.example)." in words
    )
    async with db.session(company_id=acme.id) as session:
        query = select(ProviderAccount).where(col(ProviderAccount.user_id) == member.id)
        (account,) = (await session.execute(query)).scalars()
    assert account.email == member.email and account.reason == ""


async def test_reassociate_says_when_nothing_is_found_or_the_provider_is_down(
    bob: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    zoom: ZoomAccount,
) -> None:
    connection = await add_connection(db, settings, acme, "zoom", ZOOM)
    await add_account(db, connection, "old-id", "bob-old@acme.example", person=member)
    refused = await bob.post(f"{PAGE}/{connection.id}/reassociate")
    assert refused.status_code == 400
    assert "No Zoom user has the email bob@acme.example: ask your admin." in text_of(refused.text)
    zoom.add_user(member.email, "Bob")
    zoom.fail_next(503, count=10)
    down = await bob.post(f"{PAGE}/{connection.id}/reassociate")
    assert down.status_code == 400 and "Nothing was changed." in text_of(down.text)
    async with db.session(company_id=acme.id) as session:
        (account,) = (await session.execute(select(ProviderAccount))).scalars()
    assert account.email == "bob-old@acme.example" and account.user_id == member.id


async def test_webex_sso_shows_until_when_hosting_is_authorized(
    bob: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    connection = await add_connection(db, settings, acme, "webex", WEBEX)
    await add_account(
        db, connection, "wx-1", member.email, person=member, room_url="https://x.example/meet/b"
    )
    words = text_of((await bob.get(PAGE)).text)
    assert "Hosting is not authorized yet." in words
    page = await bob.get(PAGE)
    authorize = f"/conferencing/{connection.id}/authorize?next=%2Fsettings%2Fconferencing"
    assert f'href="http://testserver{authorize}">Authorize now' in page.text
    until = dt.datetime(2099, 7, 1, 12, 0, tzinfo=dt.UTC)
    async with db.transaction(company_id=acme.id) as session:
        session.add(
            ConferencingLogin(
                company_id=acme.id or 0,
                connection_id=connection.id or 0,
                user_id=member.id or 0,
                secret="encrypted tokens",
                host_authorized_until=until,
            )
        )
    words = text_of((await bob.get(PAGE)).text)
    # Europe/London keeps summer time in July: 13:00 there.
    assert "Hosting is authorized until 01 Jul 2099, 13:00 (Europe/London)" in words
    assert "Authorize now" not in words
    async with db.transaction(company_id=acme.id) as session:
        lapsed = dt.datetime(2020, 1, 1, 12, 0, tzinfo=dt.UTC)
        await session.execute(update(ConferencingLogin).values(host_authorized_until=lapsed))
    words = text_of((await bob.get(PAGE)).text)
    assert "Your authorization to host ended 01 Jan 2020, 12:00" in words
    assert "Authorize now" in words


# Several connections: the default.


async def test_a_person_served_by_two_connections_chooses_the_default(
    bob: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    zoom = await add_connection(db, settings, acme, "zoom", ZOOM)
    goto = await add_connection(db, settings, acme, "goto", GOTO)
    page = await bob.get(PAGE)
    words = text_of(page.text)
    assert "Default for your meetings" in words and "Meet Now needs one" in words
    assert f'name="default" value="{zoom.id}"' in page.text and " checked" not in page.text
    chose = await bob.post(f"{PAGE}/default", {"default": str(goto.id)})
    words = await _followed(bob, chose)
    assert "Your meetings use the account you chose from now on." in words
    assert "Meet Now needs one" not in words
    page = await bob.get(PAGE)
    assert f'value="{goto.id}" required checked' in page.text
    for value in ("", "x", "0", "99999999999"):
        refused = await bob.post(f"{PAGE}/default", {"default": value})
        assert refused.status_code == 400
        assert "Choose one of the accounts listed here." in text_of(refused.text)
    async with db.session(company_id=acme.id) as session:
        (choice,) = (await session.execute(select(ConferencingChoice))).scalars()
    assert choice.connection_id == goto.id


# The landing page at sign-in.


async def _require_account(db: Database, company: Company) -> None:
    async with db.transaction(company_id=company.id) as session:
        session.add(ConferencingSettings(company_id=company.id or 0, require_account=True))


async def test_a_person_without_the_required_account_lands_on_the_page(
    client: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    connection = await add_connection(db, settings, acme, "zoom", ZOOM)
    await _require_account(db, acme)
    signed_in = await client.post(
        "/signin", {"email": member.email, "password": "correct horse battery", "next": "/people"}
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "http://testserver/settings/conferencing?next=%2Fpeople"
    page = await client.get(signed_in.headers["location"])
    words = text_of(page.text)
    assert (
        "Your company asks everyone to link a conferencing account before hosting meetings."
        in words
    )
    assert '<a href="/people">Continue where you were going</a>' in page.text
    await client.post("/signout")
    # Once linked, signing in goes where it was going.
    await add_account(db, connection, "zu-1", member.email, person=member)
    linked = await client.sign_in(member.email)
    assert linked.headers["location"] == "http://testserver/"


async def test_no_landing_page_unless_required_and_missing(
    client: PortalClient, db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    home, landing = "http://testserver/", "http://testserver/settings/conferencing"

    async def lands(person: User) -> str:
        await client.post("/signout")
        return (await client.sign_in(person.email)).headers["location"]

    goto = await add_connection(
        db, settings, acme, "goto", GOTO, serves="departments", departments=["Sales"]
    )
    await _require_account(db, acme)
    # Required, but no connection serves the admin: Jitsi Meet needs nothing.
    assert await lands(admin) == home
    assert await lands(member) == landing
    form = {"username": BOB_GOTO[0], "password": BOB_GOTO[1]}
    assert (await client.post(f"{PAGE}/{goto.id}/password", form)).status_code == 303
    assert await lands(member) == home
    # A password the provider stopped accepting is no linked account.
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(update(ConferencingLogin).values(state=LOGIN_REFUSED))
    assert await lands(member) == landing
    # Not required: nobody is sent there.
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(update(ConferencingSettings).values(require_account=False))
    assert await lands(member) == home


async def test_two_connections_and_no_default_is_a_missing_account(
    client: PortalClient, db: Database, settings: Settings, acme: Company, member: User
) -> None:
    await add_connection(db, settings, acme, "zoom", ZOOM)
    await add_connection(db, settings, acme, "goto", GOTO)
    await _require_account(db, acme)
    landed = await client.sign_in(member.email)
    assert landed.headers["location"] == "http://testserver/settings/conferencing"
