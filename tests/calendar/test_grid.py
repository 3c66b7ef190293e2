"""The calendar page: each view in the viewer's time zone, navigation, htmx, and whose events."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.calendar import grid
from portal.calendar.models import CalendarEvent, EventParticipant
from portal.db import Database
from portal.settings import Settings
from tests.conftest import PortalClient, make_company, make_user

HTMX = {"HX-Request": "true"}
BERLIN = "Europe/Berlin"
# Monday 30 November 2026, 10:00 UTC (11:00 in Berlin).
NOW = dt.datetime(2026, 11, 30, 10, tzinfo=dt.UTC)


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)  # type: ignore[misc]


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("portal.calendar.views.grid.utcnow", lambda: NOW)


async def in_zone(db: Database, person: User, time_zone: str) -> None:
    async with db.session(company_id=person.company_id, write=True) as session:
        await session.execute(
            update(User).where(col(User.id) == person.id).values(time_zone=time_zone)
        )
        await session.commit()


async def add_event(
    db: Database,
    organizer: User,
    title: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    invite: tuple[User, ...] = (),
    **fields: Any,
) -> CalendarEvent:
    """A row as the services would store it (time zone UTC unless given)."""
    async with db.session(company_id=organizer.company_id, write=True) as session:
        event = CalendarEvent(
            company_id=organizer.company_id,
            organizer_id=organizer.id or 0,
            title=title,
            starts_at=start,
            ends_at=end,
            **{"uid": secrets.token_hex(8), "time_zone": "UTC", "last_ends_at": end, **fields},
        )
        session.add(event)
        await session.flush()
        for person in invite:
            session.add(
                EventParticipant(
                    company_id=organizer.company_id,
                    event_id=event.id or 0,
                    user_id=person.id,
                    email=person.email,
                    name=person.display_name,
                    join_token=secrets.token_hex(16),
                )
            )
        await session.commit()
        await session.refresh(event)
        return event


def cell(page: str, label: str) -> str:
    """The month cell of the day called `label` ("Wednesday 2 December 2026")."""
    start = page.index(f'aria-label="{label}"')
    end = page.find('class="day-number"', start)
    return page[start : end if end != -1 else len(page)]


def column(page: str, label: str) -> str:
    """A week or day view's column of timed events for the day called `label`."""
    match = re.search(rf'<ol class="time-day[^"]*" aria-label="{label}">(.*?)</ol>', page, re.S)
    assert match, label
    return match.group(1)


def all_day_row(page: str) -> str:
    start = page.index('<ul class="all-day-row"')
    return page[start : page.index("</ul>", start)]


@pytest.fixture
async def member_client(client: PortalClient, db: Database, member: User) -> PortalClient:
    await in_zone(db, member, BERLIN)
    await client.sign_in(member.email)
    return client


# --- Placing events in the viewer's zone ----------------------------------------------------


async def test_an_event_late_in_the_utc_day_is_on_the_next_day_in_berlin(
    member_client: PortalClient, db: Database, member: User
) -> None:
    event = await add_event(
        db, member, "Late call", utc(2026, 12, 1, 23, 30), utc(2026, 12, 2, 0, 30), location="Attic"
    )
    month = (await member_client.get("/calendar?view=month&date=2026-12-01")).text
    assert "Late call" not in cell(month, "Tuesday 1 December 2026")
    wednesday = cell(month, "Wednesday 2 December 2026")
    assert '<span class="event-time">00:30</span> <span class="event-title">Late call' in wednesday
    assert f'href="/calendar/events/{event.id}"' in wednesday

    week = (await member_client.get("/calendar?view=week&date=2026-12-01")).text
    assert "Late call" not in column(week, "Tuesday 1 December 2026")
    # 00:30 to 01:30: from the third quarter hour, four of them.
    assert '<li class="at-3 len-4">' in column(week, "Wednesday 2 December 2026")
    assert "00:30 – 01:30" in week

    day = (await member_client.get("/calendar?view=day&date=2026-12-02")).text
    assert '<li class="at-3 len-4">' in column(day, "Wednesday 2 December 2026")
    assert (await member_client.get("/calendar?view=day&date=2026-12-01")).text.count(
        "Late call"
    ) == 0

    agenda = (await member_client.get("/calendar?view=agenda&date=2026-12-01")).text
    assert "Wednesday 2 December 2026" in agenda and "Tuesday 1 December 2026" not in agenda
    assert '<span class="event-time">00:30 – 01:30</span>' in agenda
    assert '<span class="event-location">Attic</span>' in agenda


