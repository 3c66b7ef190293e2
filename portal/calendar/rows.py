"""An event's rows and the form: the event, its participants, its reminders and its exceptions
set from the checked form, and read back into the form to edit it."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar.forms import REMINDER_UNITS, Checked, EventInput
from portal.calendar.invitees import Guest
from portal.calendar.models import CalendarEvent, EventParticipant, EventReminder
from portal.calendar.recurrence import Occurrence, last_end, series_starts, wall_clock
from portal.conferencing.services import required, resolve_room
from portal.db import utcnow
from portal.settings import Settings


def new_uid(settings: Settings) -> str:
    return f"{uuid.uuid4()}@{urlsplit(settings.base_url).hostname or 'portal'}"


async def event_room_url(
    session: AsyncSession,
    settings: Settings,
    organizer: User,
    checked: Checked,
    kept: CalendarEvent | None = None,
) -> str:
    """The organizer's room for the event; `kept`'s room when the event had one already, so a
    reschedule keeps the link its participants have (and a provider that makes a meeting per
    event is not asked for a second one)."""
    if not checked.uses_room:
        return ""
    if kept is not None and kept.uses_room and kept.room_url:
        return kept.room_url
    times = checked.times
    room = await resolve_room(
        session,
        settings,
        organizer,
        topic=checked.title,
        start=times.starts_at,
        minutes=max(1, int((times.ends_at - times.starts_at).total_seconds() // 60)),
    )
    return required(room, "uses_room").url


def new_event(organizer: User, uid: str) -> CalendarEvent:
    """An event row to fill with `fill`: the times are placeholders until then."""
    now = utcnow()
    return CalendarEvent(
        company_id=organizer.company_id,
        organizer_id=organizer.id or 0,
        uid=uid,
        title="",
        time_zone="UTC",
        starts_at=now,
        ends_at=now,
        last_ends_at=now,
    )


def fill(event: CalendarEvent, checked: Checked, room_url: str) -> bool:
    """Set the event's fields from the form; whether participants must hear of the change."""
    times = checked.times
    values: dict[str, object] = {
        "title": checked.title,
        "description": checked.description,
        "location": checked.location,
        "time_zone": times.time_zone,
        "all_day": times.all_day,
        "starts_at": times.starts_at,
        "ends_at": times.ends_at,
        "rrule": checked.rrule,
        "uses_room": checked.uses_room,
        "room_url": room_url,
    }
    changed = any(getattr(event, name) != value for name, value in values.items())
    for name, value in values.items():
        setattr(event, name, value)
    event.last_ends_at = last_end(event) if event.rrule else event.ends_at
    event.updated_at = utcnow()
    return changed


def add_participants(
    session: AsyncSession, event: CalendarEvent, guests: list[Guest]
) -> list[EventParticipant]:
    participants = [
        EventParticipant(
            company_id=event.company_id,
            event_id=event.id or 0,
            user_id=guest.user.id if guest.user else None,
            email=guest.email,
            name=guest.user.display_name if guest.user else "",
            join_token=secrets.token_urlsafe(32),
        )
        for guest in guests
    ]
    session.add_all(participants)
    return participants


async def participants_of(session: AsyncSession, event: CalendarEvent) -> list[EventParticipant]:
    rows = await session.execute(
        select(EventParticipant)
        .where(col(EventParticipant.event_id) == event.id)
        .order_by(col(EventParticipant.id))
    )
    return list(rows.scalars())


async def reminders_of(session: AsyncSession, event: CalendarEvent) -> set[int]:
    rows = await session.execute(
        select(col(EventReminder.minutes_before)).where(col(EventReminder.event_id) == event.id)
    )
    return set(rows.scalars())


async def set_reminders(session: AsyncSession, event: CalendarEvent, minutes: set[int]) -> None:
    if await reminders_of(session, event) == minutes:
        return
    await session.execute(delete(EventReminder).where(col(EventReminder.event_id) == event.id))
    session.add_all(
        EventReminder(company_id=event.company_id, event_id=event.id or 0, minutes_before=m)
        for m in sorted(minutes)
    )


async def event_for_key(session: AsyncSession, organizer: User, key: str) -> CalendarEvent | None:
    """The event the organizer's Save with this request key created, if it arrived before."""
    rows = await session.execute(
        select(CalendarEvent).where(
            col(CalendarEvent.organizer_id) == organizer.id,
            col(CalendarEvent.request_key) == key,
        )
    )
    return rows.scalar_one_or_none()


async def drop_lost_exceptions(session: AsyncSession, series: CalendarEvent) -> None:
    """Delete the changed or cancelled occurrences the series' new rule no longer has."""
    starts = series_starts(series) if series.rrule else []
    stale = delete(CalendarEvent).where(col(CalendarEvent.series_id) == series.id)
    if starts:
        stale = stale.where(col(CalendarEvent.recurrence_id).not_in(starts))
    await session.execute(stale)


# --- The stored event, back in the form ---------------------------------------------------------


async def input_for(
    session: AsyncSession, series: CalendarEvent, occurrence: Occurrence | None = None
) -> EventInput:
    """The form filled in with the event as stored, or with one occurrence of it."""
    shown = occurrence.event if occurrence else series
    start = occurrence.start if occurrence else series.starts_at
    end = occurrence.end if occurrence else series.ends_at
    local_start = wall_clock(start, shown.time_zone)
    local_end = wall_clock(end, shown.time_zone)
    if shown.all_day:
        # Stored ends are exclusive; the form names the last day.
        local_end -= dt.timedelta(days=1)
    participants = await participants_of(session, series)
    data = EventInput(
        title=shown.title,
        description=shown.description,
        location=shown.location,
        start_date=local_start.date().isoformat(),
        start_time="" if shown.all_day else f"{local_start:%H:%M}",
        end_date=local_end.date().isoformat(),
        end_time="" if shown.all_day else f"{local_end:%H:%M}",
        time_zone=shown.time_zone,
        all_day=shown.all_day,
        participant_ids=[str(p.user_id) for p in participants if p.user_id is not None],
        emails=", ".join(p.email for p in participants if p.user_id is None),
        reminders=[_amount_and_unit(m) for m in sorted(await reminders_of(session, series))],
        uses_room=shown.uses_room,
    )
    if series.rrule:
        _fill_repeat(data, series)
    return data


def _amount_and_unit(minutes: int) -> tuple[str, str]:
    for unit in ("days", "hours"):
        if minutes % REMINDER_UNITS[unit] == 0:
            return str(minutes // REMINDER_UNITS[unit]), unit
    return str(minutes), "minutes"


def _fill_repeat(data: EventInput, series: CalendarEvent) -> None:
    """The form's repeat choices for a stored RRULE (a capped "never" reads as its last date)."""
    parts = dict(part.split("=", 1) for part in series.rrule.split(";") if "=" in part)
    data.repeat = {"DAILY": "daily", "WEEKLY": "weekly"}.get(parts.get("FREQ", ""), "")
    if parts.get("FREQ") == "MONTHLY":
        data.repeat = "monthly_date" if "BYMONTHDAY" in parts else "monthly_weekday"
    if data.repeat == "weekly":
        data.weekdays = [day for day in parts.get("BYDAY", "").split(",") if day]
    if "COUNT" in parts:
        data.ends, data.count = "after", parts["COUNT"]
    elif "UNTIL" in parts:
        until = parts["UNTIL"]
        if series.all_day:
            day = dt.datetime.strptime(until[:8], "%Y%m%d").date()
        else:
            moment = dt.datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            day = wall_clock(moment, series.time_zone).date()
        data.ends, data.until = "on", day.isoformat()
