"""Company Setup > General > Web Conferencing, through the app, against the Zoom simulator: the
overview (sitewide settings, the connections, adding one) and a Zoom connection's page."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from html import unescape

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.conferencing.models import (
    PERSON,
    ConferencingConnection,
    ConferencingSettings,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.sync import run_sync
from portal.db import Database
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints
from tests.conftest import PortalClient, make_company, make_user

CREDENTIALS = {"account_id": "acct-1", "client_id": "client-1", "client_secret": "s3cret-value"}
CONNECT = {"provider": "zoom", **CREDENTIALS}
PAGE = "/setup/conferencing"


@pytest.fixture
def zoom() -> Iterator[tuple[ZoomAccount, str]]:
    account = ZoomAccount(CREDENTIALS["account_id"], CREDENTIALS["client_id"], "s3cret-value")
    with serve(zoom_app(account)) as url:
        yield account, url


@pytest.fixture
def settings(settings: Settings, zoom: tuple[ZoomAccount, str]) -> Settings:
    return dataclasses.replace(settings, provider_endpoints=zoom_endpoints(zoom[1]))


def text_of(html: str) -> str:
    """The page's words, without tags: what the admin reads."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def _count(db: Database, company: Company, model: type) -> int:
    async with db.session(company_id=company.id) as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def _account(db: Database, company: Company, email: str) -> ProviderAccount:
    """The provider user with this email, as sync stored it."""
    async with db.session(company_id=company.id) as session:
        query = select(ProviderAccount).where(ProviderAccount.email == email)
        return (await session.execute(query)).scalar_one()


async def _connect(admin_client: PortalClient, **change: str) -> str:
    """Map a Zoom account through the add form; the new connection's page."""
    connected = await admin_client.post(f"{PAGE}/connect", {**CONNECT, **change})
    assert connected.status_code == 303, connected.text
    location = connected.headers["location"]
    assert re.fullmatch(r"http://testserver/setup/conferencing/\d+", location), location
    return location.removeprefix("http://testserver")


async def _sync(
    admin_client: PortalClient, db: Database, settings: Settings, acme: Company, page: str
) -> int:
    """Refresh sync as the page does it (htmx), then the job's run; the run's id."""
    started = await admin_client.http.post(
        f"{page}/sync",
        headers={"HX-Request": "true", "X-CSRF-Token": await admin_client.csrf()},
    )
    assert started.status_code == 200, started.text
    assert 'id="sync-status"' in started.text and "every 1s" in started.text
    run_id = int(re.search(rf"{page}/runs/(\d+)", started.text).group(1))
    await run_sync(db, settings, acme.id or 0, run_id)
    return run_id


async def test_the_menu_lists_web_conferencing_first_under_general(
    admin_client: PortalClient,
) -> None:
    page = await admin_client.get("/setup/users")
    words = text_of(page.text)
    assert words.index("General Web Conferencing") < words.index("People Users")
    assert words.index("People Users") < words.index("Email Outbox")


