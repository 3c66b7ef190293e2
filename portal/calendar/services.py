"""Creating, changing and cancelling events; who is told, and when SEQUENCE goes up.

Every function checks all of its input before it writes anything, adds and flushes (the
request commits), and hands the emails to portal.calendar.invitations, which only queues
them in the outbox: a refused change writes nothing and sends nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Literal

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.calendar.forms import Checked, EventInput, check
from portal.calendar.invitations import send_cancellations, send_invitations
from portal.calendar.lookup import exception_row, organized_series, original_occurrence
from portal.calendar.models import REQUEST_KEY_MAX, CalendarEvent, EventParticipant
from portal.calendar.recurrence import Occurrence, last_end, wall_clock
from portal.calendar.rows import (
    add_participants,
    drop_lost_exceptions,
    event_for_key,
    event_room_url,
    fill,
    new_event,
    new_uid,
    participants_of,
    reminders_of,
    set_reminders,
)
from portal.calendar.times import parse_date, until_value
from portal.db import add_or_find, utcnow
from portal.forms import FormErrors
from portal.meetings.services import is_request_key
from portal.settings import Settings

Scope = Literal["this", "following", "all"]
SCOPES: tuple[Scope, ...] = ("this", "following", "all")


@dataclass
class SavedEvent:
    event: CalendarEvent
    # What the organizer should know: a daylight-saving choice, the repeat cap...
    notes: list[str] = field(default_factory=list)
    # False when the same Save arrived again and the first event was returned.
    created: bool = True


async def create_event(
    session: AsyncSession, settings: Settings, company: Company, organizer: User, data: EventInput
) -> SavedEvent:
    """A new event (or series) and its invitations. FormErrors or UnknownPerson write nothing."""
    key = data.request_key.strip()
    if key and not is_request_key(key, REQUEST_KEY_MAX):
        raise FormErrors({"form": "This form has expired. Reload the page and save again."})
    existing = await event_for_key(session, organizer, key) if key else None
    if existing is not None:
        return SavedEvent(existing, created=False)
    checked = await check(session, organizer, data)
    event = new_event(organizer, new_uid(settings))
    event.request_key = key or None
    fill(event, checked, await event_room_url(session, settings, organizer, checked))
    # The same Save sent again at once may insert the same key first.
    existing = await add_or_find(session, event, lambda: event_for_key(session, organizer, key))
    if existing is not None:
        return SavedEvent(existing, created=False)
    await _invite_to_new(session, settings, company, event, checked)
    return SavedEvent(event, checked.notes)


async def _invite_to_new(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    event: CalendarEvent,
    checked: Checked,
) -> None:
    """A new (flushed) event's participants and reminders, stored, and its invitations sent."""
    participants = add_participants(session, event, checked.guests)
    await set_reminders(session, event, checked.reminders)
    await session.flush()
    await send_invitations(session, settings, company, event, participants, updated=False)


# --- Changing ---------------------------------------------------------------------------------


async def update_event(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    organizer: User,
    event_id: int,
    data: EventInput,
    *,
    scope: Scope = "all",
    occurrence: dt.datetime | None = None,
) -> SavedEvent:
    """Change an event: all of a series, one occurrence ("this"), or the occurrence and the
    ones after it ("following", which becomes a series of its own)."""
    series, named = await organized_series(session, organizer, event_id)
    occurrence = occurrence or named
    if series.cancelled_at is not None:
        raise FormErrors({"form": "This event was cancelled, so it can no longer be changed."})
    if scope not in SCOPES:
        raise FormErrors({"scope": "Pick which events to change."})
    if not series.rrule or (scope == "all" and occurrence is None):
        return await _update_all(session, settings, company, organizer, series, data)
    if occurrence is None:
        raise FormErrors({"scope": "Pick an occurrence to change, or change all events."})
    original = original_occurrence(series, occurrence)
    if scope == "all":
        data = _from_series_start(data, series, original)
        return await _update_all(session, settings, company, organizer, series, data)
    if scope == "this":
        return await _update_one(session, settings, company, organizer, series, original, data)
    if original.start == series.starts_at:
        return await _update_all(session, settings, company, organizer, series, data)
    return await _update_following(session, settings, company, organizer, series, original, data)


def _from_series_start(data: EventInput, series: CalendarEvent, original: Occurrence) -> EventInput:
    """The form of one occurrence applied to all events: its dates moved by as many days as the
    form moved that occurrence, so a series edited from its fifth week still starts in its first."""
    zone_name = series.time_zone
    offset = (
        wall_clock(series.starts_at, zone_name).date()
        - wall_clock(original.start, zone_name).date()
    )

    def move(raw: str) -> str:
        try:
            return (parse_date(raw, "date") + offset).isoformat()
        except FormErrors:
            return raw  # refused with its message when the form is checked

    return replace(data, start_date=move(data.start_date), end_date=move(data.end_date))


async def _check_for(
    session: AsyncSession,
    organizer: User,
    series: CalendarEvent,
    data: EventInput,
    *,
    repeats: bool = True,
) -> tuple[list[EventParticipant], Checked]:
    """The series' participants, and the form checked against them: whoever is invited stays
    invited even if since deactivated."""
    participants = await participants_of(session, series)
    invited = frozenset(p.email for p in participants)
    return participants, await check(session, organizer, data, repeats=repeats, invited=invited)