async def test_all_day_and_multi_day_events(
    member_client: PortalClient, db: Database, member: User
) -> None:
    # Three days in Berlin, stored as Berlin midnights (the end exclusive).
    await add_event(
        db,
        member,
        "Offsite",
        utc(2026, 12, 1, 23),
        utc(2026, 12, 4, 23),
        time_zone=BERLIN,
        all_day=True,
    )
    # An all-day event is on its own date wherever the viewer is: 10 December in New York.
    await add_event(
        db,
        member,
        "Holiday",
        utc(2026, 12, 10, 5),
        utc(2026, 12, 11, 5),
        time_zone="America/New_York",
        all_day=True,
    )
    # A night: 22:00 to 02:00 in Berlin.
    await add_event(db, member, "Night shift", utc(2026, 12, 8, 21), utc(2026, 12, 9, 1))
    await add_event(db, member, "Breakfast", utc(2026, 12, 3, 7), utc(2026, 12, 3, 8))

    month = (await member_client.get("/calendar?view=month&date=2026-12-01")).text
    assert "Offsite" not in cell(month, "Tuesday 1 December 2026")
    for number, label in enumerate(
        ["Wednesday 2 December 2026", "Thursday 3 December 2026", "Friday 4 December 2026"], 1
    ):
        assert f'Offsite</span> <span class="event-span">day {number} of 3' in cell(month, label)
    assert "Offsite" not in cell(month, "Saturday 5 December 2026")
    thursday = cell(month, "Thursday 3 December 2026")
    # All-day first, without a time.
    assert thursday.index("Offsite") < thursday.index("Breakfast")
    assert '<div class="event all-day continued continues">' in thursday
    assert "Holiday" in cell(month, "Thursday 10 December 2026")
    assert "Holiday" not in cell(month, "Friday 11 December 2026")
    assert '22:00</span> <span class="event-title">Night shift' in cell(
        month, "Tuesday 8 December 2026"
    )
    assert 'Night shift</span> <span class="event-span">day 2 of 2' in cell(
        month, "Wednesday 9 December 2026"
    )

    week = (await member_client.get("/calendar?view=week&date=2026-12-01")).text
    bars = all_day_row(week)
    # One bar from Wednesday (column 3) across three days.
    assert bars.count("Offsite") == 1
    assert '<li class="col-3 cols-3"><div class="event all-day">' in bars
    assert "2 Dec – 4 Dec" in bars

    night = (await member_client.get("/calendar?view=week&date=2026-12-08")).text
    assert "from 22:00" in column(night, "Tuesday 8 December 2026")
    assert '<li class="at-89 len-8">' in column(night, "Tuesday 8 December 2026")
    assert "until 02:00" in column(night, "Wednesday 9 December 2026")
    assert '<li class="at-1 len-8">' in column(night, "Wednesday 9 December 2026")
    assert "Holiday" in all_day_row(night) and '<li class="col-4 cols-1">' in all_day_row(night)

    # A bar that began before the week shown and goes on past it; a timed day-long one.
    await add_event(db, member, "Sabbatical", utc(2026, 12, 10), utc(2026, 12, 30), all_day=True)
    summit = await add_event(db, member, "Summit", utc(2026, 12, 16, 9), utc(2026, 12, 17, 15))
    middle = all_day_row((await member_client.get("/calendar?view=week&date=2026-12-16")).text)
    assert '<li class="col-1 cols-7"><div class="event all-day continued continues">' in middle
    assert (
        '<li class="col-3 cols-2"><div class="event">\n  <a class="event-link" '
        f'href="/calendar/events/{summit.id}"><span class="event-time">'
        '16 Dec 10:00 – 17 Dec 16:00</span> <span class="event-title">Summit' in middle
    )


