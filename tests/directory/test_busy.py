"""Busy on hover cards and profiles: "In a meeting until 15:00" while an event is on."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.calendar import busy, schedule
from portal.calendar.models import ACCEPTED, DECLINED, TENTATIVE, CalendarEvent
from portal.db import Database
from tests.calendar.test_details import add_exception, make_event
from tests.conftest import PortalClient
from tests.directory.conftest import make_colleague

HTMX = {"HX-Request": "true"}
# Tuesday 14 July 2026, 13:42 in London (the viewer's zone), 14:42 in Berlin (Hannah's).
NOW = dt.datetime(2026, 7, 14, 12, 42, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    monkeypatch.setattr("portal.directory.views.utcnow", lambda: NOW)
    return NOW


@pytest.fixture
async def hannah(db: Database, acme: Company) -> User:
    return await make_colleague(
        db, acme, "hannah@acme.example", "Hannah Schmidt", time_zone="Europe/Berlin"
    )


async def card(client: PortalClient, person: User) -> str:
    response = await client.get(f"/people/{person.id}/card", headers=HTMX)
    assert response.status_code == 200
    return response.text


async def test_card_and_profile_say_until_when_on_the_viewers_clock(
    admin_client: PortalClient, db: Database, hannah: User, fixed_clock: dt.datetime
) -> None:
    await make_event(db, hannah, start=NOW - 42 * dt.timedelta(minutes=1), minutes=60)
    text = await card(admin_client, hannah)
    assert "Working hours" in text and "In a meeting until 14:00" in text
    profile = await admin_client.get(f"/people/{hannah.id}")
    assert "In a meeting until 14:00" in profile.text


async def test_back_to_back_meetings_are_one_stretch(
    admin_client: PortalClient,
    db: Database,
    admin: User,
    member: User,
    hannah: User,
    fixed_clock: dt.datetime,
) -> None:
    await make_event(db, member, start=NOW - HOUR, minutes=78, invitees=[(hannah, TENTATIVE)])
    await make_event(db, admin, start=NOW + dt.timedelta(minutes=18), minutes=30, invitees=[hannah])
    await make_event(db, hannah, start=NOW + 2 * HOUR, minutes=30)  # a gap: not joined
    assert "In a meeting until 14:30" in await card(admin_client, hannah)


async def test_declined_all_day_cancelled_and_others_events_are_no_meeting(
    admin_client: PortalClient,
    db: Database,
    admin: User,
    member: User,
    hannah: User,
    fixed_clock: dt.datetime,
) -> None:
    start = NOW - HOUR
    await make_event(db, member, start=start, minutes=120, invitees=[(hannah, DECLINED)])
    await make_event(db, hannah, start=start, minutes=24 * 60, all_day=True)
    await make_event(db, member, start=start, minutes=120, invitees=[admin])
    cancelled, _ = await make_event(db, hannah, start=start, minutes=120)
    async with db.session(company_id=hannah.company_id, write=True) as session:
        await session.execute(
            update(CalendarEvent)
            .where(col(CalendarEvent.id) == cancelled.id)
            .values(cancelled_at=NOW)
        )
        await session.commit()
    text = await card(admin_client, hannah)
    assert "In a meeting" not in text and "Working hours" in text
    # The viewer herself is in member's meeting.
    assert "In a meeting until 14:42" in (await admin_client.get(f"/people/{admin.id}")).text


async def test_a_recurring_series_with_moved_and_cancelled_occurrences(
    admin_client: PortalClient, db: Database, member: User, hannah: User, fixed_clock: dt.datetime
) -> None:
    daily_start = NOW.replace(hour=12, minute=30) - dt.timedelta(days=10)
    daily, _ = await make_event(
        db, member, start=daily_start, minutes=30, rrule="FREQ=DAILY;COUNT=20",
        time_zone="Europe/Berlin", invitees=[(hannah, ACCEPTED)],
    )  # fmt: skip
    assert "In a meeting until 14:00" in await card(admin_client, hannah)
    today = daily_start + dt.timedelta(days=10)
    await add_exception(db, daily, today, cancelled=True)
    assert "In a meeting" not in await card(admin_client, hannah)
    weekly_start = NOW.replace(hour=7) - dt.timedelta(weeks=3)
    weekly, _ = await make_event(
        db, hannah, start=weekly_start, minutes=60, rrule="FREQ=WEEKLY;COUNT=10"
    )
    # This week's occurrence moved from the morning to half an hour ago.
    moved = NOW - dt.timedelta(minutes=30)
    await add_exception(db, weekly, weekly_start + dt.timedelta(weeks=3), start=moved)
    assert "In a meeting until 14:12" in await card(admin_client, hannah)


async def test_a_meeting_into_the_next_day_says_so(
    admin_client: PortalClient, db: Database, hannah: User, fixed_clock: dt.datetime
) -> None:
    await make_event(db, hannah, start=NOW - HOUR, minutes=20 * 60)
    assert "In a meeting until 08:42 tomorrow" in await card(admin_client, hannah)


async def test_the_lean_reads_agree_with_the_schedule(
    db: Database, admin: User, member: User, hannah: User
) -> None:
    day = dt.datetime(2026, 3, 27, 8, 0, tzinfo=dt.UTC)  # the weekend Europe changes clocks
    series, _ = await make_event(
        db, member, start=day, minutes=90, rrule="FREQ=DAILY;COUNT=6",
        time_zone="Europe/Berlin", invitees=[hannah],
    )  # fmt: skip
    await add_exception(
        db, series, day + dt.timedelta(days=1), start=day + dt.timedelta(days=1, hours=4)
    )
    await add_exception(db, series, day + dt.timedelta(days=3), cancelled=True)
    await make_event(db, hannah, start=day + dt.timedelta(hours=1, minutes=30), minutes=30)
    await make_event(
        db, admin, start=day + dt.timedelta(days=2), minutes=600, invitees=[(hannah, DECLINED)]
    )
    reader = db.reader(company_id=hannah.company_id)
    moment = day - dt.timedelta(hours=2)
    while moment < day + dt.timedelta(days=7):
        async with db.session(company_id=hannah.company_id) as session:
            expected = await _busy_until(session, hannah.id or 0, moment)
        assert await busy.busy_until(reader, hannah.id or 0, moment) == expected, moment
        moment += dt.timedelta(minutes=35)


async def _busy_until(
    session: AsyncSession, person_id: int, now: dt.datetime
) -> dt.datetime | None:
    """The same answer from the calendar's own schedule (the ORM, every occurrence expanded):
    the end of the meeting on at `now`, back-to-back ones joined."""
    window = now + busy.MEETING_LOOKAHEAD
    until: dt.datetime | None = None
    for stretch in (await schedule.busy_between(session, [person_id], now, window))[person_id]:
        if stretch.start <= (until or now):
            until = max(until or stretch.end, stretch.end)
    return until


def test_meeting_status_reads_the_viewers_clock() -> None:
    until = dt.datetime(2026, 7, 14, 13, 0, tzinfo=dt.UTC)
    assert busy.meeting_status(until, "Europe/London", NOW) == "In a meeting until 14:00"
    assert busy.meeting_status(until, "Asia/Tokyo", NOW) == "In a meeting until 22:00"
    later = until + dt.timedelta(days=2)
    assert busy.meeting_status(later, "UTC", NOW) == "In a meeting until 13:00 on Thursday"
    assert busy.meeting_status(None, "UTC", NOW) == ""