async def _update_all(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    organizer: User,
    series: CalendarEvent,
    data: EventInput,
) -> SavedEvent:
    before, checked = await _check_for(session, organizer, series, data)
    room_url = await event_room_url(session, settings, organizer, checked, series)
    wanted = {guest.email: guest for guest in checked.guests}
    removed = [p for p in before if p.email not in wanted]
    kept = [p for p in before if p.email in wanted]
    changed = fill(series, checked, room_url)
    # Who is invited is no change the others must hear of (RFC 5546 raises SEQUENCE for time,
    # place and recurrence): their invitations, and the reply links in them, stay current.
    if changed:
        series.sequence += 1
    await drop_lost_exceptions(session, series)
    await set_reminders(session, series, checked.reminders)
    for participant in removed:
        await session.delete(participant)
    known = {p.email for p in before}
    added = add_participants(session, series, [g for g in checked.guests if g.email not in known])
    await session.flush()
    await send_cancellations(session, settings, company, series, removed)
    await send_invitations(session, settings, company, series, added, updated=False)
    if changed:
        await send_invitations(session, settings, company, series, kept, updated=True)
    return SavedEvent(series, checked.notes)


async def _update_one(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    organizer: User,
    series: CalendarEvent,
    original: Occurrence,
    data: EventInput,
) -> SavedEvent:
    participants, checked = await _check_for(session, organizer, series, data, repeats=False)
    if {g.email for g in checked.guests} != {p.email for p in participants}:
        raise FormErrors(
            {
                "invitee": "Who is invited is the same for every occurrence: choose "
                "“All events” or “This and following events” to change it."
            }
        )
    notes = checked.notes
    if checked.reminders != await reminders_of(session, series):
        notes.append("Reminders are the same for every occurrence; they were left as they were.")
    exception = await exception_row(session, series, original)
    if exception.cancelled_at is not None:
        raise LookupError(original.recurrence_id)
    fill(exception, checked, await event_room_url(session, settings, organizer, checked, series))
    _raise_sequence_of_occurrence(series, exception)
    session.add(exception)
    await session.flush()
    await send_invitations(session, settings, company, series, participants, updated=True)
    return SavedEvent(exception, notes)


def _raise_sequence_of_occurrence(series: CalendarEvent, exception: CalendarEvent) -> None:
    """A change to one occurrence raises that occurrence's SEQUENCE above the series', not the
    series' own: the rest of the series is unchanged, and so are the reply links sent for it."""
    exception.sequence = max(exception.sequence, series.sequence) + 1
    series.updated_at = utcnow()


def _ended_before(series: CalendarEvent, moment: dt.datetime) -> str:
    """The series' rule, ending with the last occurrence before `moment`."""
    parts = [p for p in series.rrule.split(";") if not p.startswith(("COUNT=", "UNTIL="))]
    until = until_value(moment - dt.timedelta(seconds=1), series.time_zone, all_day=series.all_day)
    return ";".join([*parts, f"UNTIL={until}"])


async def _update_following(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    organizer: User,
    series: CalendarEvent,
    original: Occurrence,
    data: EventInput,
) -> SavedEvent:
    earlier, checked = await _check_for(session, organizer, series, data)
    room_url = await event_room_url(session, settings, organizer, checked, series)
    series.rrule = _ended_before(series, original.start)
    series.last_ends_at = last_end(series)
    series.sequence += 1
    series.updated_at = utcnow()
    await session.execute(
        delete(CalendarEvent).where(
            col(CalendarEvent.series_id) == series.id,
            col(CalendarEvent.recurrence_id) >= original.start,
        )
    )
    following = new_event(organizer, new_uid(settings))
    fill(following, checked, room_url)
    session.add(following)
    await session.flush()
    await send_invitations(session, settings, company, series, earlier, updated=True)
    await _invite_to_new(session, settings, company, following, checked)
    return SavedEvent(following, checked.notes)


# --- Cancelling -------------------------------------------------------------------------------


async def cancel_event(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    actor: User,
    event_id: int,
    *,
    occurrence: dt.datetime | None = None,
) -> CalendarEvent:
    """Cancel an event or series, or one occurrence of a series; tell its participants.

    Returns the cancelled row (the series, or the occurrence's exception). Cancelling what is
    already cancelled changes nothing and sends nothing.
    """
    series, named = await organized_series(session, actor, event_id)
    occurrence = occurrence or named
    if series.cancelled_at is not None:
        return series
    participants = await participants_of(session, series)
    if occurrence is None or (not series.rrule and occurrence == series.starts_at):
        series.cancelled_at = utcnow()
        series.sequence += 1
        await session.flush()
        await send_cancellations(session, settings, company, series, participants)
        return series
    return await _cancel_occurrence(session, settings, company, series, participants, occurrence)


async def _cancel_occurrence(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    series: CalendarEvent,
    participants: list[EventParticipant],
    occurrence: dt.datetime,
) -> CalendarEvent:
    """Cancel one occurrence of `series` through its exception row; LookupError if none is."""
    exception = await exception_row(session, series, original_occurrence(series, occurrence))
    if exception.cancelled_at is not None:
        return exception
    exception.cancelled_at = utcnow()
    _raise_sequence_of_occurrence(series, exception)
    session.add(exception)
    await session.flush()
    await send_cancellations(session, settings, company, series, participants, occurrence=exception)
    return exception
