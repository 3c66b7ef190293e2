"""Hover cards kept by the web process: read once, shown again without a read, and never shown
stale once anyone, in any process, has changed what a card shows."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from portal import freshness
from portal.accounts.models import Company, User
from portal.db import Database, libpq_conninfo
from portal.directory import cards
from tests.calendar.test_details import make_event
from tests.conftest import PortalClient
from tests.directory.conftest import make_colleague

HTMX = {"HX-Request": "true"}
NOW = dt.datetime(2026, 7, 14, 12, 42, tzinfo=dt.UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The card's clock, set by the test: `clock[0] = moment`."""
    moment = [NOW]
    monkeypatch.setattr("portal.directory.views.utcnow", lambda: moment[0])
    return moment


@pytest.fixture
async def hannah(db: Database, acme: Company) -> User:
    return await make_colleague(
        db, acme, "hannah@acme.example", "Hannah Schmidt", title="Account Executive"
    )


@pytest.fixture
async def listening(db: Database) -> None:
    """Until the process listens (PostgreSQL: its LISTEN connection is up), nothing is kept."""
    await asyncio.wait_for(db.changes.listening(), timeout=10)


async def card(client: PortalClient, person: User) -> str:
    response = await client.get(f"/people/{person.id}/card", headers=HTMX)
    assert response.status_code == 200, response.text
    return response.text


def reads(statements: list[str]) -> list[str]:
    # SQLite's data_version is how a kept card knows it is current, not a read of the card's.
    return [s for s in statements if not s.startswith("PRAGMA data_version")]


def elsewhere(db: Database, sql: str, *params: object) -> None:
    """`sql`, committed as another web process would: on a connection of no session of this
    process (so only the database can tell this one of it)."""
    if db.is_sqlite:
        connection = sqlite3.connect(str(make_url(db.url).database))
        try:
            with connection:
                connection.execute(sql.replace("%s", "?"), params)
        finally:
            connection.close()
        return
    with psycopg.connect(libpq_conninfo(db.url), autocommit=True) as connection:
        connection.execute(sql, params)  # type: ignore[arg-type]


async def eventually(check: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.02)


async def test_a_card_opened_again_is_shown_without_a_read(
    admin_client: PortalClient,
    hannah: User,
    clock: list[dt.datetime],
    listening: None,
    lean_statements: list[str],
) -> None:
    first = await card(admin_client, hannah)
    assert reads(lean_statements)
    lean_statements.clear()
    assert await card(admin_client, hannah) == first
    assert reads(lean_statements) == []


async def test_a_kept_card_says_what_is_on_at_each_moment(
    admin_client: PortalClient,
    db: Database,
    hannah: User,
    clock: list[dt.datetime],
    listening: None,
    lean_statements: list[str],
) -> None:
    """Kept, the meetings are worked out for the moment of each request: one that starts
    after the card was read shows as it starts, without a read or a write."""
    await make_event(db, hannah, start=NOW + dt.timedelta(seconds=20), minutes=30)
    assert "In a meeting" not in await card(admin_client, hannah)
    lean_statements.clear()
    clock[0] = NOW + dt.timedelta(seconds=25)
    assert "In a meeting until 14:12" in await card(admin_client, hannah)
    assert reads(lean_statements) == []
    # A clock set back is older than what was kept: read again.
    clock[0] = NOW - dt.timedelta(seconds=1)
    assert "In a meeting" not in await card(admin_client, hannah)
    assert reads(lean_statements)


async def test_a_card_is_kept_for_a_while_at_most(
    admin_client: PortalClient,
    hannah: User,
    clock: list[dt.datetime],
    listening: None,
    lean_statements: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cards, "KEEP_FOR", dt.timedelta(seconds=1))
    await card(admin_client, hannah)
    lean_statements.clear()
    await card(admin_client, hannah)
    assert reads(lean_statements) == []
    await asyncio.sleep(1)
    await card(admin_client, hannah)
    assert reads(lean_statements)


