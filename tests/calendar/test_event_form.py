"""The event form through its routes: create, refuse in place, edit, cancel, availability."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pytest
from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.calendar import services
from portal.calendar.forms import EventInput
from portal.calendar.models import CalendarEvent
from portal.db import UNSCOPED, Database
from portal.mail.models import OutboxMessage
from portal.settings import Settings
from tests.conftest import PortalClient, make_company, make_user

HTMX = {"HX-Request": "true"}
# Tuesday 1 December 2026, 09:00 in Berlin.
FIELDS = {
    "title": "Planning",
    "start_date": "2026-12-01",
    "start_time": "09:00",
    "end_date": "2026-12-01",
    "end_time": "10:00",
    "time_zone": "Europe/Berlin",
    "request_key": "form-key-0001",
}


async def events(db: Database) -> list[CalendarEvent]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(select(CalendarEvent).order_by(CalendarEvent.id))
        return list(rows.scalars())


async def outbox(db: Database) -> list[str]:
    async with db.session(company_id=UNSCOPED) as session:
        return sorted((await session.execute(select(OutboxMessage.to_address))).scalars())


async def create(
    db: Database, settings: Settings, organizer: User, **changes: Any
) -> CalendarEvent:
    data = EventInput(
        title="Planning",
        start_date="2026-12-01",
        start_time="09:00",
        end_date="2026-12-01",
        end_time="10:00",
        time_zone="Europe/Berlin",
    )
    for name, value in changes.items():
        setattr(data, name, value)
    async with db.session(company_id=organizer.company_id, write=True) as session:
        company = await session.get(Company, organizer.company_id)
        assert company is not None
        saved = await services.create_event(session, settings, company, organizer, data)
        await session.commit()
        return saved.event


def key(moment: dt.datetime) -> str:
    return str(int(moment.timestamp()))


async def test_the_new_form_takes_the_day_a_participant_and_the_organizers_zone(
    admin_client: PortalClient, admin: User, member: User
) -> None:
    response = await admin_client.get(f"/calendar/events/new?date=2026-12-03&with={member.id}")
    assert response.status_code == 200
    page = response.text
    assert 'name="start_date" value="2026-12-03"' in page
    assert f'name="invitee" value="{member.id}"' in page
    assert f"<option selected>{admin.time_zone}</option>" in page
    assert 'name="csrf_token"' in page and 'name="request_key"' in page
    # The Options section comes last, before the buttons.
    options = page.index("<legend>Options</legend>")
    assert page.index("Use meeting organizer's room") > options
    assert options > page.index("<legend>Reminders")
    assert options > page.index("<legend>Repeat</legend>")


@pytest.mark.parametrize("value", ["\u0663", "99999999999", "-1", "x", ""])
async def test_the_new_form_ignores_a_malformed_participant_or_day(
    admin_client: PortalClient, value: str
) -> None:
    response = await admin_client.get("/calendar/events/new", params={"with": value, "date": value})
    assert response.status_code == 200
    assert 'name="invitee" value=' not in response.text


async def test_creating_redirects_to_the_event_and_invites(
    admin_client: PortalClient, db: Database, member: User
) -> None:
    response = await admin_client.post(
        "/calendar/events",
        {**FIELDS, "invitee": str(member.id), "uses_room": "1", "repeat": "weekly"},
    )
    assert response.status_code == 303
    (event,) = await events(db)
    assert response.headers["location"] == f"http://testserver/calendar/events/{event.id}"
    assert event.uses_room and event.room_url and event.rrule.startswith("FREQ=WEEKLY")
    assert await outbox(db) == ["bob@acme.example"]
    # The same Save again (a double-click) is the same event.
    again = await admin_client.post(
        "/calendar/events", {**FIELDS, "invitee": str(member.id), "repeat": "weekly"}
    )
    assert again.headers["location"] == response.headers["location"]
    assert len(await events(db)) == 1


async def test_refused_input_comes_back_with_messages_and_everything_typed(
    admin_client: PortalClient, db: Database, member: User
) -> None:
    response = await admin_client.post(
        "/calendar/events",
        {
            **FIELDS,
            "title": "",
            "start_date": "2026-02-30",
            "location": "Room 4",
            "emails": "nope@",
            "invitee": str(member.id),
            "reminder_amount": "10",
            "reminder_unit": "hours",
        },
    )
    assert response.status_code == 422
    page = html.unescape(response.text)
    assert "Enter a title." in page
    assert "There is no 30 February 2026." in page
    assert "is not a valid email address" in page
    assert 'id="e-start_date"' in page and 'aria-invalid="true"' in page
    assert f'name="invitee" value="{member.id}"' in page
    assert 'name="location" value="Room 4"' in page
    assert 'name="reminder_amount" value="10"' in page
    assert await events(db) == [] and await outbox(db) == []


async def test_end_before_start_is_refused_next_to_the_end(
    admin_client: PortalClient, db: Database
) -> None:
    response = await admin_client.post("/calendar/events", {**FIELDS, "end_time": "08:00"})
    assert response.status_code == 422
    assert (
        '<p class="error" id="e-end_time">The event must end after it starts.</p>' in response.text
    )
    assert await events(db) == []


async def test_a_participant_of_another_company_is_not_found(
    admin_client: PortalClient, db: Database
) -> None:
    other = await make_company(db, "Globex")
    stranger = await make_user(db, other, "sam@globex.example")
    response = await admin_client.post("/calendar/events", {**FIELDS, "invitee": str(stranger.id)})
    assert response.status_code == 404
    assert await events(db) == []


async def test_check_availability_without_javascript_saves_nothing(
    admin_client: PortalClient, db: Database, settings: Settings, admin: User, member: User
) -> None:
    await create(db, settings, member, title="Bob's private thing")
    response = await admin_client.post(
        "/calendar/events",
        {**FIELDS, "title": "Mine", "invitee": str(member.id), "check": "availability"},
    )
    assert response.status_code == 200
    assert "09:00–10:00" in response.text and "Busy" in response.text
    assert "Bob&#39;s private thing" not in response.text
    assert 'name="title" value="Mine"' in response.text
    assert len(await events(db)) == 1


async def test_availability_hides_titles_unless_the_viewer_is_invited(
    admin_client: PortalClient, db: Database, settings: Settings, admin: User, member: User
) -> None:
    await create(db, settings, member, title="Secret review")
    await create(
        db,
        settings,
        member,
        title="Shared sync",
        start_time="14:00",
        end_time="15:00",
        participant_ids=[str(admin.id)],
    )
    response = await admin_client.get(
        "/calendar/availability",
        params={"date": "2026-12-01", "time_zone": "America/New_York", "participant": member.id},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    text = html.unescape(response.text)
    # 09:00 and 14:00 in Berlin are 03:00 and 08:00 in New York.
    assert "03:00–04:00" in text and "Secret review" not in text and "Busy" in text
    assert "08:00–09:00" in text and "Shared sync" in text
    page = await admin_client.get(
        "/calendar/availability", params={"date": "2026-12-01", "participant": member.id}
    )
    assert page.status_code == 200 and "<html" in page.text


async def test_availability_of_another_companys_person_is_not_found(
    admin_client: PortalClient, db: Database
) -> None:
    other = await make_company(db, "Globex")
    stranger = await make_user(db, other, "sam@globex.example")
    response = await admin_client.get(
        "/calendar/availability", params={"date": "2026-12-01", "participant": stranger.id}
    )
    assert response.status_code == 404


async def test_only_the_organizer_may_open_the_edit_form(
    client: PortalClient, db: Database, settings: Settings, admin: User, member: User
) -> None:
    event = await create(db, settings, admin, participant_ids=[str(member.id)])
    await client.sign_in(member.email)
    assert (await client.get(f"/calendar/events/{event.id}/edit")).status_code == 403
    response = await client.post(f"/calendar/events/{event.id}/edit", {**FIELDS, "title": "Mine"})
    assert response.status_code == 403
    response = await client.post(f"/calendar/events/{event.id}/cancel", {})
    assert response.status_code == 403
    (stored,) = await events(db)
    assert stored.title == "Planning" and stored.cancelled_at is None


async def test_another_companys_event_is_not_found(
    admin_client: PortalClient, db: Database, settings: Settings
) -> None:
    other = await make_company(db, "Globex")
    stranger = await make_user(db, other, "sam@globex.example")
    event = await create(db, settings, stranger)
    assert (await admin_client.get(f"/calendar/events/{event.id}/edit")).status_code == 404
    response = await admin_client.post(f"/calendar/events/{event.id}/edit", FIELDS)
    assert response.status_code == 404
    assert (await admin_client.post(f"/calendar/events/{event.id}/cancel", {})).status_code == 404
    (stored,) = await events(db)
    assert stored.cancelled_at is None


async def test_editing_changes_the_event(
    admin_client: PortalClient, db: Database, settings: Settings, admin: User, member: User
) -> None:
    event = await create(db, settings, admin, participant_ids=[str(member.id)])
    form = await admin_client.get(f"/calendar/events/{event.id}/edit")
    assert form.status_code == 200
    assert 'name="title" value="Planning"' in form.text
    assert 'name="scope"' not in form.text
    response = await admin_client.post(
        f"/calendar/events/{event.id}/edit",
        {**FIELDS, "start_time": "11:00", "end_time": "12:00", "invitee": str(member.id)},
    )
    assert response.status_code == 303
    (stored,) = await events(db)
    assert stored.starts_at == dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC) and stored.sequence == 1


async def test_editing_an_occurrence_asks_which_events(
    admin_client: PortalClient, db: Database, settings: Settings, admin: User
) -> None:
    event = await create(db, settings, admin, repeat="daily", ends="after", count="3")
    second = event.starts_at + dt.timedelta(days=1)
    form = await admin_client.get(f"/calendar/events/{event.id}/edit?occurrence={key(second)}")
    assert form.status_code == 200
    for label in ("This event", "This and following events", "All events"):
        assert label in form.text
    assert 'name="scope" value="this" checked' in form.text
    assert 'name="start_date" value="2026-12-02"' in form.text
    response = await admin_client.post(
        f"/calendar/events/{event.id}/edit",
        {
            **FIELDS,
            "start_date": "2026-12-02",
            "end_date": "2026-12-02",
            "title": "Moved",
            "scope": "this",
            "occurrence": key(second),
        },
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith(
        f"/calendar/events/{event.id}?occurrence={key(second)}"
    )
    series, exception = await events(db)
    assert exception.series_id == series.id and exception.title == "Moved"


@pytest.mark.parametrize("value", ["\u00b2", "\u0663\u0663", "99999999999999999999", "-5", "1"])
async def test_an_occurrence_key_that_names_no_occurrence_is_not_found(
    admin_client: PortalClient, db: Database, settings: Settings, admin: User, value: str
) -> None:
    event = await create(db, settings, admin, repeat="daily", ends="after", count="3")
    response = await admin_client.get(
        f"/calendar/events/{event.id}/edit", params={"occurrence": value}
    )
    assert response.status_code == 404
    response = await admin_client.post(f"/calendar/events/{event.id}/cancel", {"occurrence": value})
    assert response.status_code == 404


async def test_cancelling_an_occurrence_and_then_the_event(
    admin_client: PortalClient, db: Database, settings: Settings, admin: User, member: User
) -> None:
    event = await create(
        db,
        settings,
        admin,
        participant_ids=[str(member.id)],
        repeat="daily",
        ends="after",
        count="3",
    )
    second = event.starts_at + dt.timedelta(days=1)
    response = await admin_client.post(
        f"/calendar/events/{event.id}/cancel", {"occurrence": key(second)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "http://testserver/calendar"
    series, exception = await events(db)
    assert exception.cancelled_at is not None and series.cancelled_at is None
    # The cancelled occurrence can no longer be edited.
    edit = await admin_client.get(f"/calendar/events/{event.id}/edit?occurrence={key(second)}")
    assert edit.status_code == 404
    assert (await admin_client.post(f"/calendar/events/{event.id}/cancel", {})).status_code == 303
    series, _ = await events(db)
    assert series.cancelled_at is not None
    assert await outbox(db) == ["bob@acme.example"] * 3


async def test_the_notes_are_flashed_after_saving(admin_client: PortalClient, db: Database) -> None:
    response = await admin_client.post(
        "/calendar/events",
        {
            **FIELDS,
            "start_date": "2026-03-29",
            "end_date": "2026-03-29",
            "start_time": "02:30",
            "end_time": "04:00",
            "repeat": "weekly",
            "ends": "never",
        },
    )
    assert response.status_code == 303
    page = html.unescape((await admin_client.get("/calendar/events/new")).text)
    assert "Event created." in page
    assert "02:30 does not exist on 29 Mar 2026 in Europe/Berlin (clocks go forward)" in page
    assert "a series is limited to 2 years or 500 occurrences." in page
