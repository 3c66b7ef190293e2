"""The participants' busy times on the day the organizer is planning, for the event form.

Only the events the viewer organizes or is invited to show their titles; the rest read "Busy".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar.invitees import MAX_PARTICIPANTS
from portal.calendar.models import CalendarEvent, EventParticipant
from portal.calendar.schedule import busy_between
from portal.calendar.times import instant
from portal.directory.people import people
from portal.timezones import zone


@dataclass
class BusyTime:
    # In the zone the organizer is planning in.
    start: dt.datetime
    end: dt.datetime
    # None when the viewer is not invited: others' meetings show as "Busy".
    title: str | None


@dataclass
class Availability:
    person: User
    busy: list[BusyTime]


async def busy_on_day(
    session: AsyncSession, viewer: User, day: dt.date, time_zone: str, person_ids: list[int]
) -> list[Availability]:
    """Each person's busy times on `day` of `time_zone`; UnknownPerson for an id not here."""
    found = await people(session, person_ids[:MAX_PARTICIPANTS])
    start, _ = instant(day, dt.time(), time_zone)
    end, _ = instant(day + dt.timedelta(days=1), dt.time(), time_zone)
    busy = await busy_between(session, [p.id or 0 for p in found], start, end)
    series_ids = {b.occurrence.series.id for stretches in busy.values() for b in stretches}
    invited = await _invited_to(session, viewer, series_ids)
    tz = zone(time_zone)

    def seen(series: CalendarEvent) -> bool:
        return series.organizer_id == viewer.id or series.id in invited

    return [
        Availability(
            person,
            [
                BusyTime(
                    b.start.astimezone(tz),
                    b.end.astimezone(tz),
                    b.occurrence.event.title if seen(b.occurrence.series) else None,
                )
                for b in busy[person.id or 0]
            ],
        )
        for person in found
    ]


async def _invited_to(
    session: AsyncSession, viewer: User, series_ids: Iterable[int | None]
) -> set[int]:
    """Which of these series the viewer is invited to."""
    rows = await session.execute(
        select(col(EventParticipant.event_id)).where(
            col(EventParticipant.event_id).in_(series_ids),
            col(EventParticipant.user_id) == viewer.id,
        )
    )
    return set(rows.scalars())