# What another process changes, and whose row: Hannah's (the card's person) or the viewer's.
_CHANGES = {
    "title": ("UPDATE users SET title = 'Head of Sales' WHERE id = %s", "hannah"),
    "deactivated": ("UPDATE users SET active = false WHERE id = %s", "hannah"),
    "viewer-signed-out": (
        "UPDATE users SET session_version = session_version + 1 WHERE id = %s", "viewer"
    ),
    "cancelled": ("UPDATE calendar_event SET cancelled_at = starts_at WHERE organizer_id = %s",
                  "hannah"),
    "declined": ("UPDATE event_participant SET partstat = 'DECLINED' WHERE user_id = %s", "hannah"),
    "uninvited": ("DELETE FROM event_participant WHERE user_id = %s", "hannah"),
}  # fmt: skip


@pytest.mark.parametrize("change", list(_CHANGES))
async def test_a_kept_card_shows_what_another_process_changed(
    admin_client: PortalClient,
    db: Database,
    admin: User,
    member: User,
    hannah: User,
    clock: list[dt.datetime],
    listening: None,
    change: str,
) -> None:
    """Written by another web process (PostgreSQL tells this one; SQLite's file says so),
    the change shows on the next card: within moments on PostgreSQL, at once on SQLite."""
    if change == "cancelled":
        await make_event(db, hannah, start=NOW - dt.timedelta(minutes=12), minutes=30)
    else:
        await make_event(db, member, start=NOW, minutes=60, invitees=[hannah])
    assert "In a meeting until" in await card(admin_client, hannah)
    sql, whose = _CHANGES[change]
    elsewhere(db, sql, (hannah if whose == "hannah" else admin).id)

    async def shows() -> bool:
        response = await admin_client.get(f"/people/{hannah.id}/card", headers=HTMX)
        if change == "deactivated":
            return response.status_code == 404
        if change == "viewer-signed-out":
            return response.headers.get("hx-redirect") == "http://testserver/signin"
        if change == "title":
            return "Head of Sales" in response.text
        return "In a meeting" not in response.text

    await eventually(shows, within=0.5 if db.is_sqlite else 10.0)


async def test_a_change_saved_in_this_process_shows_at_once(
    admin_client: PortalClient,
    db: Database,
    hannah: User,
    clock: list[dt.datetime],
    listening: None,
) -> None:
    """Not a moment later, when the database's notice comes: a person who saves and looks
    again sees what they saved, whichever process serves them next being told as it commits."""
    assert "Account Executive" in await card(admin_client, hannah)
    async with db.session(company_id=hannah.company_id, write=True) as session:
        await session.execute(
            text("UPDATE users SET title = 'Head of Sales' WHERE id = :id"), {"id": hannah.id}
        )
        await session.commit()
    assert "Head of Sales" in await card(admin_client, hannah)


async def test_what_changed_while_nobody_listened_is_never_shown_stale(
    admin_client: PortalClient,
    db: Database,
    hannah: User,
    clock: list[dt.datetime],
    listening: None,
) -> None:
    """The listening connection is cut (a restart, a failover, an operator): the notices of
    that moment are lost, so once it listens again nothing kept before it is shown."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's notices: SQLite asks the file on every card")
    assert "Account Executive" in await card(admin_client, hannah)
    elsewhere(
        db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        freshness.APPLICATION_NAME,
    )
    elsewhere(db, "UPDATE users SET title = 'Head of Sales' WHERE id = %s", hannah.id)
    await eventually(lambda: _card_says(admin_client, hannah, "Head of Sales"))
    await asyncio.wait_for(db.changes.listening(), timeout=10)


async def _card_says(client: PortalClient, person: User, words: str) -> bool:
    return words in await card(client, person)


async def test_every_table_a_card_reads_tells_of_its_changes(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("PostgreSQL's triggers: SQLite's file tells of every change")
    async with db.engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE t.tgname IN ('portal_changed', 'portal_truncated')"
            )
        )
        triggers = {tuple(row) for row in found}
    assert triggers == {
        (table, name) for table in cards.TABLES for name in ("portal_changed", "portal_truncated")
    }


def test_kept_reads_are_bounded_the_oldest_going_first() -> None:
    changes = freshness.Changes(sqlite=lambda: sqlite3.connect(":memory:"), conninfo="")
    kept: freshness.Kept[int, str] = freshness.Kept(changes, keep_for=60, at_most=3)
    for number in range(5):
        kept.keep(1, number, changes.stamp(1), f"read {number}")
    assert [kept.get(1, number) for number in range(5)] == [
        None,
        None,
        "read 2",
        "read 3",
        "read 4",
    ]
    assert kept.get(2, 4) is None  # another company's
