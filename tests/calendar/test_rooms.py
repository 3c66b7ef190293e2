"""The organizer's room: when the button is live, join links, Start meeting, and the log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.calendar import rooms
from portal.calendar.models import CalendarEvent, EventJoin
from portal.calendar.recurrence import occurrences
from portal.db import UNSCOPED, Database
from tests.calendar.test_details import ROOM, START, add_exception, make_event
from tests.conftest import PortalClient, make_company, make_user

HTMX = {"HX-Request": "true"}
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"}


class Clock:
    """The server's clock, set by the test: the details page and the room service read it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = START - dt.timedelta(hours=1)
        monkeypatch.setattr("portal.calendar.views.details.utcnow", lambda: self.now)
        monkeypatch.setattr("portal.calendar.rooms.utcnow", lambda: self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


async def joins(db: Database) -> list[EventJoin]:
    async with db.session(company_id=UNSCOPED) as session:
        return list(
            (await session.execute(select(EventJoin).order_by(col(EventJoin.id)))).scalars()
        )


async def test_room_state_is_live_from_fifteen_minutes_before_until_the_end(
    db: Database, admin: User
) -> None:
    event, _ = await make_event(db, admin, uses_room=True)
    (occurrence,) = occurrences(event, [], START, START + dt.timedelta(hours=1))
    minute = dt.timedelta(minutes=1)
    assert rooms.opens_at(occurrence) == START - 15 * minute
    assert rooms.room_state(occurrence, START - 16 * minute) == "not_yet_open"
    assert rooms.room_state(occurrence, START - 15 * minute) == "open"
    assert rooms.room_state(occurrence, START + 59 * minute) == "open"
    assert rooms.room_state(occurrence, START + 60 * minute) == "ended"


async def test_the_details_button_goes_live_and_ends_with_the_clock(
    client: PortalClient, db: Database, admin: User, member: User, clock: Clock
) -> None:
    event, (invitation,) = await make_event(db, admin, uses_room=True, invitees=[member])
    await client.sign_in(member.email)
    url = f"/calendar/events/{event.id}"
    before = await client.get(url)
    assert "Join room" in before.text and 'aria-disabled="true"' in before.text
    assert ">13:45</time>" in before.text  # 12:45 UTC in London
    assert 'hx-trigger="every 15s"' in before.text and 'hx-target="this"' in before.text
    clock.now = START - dt.timedelta(minutes=10)
    poll = await client.get(url, headers=HTMX)
    assert "<html" not in poll.text and "Participants" not in poll.text
    link = f'href="http://testserver/calendar/join/{invitation.join_token}"'
    assert link in poll.text and 'target="_blank" rel="noopener"' in poll.text
    assert "Join room" in poll.text and "aria-disabled" not in poll.text
    clock.now = START + dt.timedelta(hours=1)
    after = await client.get(url, headers=HTMX)
    assert "This meeting has ended" in after.text and "hx-trigger" not in after.text


async def test_the_organizer_sees_start_meeting(
    admin_client: PortalClient, db: Database, admin: User, member: User, clock: Clock
) -> None:
    event, _ = await make_event(db, admin, uses_room=True, invitees=[member])
    clock.now = START
    page = await admin_client.get(f"/calendar/events/{event.id}")
    key = int(START.timestamp())
    assert "Start meeting" in page.text and "Join room" not in page.text
    assert (
        f'href="http://testserver/calendar/events/{event.id}/start?occurrence={key}"' in page.text
    )


async def test_no_button_without_the_room(
    admin_client: PortalClient, db: Database, admin: User, clock: Clock
) -> None:
    event, _ = await make_event(db, admin)
    clock.now = START
    page = await admin_client.get(f"/calendar/events/{event.id}")
    assert "Start meeting" not in page.text and "room-button" not in page.text


async def test_a_join_link_opens_the_room_and_is_recorded_once_a_minute(
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    member: User,
    clock: Clock,
) -> None:
    event, (invitation,) = await make_event(db, admin, uses_room=True, invitees=[member])
    clock.now = START - dt.timedelta(minutes=10)
    link = f"/calendar/join/{invitation.join_token}"
    browser = new_client()
    await browser.sign_in(member.email)
    for _ in range(2):
        response = await browser.get(link, headers=BROWSER)
        assert response.status_code == 303 and response.headers["location"] == ROOM
    (join,) = await joins(db)
    assert join.participant_id == invitation.id and join.user_id == member.id
    assert join.event_id == event.id and join.occurrence_start == START
    clock.now += dt.timedelta(minutes=2)
    await browser.get(link, headers=BROWSER)
    assert len(await joins(db)) == 2


async def test_previews_are_no_joins_and_guests_are_recorded_as_guests(
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    member: User,
    clock: Clock,
) -> None:
    _, (invitation,) = await make_event(db, admin, uses_room=True, invitees=[member])
    clock.now = START
    link = f"/calendar/join/{invitation.join_token}"
    guest = new_client()
    for agent in ("Slackbot-LinkExpanding 1.0", "Mozilla/5.0 (compatible; Googlebot/2.1)", ""):
        preview = await guest.get(link, headers={"User-Agent": agent})
        assert preview.status_code == 303
    assert (await guest.http.head(link, headers=BROWSER)).status_code == 303
    assert await joins(db) == []
    globex = await make_company(db, "Globex")
    await make_user(db, globex, "eve@globex.example", name="Eve Outsider")
    await guest.sign_in("eve@globex.example")
    assert (await guest.get(link, headers=BROWSER)).status_code == 303
    (join,) = await joins(db)
    assert join.user_id is None and join.company_id == admin.company_id


async def test_before_and_after_the_window_the_link_says_why(
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    member: User,
    clock: Clock,
) -> None:
    _, (invitation,) = await make_event(db, admin, uses_room=True, invitees=[member])
    link = f"/calendar/join/{invitation.join_token}"
    guest = new_client()
    early = await guest.get(link, headers=BROWSER)
    assert early.status_code == 403
    assert "This meeting is not open yet" in early.text and "14 Jul 2026 at 12:45 UTC" in early.text
    assert "Ada Admin" in early.text
    clock.now = START + dt.timedelta(hours=2)
    late = await guest.get(link, headers=BROWSER)
    assert late.status_code == 410 and "This meeting has ended" in late.text
    assert await joins(db) == []
    for token in ("not-a-real-token", "x" * 65):
        assert (await guest.get(f"/calendar/join/{token}")).status_code == 404


async def test_a_series_link_leads_to_the_occurrence_on_now_or_next(
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    member: User,
    clock: Clock,
) -> None:
    event, (invitation,) = await make_event(
        db, admin, uses_room=True, invitees=[member], rrule="FREQ=DAILY;COUNT=3"
    )
    await add_exception(db, event, START + dt.timedelta(days=1), cancelled=True)
    link = f"/calendar/join/{invitation.join_token}"
    guest = new_client()
    clock.now = START + dt.timedelta(hours=3)  # after the first; the second is cancelled
    early = await guest.get(link, headers=BROWSER)
    assert early.status_code == 403 and "16 Jul 2026 at 12:45 UTC" in early.text
    clock.now = START + dt.timedelta(days=2, minutes=5)
    assert (await guest.get(link, headers=BROWSER)).status_code == 303
    (join,) = await joins(db)
    assert join.occurrence_start == START + dt.timedelta(days=2)


async def test_a_cancelled_event_link_says_so(
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    member: User,
    clock: Clock,
) -> None:
    event, (invitation,) = await make_event(db, admin, uses_room=True, invitees=[member])
    async with db.session(company_id=admin.company_id, write=True) as session:
        stored = await session.get(CalendarEvent, event.id)
        assert stored is not None
        stored.cancelled_at = START
        await session.commit()
    clock.now = START
    response = await new_client().get(f"/calendar/join/{invitation.join_token}", headers=BROWSER)
    assert response.status_code == 410 and "This meeting was cancelled" in response.text


async def test_start_meeting_is_the_organizers(
    admin_client: PortalClient,
    new_client: Callable[[], PortalClient],
    db: Database,
    admin: User,
    member: User,
    acme: Company,
    clock: Clock,
) -> None:
    event, _ = await make_event(db, admin, uses_room=True, invitees=[member])
    start = f"/calendar/events/{event.id}/start?occurrence={int(START.timestamp())}"
    early = await admin_client.get(start)
    assert early.status_code == 403 and "not open yet" in early.text
    clock.now = START - dt.timedelta(minutes=5)
    response = await admin_client.get(start)
    assert response.status_code == 303 and response.headers["location"] == ROOM
    (join,) = await joins(db)
    assert join.participant_id is None and join.user_id == admin.id
    participant = new_client()
    await participant.sign_in(member.email)
    assert (await participant.get(start)).status_code == 403
    stranger = new_client()
    await make_user(db, acme, "carol@acme.example", name="Carol Other")
    await stranger.sign_in("carol@acme.example")
    assert (await stranger.get(start)).status_code == 404
    for bad in ("\u0661\u0662", "12", "abc"):
        response = await admin_client.get(f"/calendar/events/{event.id}/start?occurrence={bad}")
        assert response.status_code == 404, bad
    assert len(await joins(db)) == 1
