"""Company Setup > Web Conferencing > a connection's people, through the app: people chosen by
hand, a connection whose people sign in themselves (GoTo), the provider notes, and malformed
input on every conferencing route."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.conferencing import secrets
from portal.conferencing.models import (
    LOGIN_OK,
    LOGIN_REFUSED,
    ConferencingConnection,
    ConferencingLogin,
    ConnectionMember,
)
from portal.db import Database
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints
from tests.conftest import PortalClient, make_company, make_user
from tests.test_malformed_input import EVERY_SLOT, FORM_FIELDS, QUERY_FIELDS, WALK, snapshot

CREDENTIALS = {"account_id": "acct-1", "client_id": "client-1", "client_secret": "s3cret-value"}
PAGE = "/setup/conferencing"
GOTO_LABEL = "GoTo Meeting, Training or Webinar"


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    """Zoom is the simulator: a walk that gets as far as asking Zoom asks it, not zoom.us."""
    with serve(zoom_app(ZoomAccount(*CREDENTIALS.values()))) as url:
        yield dataclasses.replace(settings, provider_endpoints=zoom_endpoints(url))


def text_of(html: str) -> str:
    """The page's words, without tags: what the admin reads."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def _connection(
    db: Database, settings: Settings, company: Company, provider: str, name: str, **public: str
) -> ConferencingConnection:
    """A connection stored as the add form stores one, without asking the provider."""
    async with db.transaction(company_id=company.id) as session:
        connection = ConferencingConnection(
            company_id=company.id or 0,
            name=name,
            provider=provider,
            public_credentials=public,
            secret_credentials=secrets.encrypt(settings, company.id or 0, {"client_secret": "s"}),
        )
        session.add(connection)
        await session.flush()
        return connection


async def _members(db: Database, company: Company) -> list[tuple[int, int]]:
    async with db.session(company_id=company.id) as session:
        rows = await session.execute(
            select(ConnectionMember.connection_id, ConnectionMember.user_id)
        )
        return sorted(tuple(row) for row in rows)


async def test_people_are_chosen_by_email_or_from_a_search_and_removed(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    member: User,
) -> None:
    zoom = await _connection(db, settings, acme, "zoom", "Zoom", account_id="a", client_id="c")
    sam = await make_user(db, acme, "sam@acme.example", name="Sam Sales", department="Sales")
    former = await make_user(db, acme, "former@acme.example", name="Former Colleague")
    await admin_client.post(f"/setup/users/{former.id}/deactivate")
    members = f"{PAGE}/{zoom.id}/members"
    page = text_of((await admin_client.get(members)).text)
    assert "No one is chosen yet" in page and "serves everyone for now" in page

    for email, message in [
        ("", "Enter the email address of a person of your company."),
        (
            "nobody@acme.example",
            "No one in your company has the email address nobody@acme.example.",
        ),
        (former.email, "Former Colleague is deactivated: reactivate them first."),
    ]:
        refused = await admin_client.post(f"{members}/add", {"email": email})
        assert refused.status_code == 400, email
        assert message in text_of(refused.text)
    assert await _members(db, acme) == []

    chosen = await admin_client.post(f"{members}/add", {"email": "  BOB@acme.example "})
    assert chosen.status_code == 303
    assert "Bob Member is chosen for “Zoom”." in text_of((await admin_client.get(members)).text)
    again = await admin_client.post(f"{members}/add", {"email": member.email})
    assert again.status_code == 303
    assert "Bob Member was chosen already" in text_of((await admin_client.get(members)).text)

    found = await admin_client.get(members, params={"find": "s"})
    words = text_of(found.text)
    # Chosen people and deactivated ones are not offered again.
    assert "Choose Sam Sales" in words and "Choose Bob Member" not in words
    assert "Choose Former Colleague" not in words
    picked = await admin_client.post(f"{members}/add", {"user_id": str(sam.id)})
    assert picked.status_code == 303
    assert await _members(db, acme) == sorted([(zoom.id, member.id), (zoom.id, sam.id)])
    connection_page = text_of((await admin_client.get(f"{PAGE}/{zoom.id}")).text)
    assert "People chosen by hand: 2." in connection_page

    listed = await admin_client.get(members, params={"q": "sam"}, headers={"HX-Request": "true"})
    assert "<html" not in listed.text and "Sam Sales" in listed.text
    assert "Bob Member" not in listed.text

    removed = await admin_client.post(f"{members}/{member.id}/remove")
    assert removed.status_code == 303
    assert await _members(db, acme) == [(zoom.id, sam.id)]
    globex = await make_company(db, "Globex")
    outsider = await make_user(db, globex, "otto@globex.example")
    for user_id in (str(member.id), str(outsider.id), "x", "²", "99999999999999999999"):
        gone = await admin_client.post(f"{members}/{user_id}/remove")
        assert gone.status_code == 404, user_id
    for value in (str(outsider.id), "x", "", "-1"):
        response = await admin_client.post(f"{members}/add", {"user_id": value})
        assert response.status_code == 404, value
    outside = await admin_client.post(f"{members}/add", {"email": outsider.email})
    assert outside.status_code == 400
    assert await _members(db, acme) == [(zoom.id, sam.id)]