async def test_a_recurring_series_with_a_moved_and_a_cancelled_occurrence(
    member_client: PortalClient, db: Database, member: User
) -> None:
    # Tuesdays at 09:00 in Berlin (08:00 UTC), four times from 1 December.
    series = await add_event(
        db,
        member,
        "Weekly",
        utc(2026, 12, 1, 8),
        utc(2026, 12, 1, 9),
        time_zone=BERLIN,
        rrule="FREQ=WEEKLY;COUNT=4",
        last_ends_at=utc(2026, 12, 22, 9),
    )
    moved_from = utc(2026, 12, 8, 8)
    await add_event(
        db,
        member,
        "Weekly (moved)",
        utc(2026, 12, 9, 13),
        utc(2026, 12, 9, 14),
        time_zone=BERLIN,
        series_id=series.id,
        recurrence_id=moved_from,
        uid=series.uid,
    )
    await add_event(
        db,
        member,
        "Weekly",
        utc(2026, 12, 15, 8),
        utc(2026, 12, 15, 9),
        time_zone=BERLIN,
        series_id=series.id,
        recurrence_id=utc(2026, 12, 15, 8),
        uid=series.uid,
        cancelled_at=NOW,
    )
    month = (await member_client.get("/calendar?view=month&date=2026-12-01")).text
    first = cell(month, "Tuesday 1 December 2026")
    key = int(utc(2026, 12, 1, 8).timestamp())
    assert f'href="/calendar/events/{series.id}?occurrence={key}"' in first
    assert '<span class="event-time">09:00</span> <span class="event-title">Weekly' in first
    assert "Weekly" not in cell(month, "Tuesday 8 December 2026")
    moved = cell(month, "Wednesday 9 December 2026")
    assert '14:00</span> <span class="event-title">Weekly (moved)' in moved
    # The moved occurrence links to the series, named by its original start.
    moved_key = int(moved_from.timestamp())
    assert f"/calendar/events/{series.id}?occurrence={moved_key}" in moved
    assert "Weekly" not in cell(month, "Tuesday 15 December 2026")
    assert "Weekly" in cell(month, "Tuesday 22 December 2026")
    assert "Weekly" not in cell(month, "Tuesday 29 December 2026")


async def test_a_crowded_day_shows_a_few_and_links_to_the_rest(
    member_client: PortalClient, db: Database, member: User
) -> None:
    for hour in range(8, 14):
        await add_event(db, member, f"Slot {hour}", utc(2026, 12, 3, hour), utc(2026, 12, 3, hour))
    month = (await member_client.get("/calendar?view=month&date=2026-12-03")).text
    thursday = cell(month, "Thursday 3 December 2026")
    assert thursday.count('class="event-link"') == grid.CELL_LIMIT - 1
    assert "Slot 8" in thursday and "Slot 13" not in thursday
    assert (
        '<a class="more" href="http://testserver/calendar?view=day&amp;date=2026-12-03"' in thursday
    )
    assert "+3 more" in thursday
    day = (await member_client.get("/calendar?view=day&date=2026-12-03")).text
    assert all(f"Slot {hour}" in day for hour in range(8, 14))


# --- The page: toolbar, navigation, bad input, htmx -----------------------------------------


def link(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]* href="([^"]+)"', page)
    assert match, element_id
    return match.group(1).replace("&amp;", "&").removeprefix("http://testserver")


