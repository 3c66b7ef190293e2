"""The organizer's room for an event: when its button is live, and recording who went in.

A participant goes in through their own join link (`/calendar/join/<token>`), the organizer
through Start meeting; both are logged as EventJoin rows, like Meet Now's joins.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar.links import join_link
from portal.calendar.lookup import current_occurrence, is_cancelled, occurrence_at
from portal.calendar.models import CalendarEvent, EventJoin, EventParticipant
from portal.calendar.recurrence import Occurrence
from portal.calendar.schedule import exceptions_of
from portal.db import utcnow
from portal.settings import Settings

# The button goes live this long before an occurrence starts, and stays live until it ends.
ROOM_OPENS_BEFORE = dt.timedelta(minutes=15)
# A link opened again within this time (a reload, a second tab) is the same join.
JOIN_REPEAT_WINDOW = dt.timedelta(minutes=1)

RoomState = Literal["not_yet_open", "open", "ended"]


class NotOrganizer(PermissionError):
    """Only the organizer starts the meeting; participants join through their own link."""


def opens_at(occurrence: Occurrence) -> dt.datetime:
    return occurrence.start - ROOM_OPENS_BEFORE


def room_state(occurrence: Occurrence, now: dt.datetime) -> RoomState:
    """Where the occurrence's room button stands at `now`."""
    if now < opens_at(occurrence):
        return "not_yet_open"
    return "open" if now < occurrence.end else "ended"


async def join_links(
    session: AsyncSession, settings: Settings, person_id: int, event_ids: Collection[int]
) -> dict[int, str]:
    """The person's own join link into each of these events they are invited to, by event."""
    if not event_ids:
        return {}
    rows = await session.execute(
        select(EventParticipant).where(
            col(EventParticipant.event_id).in_(event_ids),
            col(EventParticipant.user_id) == person_id,
        )
    )
    return {row.event_id: join_link(settings, row) for row in rows.scalars()}


@dataclass
class RoomVisit:
    """Where a click on a room button leads: the room, or why it is not open."""

    series: CalendarEvent
    organizer: User
    # None when no occurrence is left (the event or all its occurrences were cancelled).
    occurrence: Occurrence | None
    state: RoomState

    @property
    def room_url(self) -> str:
        return self.series.room_url

    @property
    def opens_at(self) -> dt.datetime | None:
        return opens_at(self.occurrence) if self.occurrence else None

    @property
    def cancelled(self) -> bool:
        return self.occurrence is None or is_cancelled(self.series, self.occurrence)


async def _visit(
    session: AsyncSession,
    series: CalendarEvent,
    original_start: dt.datetime | None,
    now: dt.datetime,
) -> RoomVisit:
    """The occurrence a click is for (the one named, or the one on now or next) and its state."""
    organizer = await session.get(User, series.organizer_id)
    if organizer is None:
        raise LookupError(series.id)
    exceptions = (await exceptions_of(session, [series])).get(series.id or 0, [])
    if original_start is None:
        occurrence = current_occurrence(series, exceptions, now)
    else:
        occurrence = occurrence_at(series, exceptions, original_start)
        if occurrence is None:
            raise LookupError(series.id)
    if occurrence is None or is_cancelled(series, occurrence):
        return RoomVisit(series, organizer, occurrence, "ended")
    return RoomVisit(series, organizer, occurrence, room_state(occurrence, now))


async def _joined_since(
    session: AsyncSession,
    series: CalendarEvent,
    participant_id: int | None,
    user_id: int | None,
    since: dt.datetime,
) -> bool:
    query = select(col(EventJoin.id)).where(
        col(EventJoin.event_id) == series.id, col(EventJoin.joined_at) >= since
    )
    if participant_id is None:
        query = query.where(
            col(EventJoin.participant_id).is_(None), col(EventJoin.user_id) == user_id
        )
    else:
        query = query.where(col(EventJoin.participant_id) == participant_id)
    return (await session.execute(query.limit(1))).first() is not None


async def _record(
    session: AsyncSession,
    visit: RoomVisit,
    participant_id: int | None,
    user_id: int | None,
    now: dt.datetime,
) -> None:
    """Log the click once a minute per participant (or organizer)."""
    occurrence = visit.occurrence
    if occurrence is None or await _joined_since(
        session, visit.series, participant_id, user_id, now - JOIN_REPEAT_WINDOW
    ):
        return
    session.add(
        EventJoin(
            company_id=visit.series.company_id,
            event_id=visit.series.id or 0,
            participant_id=participant_id,
            user_id=user_id,
            occurrence_start=occurrence.recurrence_id or occurrence.start,
            joined_at=now,
        )
    )
    await session.flush()


async def use_join_link(
    session: AsyncSession,
    token: str,
    visitor: User | None,
    *,
    record: bool = True,
    now: dt.datetime | None = None,
) -> RoomVisit:
    """Where a participant's join link leads now; while the room is open, the click is
    recorded (once a minute; never when `record` is False, for a link preview).

    LookupError for a link that never existed or an event without the room. `session` is
    unscoped: the link itself says which company it belongs to. The caller commits.
    """
    now = now or utcnow()
    participant = (
        await session.execute(
            select(EventParticipant).where(col(EventParticipant.join_token) == token)
        )
    ).scalar_one_or_none()
    if participant is None:
        raise LookupError(token)
    series = await session.get(CalendarEvent, participant.event_id)
    if series is not None and series.series_id is not None:
        series = await session.get(CalendarEvent, series.series_id)
    if series is None or not series.uses_room:
        raise LookupError(token)
    visit = await _visit(session, series, None, now)
    if visit.state == "open" and record:
        # A visitor from another company is recorded as a guest, not linked to their account.
        same_company = visitor is not None and visitor.company_id == series.company_id
        user_id = visitor.id if visitor is not None and same_company else None
        await _record(session, visit, participant.id, user_id, now)
    return visit


async def start_meeting(
    session: AsyncSession,
    organizer: User,
    event_id: int,
    original_start: dt.datetime | None,
    *,
    now: dt.datetime | None = None,
) -> RoomVisit:
    """Start meeting for the organizer: the occurrence named (or on now or next) and, while
    its room is open, the start recorded.

    LookupError for an event the person cannot see or that has no room; NotOrganizer for a
    participant. `session` is scoped to the organizer's company; the caller commits.
    """
    now = now or utcnow()
    series = await session.get(CalendarEvent, event_id)
    if series is None or series.series_id is not None:
        raise LookupError(event_id)
    if series.organizer_id != organizer.id:
        invited = await session.execute(
            select(col(EventParticipant.id)).where(
                col(EventParticipant.event_id) == series.id,
                col(EventParticipant.user_id) == organizer.id,
            )
        )
        if invited.first() is None:
            raise LookupError(event_id)
        raise NotOrganizer(event_id)
    if not series.uses_room:
        raise LookupError(event_id)
    visit = await _visit(session, series, original_start, now)
    if visit.state == "open":
        await _record(session, visit, None, organizer.id, now)
    return visit
