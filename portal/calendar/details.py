"""An event's details page: which occurrence a URL names, and what the page says of it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar.lookup import current_occurrence, is_cancelled, occurrence_at
from portal.calendar.models import (
    NEEDS_ACTION,
    CalendarEvent,
    EventParticipant,
)
from portal.calendar.recurrence import Occurrence, occurrence_key, parse_key
from portal.calendar.replies import REPLIES
from portal.calendar.schedule import exceptions_of


@dataclass
class EventPage:
    """The event a details URL names, as its viewer may see it."""

    series: CalendarEvent
    # The occurrence shown; None when every occurrence of a series was cancelled.
    occurrence: Occurrence | None
    # The viewer's invitation, None for the organizer.
    participant: EventParticipant | None
    is_organizer: bool

    @property
    def cancelled(self) -> bool:
        return is_cancelled(self.series, self.occurrence)


async def event_page(
    session: AsyncSession, viewer_id: int, event_id: int, key: str | None, now: dt.datetime
) -> EventPage | None:
    """The event `event_id` at the occurrence `key` names (or the one on now or next), if the
    viewer organizes it or is invited; None (not found) otherwise, or for a bad key."""
    row = await session.get(CalendarEvent, event_id)
    if row is not None and row.series_id is not None:
        # An exception's own id names its occurrence of the series.
        if key is None and row.recurrence_id is not None:
            key = occurrence_key(row.recurrence_id)
        row = await session.get(CalendarEvent, row.series_id)
    if row is None:
        return None
    participant = (
        await session.execute(
            select(EventParticipant).where(
                col(EventParticipant.event_id) == row.id,
                col(EventParticipant.user_id) == viewer_id,
            )
        )
    ).scalar_one_or_none()
    is_organizer = row.organizer_id == viewer_id
    if not is_organizer and participant is None:
        return None
    exceptions = (await exceptions_of(session, [row])).get(row.id or 0, [])
    if key is None:
        occurrence = current_occurrence(row, exceptions, now)
    else:
        original_start = parse_key(key)
        if original_start is None:
            return None
        occurrence = occurrence_at(row, exceptions, original_start)
        if occurrence is None:
            return None
    return EventPage(row, occurrence, participant, is_organizer)


@dataclass(frozen=True)
class Attendee:
    participant: EventParticipant
    # The portal person behind the invitation, None for a guest invited by address.
    person: User | None

    @property
    def name(self) -> str:
        if self.person is not None:
            return self.person.display_name
        return self.participant.name or self.participant.email

    @property
    def reply(self) -> str:
        return REPLIES.get(self.participant.partstat, REPLIES[NEEDS_ACTION])


@dataclass
class Attendees:
    organizer: User
    attendees: list[Attendee]

    @property
    def counts(self) -> list[tuple[str, int]]:
        """How many gave each reply, in a fixed order ("Accepted", 3)..."""
        found = Counter(attendee.reply for attendee in self.attendees)
        return [(label, found[label]) for label in REPLIES.values()]


async def attendees(session: AsyncSession, series: CalendarEvent) -> Attendees:
    """The organizer and everyone invited, with their replies: two queries."""
    invited = list(
        (
            await session.execute(
                select(EventParticipant).where(col(EventParticipant.event_id) == series.id)
            )
        ).scalars()
    )
    ids = {series.organizer_id} | {p.user_id for p in invited if p.user_id is not None}
    people = {
        user.id: user
        for user in (await session.execute(select(User).where(col(User.id).in_(ids)))).scalars()
    }
    organizer = people.get(series.organizer_id)
    if organizer is None:
        raise LookupError(series.organizer_id)
    found = [Attendee(p, people.get(p.user_id) if p.user_id else None) for p in invited]
    # Colleagues by name, then guests by address.
    found.sort(key=lambda attendee: (attendee.person is None, attendee.name.casefold()))
    return Attendees(organizer, found)