async def test_the_people_chosen_come_in_pages(
    admin_client: PortalClient, db: Database, settings: Settings, acme: Company
) -> None:
    zoom = await _connection(db, settings, acme, "zoom", "Zoom")
    people = [await make_user(db, acme, f"p{n:02}@acme.example") for n in range(55)]
    async with db.transaction(company_id=acme.id) as session:
        session.add_all(
            ConnectionMember(company_id=acme.id or 0, connection_id=zoom.id or 0, user_id=p.id or 0)
            for p in people
        )
    second = await admin_client.get(f"{PAGE}/{zoom.id}/members", params={"page": "2"})
    assert "51–55 of 55" in text_of(second.text)


async def test_a_connection_serving_people_chosen_by_hand_lists_only_them(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    member: User,
) -> None:
    zoom = await _connection(db, settings, acme, "zoom", "Zoom")
    form = {"name": "Zoom", "serves": "chosen", "sync_hour": "2", "provisioning": "create"}
    assert (await admin_client.post(f"{PAGE}/{zoom.id}/settings", form)).status_code == 303
    await admin_client.post(f"{PAGE}/{zoom.id}/members/add", {"email": member.email})
    page = await admin_client.get(f"{PAGE}/{zoom.id}", params={"show": "people"})
    words = text_of(page.text)
    assert "People without a Zoom account (1)" in words
    assert "Bob Member" in words and "Ada Admin" not in words.split("Mapping", 1)[1]
    overview = text_of((await admin_client.get(PAGE)).text)
    assert "1 person chosen by hand" in overview


async def test_a_connection_whose_people_sign_in_lists_them_with_their_sign_in(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    member: User,
) -> None:
    goto = await _connection(
        db, settings, acme, "goto", "GoTo", client_id="goto-client", product="training"
    )
    sam = await make_user(db, acme, "sam@acme.example", name="Sam Sales", department="Sales")
    async with db.transaction(company_id=acme.id) as session:
        ids = {"company_id": acme.id or 0, "connection_id": goto.id or 0}
        session.add_all(
            [
                ConferencingLogin(
                    **ids, user_id=member.id or 0, username="bob.goto", state=LOGIN_OK
                ),
                ConferencingLogin(
                    **ids, user_id=sam.id or 0, username="sam.goto", state=LOGIN_REFUSED
                ),
            ]
        )
    page_path = f"{PAGE}/{goto.id}"
    page = await admin_client.get(page_path)
    words = text_of(page.text)
    assert "Refresh sync" not in words and "Mapping" not in words and "Nightly sync" not in words
    assert "Automatic account creation" not in words
    assert f"This portal's address, to allow-list at {GOTO_LABEL}: http://testserver" in words
    assert "Signed in (1)" in words and "Password refused (1)" in words
    assert "Not signed in yet (1)" in words and "bob.goto" in words
    # The product is a list, the current one chosen.
    assert '<option value="training" selected>' in page.text
    refused = text_of((await admin_client.get(page_path, params={"show": "refused"})).text)
    assert "Sam Sales" in refused and "Password refused: they must update it" in refused
    unlinked = await admin_client.get(
        page_path, params={"show": "unlinked", "q": "ada"}, headers={"HX-Request": "true"}
    )
    assert "<html" not in unlinked.text and "Ada Admin" in unlinked.text
    assert (await admin_client.post(f"{page_path}/sync")).status_code == 404
    assert (await admin_client.get(f"{page_path}/runs")).status_code == 404

    # Its settings: whom it serves and join before host; no sync hour to give.
    saved = await admin_client.post(
        f"{page_path}/settings",
        {
            "name": "GoTo for Sales",
            "serves": "departments",
            "departments": "Sales",
            "join_before_host": "on",
        },
    )
    assert saved.status_code == 303, text_of(saved.text)
    words = text_of((await admin_client.get(page_path)).text)
    assert "Signed in (1)" in words and "Password refused (1)" in words
    assert "Not signed in yet (0)" in words  # Ada is not in Sales
    overview = text_of((await admin_client.get(PAGE)).text)
    assert f"GoTo for Sales {GOTO_LABEL} People of Sales 1 signed in" in overview
    assert "People sign in themselves" in overview
    confirm = text_of((await admin_client.get(f"{page_path}/disconnect")).text)
    assert "sign-ins of 1 person" in confirm