async def test_today_previous_and_next(member_client: PortalClient) -> None:
    page = (await member_client.get("/calendar")).text
    # The month of today in the viewer's zone, today marked.
    assert '<h1 id="calendar-title">November 2026</h1>' in page
    assert page.count('aria-current="date"') == 1
    assert 'aria-label="Monday 30 November 2026" aria-current="date"' in page
    assert link(page, "calendar-previous") == "/calendar?view=month&date=2026-10-01"
    assert link(page, "calendar-next") == "/calendar?view=month&date=2026-12-01"

    week = (await member_client.get("/calendar?view=week&date=2026-12-17")).text
    assert '<h1 id="calendar-title">14 – 20 Dec 2026</h1>' in week
    assert link(week, "calendar-today") == "/calendar?view=week&date=2026-11-30"
    assert link(week, "calendar-previous") == "/calendar?view=week&date=2026-12-07"
    assert link(week, "calendar-next") == "/calendar?view=week&date=2026-12-21"
    assert link(week, "calendar-view-day") == "/calendar?view=day&date=2026-12-17"
    assert 'id="calendar-view-week" href="' in week and 'aria-current="page">Week' in week

    day = (await member_client.get("/calendar?view=day&date=2026-12-31")).text
    assert "Thursday 31 December 2026" in day
    assert "Nothing scheduled this day." in day
    assert link(day, "calendar-next") == "/calendar?view=day&date=2027-01-01"

    agenda = (await member_client.get("/calendar?view=agenda&date=2026-12-01")).text
    assert link(agenda, "calendar-later") == "/calendar?view=agenda&date=2026-12-31"
    assert link(agenda, "calendar-next") == "/calendar?view=agenda&date=2026-12-31"
    assert '<p class="empty">Nothing scheduled</p>' in agenda

    # The picker keeps the view; New event takes the day; Subscribe leads to the feed.
    assert '<input type="hidden" name="view" value="agenda">' in agenda
    assert '<input id="calendar-date" type="date" name="date" value="2026-12-01"' in agenda
    assert 'href="http://testserver/calendar/events/new?date=2026-12-01">New event' in agenda
    assert 'href="http://testserver/calendar/feed">Subscribe' in agenda


def test_titles_and_steps() -> None:
    assert grid.title("month", dt.date(2026, 12, 9)) == "December 2026"
    assert grid.title("week", dt.date(2026, 12, 1)) == "30 Nov – 6 Dec 2026"
    assert grid.title("week", dt.date(2026, 1, 1)) == "29 Dec 2025 – 4 Jan 2026"
    assert grid.title("agenda", dt.date(2026, 12, 1)) == "1 – 30 Dec 2026"
    assert grid.step("month", dt.date(2026, 1, 31), -1) == dt.date(2025, 12, 1)
    assert grid.step("month", dt.date(2999, 12, 1), 1) is None
    assert grid.step("day", grid.EARLIEST, -1) is None
    assert grid.span_of("month", dt.date(2026, 6, 15)).first == dt.date(2026, 6, 1)


@pytest.mark.parametrize(
    "query",
    [
        "date=2026-02-30",
        "date=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96-12-01",  # full-width digits
        "date=0000-01-01",
        "date=99999-01-01",
        "date=2026-12-1",
        "date=20261201",
        "date=1-1-1",
        "view=year&date=2026-12-01",
        "view=week&date=" + "9" * 5000,
    ],
)
async def test_a_bad_date_or_view_shows_today(member_client: PortalClient, query: str) -> None:
    response = await member_client.get(f"/calendar?{query}")
    assert response.status_code == 200, query
    if "view=year" in query:
        assert "There is no such view; showing the month." in response.text
        assert '<h1 id="calendar-title">December 2026</h1>' in response.text
    else:
        assert "not a date the calendar can show; showing today." in response.text
        assert '<input id="calendar-date" type="date" name="date" value="2026-11-30"' in (
            response.text
        )


async def test_an_htmx_request_gets_only_the_grid(member_client: PortalClient) -> None:
    page = await member_client.get("/calendar?view=week&date=2026-12-01")
    assert '<div id="calendar" class="calendar" hx-target="#calendar" hx-push-url="true">' in (
        page.text
    )
    assert 'hx-get="http://testserver/calendar?view=week&amp;date=2026-11-23"' in page.text
    assert '<form class="calendar-picker" method="get"' in page.text
    fragment = await member_client.get("/calendar?view=week&date=2026-12-01", headers=HTMX)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'class="topbar"' not in fragment.text
    assert '<div class="calendar-toolbar">' in fragment.text
    assert fragment.text.lstrip().startswith("<title>30 Nov – 6 Dec 2026 · Calendar · Acme")
    assert "HX-Request" in fragment.headers["vary"]