async def test_without_a_connection_the_page_says_jitsi_and_offers_each_provider(
    admin_client: PortalClient,
) -> None:
    page = await admin_client.get(PAGE)
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Now: Jitsi Meet" in words and "everyone uses Jitsi Meet" in words
    assert "Sitewide settings" in words and "Require a conferencing account" in words
    assert "Map Zoom Account" in words and 'name="name" type="text" value="Zoom"' in page.text
    for label in ("Account ID", "Client ID", "Client secret"):
        assert label in words
    # Switching the provider: the form's fragment (htmx) or the whole page (no JavaScript).
    fragment = await admin_client.get(
        f"{PAGE}/provider", params={"provider": "imeet"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Map iMeet Account" in text_of(fragment.text) and 'name="api_key"' in fragment.text
    assert 'name="csrf_token"' in fragment.text and 'value="iMeet"' in fragment.text
    whole = await admin_client.get(PAGE, params={"provider": "imeet"})
    assert "Map iMeet Account" in text_of(whole.text) and "<html" in whole.text
    jitsi = await admin_client.get(f"{PAGE}/provider", params={"provider": "jitsi"})
    assert "There is no account to map" in text_of(jitsi.text)
    assert "Map Jitsi" not in jitsi.text
    unknown = await admin_client.get(PAGE, params={"provider": "webex<script>"})
    assert unknown.status_code == 200 and "Map Zoom Account" in text_of(unknown.text)


async def test_the_add_form_carries_each_providers_notes(admin_client: PortalClient) -> None:
    async def form(provider: str) -> tuple[str, str]:
        page = await admin_client.get(
            f"{PAGE}/provider", params={"provider": provider}, headers={"HX-Request": "true"}
        )
        return page.text, text_of(page.text)

    html, words = await form("webex")
    assert "This portal's address, to allow-list at Webex (SSO): http://testserver" in words
    assert "redirect URI" in words and "http://testserver/conferencing/authorized" in words
    html, words = await form("goto")
    assert "to allow-list at GoTo" in words and "redirect URI" not in words
    # GoTo's product is chosen from a list, not typed.
    assert '<select id="f-product" name="product"' in html and 'name="client_secret"' in html
    html, words = await form("bluejeans")
    assert "flash-warning" in html and "retired BlueJeans" in words
    html, words = await form("zoom")
    assert "allow-list" not in words and "flash-warning" not in html


async def test_wrong_credentials_are_explained_and_nothing_is_saved(
    admin_client: PortalClient, db: Database, acme: Company, zoom: tuple[ZoomAccount, str]
) -> None:
    cases = [
        ({"client_secret": "wrong-secret"}, "Zoom"),
        ({"client_id": ""}, "Enter the Client ID."),
        ({"account_id": "", "client_id": "jwt-key"}, "September 2023"),
        ({"client_id": "has space"}, "single word"),
        ({"name": "x" * 81}, "80 characters"),
        ({"provider": "jitsi"}, "needs no account"),
        ({"provider": "nope"}, "Choose a provider from the list."),
    ]
    for change, message in cases:
        response = await admin_client.post(f"{PAGE}/connect", {**CONNECT, **change})
        assert response.status_code == 400, change
        words = text_of(response.text)
        assert message in words, (change, words[:1500])
        assert "nothing was saved" in words.lower()
        # The form keeps what was typed, never the secret.
        assert change.get("client_secret", "s3cret-value") not in response.text
    kept = await admin_client.post(
        f"{PAGE}/connect", {**CONNECT, "client_secret": "nope", "name": "Zoom for Sales"}
    )
    assert 'value="client-1"' in kept.text and 'value="acct-1"' in kept.text
    assert 'value="Zoom for Sales"' in kept.text
    account, _ = zoom
    account.make_non_admin()
    refused = await admin_client.post(f"{PAGE}/connect", CONNECT)
    assert refused.status_code == 400 and "Zoom" in text_of(refused.text)
    assert await _count(db, acme, ConferencingConnection) == 0


async def test_the_provider_down_during_map_saves_nothing(
    admin_client: PortalClient, db: Database, acme: Company, zoom: tuple[ZoomAccount, str]
) -> None:
    account, _ = zoom
    account.fail_next(503, count=10)
    response = await admin_client.post(f"{PAGE}/connect", CONNECT)
    assert response.status_code == 400
    assert "nothing was saved" in text_of(response.text).lower()
    assert await _count(db, acme, ConferencingConnection) == 0


async def test_a_second_connection_under_a_name_in_use_is_a_field_error(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    await _connect(admin_client)
    taken = await admin_client.post(f"{PAGE}/connect", {**CONNECT, "name": "zoom"})
    assert taken.status_code == 400
    assert 'aria-invalid="true" aria-describedby="e-name"' in taken.text
    assert "Another connection is named “zoom”: choose another name." in text_of(taken.text)
    await _connect(admin_client, name="Zoom for Sales")
    assert await _count(db, acme, ConferencingConnection) == 2


async def test_admin_maps_syncs_and_maps_by_hand(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    zoom: tuple[ZoomAccount, str],
) -> None:
    account, _ = zoom
    account.add_user("Ada@Acme.example", "Ada", "Admin")
    account.add_user("stranger@elsewhere.example", "Sam", "Stranger")
    robert = account.add_user("robert@personal.example", "Robert", "Member")
    page_path = await _connect(admin_client)
    page = await admin_client.get(page_path)
    words = text_of(page.text)
    assert "The Zoom account is connected as “Zoom”" in words
    assert "acct-1" in words and "client-1" in words and "••••••••" in words
    assert "s3cret-value" not in page.text
    assert "No sync has run yet" in words and "No one is mapped yet" in words

    run_id = await _sync(admin_client, db, settings, acme, page_path)
    progress = await admin_client.get(f"{page_path}/runs/{run_id}", headers={"HX-Request": "true"})
    assert progress.headers.get("hx-trigger") == "conferencing-synced"
    assert "every 1s" not in progress.text
    summary = text_of(progress.text)
    assert "Sync finished" in summary and "1 newly mapped" in summary
    assert "no longer at Zoom" in summary

    mapped = text_of((await admin_client.get(page_path, params={"show": "mapped"})).text)
    assert "Ada Admin" in mapped and "By email" in mapped and "Mapped (1)" in mapped
    people = text_of((await admin_client.get(page_path, params={"show": "people"})).text)
    assert "Bob Member" in people and "No Zoom user has this email" in people
    strangers = await admin_client.get(page_path, params={"show": "provider", "q": "stranger"})
    words = text_of(strangers.text)
    assert "stranger@elsewhere.example" in words and "No portal person has this email" in words
    assert "robert@personal.example" not in words
    # The lists alone, for the page's search box.
    listed = await admin_client.get(
        page_path, params={"show": "provider"}, headers={"HX-Request": "true"}
    )
    assert "<html" not in listed.text and "robert@personal.example" in listed.text

    async with db.session(company_id=acme.id) as session:
        row = (
            await session.execute(
                select(ProviderAccount).where(ProviderAccount.provider_user_id == robert["id"])
            )
        ).scalar_one()
    chooser = await admin_client.get(f"{page_path}/accounts/{row.id}/map", params={"q": "bob"})
    assert "Map to Bob Member" in text_of(chooser.text)
    done = await admin_client.post(
        f"{page_path}/accounts/{row.id}/map", {"user_id": str(member.id)}
    )
    assert done.status_code == 303
    after = text_of((await admin_client.get(done.headers["location"])).text)
    assert "is mapped by hand" in after and "Manual" in after and "Bob Member" in after

    # The next sync keeps the hand mapping.
    await _sync(admin_client, db, settings, acme, page_path)
    async with db.session(company_id=acme.id) as session:
        kept = await session.get(ProviderAccount, row.id)
    assert kept is not None and kept.user_id == member.id and kept.manual

    unmapped = await admin_client.post(f"{page_path}/accounts/{row.id}/unmap")
    assert unmapped.status_code == 303
    listing = text_of((await admin_client.get(page_path, params={"show": "provider"})).text)
    assert "Unmapped by hand" in listing and "Match by email again" in listing
    cleared = await admin_client.post(f"{page_path}/accounts/{row.id}/by-email")
    assert cleared.status_code == 303

    history = text_of((await admin_client.get(f"{page_path}/runs")).text)
    assert history.count("Succeeded") == 2 and "Refresh sync" in history
    overview = text_of((await admin_client.get(PAGE)).text)
    assert "Zoom Zoom Everyone 1 mapped" in overview and "Succeeded" in overview


async def test_a_failed_sync_shows_why_and_history_keeps_it(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    zoom: tuple[ZoomAccount, str],
) -> None:
    account, _ = zoom
    account.add_user("ada@acme.example", "Ada", "Admin")
    page_path = await _connect(admin_client)
    await _sync(admin_client, db, settings, acme, page_path)
    account.client_secret = "regenerated"
    account.expire_tokens()
    await _sync(admin_client, db, settings, acme, page_path)
    words = text_of((await admin_client.get(page_path)).text)
    assert "failed" in words and "The mapping is as it was before it." in words
    assert "Mapped (1)" in words
    history = text_of((await admin_client.get(f"{page_path}/runs")).text)
    assert "Failed" in history and "Succeeded" in history
    assert "Failed" in text_of((await admin_client.get(PAGE)).text)


async def test_a_connections_settings_are_saved_and_bad_ones_explained(
    admin_client: PortalClient, db: Database, acme: Company, admin: User, member: User
) -> None:
    page_path = await _connect(admin_client)
    page = await admin_client.get(page_path)
    # Bob's department is offered; each option says what the sitewide setting is now.
    assert 'name="departments" value="Sales"' in page.text
    assert "As sitewide (off)" in text_of(page.text)
    bad = await admin_client.post(
        f"{page_path}/settings",
        {
            "name": "",
            "serves": "departments",
            "sync_hour": "25",
            "auto_create": "on",
            "provisioning": "",
            "join_before_host": "maybe",
        },
    )
    assert bad.status_code == 400
    words = text_of(bad.text)
    for message in (
        "Choose an hour from 0 to 23.",
        "Choose how accounts are created, from the list.",
        "Choose at least one department.",
        "Choose “As sitewide”, “On” or “Off”.",
        "nothing was saved",
    ):
        assert message in words, message
    # What was sent is shown back.
    assert 'value="departments" checked' in bad.text
    unknown = await admin_client.post(
        f"{page_path}/settings",
        {
            "serves": "departments",
            "departments": "Nowhere",
            "sync_hour": "2",
            "provisioning": "create",
        },
    )
    assert "Choose departments from the list." in text_of(unknown.text)
    good = await admin_client.post(
        f"{page_path}/settings",
        {
            "name": "Zoom for Sales",
            "serves": "departments",
            "departments": "Sales",
            "sync_hour": "5",
            "auto_create": "on",
            "provisioning": "autoCreate",
            "join_before_host": "off",
        },
    )
    assert good.status_code == 303
    page = await admin_client.get(page_path)
    assert 'value="5" selected' in page.text and 'value="autoCreate" selected' in page.text
    assert 'name="departments" value="Sales" checked' in page.text
    words = text_of(page.text)
    assert "The settings of “Zoom for Sales” are saved." in words
    assert "Every night at 05:00" in words
    async with db.session(company_id=acme.id) as session:
        connection = (await session.execute(select(ConferencingConnection))).scalar_one()
    assert (connection.name, connection.serves, connection.departments) == (
        "Zoom for Sales",
        "departments",
        ["Sales"],
    )
    assert connection.auto_create is True and connection.join_before_host is False
    assert connection.sync_hour == 5
    overview = text_of((await admin_client.get(PAGE)).text)
    assert "Zoom for Sales Zoom People of Sales" in overview


async def test_the_sitewide_settings_are_saved_and_connections_follow_them(
    admin_client: PortalClient, db: Database, acme: Company
) -> None:
    page_path = await _connect(admin_client)
    saved = await admin_client.post(
        f"{PAGE}/sitewide", {"join_before_host": "on", "require_account": "on"}
    )
    assert saved.status_code == 303
    overview = await admin_client.get(PAGE)
    assert "The sitewide settings are saved." in text_of(overview.text)
    for name, on in [
        ("auto_create", False),
        ("join_before_host", True),
        ("allow_jitsi_fallback", False),
        ("require_account", True),
    ]:
        checkbox = re.search(rf'<input type="checkbox" name="{name}"[^>]*>', overview.text)
        assert checkbox is not None and ("checked" in checkbox.group(0)) is on, name
    async with db.session(company_id=acme.id) as session:
        (stored,) = (await session.execute(select(ConferencingSettings))).scalars()
    assert stored.join_before_host and stored.require_account and not stored.auto_create
    words = text_of((await admin_client.get(page_path)).text)
    assert "As sitewide (on)" in words and "As sitewide (off)" in words


async def test_credentials_are_replaced_a_blank_secret_kept_and_the_connection_removed(
    admin_client: PortalClient,
    db: Database,
    acme: Company,
    admin: User,
    zoom: tuple[ZoomAccount, str],
) -> None:
    account, _ = zoom
    page_path = await _connect(admin_client)
    wrong = await admin_client.post(
        f"{page_path}/credentials", {**CREDENTIALS, "client_id": "other", "client_secret": ""}
    )
    assert wrong.status_code == 400
    assert "The stored credentials are kept." in text_of(wrong.text)
    assert 'value="other"' in wrong.text
    account.client_id = "client-2"
    kept_secret = await admin_client.post(
        f"{page_path}/credentials", {**CREDENTIALS, "client_id": "client-2", "client_secret": ""}
    )
    assert kept_secret.status_code == 303
    assert "client-2" in text_of((await admin_client.get(page_path)).text)

    confirm = await admin_client.get(f"{page_path}/disconnect")
    assert "Remove the Zoom connection “Zoom”?" in text_of(confirm.text)
    assert await _count(db, acme, ConferencingConnection) == 1
    removed = await admin_client.post(f"{page_path}/disconnect")
    assert removed.status_code == 303
    assert "everyone uses Jitsi Meet" in text_of((await admin_client.get(PAGE)).text)
    assert await _count(db, acme, ConferencingConnection) == 0
    assert await _count(db, acme, SyncRun) == 0
    assert (await admin_client.get(page_path)).status_code == 404


async def test_members_get_403_and_a_connections_pages_need_the_connection(
    client: PortalClient, admin_client: PortalClient, new_client: object, member: User
) -> None:
    for path in (
        f"{PAGE}/1",
        f"{PAGE}/1/runs",
        f"{PAGE}/1/disconnect",
        f"{PAGE}/1/runs/1",
        f"{PAGE}/1/accounts/1/map",
        f"{PAGE}/1/members",
        f"{PAGE}/x",
        f"{PAGE}/0/runs",
        f"{PAGE}/99999999999999999999",
    ):
        assert (await admin_client.get(path)).status_code == 404, path
    for path in (f"{PAGE}/1/sync", f"{PAGE}/1/settings", f"{PAGE}/1/members/add"):
        assert (await admin_client.post(path)).status_code == 404, path
    bob: PortalClient = new_client()  # type: ignore[operator]
    await bob.sign_in(member.email)
    for path in (PAGE, f"{PAGE}/provider", f"{PAGE}/1", f"{PAGE}/1/runs"):
        assert (await bob.get(path)).status_code == 403, path
    for path in (f"{PAGE}/connect", f"{PAGE}/sitewide", f"{PAGE}/1/sync", f"{PAGE}/1/disconnect"):
        assert (await bob.post(path, CONNECT)).status_code == 403, path


async def test_another_companys_connection_is_not_found_and_left_alone(
    admin_client: PortalClient, db: Database, acme: Company, admin: User, member: User
) -> None:
    globex = await make_company(db, "Globex")
    async with db.transaction(company_id=globex.id) as session:
        theirs = ConferencingConnection(
            company_id=globex.id or 0, name="Globex Zoom", provider="zoom", secret_credentials=""
        )
        session.add(theirs)
        await session.flush()
        run = SyncRun(company_id=globex.id or 0, connection_id=theirs.id or 0, trigger="manual")
        session.add(run)
    their_page = f"{PAGE}/{theirs.id}"
    for path in (
        their_page,
        f"{their_page}/runs",
        f"{their_page}/runs/{run.id}",
        f"{their_page}/members",
    ):
        response = await admin_client.get(path)
        assert response.status_code == 404 and "Globex" not in response.text, path
    form = {"name": "Hacked", "serves": "everyone", "sync_hour": "3", "email": member.email}
    for action in ("settings", "sync", "disconnect", "members/add", f"members/{admin.id}/remove"):
        assert (await admin_client.post(f"{their_page}/{action}", form)).status_code == 404, action
    async with db.session(company_id=globex.id) as session:
        kept = await session.get(ConferencingConnection, theirs.id)
        runs = (await session.execute(select(func.count()).select_from(SyncRun))).scalar_one()
    assert kept is not None and kept.name == "Globex Zoom" and runs == 1
    # Nor is their run found under the viewer's own connection.
    mine = await _connect(admin_client)
    assert (await admin_client.get(f"{mine}/runs/{run.id}")).status_code == 404


async def test_a_run_is_found_only_under_its_own_connection_and_never_a_persons(
    admin_client: PortalClient, db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    first = await _connect(admin_client)
    second = await _connect(admin_client, name="Zoom 2")
    run_id = await _sync(admin_client, db, settings, acme, first)
    assert (await admin_client.get(f"{first}/runs/{run_id}")).status_code == 200
    assert (await admin_client.get(f"{second}/runs/{run_id}")).status_code == 404
    async with db.transaction(company_id=acme.id) as session:
        mine = (
            await session.execute(
                select(ConferencingConnection).where(ConferencingConnection.name == "Zoom")
            )
        ).scalar_one()
        person_run = SyncRun(
            company_id=acme.id or 0, connection_id=mine.id or 0, trigger=PERSON, person_id=admin.id
        )
        session.add(person_run)
    assert (await admin_client.get(f"{first}/runs/{person_run.id}")).status_code == 404
    assert "Person" not in text_of((await admin_client.get(f"{first}/runs")).text)


async def test_map_by_hand_refuses_a_deactivated_person_and_malformed_ids(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    zoom: tuple[ZoomAccount, str],
) -> None:
    account, _ = zoom
    account.add_user("gone@elsewhere.example", "Gone", "Person")
    former = await make_user(db, acme, "former@acme.example", name="Former Colleague")
    await admin_client.post(f"/setup/users/{former.id}/deactivate")
    page_path = await _connect(admin_client)
    await _sync(admin_client, db, settings, acme, page_path)
    row = await _account(db, acme, "gone@elsewhere.example")
    map_path = f"{page_path}/accounts/{row.id}/map"
    refused = await admin_client.post(map_path, {"user_id": str(former.id)})
    assert refused.status_code == 400
    assert "deactivated" in text_of(refused.text) and "Nothing was changed." in text_of(
        refused.text
    )
    for value in ("", "x", "²", "99999999999999999999", "-1", "2147483647"):
        response = await admin_client.post(map_path, {"user_id": value})
        assert response.status_code == 404, value
    for path in ("x", "0", "99999999999999999999"):
        assert (await admin_client.get(f"{page_path}/accounts/{path}/map")).status_code == 404
        assert (await admin_client.get(f"{page_path}/runs/{path}")).status_code == 404
    async with db.session(company_id=acme.id) as session:
        unchanged = await session.get(ProviderAccount, row.id)
    assert unchanged is not None and unchanged.user_id is None and not unchanged.manual


async def test_a_page_following_a_sync_stops_polling_once_the_connection_is_removed(
    admin_client: PortalClient, db: Database, settings: Settings, acme: Company
) -> None:
    page_path = await _connect(admin_client)
    run_id = await _sync(admin_client, db, settings, acme, page_path)
    await admin_client.post(f"{page_path}/disconnect")
    polled = await admin_client.http.get(
        f"{page_path}/runs/{run_id}", headers={"HX-Request": "true"}
    )
    assert polled.status_code == 286  # htmx's "stop polling"
    assert (await admin_client.get(f"{page_path}/runs/{run_id}")).status_code == 404


async def test_the_people_to_map_by_hand_are_those_served_in_pages(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    zoom: tuple[ZoomAccount, str],
) -> None:
    account, _ = zoom
    account.add_user("stranger@elsewhere.example", "Stranger", "Person")
    for number in range(30):
        await make_user(
            db,
            acme,
            f"person{number:02}@acme.example",
            name=f"Person {number:02}",
            department="Sales" if number < 28 else "Support",
        )
    page_path = await _connect(admin_client)
    await _sync(admin_client, db, settings, acme, page_path)
    row = await _account(db, acme, "stranger@elsewhere.example")
    map_path = f"{page_path}/accounts/{row.id}/map"
    first = await admin_client.get(f"{map_path}?q=person")
    assert f'href="http://testserver{map_path}?page=2&amp;q=person"' in first.text
    second = await admin_client.get(f"{map_path}?q=person&page=2")
    assert "26–30 of 30" in text_of(second.text)
    await admin_client.post(
        f"{page_path}/settings",
        {
            "name": "Zoom",
            "serves": "departments",
            "departments": "Support",
            "sync_hour": "2",
            "provisioning": "create",
        },
    )
    served = text_of((await admin_client.get(f"{map_path}?q=person")).text)
    assert "Map to Person 28" in served and "Map to Person 00" not in served
    assert "1–2 of 2" in served


async def test_the_same_map_sent_many_times_at_once_connects_once(
    admin_client: PortalClient, db: Database, acme: Company, zoom: tuple[ZoomAccount, str]
) -> None:
    """A double click, or a script: every request answers (connected, or the name is taken),
    none with a 500, and the company has one connection."""
    token = await admin_client.csrf()
    answers = await asyncio.gather(
        *(
            admin_client.http.post(f"{PAGE}/connect", data={"csrf_token": token, **CONNECT})
            for _ in range(20)
        )
    )
    assert sorted({answer.status_code for answer in answers}) in ([303], [303, 400])
    refused = [answer for answer in answers if answer.status_code == 400]
    assert all("Another connection is named “Zoom”" in text_of(a.text) for a in refused)
    assert await _count(db, acme, ConferencingConnection) == 1
