"""Finding what a request names: the event a person may see, the series they organize, and one
occurrence of a series with the exception row that changes or cancels it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar.models import CalendarEvent, EventParticipant
from portal.calendar.recurrence import Occurrence, occurrences
from portal.calendar.schedule import exceptions_of


class NotOrganizer(PermissionError):
    """Only an event's organizer may change or cancel it."""


async def visible_event(
    session: AsyncSession, viewer_id: int, event_id: int
) -> CalendarEvent | None:
    """The row if the viewer organizes it or is invited (to it or, for an exception, its series)."""
    event = (
        await session.execute(select(CalendarEvent).where(col(CalendarEvent.id) == event_id))
    ).scalar_one_or_none()
    if event is None or event.organizer_id == viewer_id:
        return event
    invited = await session.execute(
        select(col(EventParticipant.id))
        .where(
            col(EventParticipant.event_id).in_({event.id, event.series_id or event.id}),
            col(EventParticipant.user_id) == viewer_id,
        )
        .limit(1)
    )
    return event if invited.first() is not None else None


async def organized_series(
    session: AsyncSession, actor: User, event_id: int
) -> tuple[CalendarEvent, dt.datetime | None]:
    """The series (or single event) `event_id` belongs to, if `actor` organizes it, and the
    occurrence it names when it is an exception. LookupError (404) when the actor may not see
    it, NotOrganizer (403) when they may but do not organize it."""
    event = await visible_event(session, actor.id or 0, event_id)
    if event is None:
        raise LookupError(event_id)
    series = event
    if event.series_id is not None:
        series = (
            await session.execute(
                select(CalendarEvent).where(col(CalendarEvent.id) == event.series_id)
            )
        ).scalar_one()
    if series.organizer_id != actor.id:
        raise NotOrganizer(event_id)
    return series, event.recurrence_id


_SECOND = dt.timedelta(seconds=1)


def _expandable(series: CalendarEvent) -> CalendarEvent:
    """The series as if not cancelled (a copy, never added to a session), so that a cancelled
    event's page can still say when it would have been."""
    if series.cancelled_at is None:
        return series
    return CalendarEvent.model_validate(series.model_dump() | {"cancelled_at": None})


def occurrence_at(
    series: CalendarEvent, exceptions: Sequence[CalendarEvent], original_start: dt.datetime
) -> Occurrence | None:
    """The occurrence of `series` whose original start is `original_start`, wherever it was
    moved to, a cancelled one included (its `event` has `cancelled_at`); None if there is none."""
    live = _expandable(series)
    if not series.rrule:
        if int(series.starts_at.timestamp()) != int(original_start.timestamp()):
            return None
        return Occurrence(live, live, series.starts_at, series.ends_at, None)
    for exception in exceptions:
        if exception.recurrence_id == original_start:
            return Occurrence(
                exception, live, exception.starts_at, exception.ends_at, original_start
            )
    around = occurrences(live, exceptions, original_start - _SECOND, original_start + _SECOND)
    return next((o for o in around if o.event is live and o.start == original_start), None)


def current_occurrence(
    series: CalendarEvent, exceptions: Sequence[CalendarEvent], now: dt.datetime
) -> Occurrence | None:
    """The occurrence on now or next, else the last one; None when all are cancelled."""
    live = _expandable(series)
    last = max([series.last_ends_at, *(exception.ends_at for exception in exceptions)])
    later = occurrences(live, exceptions, now, max(last, now) + _SECOND)
    if later:
        return later[0]
    # From just before the first start, so that an event with no length is found too.
    earlier = occurrences(live, exceptions, series.starts_at - _SECOND, now)
    return earlier[-1] if earlier else None


def is_cancelled(series: CalendarEvent, occurrence: Occurrence | None) -> bool:
    """Whether the series, or the occurrence of it, was cancelled."""
    return series.cancelled_at is not None or (
        occurrence is not None and occurrence.event.cancelled_at is not None
    )


def original_occurrence(series: CalendarEvent, original_start: dt.datetime) -> Occurrence:
    """The occurrence of a live series at `original_start` as its rule has it, before any change;
    LookupError if the rule has none there."""
    found = occurrence_at(series, (), original_start)
    if not series.rrule or series.cancelled_at is not None or found is None:
        raise LookupError(original_start)
    return found


async def editable_occurrence(
    session: AsyncSession, series: CalendarEvent, original_start: dt.datetime
) -> Occurrence:
    """The occurrence of a live series at `original_start`, as changed by its exception if it
    has one; LookupError when there is none or it was cancelled."""
    exceptions = (await exceptions_of(session, [series])).get(series.id or 0, [])
    found = occurrence_at(series, exceptions, original_start)
    if not series.rrule or found is None or is_cancelled(series, found):
        raise LookupError(original_start)
    return found


async def exception_row(
    session: AsyncSession, series: CalendarEvent, original: Occurrence
) -> CalendarEvent:
    """The series' row for one occurrence: the one stored, or a new copy at its original time."""
    row = (
        await session.execute(
            select(CalendarEvent).where(
                col(CalendarEvent.series_id) == series.id,
                col(CalendarEvent.recurrence_id) == original.recurrence_id,
            )
        )
    ).scalar_one_or_none()
    if row is not None:
        return row
    return CalendarEvent(
        company_id=series.company_id,
        organizer_id=series.organizer_id,
        uid=series.uid,
        title=series.title,
        description=series.description,
        location=series.location,
        time_zone=series.time_zone,
        all_day=series.all_day,
        starts_at=original.start,
        ends_at=original.end,
        last_ends_at=original.end,
        uses_room=series.uses_room,
        room_url=series.room_url,
        series_id=series.id,
        recurrence_id=original.recurrence_id,
    )