async def test_each_providers_page_carries_its_notes(
    admin_client: PortalClient, db: Database, settings: Settings, acme: Company
) -> None:
    webex = await _connection(db, settings, acme, "webex", "Webex", client_id="c")
    bluejeans = await _connection(db, settings, acme, "bluejeans", "BlueJeans", client_id="c")
    words = text_of((await admin_client.get(f"{PAGE}/{webex.id}")).text)
    assert "This portal's address, to allow-list at Webex (SSO): http://testserver" in words
    assert "redirect URI, to add to the integration at Webex (SSO): " in words
    assert "http://testserver/conferencing/authorized" in words
    # Webex in SSO mode syncs its users; it cannot create them.
    assert "Refresh sync" in words and "Automatic account creation" not in words
    page = await admin_client.get(f"{PAGE}/{bluejeans.id}")
    assert "flash-warning" in page.text and "retired BlueJeans" in text_of(page.text)
    assert "redirect URI" not in text_of(page.text)


# --- Malformed input on every conferencing route, with connections to reach -----------------

CONFERENCING_WALK = [walk for walk in WALK if walk[1].startswith("setup.conferencing")]


@pytest.mark.parametrize(
    ("method", "name", "template"),
    CONFERENCING_WALK,
    ids=[f"{method} {name}" for method, name, _ in CONFERENCING_WALK],
)
async def test_no_conferencing_route_answers_500(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    member: User,
    method: str,
    name: str,
    template: str,
) -> None:
    """tests/test_malformed_input.py walks these routes in a company with no connection; here
    the company has a Zoom and a GoTo connection, so that real ids get past the first check."""
    zoom = await _connection(db, settings, acme, "zoom", "Zoom", **CREDENTIALS)
    goto = await _connection(db, settings, acme, "goto", "GoTo", client_id="c", product="meeting")
    real = [str(zoom.id), str(goto.id), str(member.id), member.email, "zoom", "Sales"]
    values: list[Any] = [*EVERY_SLOT, *real]
    for value in values:
        text = real[value.index % len(real)] if not isinstance(value, str) else value
        # Quoted, the text holds no backslash for re.sub to read as a group.
        path = re.sub(r"\{\w+\}", quote(text, safe="") or "x", template)
        if method == "GET":
            params = [(field, text) for field in QUERY_FIELDS[name]]
            response = await admin_client.get(path, params=params)
            assert response.status_code < 500, (path, params, response.text[:300])
            continue
        form = {field: text for field in FORM_FIELDS[name]}
        before = await snapshot(db)
        response = await admin_client.post(path, form)
        assert response.status_code < 500, (path, form, response.text[:300])
        if response.status_code >= 400:
            assert await snapshot(db) == before, (path, form)
    async with db.session(company_id=acme.id) as session:
        kept = (
            await session.execute(select(func.count()).select_from(ConferencingConnection))
        ).scalar_one()
    assert kept <= 2