# --- Whose events ---------------------------------------------------------------------------


async def test_only_the_viewers_own_and_invited_events(
    member_client: PortalClient, db: Database, acme: Company, member: User, admin: User
) -> None:
    await add_event(db, admin, "Admin alone", utc(2026, 12, 2, 9), utc(2026, 12, 2, 10))
    await add_event(
        db, admin, "Team sync", utc(2026, 12, 2, 11), utc(2026, 12, 2, 12), invite=(member,)
    )
    await add_event(db, member, "Own focus", utc(2026, 12, 2, 13), utc(2026, 12, 2, 14))
    # Another company's event, even one naming this member's id as a participant.
    globex = await make_company(db, "Globex")
    stranger = await make_user(db, globex, "eve@globex.example")
    await add_event(
        db, stranger, "Globex board", utc(2026, 12, 2, 9), utc(2026, 12, 2, 10), invite=(stranger,)
    )
    secret = await add_event(
        db, stranger, "Globex secret", utc(2026, 12, 2, 9), utc(2026, 12, 2, 10)
    )
    async with db.session(company_id=globex.id, write=True) as session:
        session.add(
            EventParticipant(
                company_id=globex.id,
                event_id=secret.id or 0,
                user_id=member.id,
                email=member.email,
                join_token=secrets.token_hex(16),
            )
        )
        await session.commit()
    for view in grid.VIEWS:
        page = (await member_client.get(f"/calendar?view={view}&date=2026-12-02")).text
        assert "Team sync" in page and "Own focus" in page, view
        assert "Admin alone" not in page, view
        assert "Globex" not in page, view


async def test_a_live_room_carries_its_button(
    member_client: PortalClient,
    db: Database,
    settings: Settings,
    member: User,
    admin: User,
    new_client: Any,
) -> None:
    # Starts in ten minutes: live (from 15 minutes before) for both.
    event = await add_event(
        db,
        admin,
        "Room call",
        NOW + dt.timedelta(minutes=10),
        NOW + dt.timedelta(minutes=40),
        invite=(member,),
        uses_room=True,
        room_url="https://meet.example/ada",
    )
    await add_event(
        db,
        admin,
        "Later room call",
        NOW + dt.timedelta(hours=2),
        NOW + dt.timedelta(hours=3),
        invite=(member,),
        uses_room=True,
    )
    async with db.session(company_id=member.company_id) as session:
        participant = (
            await session.execute(
                select(EventParticipant).where(col(EventParticipant.event_id) == event.id)
            )
        ).scalar_one()
    key = int(event.starts_at.timestamp())
    for view in grid.VIEWS:
        page = (await member_client.get(f"/calendar?view={view}")).text
        assert f'href="{settings.base_url}/calendar/join/{participant.join_token}"' in page, view
        assert page.count("Join room") == 1, view

    organizer = new_client()
    await organizer.sign_in(admin.email)
    page = (await organizer.get("/calendar?view=day")).text
    assert f'href="/calendar/events/{event.id}/start?occurrence={key}"' in page
    assert page.count("Start meeting") == 1


# --- Navigation in the top bar --------------------------------------------------------------


async def test_primary_navigation_marks_the_current_page(member_client: PortalClient) -> None:
    calendar = (await member_client.get("/calendar")).text
    assert '<a href="http://testserver/calendar" aria-current="page">Calendar</a>' in calendar
    assert '<a href="http://testserver/people">People</a>' in calendar
    people = (await member_client.get("/people")).text
    assert '<a href="http://testserver/people" aria-current="page">People</a>' in people
    assert '<a href="http://testserver/calendar">Calendar</a>' in people
    assert '<a role="menuitem" href="http://testserver/calendar/events/new">Event</a>' in people


async def test_the_calendar_asks_for_sign_in(client: PortalClient) -> None:
    response = await client.get("/calendar?view=week")
    assert response.status_code == 303
    assert response.headers["location"].startswith("http://testserver/signin?next=")
