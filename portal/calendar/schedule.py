"""A person's schedule: the events they organize or are invited to, as occurrences in a range."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.calendar.models import DECLINED, CalendarEvent, EventParticipant
from portal.calendar.recurrence import Occurrence, occurrences


def _involving(person_id: int) -> ColumnElement[bool]:
    """Events `person_id` organizes or is invited to."""
    invited = select(col(EventParticipant.event_id)).where(
        col(EventParticipant.user_id) == person_id
    )
    return or_(col(CalendarEvent.organizer_id) == person_id, col(CalendarEvent.id).in_(invited))


async def _series_between(
    session: AsyncSession, person_ids: Iterable[int], start: dt.datetime, end: dt.datetime
) -> list[CalendarEvent]:
    ids = list(person_ids)
    rows = await session.execute(
        select(CalendarEvent).where(
            col(CalendarEvent.series_id).is_(None),
            col(CalendarEvent.cancelled_at).is_(None),
            col(CalendarEvent.starts_at) < end,
            col(CalendarEvent.last_ends_at) > start,
            or_(*(_involving(person_id) for person_id in ids)),
        )
    )
    return list(rows.scalars())


async def exceptions_of(
    session: AsyncSession, series: Iterable[CalendarEvent]
) -> dict[int, list[CalendarEvent]]:
    """The changed and cancelled occurrences of each recurring series, by series id."""
    ids = [event.id for event in series if event.rrule and event.id is not None]
    found: dict[int, list[CalendarEvent]] = {series_id: [] for series_id in ids}
    if ids:
        rows = await session.execute(
            select(CalendarEvent).where(col(CalendarEvent.series_id).in_(ids))
        )
        for exception in rows.scalars():
            found[exception.series_id or 0].append(exception)
    return found


async def events_between(
    session: AsyncSession, person_id: int, start: dt.datetime, end: dt.datetime
) -> list[Occurrence]:
    """What `person_id` organizes or is invited to in [start, end), in start order."""
    series = await _series_between(session, [person_id], start, end)
    changed = await exceptions_of(session, series)
    found = [
        occurrence
        for event in series
        for occurrence in occurrences(event, changed.get(event.id or 0, ()), start, end)
    ]
    found.sort(key=lambda occurrence: (occurrence.start, occurrence.end, occurrence.series.id))
    return found


@dataclass(frozen=True, slots=True)
class Busy:
    """A stretch of time a person is taken, and by which occurrence."""

    start: dt.datetime
    end: dt.datetime
    occurrence: Occurrence


async def busy_between(
    session: AsyncSession, person_ids: list[int], start: dt.datetime, end: dt.datetime
) -> dict[int, list[Busy]]:
    """Each person's timed, not declined occurrences in [start, end), by person id."""
    busy: dict[int, list[Busy]] = {person_id: [] for person_id in person_ids}
    if not person_ids:
        return busy
    series = await _series_between(session, person_ids, start, end)
    if not series:
        return busy
    changed = await exceptions_of(session, series)
    invited = await session.execute(
        select(EventParticipant).where(
            col(EventParticipant.event_id).in_([event.id for event in series]),
            col(EventParticipant.user_id).in_(person_ids),
        )
    )
    attending: dict[int, set[int]] = {}
    for participant in invited.scalars():
        if participant.partstat != DECLINED and participant.user_id is not None:
            attending.setdefault(participant.event_id, set()).add(participant.user_id)
    for event in series:
        if event.all_day:
            continue
        people = attending.get(event.id or 0, set()) | ({event.organizer_id} & set(person_ids))
        for occurrence in occurrences(event, changed.get(event.id or 0, ()), start, end):
            for person_id in people:
                busy[person_id].append(Busy(occurrence.start, occurrence.end, occurrence))
    for stretches in busy.values():
        stretches.sort(key=lambda stretch: (stretch.start, stretch.end))
    return busy
