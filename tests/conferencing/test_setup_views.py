"""Company Setup > General > Web Conferencing, through the app, against the Zoom simulator."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from html import unescape

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.conferencing.models import ConferencingConnection, ProviderAccount, SyncRun
from portal.conferencing.sync import run_sync
from portal.db import Database
from portal.settings import Settings
from tests.conferencing.conftest import serve
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints
from tests.conftest import PortalClient, make_user

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


async def _sync(admin_client: PortalClient, db: Database, settings: Settings, acme: Company) -> int:
    """Refresh sync as the page does it (htmx), then the job's run; the run's id."""
    started = await admin_client.http.post(
        f"{PAGE}/sync",
        headers={"HX-Request": "true", "X-CSRF-Token": await admin_client.csrf()},
    )
    assert started.status_code == 200, started.text
    assert 'id="sync-status"' in started.text and "every 1s" in started.text
    run_id = int(re.search(r"/setup/conferencing/runs/(\d+)", started.text).group(1))
    await run_sync(db, settings, acme.id or 0, run_id)
    return run_id


async def test_the_menu_lists_web_conferencing_first_under_general(
    admin_client: PortalClient,
) -> None:
    page = await admin_client.get("/setup/users")
    words = text_of(page.text)
    assert words.index("General Web Conferencing") < words.index("People Users")
    assert words.index("People Users") < words.index("Email Outbox")


async def test_without_an_account_the_page_says_jitsi_and_offers_each_provider(
    admin_client: PortalClient,
) -> None:
    page = await admin_client.get(PAGE)
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Now: Jitsi Meet" in words and "needs no account" in words
    assert "Map Zoom Account" in words
    for label in ("Account ID", "Client ID", "Client secret"):
        assert label in words
    # Switching the provider: the form's fragment (htmx) or the whole page (no JavaScript).
    fragment = await admin_client.get(
        f"{PAGE}/provider", params={"provider": "imeet"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Map iMeet Account" in text_of(fragment.text) and 'name="api_key"' in fragment.text
    assert 'name="csrf_token"' in fragment.text
    whole = await admin_client.get(PAGE, params={"provider": "imeet"})
    assert "Map iMeet Account" in text_of(whole.text) and "<html" in whole.text
    jitsi = await admin_client.get(f"{PAGE}/provider", params={"provider": "jitsi"})
    assert "There is no account to map" in text_of(jitsi.text)
    assert "Map Jitsi" not in jitsi.text
    unknown = await admin_client.get(PAGE, params={"provider": "webex<script>"})
    assert unknown.status_code == 200 and "Map Zoom Account" in text_of(unknown.text)


async def test_wrong_credentials_are_explained_and_nothing_is_saved(
    admin_client: PortalClient, db: Database, acme: Company, zoom: tuple[ZoomAccount, str]
) -> None:
    cases = [
        ({"client_secret": "wrong-secret"}, "Zoom"),
        ({"client_id": ""}, "Enter the Client ID."),
        ({"account_id": "", "client_id": "jwt-key"}, "September 2023"),
        ({"client_id": "has space"}, "single word"),
        ({"provider": "jitsi"}, "needs no account"),
        ({"provider": "webex"}, "Choose a provider from the list."),
    ]
    for change, message in cases:
        response = await admin_client.post(f"{PAGE}/connect", {**CONNECT, **change})
        assert response.status_code == 400, change
        words = text_of(response.text)
        assert message in words, (change, words[:1500])
        assert "nothing was saved" in words.lower()
        # The form keeps what was typed, never the secret.
        assert change.get("client_secret", "s3cret-value") not in response.text
    kept = await admin_client.post(f"{PAGE}/connect", {**CONNECT, "client_secret": "nope"})
    assert 'value="client-1"' in kept.text and 'value="acct-1"' in kept.text
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
    connected = await admin_client.post(f"{PAGE}/connect", CONNECT)
    assert connected.status_code == 303, connected.text
    page = await admin_client.get(PAGE)
    words = text_of(page.text)
    assert "The Zoom account is connected" in words
    assert "acct-1" in words and "client-1" in words and "••••••••" in words
    assert "s3cret-value" not in page.text
    assert "No sync has run yet" in words and "No one is mapped yet" in words

    run_id = await _sync(admin_client, db, settings, acme)
    progress = await admin_client.get(f"{PAGE}/runs/{run_id}", headers={"HX-Request": "true"})
    assert progress.headers.get("hx-trigger") == "conferencing-synced"
    assert "every 1s" not in progress.text
    summary = text_of(progress.text)
    assert "Sync finished" in summary and "1 newly mapped" in summary
    assert "no longer at Zoom" in summary

    mapped = text_of((await admin_client.get(PAGE, params={"show": "mapped"})).text)
    assert "Ada Admin" in mapped and "By email" in mapped and "Mapped (1)" in mapped
    people = text_of((await admin_client.get(PAGE, params={"show": "people"})).text)
    assert "Bob Member" in people and "No Zoom user has this email" in people
    strangers = await admin_client.get(PAGE, params={"show": "provider", "q": "stranger"})
    words = text_of(strangers.text)
    assert "stranger@elsewhere.example" in words and "No portal person has this email" in words
    assert "robert@personal.example" not in words

    async with db.session(company_id=acme.id) as session:
        row = (
            await session.execute(
                select(ProviderAccount).where(ProviderAccount.provider_user_id == robert["id"])
            )
        ).scalar_one()
    chooser = await admin_client.get(f"{PAGE}/accounts/{row.id}/map", params={"q": "bob"})
    assert "Map to Bob Member" in text_of(chooser.text)
    done = await admin_client.post(f"{PAGE}/accounts/{row.id}/map", {"user_id": str(member.id)})
    assert done.status_code == 303
    after = text_of((await admin_client.get(done.headers["location"])).text)
    assert "is mapped by hand" in after and "Manual" in after and "Bob Member" in after

    # The next sync keeps the hand mapping.
    await _sync(admin_client, db, settings, acme)
    async with db.session(company_id=acme.id) as session:
        kept = await session.get(ProviderAccount, row.id)
    assert kept is not None and kept.user_id == member.id and kept.manual

    unmapped = await admin_client.post(f"{PAGE}/accounts/{row.id}/unmap")
    assert unmapped.status_code == 303
    listing = text_of((await admin_client.get(PAGE, params={"show": "provider"})).text)
    assert "Unmapped by hand" in listing and "Match by email again" in listing
    cleared = await admin_client.post(f"{PAGE}/accounts/{row.id}/by-email")
    assert cleared.status_code == 303

    history = text_of((await admin_client.get(f"{PAGE}/runs")).text)
    assert history.count("Succeeded") == 2 and "Refresh sync" in history


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
    await admin_client.post(f"{PAGE}/connect", CONNECT)
    await _sync(admin_client, db, settings, acme)
    account.client_secret = "regenerated"
    account.expire_tokens()
    await _sync(admin_client, db, settings, acme)
    words = text_of((await admin_client.get(PAGE)).text)
    assert "failed" in words and "The mapping is as it was before it." in words
    assert "Mapped (1)" in words
    history = text_of((await admin_client.get(f"{PAGE}/runs")).text)
    assert "Failed" in history and "Succeeded" in history


async def test_options_are_saved_and_bad_ones_explained(
    admin_client: PortalClient, db: Database, acme: Company, admin: User
) -> None:
    await admin_client.post(f"{PAGE}/connect", CONNECT)
    bad = await admin_client.post(
        f"{PAGE}/options", {"sync_hour": "25", "auto_create": "on", "provisioning": ""}
    )
    assert bad.status_code == 400
    words = text_of(bad.text)
    assert "Choose an hour from 0 to 23." in words and "Choose how accounts are created." in words
    good = await admin_client.post(
        f"{PAGE}/options",
        {
            "sync_hour": "5",
            "auto_create": "on",
            "provisioning": "autoCreate",
            "join_before_host": "on",
        },
    )
    assert good.status_code == 303
    page = await admin_client.get(PAGE)
    assert 'value="5" selected' in page.text and 'value="autoCreate" selected' in page.text
    assert "Every night at 05:00" in text_of(page.text)
    async with db.session(company_id=acme.id) as session:
        connection = (await session.execute(select(ConferencingConnection))).scalar_one()
    assert connection.auto_create and connection.join_before_host
    assert not connection.allow_jitsi_fallback and connection.sync_hour == 5


async def test_credentials_are_replaced_a_blank_secret_kept_and_the_connection_removed(
    admin_client: PortalClient,
    db: Database,
    acme: Company,
    admin: User,
    zoom: tuple[ZoomAccount, str],
) -> None:
    account, _ = zoom
    await admin_client.post(f"{PAGE}/connect", CONNECT)
    wrong = await admin_client.post(
        f"{PAGE}/credentials", {**CREDENTIALS, "client_id": "other", "client_secret": ""}
    )
    assert wrong.status_code == 400
    assert "The stored credentials are kept." in text_of(wrong.text)
    assert 'value="other"' in wrong.text
    account.client_id = "client-2"
    kept_secret = await admin_client.post(
        f"{PAGE}/credentials", {**CREDENTIALS, "client_id": "client-2", "client_secret": ""}
    )
    assert kept_secret.status_code == 303
    assert "client-2" in text_of((await admin_client.get(PAGE)).text)

    confirm = await admin_client.get(f"{PAGE}/disconnect")
    assert "Remove the Zoom connection?" in text_of(confirm.text)
    assert await _count(db, acme, ConferencingConnection) == 1
    removed = await admin_client.post(f"{PAGE}/disconnect")
    assert removed.status_code == 303
    assert "Jitsi Meet again" in text_of((await admin_client.get(PAGE)).text)
    assert await _count(db, acme, ConferencingConnection) == 0
    assert await _count(db, acme, SyncRun) == 0


async def test_members_get_403_and_pages_need_a_connection(
    client: PortalClient, admin_client: PortalClient, new_client: object, member: User
) -> None:
    for path in (f"{PAGE}/runs", f"{PAGE}/disconnect", f"{PAGE}/runs/1", f"{PAGE}/accounts/1/map"):
        assert (await admin_client.get(path)).status_code == 404, path
    assert (await admin_client.post(f"{PAGE}/sync")).status_code == 404
    bob: PortalClient = new_client()  # type: ignore[operator]
    await bob.sign_in(member.email)
    for path in (PAGE, f"{PAGE}/provider", f"{PAGE}/runs"):
        assert (await bob.get(path)).status_code == 403, path
    for path in (f"{PAGE}/connect", f"{PAGE}/sync", f"{PAGE}/disconnect"):
        assert (await bob.post(path, CONNECT)).status_code == 403, path


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
    await admin_client.post(f"{PAGE}/connect", CONNECT)
    await _sync(admin_client, db, settings, acme)
    row = await _account(db, acme, "gone@elsewhere.example")
    refused = await admin_client.post(f"{PAGE}/accounts/{row.id}/map", {"user_id": str(former.id)})
    assert refused.status_code == 400
    assert "deactivated" in text_of(refused.text) and "Nothing was changed." in text_of(
        refused.text
    )
    for value in ("", "x", "²", "99999999999999999999", "-1", "2147483647"):
        response = await admin_client.post(f"{PAGE}/accounts/{row.id}/map", {"user_id": value})
        assert response.status_code == 404, value
    for path in ("x", "0", "99999999999999999999"):
        assert (await admin_client.get(f"{PAGE}/accounts/{path}/map")).status_code == 404
        assert (await admin_client.get(f"{PAGE}/runs/{path}")).status_code == 404
    async with db.session(company_id=acme.id) as session:
        unchanged = await session.get(ProviderAccount, row.id)
    assert unchanged is not None and unchanged.user_id is None and not unchanged.manual


async def test_a_page_following_a_sync_stops_polling_once_the_connection_is_removed(
    admin_client: PortalClient, db: Database, settings: Settings, acme: Company
) -> None:
    await admin_client.post(f"{PAGE}/connect", CONNECT)
    run_id = await _sync(admin_client, db, settings, acme)
    await admin_client.post(f"{PAGE}/disconnect")
    polled = await admin_client.http.get(f"{PAGE}/runs/{run_id}", headers={"HX-Request": "true"})
    assert polled.status_code == 286  # htmx's "stop polling"
    assert (await admin_client.get(f"{PAGE}/runs/{run_id}")).status_code == 404


async def test_the_people_to_map_by_hand_come_in_pages(
    admin_client: PortalClient,
    db: Database,
    settings: Settings,
    acme: Company,
    zoom: tuple[ZoomAccount, str],
) -> None:
    account, _ = zoom
    account.add_user("stranger@elsewhere.example", "Stranger", "Person")
    for number in range(30):
        await make_user(db, acme, f"person{number:02}@acme.example", name=f"Person {number:02}")
    await admin_client.post(f"{PAGE}/connect", CONNECT)
    await _sync(admin_client, db, settings, acme)
    row = await _account(db, acme, "stranger@elsewhere.example")
    first = await admin_client.get(f"{PAGE}/accounts/{row.id}/map?q=person")
    assert f'href="http://testserver{PAGE}/accounts/{row.id}/map?page=2&amp;q=person"' in first.text
    second = await admin_client.get(f"{PAGE}/accounts/{row.id}/map?q=person&page=2")
    assert "26–30 of 30" in text_of(second.text)


async def test_the_same_map_sent_many_times_at_once_connects_once(
    admin_client: PortalClient, db: Database, acme: Company, zoom: tuple[ZoomAccount, str]
) -> None:
    """A double click, or a script: every request answers (connected, or already connected),
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
    assert all("connected already" in text_of(answer.text) for answer in refused)
    assert await _count(db, acme, ConferencingConnection) == 1
