"""Creating, changing and cancelling events: what is stored, what SEQUENCE does, who is told."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import icalendar
import pytest
from sqlalchemy import func, select

from portal.accounts.models import Company, User
from portal.calendar import services
from portal.calendar.forms import EventInput
from portal.calendar.lookup import NotOrganizer, visible_event
from portal.calendar.models import (
    NEEDS_ACTION,
    CalendarEvent,
    EventParticipant,
    EventReminder,
)
from portal.calendar.recurrence import series_starts
from portal.calendar.rows import input_for
from portal.calendar.services import SavedEvent
from portal.conferencing.services import resolve_room
from portal.db import UNSCOPED, Database
from portal.directory.people import UnknownPerson
from portal.forms import FormErrors
from portal.mail.models import OutboxMessage
from portal.notifications.models import Notification
from portal.settings import Settings
from tests.conftest import make_company, make_user

UTC = dt.UTC
GUEST = "gina@guest.example"


def form(**changes: Any) -> EventInput:
    """A weekday meeting in Berlin, 1 Dec 2026 09:00-10:00 (08:00 UTC)."""
    values: dict[str, Any] = {
        "title": "Planning",
        "start_date": "2026-12-01",
        "start_time": "09:00",
        "end_date": "2026-12-01",
        "end_time": "10:00",
        "time_zone": "Europe/Berlin",
    }
    return EventInput(**{**values, **changes})


async def create(db: Database, settings: Settings, organizer: User, data: EventInput) -> SavedEvent:
    async with db.session(company_id=organizer.company_id, write=True) as session:
        company = await session.get(Company, organizer.company_id)
        assert company is not None
        saved = await services.create_event(session, settings, company, organizer, data)
        await session.commit()
        return saved


async def update(
    db: Database, settings: Settings, organizer: User, event_id: int, data: EventInput, **kw: Any
) -> SavedEvent:
    async with db.session(company_id=organizer.company_id, write=True) as session:
        company = await session.get(Company, organizer.company_id)
        assert company is not None
        saved = await services.update_event(
            session, settings, company, organizer, event_id, data, **kw
        )
        await session.commit()
        return saved


async def cancel(
    db: Database, settings: Settings, actor: User, event_id: int, **kw: Any
) -> CalendarEvent:
    async with db.session(company_id=actor.company_id, write=True) as session:
        company = await session.get(Company, actor.company_id)
        assert company is not None
        cancelled = await services.cancel_event(session, settings, company, actor, event_id, **kw)
        await session.commit()
        return cancelled


async def rows(db: Database, model: type, **where: Any) -> list[Any]:
    async with db.session(company_id=UNSCOPED) as session:
        query = select(model).filter_by(**where).order_by(model.id)  # type: ignore[attr-defined]
        return list((await session.execute(query)).scalars())


async def count(db: Database, model: type) -> int:
    async with db.session(company_id=UNSCOPED) as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def mails(db: Database) -> list[OutboxMessage]:
    return await rows(db, OutboxMessage)


async def input_of(db: Database, event: CalendarEvent) -> EventInput:
    async with db.session(company_id=event.company_id) as session:
        return await input_for(session, event)


def sequence_of(mail: OutboxMessage) -> tuple[str, int]:
    calendar = icalendar.Calendar.from_ical(mail.calendar_ics)
    vevent = next(iter(calendar.walk("VEVENT")))
    return str(calendar["METHOD"]), int(vevent["SEQUENCE"])


# --- Creating ---------------------------------------------------------------------------------


async def test_a_single_event_with_colleagues_guests_reminders_and_the_room(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(
            title="  Planning   review ",
            location="Room 4",
            participant_ids=[str(member.id), str(admin.id)],
            emails=f"{GUEST}, GINA@guest.example; bob@acme.example",
            reminders=[("10", "minutes"), ("1", "days"), ("", "hours")],
            uses_room=True,
        ),
    )
    event = saved.event
    assert saved.notes == ["You organize this event, so you were not added as a participant."]
    assert event.title == "Planning review"
    assert event.starts_at == dt.datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert event.ends_at == event.last_ends_at == dt.datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert event.rrule == "" and event.sequence == 0
    assert event.uid.endswith("@testserver")
    async with db.session(company_id=acme.id) as session:
        assert event.room_url == (await resolve_room(session, settings, admin)).url
    participants = await rows(db, EventParticipant, event_id=event.id)
    assert [(p.email, p.user_id, p.partstat) for p in participants] == [
        ("bob@acme.example", member.id, NEEDS_ACTION),
        (GUEST, None, NEEDS_ACTION),
    ]
    assert len({p.join_token for p in participants}) == 2
    assert all(len(p.join_token) >= 40 for p in participants)
    reminders = await rows(db, EventReminder, event_id=event.id)
    assert sorted(r.minutes_before for r in reminders) == [10, 1440]
    sent = await mails(db)
    assert sorted(m.to_address for m in sent) == ["bob@acme.example", GUEST]
    assert {sequence_of(m) for m in sent} == {("REQUEST", 0)}
    assert [n.user_id for n in await rows(db, Notification)] == [member.id]


async def test_an_all_day_event_is_stored_at_midnights(
    db: Database, settings: Settings, admin: User
) -> None:
    saved = await create(
        db, settings, admin, form(all_day=True, start_time="", end_time="", end_date="2026-12-02")
    )
    assert saved.event.all_day
    assert saved.event.starts_at == dt.datetime(2026, 11, 30, 23, tzinfo=UTC)
    assert saved.event.ends_at == dt.datetime(2026, 12, 2, 23, tzinfo=UTC)
    assert (await input_of(db, saved.event)).end_date == "2026-12-02"


async def test_a_never_ending_series_is_capped_and_the_note_says_so(
    db: Database, settings: Settings, admin: User
) -> None:
    saved = await create(db, settings, admin, form(repeat="weekly", ends="never"))
    event = saved.event
    assert event.rrule == "FREQ=WEEKLY;BYDAY=TU;UNTIL=20281128T080000Z"
    assert saved.notes == [
        "Repeats until 28 Nov 2028: a series is limited to 2 years or 500 occurrences."
    ]
    assert event.last_ends_at == dt.datetime(2028, 11, 28, 9, tzinfo=UTC)
    data = await input_of(db, event)
    assert (data.repeat, data.weekdays, data.ends, data.until) == (
        "weekly",
        ["TU"],
        "on",
        "2028-11-28",
    )


async def test_a_time_in_the_dst_gap_is_moved_with_a_note(
    db: Database, settings: Settings, admin: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(start_date="2026-03-29", end_date="2026-03-29", start_time="02:30", end_time="04:00"),
    )
    assert saved.event.starts_at == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert saved.notes == [
        "02:30 does not exist on 29 Mar 2026 in Europe/Berlin (clocks go forward); "
        "the event starts at 03:30."
    ]


async def test_the_same_save_twice_is_one_event(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    data = form(participant_ids=[str(member.id)], request_key="save-key-0001")
    first = await create(db, settings, admin, data)
    again = await create(db, settings, admin, data)
    assert again.event.id == first.event.id and first.created and not again.created
    assert await count(db, CalendarEvent) == 1
    assert len(await mails(db)) == 1


async def test_the_same_save_forty_times_at_once_is_one_event(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    data = form(participant_ids=[str(member.id)], emails=GUEST, request_key="racing-key-0001")
    saves = await asyncio.gather(*(create(db, settings, admin, data) for _ in range(40)))
    assert len({saved.event.id for saved in saves}) == 1
    assert sum(saved.created for saved in saves) == 1
    assert await count(db, CalendarEvent) == 1
    assert await count(db, EventParticipant) == 2
    assert len(await mails(db)) == 2


async def _nothing_written(db: Database) -> None:
    assert await count(db, CalendarEvent) == 0
    assert await count(db, EventParticipant) == 0
    assert await count(db, OutboxMessage) == 0
    assert await count(db, Notification) == 0


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"title": "  "}, "title", "Enter a title."),
        ({"title": "x" * 201}, "title", "200 characters"),
        ({"description": "x" * 5001}, "description", "5000 characters"),
        ({"location": "x" * 256}, "location", "255 characters"),
        ({"start_date": "2026-02-30"}, "start_date", "There is no 30 February 2026."),
        ({"end_time": "08:00"}, "end_time", "The event must end after it starts."),
        ({"time_zone": "Europe/Atlantis"}, "time_zone", "not a time zone we know"),
        ({"emails": "ok@example.org, broken@"}, "emails", "broken@"),
        ({"reminders": [("5", "weeks")]}, "reminders", "minutes, hours or days"),
        ({"reminders": [("29", "days")]}, "reminders", "4 weeks"),
        ({"reminders": [(str(n), "minutes") for n in range(1, 7)]}, "reminders", "at most 5"),
        ({"repeat": "weekly", "ends": "after", "count": "\u0663"}, "count", "1 or more"),
        ({"request_key": "bad key!"}, "form", "expired"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    db: Database,
    settings: Settings,
    admin: User,
    member: User,
    changes: dict,
    field: str,
    words: str,
) -> None:
    data = form(participant_ids=[str(member.id)], **changes)
    with pytest.raises(FormErrors) as refused:
        await create(db, settings, admin, data)
    assert words in refused.value.errors[field]
    await _nothing_written(db)


async def test_more_than_two_hundred_participants_is_refused(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    emails = ", ".join(f"guest{n}@example.org" for n in range(200))
    with pytest.raises(FormErrors) as refused:
        await create(db, settings, admin, form(participant_ids=[str(member.id)], emails=emails))
    assert refused.value.errors["invitee"] == "You can invite at most 200 people; you picked 201."
    await _nothing_written(db)


async def test_a_person_of_another_company_is_not_found(
    db: Database, settings: Settings, admin: User
) -> None:
    other = await make_company(db, "Globex")
    stranger = await make_user(db, other, "sam@globex.example")
    for raw in (str(stranger.id), "\u0663", "99999999999"):
        with pytest.raises(UnknownPerson):
            await create(db, settings, admin, form(participant_ids=[raw]))
    await _nothing_written(db)


async def test_deactivated_people_are_refused(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    async with db.session(company_id=acme.id, write=True) as session:
        person = await session.get(User, member.id)
        assert person is not None
        person.active = False
        await session.commit()
    for data in (form(participant_ids=[str(member.id)]), form(emails=member.email)):
        with pytest.raises(FormErrors) as refused:
            await create(db, settings, admin, data)
        assert "can no longer be invited" in refused.value.errors["invitee"]
    await _nothing_written(db)


# --- Changing ---------------------------------------------------------------------------------


async def test_changing_the_time_raises_sequence_and_tells_everyone_their_part(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    carol = await make_user(db, acme, "carol@acme.example", name="Carol")
    saved = await create(db, settings, admin, form(participant_ids=[str(member.id)], emails=GUEST))
    data = dataclasses.replace(
        await input_of(db, saved.event),
        start_time="11:00",
        end_time="12:00",
        participant_ids=[str(member.id), str(carol.id)],
        emails="",
    )
    changed = await update(db, settings, admin, saved.event.id or 0, data)
    assert changed.event.sequence == 1
    assert changed.event.starts_at == dt.datetime(2026, 12, 1, 10, tzinfo=UTC)
    new = [m for m in await mails(db)][2:]
    assert {(m.to_address, sequence_of(m)) for m in new} == {
        (GUEST, ("CANCEL", 1)),
        ("carol@acme.example", ("REQUEST", 1)),
        ("bob@acme.example", ("REQUEST", 1)),
    }
    assert [p.email for p in await rows(db, EventParticipant)] == [
        "bob@acme.example",
        "carol@acme.example",
    ]


async def test_saving_without_changes_keeps_sequence_and_sends_nothing(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    saved = await create(db, settings, admin, form(participant_ids=[str(member.id)]))
    again = await update(db, settings, admin, saved.event.id or 0, await input_of(db, saved.event))
    assert again.event.sequence == 0
    assert len(await mails(db)) == 1


async def test_changing_all_events_drops_exceptions_the_new_rule_lacks(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(participant_ids=[str(member.id)], repeat="weekly", ends="after", count="5"),
    )
    series = saved.event
    third = dt.datetime(2026, 12, 15, 8, tzinfo=UTC)
    await cancel(db, settings, admin, series.id or 0, occurrence=third)
    assert len(await rows(db, CalendarEvent, series_id=series.id)) == 1
    data = dataclasses.replace(await input_of(db, series), start_time="10:00", end_time="11:00")
    changed = await update(db, settings, admin, series.id or 0, data)
    # Cancelling one occurrence raised that occurrence's SEQUENCE, not the series'.
    assert changed.event.sequence == 1
    assert await rows(db, CalendarEvent, series_id=series.id) == []


async def test_changing_one_occurrence_makes_an_exception(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(participant_ids=[str(member.id)], repeat="weekly", ends="after", count="5"),
    )
    series = saved.event
    second = dt.datetime(2026, 12, 8, 8, tzinfo=UTC)
    data = dataclasses.replace(
        await input_of(db, series),
        title="Planning (moved)",
        start_date="2026-12-09",
        end_date="2026-12-09",
    )
    moved = await update(db, settings, admin, series.id or 0, data, scope="this", occurrence=second)
    exception = moved.event
    assert (exception.series_id, exception.recurrence_id) == (series.id, second)
    assert exception.starts_at == dt.datetime(2026, 12, 9, 8, tzinfo=UTC)
    assert exception.rrule == "" and exception.uid == series.uid
    (stored_series,) = await rows(db, CalendarEvent, id=series.id)
    # The occurrence's SEQUENCE rises above the series'; the series' (and its reply links) stay.
    assert (stored_series.sequence, exception.sequence) == (0, 1)
    assert stored_series.title == "Planning"
    # Again: the same exception row is changed, not a second one made.
    again = await update(db, settings, admin, series.id or 0, data, scope="this", occurrence=second)
    assert again.event.id == exception.id and again.event.sequence == 2
    assert [m.to_address for m in await mails(db)] == ["bob@acme.example"] * 3


async def test_one_occurrence_cannot_change_who_is_invited(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(participant_ids=[str(member.id)], repeat="daily", count="3", ends="after"),
    )
    data = dataclasses.replace(await input_of(db, saved.event), participant_ids=[])
    with pytest.raises(FormErrors) as refused:
        await update(
            db,
            settings,
            admin,
            saved.event.id or 0,
            data,
            scope="this",
            occurrence=saved.event.starts_at + dt.timedelta(days=1),
        )
    assert "same for every occurrence" in refused.value.errors["invitee"]
    assert await rows(db, CalendarEvent, series_id=saved.event.id) == []


async def test_changing_this_and_following_splits_the_series(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(
            participant_ids=[str(member.id)],
            repeat="weekly",
            ends="after",
            count="6",
            reminders=[("15", "minutes")],
        ),
    )
    series = saved.event
    fourth = dt.datetime(2026, 12, 22, 8, tzinfo=UTC)
    await update(
        db,
        settings,
        admin,
        series.id or 0,
        dataclasses.replace(await input_of(db, series), location="Moved"),
        scope="this",
        occurrence=dt.datetime(2026, 12, 29, 8, tzinfo=UTC),
    )
    data = dataclasses.replace(
        await input_of(db, series),
        start_date="2026-12-22",
        end_date="2026-12-22",
        start_time="14:00",
        end_time="15:00",
        ends="after",
        count="3",
    )
    following = await update(
        db, settings, admin, series.id or 0, data, scope="following", occurrence=fourth
    )
    (old,) = await rows(db, CalendarEvent, id=series.id)
    assert old.rrule == "FREQ=WEEKLY;BYDAY=TU;UNTIL=20261222T075959Z"
    assert series_starts(old)[-1] == dt.datetime(2026, 12, 15, 8, tzinfo=UTC)
    assert old.last_ends_at == dt.datetime(2026, 12, 15, 9, tzinfo=UTC)
    assert old.sequence == 1
    # The changed occurrence after the split went with it.
    assert await rows(db, CalendarEvent, series_id=series.id) == []
    new = following.event
    assert new.id != old.id and new.uid != old.uid and new.series_id is None
    assert new.starts_at == dt.datetime(2026, 12, 22, 13, tzinfo=UTC)
    assert new.rrule == "FREQ=WEEKLY;BYDAY=TU;COUNT=3"
    old_people = await rows(db, EventParticipant, event_id=old.id)
    new_people = await rows(db, EventParticipant, event_id=new.id)
    assert [p.email for p in new_people] == [p.email for p in old_people]
    assert {p.join_token for p in new_people}.isdisjoint({p.join_token for p in old_people})
    assert all(p.partstat == NEEDS_ACTION for p in new_people)
    assert [r.minutes_before for r in await rows(db, EventReminder, event_id=new.id)] == [15]


async def test_all_events_from_an_occurrence_keeps_the_series_start_day(
    db: Database, settings: Settings, admin: User
) -> None:
    saved = await create(db, settings, admin, form(repeat="weekly", ends="after", count="4"))
    third = dt.datetime(2026, 12, 15, 8, tzinfo=UTC)
    data = form(
        start_date="2026-12-15",
        end_date="2026-12-15",
        start_time="10:00",
        end_time="11:00",
        repeat="weekly",
        ends="after",
        count="4",
    )
    changed = await update(
        db, settings, admin, saved.event.id or 0, data, scope="all", occurrence=third
    )
    assert changed.event.starts_at == dt.datetime(2026, 12, 1, 9, tzinfo=UTC)


# --- Cancelling -------------------------------------------------------------------------------


async def test_cancelling_an_event_tells_everyone(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    saved = await create(db, settings, admin, form(participant_ids=[str(member.id)], emails=GUEST))
    cancelled = await cancel(db, settings, admin, saved.event.id or 0)
    assert cancelled.cancelled_at is not None and cancelled.sequence == 1
    assert {(m.to_address, sequence_of(m)) for m in (await mails(db))[2:]} == {
        ("bob@acme.example", ("CANCEL", 1)),
        (GUEST, ("CANCEL", 1)),
    }
    # Again: nothing more to do or to say.
    await cancel(db, settings, admin, saved.event.id or 0)
    assert len(await mails(db)) == 4


async def test_cancelling_one_occurrence(
    db: Database, settings: Settings, admin: User, member: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(participant_ids=[str(member.id)], repeat="daily", ends="after", count="3"),
    )
    second = dt.datetime(2026, 12, 2, 8, tzinfo=UTC)
    exception = await cancel(db, settings, admin, saved.event.id or 0, occurrence=second)
    assert exception.series_id == saved.event.id and exception.recurrence_id == second
    assert exception.cancelled_at is not None
    (series,) = await rows(db, CalendarEvent, id=saved.event.id)
    assert series.cancelled_at is None and (series.sequence, exception.sequence) == (0, 1)
    mail = (await mails(db))[-1]
    assert sequence_of(mail) == ("CANCEL", 1)
    assert "RECURRENCE-ID" in mail.calendar_ics
    with pytest.raises(LookupError):
        await cancel(
            db, settings, admin, saved.event.id or 0, occurrence=second + dt.timedelta(hours=1)
        )


# --- Who may ----------------------------------------------------------------------------------


async def test_only_the_organizer_may_change_or_cancel(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    saved = await create(db, settings, admin, form(participant_ids=[str(member.id)]))
    event_id = saved.event.id or 0
    with pytest.raises(NotOrganizer):
        await update(db, settings, member, event_id, form(title="Mine now"))
    with pytest.raises(NotOrganizer):
        await cancel(db, settings, member, event_id)
    carol = await make_user(db, acme, "carol@acme.example")
    with pytest.raises(LookupError):
        await cancel(db, settings, carol, event_id)
    other = await make_company(db, "Globex")
    stranger = await make_user(db, other, "sam@globex.example")
    with pytest.raises(LookupError):
        await update(db, settings, stranger, event_id, form())
    (event,) = await rows(db, CalendarEvent)
    assert event.title == "Planning" and event.cancelled_at is None and event.sequence == 0


async def test_visible_event_is_for_the_organizer_and_the_invited(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    saved = await create(
        db,
        settings,
        admin,
        form(participant_ids=[str(member.id)], repeat="daily", ends="after", count="3"),
    )
    exception = await cancel(
        db, settings, admin, saved.event.id or 0, occurrence=dt.datetime(2026, 12, 2, 8, tzinfo=UTC)
    )
    carol = await make_user(db, acme, "carol@acme.example")
    async with db.session(company_id=acme.id) as session:
        for event_id in (saved.event.id or 0, exception.id or 0):
            assert await visible_event(session, admin.id or 0, event_id) is not None
            assert await visible_event(session, member.id or 0, event_id) is not None
            assert await visible_event(session, carol.id or 0, event_id) is None


async def test_someone_deactivated_since_stays_invited_when_the_event_changes(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    saved = await create(db, settings, admin, form(participant_ids=[str(member.id)]))
    async with db.session(company_id=acme.id, write=True) as session:
        person = await session.get(User, member.id)
        assert person is not None
        person.active = False
        await session.commit()
    data = dataclasses.replace(await input_of(db, saved.event), title="Planning, later")
    changed = await update(db, settings, admin, saved.event.id or 0, data)
    assert changed.event.title == "Planning, later"
    assert [p.user_id for p in await rows(db, EventParticipant)] == [member.id]
