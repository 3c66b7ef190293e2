"""Sync against the Zoom simulator: matching by email the people a connection serves, links
that survive email changes and hand choices, progress, rate limits, failures that keep the
mapping, and one sync per connection at a time."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.conferencing import sync
from portal.conferencing.connections import connect, connections_of
from portal.conferencing.mapping import (
    NOT_SERVED,
    counts,
    map_by_hand,
    mapped_people,
    people_without_account,
    provider_users_without_person,
    sync_history,
)
from portal.conferencing.models import (
    CHOSEN,
    DEACTIVATED,
    DEPARTMENTS,
    DUPLICATE_EMAIL,
    EMPTY_EMAIL,
    FAILED,
    GONE,
    NO_ACCOUNT,
    NO_PERSON,
    NOT_LICENSED,
    PENDING_CONFIRMATION,
    PERSON,
    RUNNING,
    SUCCEEDED,
    UNMAPPED_BY_HAND,
    ConferencingConnection,
    ConferencingSettings,
    ConnectionMember,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.services import resolve_room
from portal.db import Database, utcnow
from portal.jobs.base import AFTER_COMMIT
from portal.settings import Settings
from tests.conferencing.conftest import ZOOM_CREDENTIALS, serve
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints
from tests.conftest import make_company, make_user

FORM = ZOOM_CREDENTIALS


async def _connect(
    db: Database,
    settings: Settings,
    company: Company,
    name: str = "Zoom",
    form: dict[str, str] = FORM,
    **values: object,
) -> ConferencingConnection:
    """A Zoom connection, with `values` (whom it serves, its options) set on it."""
    async with db.transaction(company_id=company.id) as session:
        connection = await connect(
            session, settings, company.id or 0, "zoom", {**form, "name": name}
        )
        for field, value in values.items():
            setattr(connection, field, value)
        return connection


async def _sync(
    db: Database,
    settings: Settings,
    company: Company,
    connection: ConferencingConnection | None = None,
) -> SyncRun:
    """A sync of `connection` (by default the company's only one), run to its end."""
    async with db.transaction(company_id=company.id) as session:
        if connection is None:
            (connection,) = await connections_of(session)
        run = await sync.request_sync(session, connection)
    done = await sync.run_sync(db, settings, company.id or 0, run.id or 0)
    assert done is not None
    return done


async def _accounts(
    db: Database, company: Company, connection: ConferencingConnection | None = None
) -> dict[str, ProviderAccount]:
    async with db.session(company_id=company.id) as session:
        query = select(ProviderAccount)
        if connection is not None:
            query = query.where(col(ProviderAccount.connection_id) == connection.id)
        rows = (await session.execute(query)).scalars()
        return {row.provider_user_id: row for row in rows}


@pytest.fixture
async def people(db: Database, acme: Company, admin: User) -> dict[str, User]:
    found = {"ada": admin}
    for name in ("bob", "carl", "dora", "erin", "fay"):
        found[name] = await make_user(db, acme, f"{name}@acme.example")
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(
            update(User).where(col(User.id) == found["erin"].id).values(active=False)
        )
    return found


async def test_provider_users_are_matched_by_email_and_the_rest_say_why(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    ada = zoom.add_user("  ADA@Acme.example ", "Ada", "Admin")
    bob = zoom.add_user("bob@acme.example", "Bob", status="pending")
    carl = zoom.add_user("carl@acme.example", "Carl", type=1)
    erin = zoom.add_user("erin@acme.example", "Erin")
    stranger = zoom.add_user("stranger@elsewhere.example", "Stranger")
    twin_a = zoom.add_user("dora@acme.example", "Dora")
    twin_b = zoom.add_user("DORA@acme.example", "Dora too")
    nobody = zoom.add_user("", "No", "Email")
    connection = await _connect(db, zoom_settings, acme)

    run = await _sync(db, zoom_settings, acme)

    assert run.status == SUCCEEDED, run.error
    assert (run.users_seen, run.newly_mapped, run.no_longer_at_provider) == (9, 1, 0)
    # Active people without a usable account: bob (pending), carl, dora, fay.
    assert run.still_unmapped == 4
    accounts = await _accounts(db, acme)
    assert (accounts[ada["id"]].user_id, accounts[ada["id"]].reason) == (people["ada"].id, "")
    assert accounts[bob["id"]].reason == PENDING_CONFIRMATION
    assert accounts[carl["id"]].reason == NOT_LICENSED
    assert (accounts[erin["id"]].user_id, accounts[erin["id"]].reason) == (None, DEACTIVATED)
    assert accounts[stranger["id"]].reason == NO_PERSON
    assert accounts[twin_a["id"]].reason == accounts[twin_b["id"]].reason == DUPLICATE_EMAIL
    assert accounts[nobody["id"]].reason == EMPTY_EMAIL
    async with db.session(company_id=acme.id) as session:
        summary = await counts(session, connection)
        mapped = await mapped_people(session, connection)
        unmapped = await people_without_account(session, connection)
        strangers = await provider_users_without_person(session, connection, search="STRANGER")
        room = await resolve_room(session, zoom_settings, people["ada"])
    assert (summary.mapped, summary.people_unmapped, summary.pending) == (1, 4, 1)
    assert summary.provider_unmapped == 6  # erin, stranger, the twins, no email, the owner
    assert [(row.person.id, row.account.provider_user_id) for row in mapped.items] == [
        (people["ada"].id, ada["id"])
    ]
    reasons = {entry.person.email: entry.reason for entry in unmapped.items}
    assert reasons == {
        "bob@acme.example": PENDING_CONFIRMATION,
        "carl@acme.example": NOT_LICENSED,
        "dora@acme.example": NO_ACCOUNT,
        "fay@acme.example": NO_ACCOUNT,
    }
    assert [account.provider_user_id for account in strangers.items] == [stranger["id"]]
    # Zoom's list has no room link with its passcode: Ada's is asked for when she hosts.
    assert accounts[ada["id"]].room_url == ""
    assert room.provider == "zoom" and room.url == ada["personal_meeting_url"]
    assert str(ada["pmi"]) in room.url


async def test_an_email_changed_on_either_side_keeps_the_mapping(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    bob = zoom.add_user("bob@acme.example", "Bob")
    fay = zoom.add_user("fay@acme.example", "Fay")
    await _connect(db, zoom_settings, acme)
    await _sync(db, zoom_settings, acme)
    zoom.change_email(bob["id"], "robert@acme.example")
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(
            update(User)
            .where(col(User.id) == people["fay"].id)
            .values(email="fay.new@acme.example")
        )

    run = await _sync(db, zoom_settings, acme)

    accounts = await _accounts(db, acme)
    assert (accounts[bob["id"]].user_id, accounts[bob["id"]].reason) == (people["bob"].id, "")
    assert accounts[bob["id"]].email == "robert@acme.example"
    assert (accounts[fay["id"]].user_id, accounts[fay["id"]].reason) == (people["fay"].id, "")
    assert run.newly_mapped == 0


async def test_hand_maps_and_unmaps_survive_every_sync(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    bob = zoom.add_user("bob@acme.example", "Bob")
    stranger = zoom.add_user("c.smith@elsewhere.example", "Carl Smith")
    connection = await _connect(db, zoom_settings, acme)
    await _sync(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        accounts = await _accounts(db, acme)
        await map_by_hand(
            session, connection, accounts[stranger["id"]].id or 0, people["carl"].id or 0
        )
        from portal.conferencing.mapping import unmap_by_hand

        await unmap_by_hand(session, connection, accounts[bob["id"]].id or 0)

    for _ in range(2):
        run = await _sync(db, zoom_settings, acme)
        assert run.status == SUCCEEDED
        accounts = await _accounts(db, acme)
        assert (accounts[stranger["id"]].user_id, accounts[stranger["id"]].manual) == (
            people["carl"].id,
            True,
        )
        assert accounts[stranger["id"]].reason == ""
        assert (accounts[bob["id"]].user_id, accounts[bob["id"]].reason) == (None, UNMAPPED_BY_HAND)
        assert accounts[bob["id"]].manual


async def test_a_user_gone_from_the_provider_is_counted_once_and_loses_the_mapping(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    bob = zoom.add_user("bob@acme.example", "Bob")
    await _connect(db, zoom_settings, acme)
    await _sync(db, zoom_settings, acme)
    zoom.remove_user(bob["id"])

    first = await _sync(db, zoom_settings, acme)
    second = await _sync(db, zoom_settings, acme)

    assert (first.no_longer_at_provider, second.no_longer_at_provider) == (1, 0)
    gone = (await _accounts(db, acme))[bob["id"]]
    assert (gone.user_id, gone.reason) == (None, GONE)
    async with db.session(company_id=acme.id) as session:
        room = await resolve_room(session, zoom_settings, people["bob"])
    assert room.url == "" and "No Zoom account is mapped to you" in room.reason


async def test_a_failing_sync_keeps_the_previous_mapping_and_says_why(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    bob = zoom.add_user("bob@acme.example", "Bob")
    connection = await _connect(db, zoom_settings, acme)
    await _sync(db, zoom_settings, acme)
    zoom.remove_user(bob["id"])
    zoom.fail_next(500, count=50)

    run = await _sync(db, zoom_settings, acme)

    assert run.status == FAILED and run.finished_at is not None
    assert "try again" in run.error.lower()
    account = (await _accounts(db, acme))[bob["id"]]
    assert (account.user_id, account.reason) == (people["bob"].id, "")
    async with db.session(company_id=acme.id) as session:
        history = await sync_history(session, connection)
    assert [entry.status for entry in history.items] == [FAILED, SUCCEEDED]


async def test_rate_limiting_slows_the_sync_down_and_it_finishes(
    db: Database,
    zoom_settings: Settings,
    zoom: ZoomAccount,
    acme: Company,
    people: dict[str, User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync, "RATE_LIMIT_WAIT_MAX", 0.2)
    zoom.add_user("bob@acme.example", "Bob")
    await _connect(db, zoom_settings, acme)
    # More 429s in a row than the adapter's own three tries.
    zoom.fail_next(429, count=5, retry_after=0)

    run = await _sync(db, zoom_settings, acme)

    assert run.status == SUCCEEDED, run.error
    assert run.newly_mapped == 1


async def test_progress_is_committed_page_by_page_while_the_sync_runs(
    db: Database,
    zoom_settings: Settings,
    zoom: ZoomAccount,
    acme: Company,
    admin: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync, "PROGRESS_EVERY", dt.timedelta(0))
    zoom.max_page_size = 2
    for number in range(6):
        zoom.add_user(f"user{number}@acme.example")
    zoom.add_user(admin.email.upper())
    connection = await _connect(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        run = await sync.request_sync(session, connection)
    zoom.delay = 0.05
    task = asyncio.ensure_future(sync.run_sync(db, zoom_settings, acme.id or 0, run.id or 0))
    seen: set[tuple[str, int, int]] = set()
    while not task.done():
        async with db.session(company_id=acme.id) as session:
            polled = await sync.sync_run(session, run.id or 0)
            assert polled is not None
            seen.add((polled.status, polled.pages_read, polled.people_matched))
        await asyncio.sleep(0.02)
    done = await task
    assert done is not None and done.status == SUCCEEDED
    # Active users: the owner and 7 on 4 pages of 2; then the empty inactive and pending lists.
    assert done.users_seen == 8
    running = [(pages, matched) for status, pages, matched in seen if status == RUNNING]
    assert any(0 < pages < done.pages_read for pages, _ in running)
    # Only the admin is a portal person (their email in other letters at Zoom): matched by
    # email while the pages come in.
    assert {matched for _, matched in running} >= {0, 1} and done.people_matched == 1


async def test_automatic_creation_gives_unmapped_people_a_pending_account(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    zoom.add_user("bob@acme.example", "Bob")
    await _connect(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(
            update(ConferencingConnection).values(auto_create=True, provisioning="create")
        )

    run = await _sync(db, zoom_settings, acme)

    assert run.status == SUCCEEDED, run.error
    # ada, carl, dora and fay are active with no Zoom user; erin is deactivated.
    assert run.accounts_created == 4
    created = [user for user in zoom.users.values() if user["status"] == "pending"]
    assert sorted(user["email"] for user in created) == [
        "ada@acme.example",
        "carl@acme.example",
        "dora@acme.example",
        "fay@acme.example",
    ]
    accounts = await _accounts(db, acme)
    pending = [a for a in accounts.values() if a.reason == PENDING_CONFIRMATION]
    assert sorted(a.user_id or 0 for a in pending) == sorted(
        people[name].id or 0 for name in ("ada", "carl", "dora", "fay")
    )


async def test_asking_twice_gives_the_run_under_way_and_defers_one_job(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    connection = await _connect(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        first = await sync.request_sync(session, connection)
        assert list(session.info[AFTER_COMMIT].values()) == [(sync.SYNC_JOB, {"run_id": first.id})]
    async with db.transaction(company_id=acme.id) as session:
        again = await sync.request_sync(session, connection)
        assert AFTER_COMMIT not in session.info
    assert again.id == first.id


async def test_a_run_left_by_a_dead_process_is_failed_and_a_new_one_starts(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    connection = await _connect(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        old = await sync.request_sync(session, connection)
        old.heartbeat_at = utcnow() - sync.STALE_AFTER * 2
    async with db.transaction(company_id=acme.id) as session:
        new = await sync.request_sync(session, connection)
    assert new.id != old.id
    async with db.session(company_id=acme.id) as session:
        stale = await sync.sync_run(session, old.id or 0)
    assert stale is not None and stale.status == FAILED and "restarted" in stale.error


async def test_two_running_syncs_of_one_connection_cannot_be_stored(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    connection = await _connect(db, zoom_settings, acme)
    other = await make_company(db, "Globex")
    with pytest.raises(IntegrityError):
        async with db.transaction(company_id=acme.id) as session:
            for _ in range(2):
                session.add(
                    SyncRun(
                        company_id=acme.id or 0, connection_id=connection.id or 0, trigger="manual"
                    )
                )
                await session.flush()
    other_connection = await _connect(db, zoom_settings, other)
    async with db.transaction(company_id=other.id) as session:
        assert (await sync.request_sync(session, other_connection)).status == RUNNING
    # Another connection of the same company syncs at the same time.
    second = await _connect(db, zoom_settings, acme, "Zoom for Sales")
    async with db.transaction(company_id=acme.id) as session:
        first_run = await sync.request_sync(session, connection)
        second_run = await sync.request_sync(session, second)
    assert first_run.id != second_run.id
    assert {first_run.status, second_run.status} == {RUNNING}


async def test_a_persons_own_sync_is_not_the_connections_sync(
    db: Database, zoom_settings: Settings, acme: Company, member: User
) -> None:
    """One person's sync (their Conferencing Accounts page) neither blocks the connection's
    sync nor shows in its latest run, its history or the nightly's."""
    connection = await _connect(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        session.add(
            SyncRun(
                company_id=acme.id or 0,
                connection_id=connection.id or 0,
                trigger=PERSON,
                person_id=member.id,
            )
        )
    async with db.session(company_id=acme.id) as session:
        assert await sync.latest_run(session, connection) is None
    async with db.transaction(company_id=acme.id) as session:
        run = await sync.request_sync(session, connection)
    assert run.person_id is None and run.trigger == "manual"
    async with db.session(company_id=acme.id) as session:
        latest = await sync.latest_run(session, connection)
        history = await sync_history(session, connection)
    assert latest is not None and latest.id == run.id
    assert [entry.id for entry in history.items] == [run.id]


async def test_a_sync_waits_for_no_other_apply_on_postgresql(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has a single writer: BEGIN IMMEDIATE takes the turns")
    bob = zoom.add_user("bob@acme.example", "Bob")
    connection = await _connect(db, zoom_settings, acme)
    async with db.engine.connect() as holder:
        await holder.execute(
            text("SELECT pg_advisory_xact_lock(:space, :connection)"),
            {"space": sync._LOCK_SPACE, "connection": connection.id},
        )
        run = await _sync(db, zoom_settings, acme)
        await holder.rollback()
    assert run.status == FAILED and "Another sync of this connection" in run.error
    assert bob["id"] not in await _accounts(db, acme)


async def test_a_company_sees_only_its_own_runs(
    db: Database, zoom_settings: Settings, acme: Company
) -> None:
    connection = await _connect(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        run = await sync.request_sync(session, connection)
    other = await make_company(db, "Globex")
    async with db.session(company_id=other.id) as session:
        assert await sync.sync_run(session, run.id or 0) is None
        assert (await session.execute(select(ProviderAccount))).first() is None
    async with db.session(company_id=acme.id) as session:
        runs = (await session.execute(select(SyncRun).where(col(SyncRun.id) == run.id))).all()
    assert len(runs) == 1


# Several connections, each serving some of the company's people.

OTHER_FORM = {"account_id": "acct-2", "client_id": "client-2", "client_secret": "other-secret"}


@pytest.fixture
def other_zoom(settings: Settings) -> Iterator[tuple[ZoomAccount, Settings]]:
    """A second Zoom account, on a simulator of its own, and settings that reach it."""
    account = ZoomAccount(*OTHER_FORM.values())
    with serve(zoom_app(account)) as url:
        yield account, dataclasses.replace(settings, provider_endpoints=zoom_endpoints(url))


@pytest.fixture
async def staff(db: Database, acme: Company, admin: User, member: User) -> dict[str, User]:
    """Ada (no department), Bob and Sam in Sales, Tess in Support."""
    return {
        "ada": admin,
        "bob": member,
        "sam": await make_user(db, acme, "sam@acme.example", department="Sales"),
        "tess": await make_user(db, acme, "tess@acme.example", department="Support"),
    }


async def test_two_zoom_accounts_each_map_only_the_people_they_serve(
    db: Database,
    zoom_settings: Settings,
    zoom: ZoomAccount,
    other_zoom: tuple[ZoomAccount, Settings],
    acme: Company,
    staff: dict[str, User],
) -> None:
    """Zoom for Sales serves the Sales department; the company's Zoom serves everyone. Ada has a
    user at both: the Sales account must not take her."""
    sales_zoom = {name: zoom.add_user(f"{name}@acme.example", name) for name in ("bob", "sam")}
    sales_zoom["ada"] = zoom.add_user("ada@acme.example", "Ada")
    main_zoom, main_settings = other_zoom
    main_users = {
        name: main_zoom.add_user(f"{name}@acme.example", name) for name in ("ada", "tess")
    }
    sales = await _connect(
        db, zoom_settings, acme, "Zoom for Sales", serves=DEPARTMENTS, departments=["Sales"]
    )
    main = await _connect(db, main_settings, acme, "Zoom", OTHER_FORM)

    sales_run = await _sync(db, zoom_settings, acme, sales)
    main_run = await _sync(db, main_settings, acme, main)

    assert sales_run.status == main_run.status == SUCCEEDED, (sales_run.error, main_run.error)
    sales_accounts = await _accounts(db, acme, sales)
    assert {
        name: (sales_accounts[user["id"]].user_id, sales_accounts[user["id"]].reason)
        for name, user in sales_zoom.items()
    } == {
        "bob": (staff["bob"].id, ""),
        "sam": (staff["sam"].id, ""),
        "ada": (None, NOT_SERVED),
    }
    # Sales has no one left without an account; everyone else lacks Bob and Sam at the other.
    assert (sales_run.newly_mapped, sales_run.still_unmapped) == (2, 0)
    main_accounts = await _accounts(db, acme, main)
    assert {main_accounts[user["id"]].user_id for user in main_users.values()} == {
        staff["ada"].id,
        staff["tess"].id,
    }
    assert (main_run.newly_mapped, main_run.still_unmapped) == (2, 2)
    async with db.session(company_id=acme.id) as session:
        sales_counts = await counts(session, sales)
        strangers = await provider_users_without_person(session, sales)
    assert (sales_counts.mapped, sales_counts.people_unmapped) == (2, 0)
    # Ada's Sales user, and the simulator's own app user.
    assert sorted(account.reason for account in strangers.items) == [NO_PERSON, NOT_SERVED]


async def test_a_connection_serving_people_chosen_by_hand_maps_and_creates_for_them_only(
    db: Database,
    zoom_settings: Settings,
    zoom: ZoomAccount,
    acme: Company,
    staff: dict[str, User],
) -> None:
    ada = zoom.add_user("ada@acme.example", "Ada")
    zoom.add_user("bob@acme.example", "Bob")
    connection = await _connect(db, zoom_settings, acme, serves=CHOSEN)
    async with db.transaction(company_id=acme.id) as session:
        for name in ("bob", "tess"):
            session.add(
                ConnectionMember(
                    company_id=acme.id or 0,
                    connection_id=connection.id or 0,
                    user_id=staff[name].id or 0,
                )
            )
        # Creation is on sitewide; the connection says nothing of its own.
        session.add(ConferencingSettings(company_id=acme.id or 0, auto_create=True))

    run = await _sync(db, zoom_settings, acme)

    assert run.status == SUCCEEDED, run.error
    # Tess is chosen and has no Zoom user: one is made for her, and for no one else.
    assert run.accounts_created == 1
    created = [user["email"] for user in zoom.users.values() if user["status"] == "pending"]
    assert created == ["tess@acme.example"]
    accounts = await _accounts(db, acme)
    assert (accounts[ada["id"]].user_id, accounts[ada["id"]].reason) == (None, NOT_SERVED)
    mapped = {a.user_id for a in accounts.values() if a.user_id}
    assert mapped == {staff["bob"].id, staff["tess"].id}

    # The connection's own "off" wins over the sitewide "on".
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(update(ConferencingConnection).values(auto_create=False))
        session.add(
            ConnectionMember(
                company_id=acme.id or 0,
                connection_id=connection.id or 0,
                user_id=staff["sam"].id or 0,
            )
        )
    again = await _sync(db, zoom_settings, acme)
    assert again.status == SUCCEEDED and again.accounts_created == 0
    # Tess's new account awaits her confirmation; Sam, chosen since, has no Zoom user.
    assert again.still_unmapped == 2


async def test_a_person_no_longer_served_loses_the_mapping_at_the_next_sync(
    db: Database,
    zoom_settings: Settings,
    zoom: ZoomAccount,
    acme: Company,
    staff: dict[str, User],
) -> None:
    bob = zoom.add_user("bob@acme.example", "Bob")
    sales = await _connect(db, zoom_settings, acme, serves=DEPARTMENTS, departments=["Sales"])
    await _sync(db, zoom_settings, acme)
    assert (await _accounts(db, acme))[bob["id"]].user_id == staff["bob"].id
    async with db.transaction(company_id=acme.id) as session:
        await session.execute(
            update(User).where(col(User.id) == staff["bob"].id).values(department="Support")
        )
    await _sync(db, zoom_settings, acme, sales)
    moved = (await _accounts(db, acme))[bob["id"]]
    assert (moved.user_id, moved.reason) == (None, NOT_SERVED)


async def test_a_room_link_asked_for_when_hosting_survives_the_next_sync(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, admin: User
) -> None:
    ada = zoom.add_user(admin.email, "Ada", "Admin")
    await _connect(db, zoom_settings, acme)
    await _sync(db, zoom_settings, acme)
    async with db.transaction(company_id=acme.id) as session:
        room = await resolve_room(session, zoom_settings, admin)
    assert room.url == ada["personal_meeting_url"]

    run = await _sync(db, zoom_settings, acme)

    assert run.status == SUCCEEDED, run.error
    assert (await _accounts(db, acme))[ada["id"]].room_url == ada["personal_meeting_url"]
    asked = zoom.count("GET", f"/v2/users/{ada['id']}")
    async with db.session(company_id=acme.id) as session:
        again = await resolve_room(session, zoom_settings, admin)
    assert again.url == room.url
    assert zoom.count("GET", f"/v2/users/{ada['id']}") == asked


async def test_a_sync_writes_only_the_users_that_changed_and_a_gone_user_keeps_their_details(
    db: Database, zoom_settings: Settings, zoom: ZoomAccount, acme: Company, people: dict[str, User]
) -> None:
    bob = zoom.add_user("bob@acme.example", "Bob", "Baker")
    carl = zoom.add_user("carl@acme.example", "Carl")
    dora = zoom.add_user("dora@acme.example", "Dora")
    await _connect(db, zoom_settings, acme)
    await _sync(db, zoom_settings, acme)
    before = await _accounts(db, acme)
    zoom.set_status(carl["id"], "inactive")
    zoom.remove_user(dora["id"])

    run = await _sync(db, zoom_settings, acme)

    assert run.status == SUCCEEDED, run.error
    after = await _accounts(db, acme)
    assert after[bob["id"]].updated_at == before[bob["id"]].updated_at
    assert (after[carl["id"]].status, after[carl["id"]].user_id) == ("inactive", people["carl"].id)
    assert after[carl["id"]].updated_at > before[carl["id"]].updated_at
    gone = after[dora["id"]]
    assert (gone.user_id, gone.reason, gone.email, gone.name) == (
        None,
        GONE,
        "dora@acme.example",
        "Dora",
    )
