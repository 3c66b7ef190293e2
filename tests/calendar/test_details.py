"""The event details page: who may see it, which occurrence a URL names, and what it says."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Sequence

import pytest

from portal.accounts.models import Company, User
from portal.calendar.models import ACCEPTED, DECLINED, CalendarEvent, EventParticipant
from portal.calendar.recurrence import last_end
from portal.db import Database
from tests.conftest import PortalClient, make_company, make_user

# Tuesday 14 July 2026, 10:00 UTC (11:00 in London, 12:00 in Berlin).
NOW = dt.datetime(2026, 7, 14, 10, 0, tzinfo=dt.UTC)
START = dt.datetime(2026, 7, 14, 13, 0, tzinfo=dt.UTC)
ROOM = "https://meet.example/ada-room"
HTMX = {"HX-Request": "true"}
Invitee = User | str | tuple[User | str, str]


async def make_event(
    db: Database,
    organizer: User,
    *,
    title: str = "Planning",
    start: dt.datetime = START,
    minutes: int = 60,
    rrule: str = "",
    time_zone: str = "Europe/London",
    all_day: bool = False,
    uses_room: bool = False,
    invitees: Sequence[Invitee] = (),
    description: str = "",
    location: str = "",
) -> tuple[CalendarEvent, list[EventParticipant]]:
    """An event saved straight to the tables; `invitees` are people or addresses, each
    optionally with a reply: (person, "ACCEPTED")."""
    event = CalendarEvent(
        company_id=organizer.company_id,
        organizer_id=organizer.id or 0,
        uid=f"{secrets.token_hex(8)}@portal.test",
        title=title,
        description=description,
        location=location,
        time_zone=time_zone,
        all_day=all_day,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
        rrule=rrule,
        last_ends_at=start + dt.timedelta(minutes=minutes),
        uses_room=uses_room,
        room_url=ROOM if uses_room else "",
    )
    if rrule:
        event.last_ends_at = last_end(event)
    async with db.session(company_id=organizer.company_id, write=True) as session:
        session.add(event)
        await session.flush()
        participants = []
        for invitee in invitees:
            who, answer = invitee if isinstance(invitee, tuple) else (invitee, "NEEDS-ACTION")
            participants.append(
                EventParticipant(
                    company_id=organizer.company_id,
                    event_id=event.id or 0,
                    user_id=who.id if isinstance(who, User) else None,
                    email=who.email if isinstance(who, User) else who,
                    name=who.display_name if isinstance(who, User) else "",
                    partstat=answer,
                    join_token=secrets.token_urlsafe(24),
                )
            )
        session.add_all(participants)
        await session.commit()
    return event, participants


async def add_exception(
    db: Database,
    series: CalendarEvent,
    original_start: dt.datetime,
    *,
    start: dt.datetime | None = None,
    cancelled: bool = False,
    title: str | None = None,
) -> CalendarEvent:
    """A moved (or cancelled) occurrence of `series`."""
    start = start or original_start
    exception = CalendarEvent(
        company_id=series.company_id,
        organizer_id=series.organizer_id,
        uid=series.uid,
        title=title or series.title,
        time_zone=series.time_zone,
        starts_at=start,
        ends_at=start + (series.ends_at - series.starts_at),
        last_ends_at=start + (series.ends_at - series.starts_at),
        uses_room=series.uses_room,
        room_url=series.room_url,
        series_id=series.id,
        recurrence_id=original_start,
        cancelled_at=NOW if cancelled else None,
    )
    async with db.session(company_id=series.company_id, write=True) as session:
        session.add(exception)
        await session.commit()
    return exception


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> dt.datetime:
    monkeypatch.setattr("portal.calendar.views.details.utcnow", lambda: NOW)
    return NOW


@pytest.fixture
async def carol(db: Database, acme: Company) -> User:
    return await make_user(db, acme, "carol@acme.example", name="Carol Other")


async def test_the_organizer_sees_times_people_replies_and_the_actions(
    admin_client: PortalClient, db: Database, admin: User, member: User, fixed_clock: object
) -> None:
    event, _ = await make_event(
        db,
        admin,
        time_zone="Europe/Berlin",
        location="Room 4",
        invitees=[(member, ACCEPTED), ("guest@example.org", DECLINED)],
    )
    page = await admin_client.get(f"/calendar/events/{event.id}")
    assert page.status_code == 200
    text = page.text
    assert "<title>Planning · Calendar · Acme</title>" in text
    # Ada reads London time; the event's own zone is Berlin.
    assert "Tuesday 14 July 2026, 14:00 – 15:00" in text and "(Europe/London)" in text
    assert "Tuesday 14 July 2026, 15:00 – 16:00" in text and "(Europe/Berlin)" in text
    assert "Room 4" in text
    assert f'data-hovercard="http://testserver/people/{admin.id}/card"' in text
    assert f'data-hovercard="http://testserver/people/{member.id}/card"' in text
    assert "guest@example.org" in text and "(guest)" in text
    assert "Accepted: 1 · Declined: 1 · Tentative: 0 · No reply: 0" in text
    assert f'href="http://testserver/calendar/events/{event.id}/edit"' in text
    assert f'action="http://testserver/calendar/events/{event.id}/cancel"' in text
    assert "Cancel event" in text and 'id="event-reply"' not in text


async def test_a_participant_sees_the_event_and_their_reply_but_no_actions(
    client: PortalClient, db: Database, admin: User, member: User, fixed_clock: object
) -> None:
    event, _ = await make_event(db, admin, invitees=[member])
    await client.sign_in(member.email)
    page = await client.get(f"/calendar/events/{event.id}")
    assert page.status_code == 200
    assert "Planning" in page.text and "No reply: 1" in page.text
    assert 'id="event-reply"' in page.text and "Will you attend?" in page.text
    assert "/edit" not in page.text and "/cancel" not in page.text
    # The viewer's zone is the event's: no second line.
    assert page.text.count("14:00 – 15:00") == 1


async def test_no_one_else_sees_the_event(
    new_client: Callable[[], PortalClient], db: Database, admin: User, member: User, carol: User
) -> None:
    event, _ = await make_event(db, admin, invitees=[member])
    globex = await make_company(db, "Globex")
    eve = await make_user(db, globex, "eve@globex.example", name="Eve Outsider")
    for person in (carol, eve):
        other = new_client()
        await other.sign_in(person.email)
        for path in (f"/calendar/events/{event.id}", "/calendar/events/999999"):
            response = await other.get(path)
            assert response.status_code == 404, (person.email, path)
            assert "Planning" not in response.text


async def test_an_occurrence_key_names_one_occurrence_and_nothing_else(
    admin_client: PortalClient, db: Database, admin: User, fixed_clock: object
) -> None:
    event, _ = await make_event(db, admin, rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=5")
    third = START + dt.timedelta(weeks=2)
    key = str(int(third.timestamp()))
    page = await admin_client.get(f"/calendar/events/{event.id}?occurrence={key}")
    assert page.status_code == 200
    assert "Tuesday 28 July 2026, 14:00 – 15:00" in page.text
    assert "Every week on Tuesday, 5 times" in page.text
    assert f'name="occurrence" value="{key}"' in page.text and "Cancel this occurrence" in page.text
    bogus = [
        str(int(third.timestamp()) + 60),  # no occurrence starts then
        str(int((START + dt.timedelta(weeks=5)).timestamp())),  # after the last
        "\u0661\u0667\u0668\u0664",  # Arabic-Indic digits
        f"+{key}",
        f" {key}",
        "9" * 40,
        "-1",
        "abc",
    ]
    for value in bogus:
        response = await admin_client.get(
            f"/calendar/events/{event.id}", params={"occurrence": value}
        )
        assert response.status_code == 404, value


async def test_without_a_key_a_series_shows_its_next_occurrence(
    admin_client: PortalClient, db: Database, admin: User, fixed_clock: object
) -> None:
    event, _ = await make_event(
        db, admin, start=START - dt.timedelta(days=7), rrule="FREQ=WEEKLY;BYDAY=TU;COUNT=3"
    )
    page = await admin_client.get(f"/calendar/events/{event.id}")
    assert "Tuesday 14 July 2026, 14:00 – 15:00" in page.text
    over, _ = await make_event(
        db, admin, start=START - dt.timedelta(days=14), rrule="FREQ=DAILY;COUNT=2"
    )
    page = await admin_client.get(f"/calendar/events/{over.id}")
    assert "Wednesday 1 July 2026, 14:00 – 15:00" in page.text
    assert "Every day, 2 times" in page.text


async def test_moved_and_cancelled_occurrences(
    admin_client: PortalClient, db: Database, admin: User, fixed_clock: object
) -> None:
    event, _ = await make_event(db, admin, rrule="FREQ=DAILY;COUNT=5")
    second = START + dt.timedelta(days=1)
    moved = await add_exception(
        db, event, second, start=second + dt.timedelta(hours=2), title="Planning (later)"
    )
    third = START + dt.timedelta(days=2)
    await add_exception(db, event, third, cancelled=True)
    page = await admin_client.get(
        f"/calendar/events/{event.id}?occurrence={int(second.timestamp())}"
    )
    assert "Planning (later)" in page.text and "Wednesday 15 July 2026, 16:00 – 17:00" in page.text
    # The exception's own id names the same occurrence.
    same = await admin_client.get(f"/calendar/events/{moved.id}")
    assert "Planning (later)" in same.text
    cancelled = await admin_client.get(
        f"/calendar/events/{event.id}?occurrence={int(third.timestamp())}"
    )
    assert cancelled.status_code == 200 and "This event was cancelled" in cancelled.text
    assert "Cancel this occurrence" not in cancelled.text


async def test_a_cancelled_event_says_so(
    admin_client: PortalClient, db: Database, admin: User, fixed_clock: object
) -> None:
    event, _ = await make_event(db, admin, rrule="FREQ=WEEKLY;COUNT=3")
    async with db.session(company_id=admin.company_id, write=True) as session:
        stored = await session.get(CalendarEvent, event.id)
        assert stored is not None
        stored.cancelled_at = NOW
        await session.commit()
    page = await admin_client.get(f"/calendar/events/{event.id}")
    assert page.status_code == 200 and "This event was cancelled" in page.text
    assert "Tuesday 14 July 2026, 14:00 – 15:00" in page.text
    assert "/edit" not in page.text


async def test_the_description_is_escaped_with_its_line_breaks(
    admin_client: PortalClient, db: Database, admin: User, fixed_clock: object
) -> None:
    event, _ = await make_event(
        db, admin, description="Agenda:\r\n1. <script>alert(1)</script>\n2. Budget & plans"
    )
    text = (await admin_client.get(f"/calendar/events/{event.id}")).text
    assert "<script>alert(1)" not in text
    assert (
        "Agenda:<br>\n1. &lt;script&gt;alert(1)&lt;/script&gt;<br>\n2. Budget &amp; plans" in text
    )


async def test_an_all_day_event_shows_its_dates(
    admin_client: PortalClient, db: Database, admin: User, fixed_clock: object
) -> None:
    midnight = dt.datetime(2026, 7, 13, 23, 0, tzinfo=dt.UTC)  # 14 July in London
    event, _ = await make_event(db, admin, start=midnight, minutes=3 * 24 * 60, all_day=True)
    text = (await admin_client.get(f"/calendar/events/{event.id}")).text
    assert "Tuesday 14 July 2026 – Thursday 16 July 2026, all day" in text
