"""Reminders: each one goes out once, by email and as a notice, when its time comes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.calendar import wording
from portal.calendar.invitations import event_path
from portal.calendar.links import join_link
from portal.calendar.models import (
    DECLINED,
    CalendarEvent,
    EventParticipant,
    EventReminder,
    ReminderDelivery,
)
from portal.calendar.recurrence import Occurrence, occurrences
from portal.calendar.schedule import exceptions_of
from portal.mail.messages import render_email
from portal.mail.outbox import enqueue
from portal.notifications.services import notify
from portal.settings import Settings

# A reminder is sent when the job first runs at or after its time, up to this long after it.
# The job runs every minute; the grace covers a worker restarting or a deploy (a few minutes
# without a run) so no reminder is lost to them, while a worker that was down for hours sends
# nothing stale: "starts in 15 minutes" an hour after the meeting began would only mislead.
GRACE = dt.timedelta(minutes=15)
NOTICE_KIND = "calendar_reminder"
TEMPLATE = "event_reminder"


@dataclass(frozen=True, slots=True)
class DueReminder:
    """One reminder of one occurrence whose time has come."""

    occurrence: Occurrence
    minutes_before: int

    @property
    def key(self) -> tuple[int, dt.datetime, int]:
        """What ReminderDelivery keeps unique: the series, the occurrence's start, the lead.

        The start as the occurrence now stands: an occurrence moved after its reminder went
        out is reminded again at its new time.
        """
        return (self.occurrence.series.id or 0, self.occurrence.start, self.minutes_before)


@dataclass(frozen=True, slots=True)
class _Recipient:
    email: str
    name: str
    time_zone: str
    user: User | None  # None for a guest: an email, no notice
    participant: EventParticipant | None  # None for the organizer, who has no join link


async def send_due_reminders(session: AsyncSession, settings: Settings, now: dt.datetime) -> int:
    """Send every reminder whose time falls in (now - GRACE, now] and has not gone out yet;
    how many (occurrence and lead) were sent. The session is unscoped (a job's); nothing is
    committed here."""
    due = await due_reminders(session, now)
    if not due:
        return 0
    sent = await _already_sent(session, due, now)
    due = [reminder for reminder in due if reminder.key not in sent]
    if not due:
        return 0
    series = {reminder.occurrence.series.id or 0: reminder.occurrence.series for reminder in due}
    recipients = await _recipients(session, series.values())
    count = 0
    # One order for every worker: two workers claiming in the same order on PostgreSQL wait
    # on each other's first claim instead of deadlocking on two claims taken crosswise.
    for reminder in sorted(due, key=lambda reminder: reminder.key):
        if await _claim(session, reminder):
            series_id = reminder.occurrence.series.id or 0
            await _send(session, settings, reminder, recipients.get(series_id, []))
            count += 1
    return count


async def due_reminders(session: AsyncSession, now: dt.datetime) -> list[DueReminder]:
    """The reminders whose time falls in (now - GRACE, now], sent or not."""
    longest = (
        await session.execute(select(func.max(col(EventReminder.minutes_before))))
    ).scalar_one_or_none()
    if longest is None:
        return []
    earliest = now - GRACE  # every due occurrence starts after this (a lead is never negative)
    horizon = now + dt.timedelta(minutes=longest)
    # A series whose own bounds miss the window may still have an occurrence moved into it.
    moved_in = select(col(CalendarEvent.series_id)).where(
        col(CalendarEvent.series_id).is_not(None),
        col(CalendarEvent.cancelled_at).is_(None),
        col(CalendarEvent.starts_at) > earliest,
        col(CalendarEvent.starts_at) <= horizon,
    )
    rows = await session.execute(
        select(CalendarEvent, col(EventReminder.minutes_before))
        .join(EventReminder, col(EventReminder.event_id) == col(CalendarEvent.id))
        .where(
            col(CalendarEvent.series_id).is_(None),
            col(CalendarEvent.cancelled_at).is_(None),
            or_(
                and_(
                    col(CalendarEvent.starts_at) <= horizon,
                    col(CalendarEvent.last_ends_at) > earliest,
                ),
                col(CalendarEvent.id).in_(moved_in),
            ),
        )
    )
    leads: dict[int, tuple[CalendarEvent, list[int]]] = {}
    for event, minutes_before in rows:
        leads.setdefault(event.id or 0, (event, []))[1].append(minutes_before)
    changed = await exceptions_of(session, (event for event, _ in leads.values()))
    due: list[DueReminder] = []
    for series_id, (series, minutes) in leads.items():
        window_end = now + dt.timedelta(minutes=max(minutes), microseconds=1)
        for occurrence in occurrences(series, changed.get(series_id, ()), earliest, window_end):
            for minutes_before in minutes:
                remind_at = occurrence.start - dt.timedelta(minutes=minutes_before)
                if earliest < remind_at <= now:
                    due.append(DueReminder(occurrence, minutes_before))
    return due


async def _already_sent(
    session: AsyncSession, due: Sequence[DueReminder], now: dt.datetime
) -> set[tuple[int, dt.datetime, int]]:
    """The keys among `due` that went out already: a reminder stays due for GRACE, so most
    runs find it sent, and skipping it here spares a failed insert each time."""
    rows = await session.execute(
        select(
            col(ReminderDelivery.event_id),
            col(ReminderDelivery.occurrence_start),
            col(ReminderDelivery.minutes_before),
        ).where(
            col(ReminderDelivery.event_id).in_({reminder.key[0] for reminder in due}),
            col(ReminderDelivery.occurrence_start) > now - GRACE,
        )
    )
    return {(event_id, start, minutes) for event_id, start, minutes in rows}


async def _claim(session: AsyncSession, reminder: DueReminder) -> bool:
    """Take the reminder for this transaction; False when another worker has it.

    The unique delivery row is the claim: a second insert fails (on PostgreSQL it waits for
    the first transaction and fails once that commits). The SAVEPOINT keeps the failure from
    undoing this run's other reminders; if the run fails later, its claims roll back with it
    and the next run sends them.
    """
    series = reminder.occurrence.series
    try:
        async with session.begin_nested():
            session.add(
                ReminderDelivery(
                    company_id=series.company_id,
                    event_id=series.id or 0,
                    occurrence_start=reminder.occurrence.start,
                    minutes_before=reminder.minutes_before,
                )
            )
    except IntegrityError:
        return False
    return True


async def _recipients(
    session: AsyncSession, series: Iterable[CalendarEvent]
) -> dict[int, list[_Recipient]]:
    """Each series' organizer and the participants who have not declined, by series id.

    People who were deactivated get nothing: they can no longer take part.
    """
    events = {event.id or 0: event for event in series}
    rows = await session.execute(
        select(EventParticipant)
        .where(
            col(EventParticipant.event_id).in_(events),
            col(EventParticipant.partstat) != DECLINED,
        )
        .order_by(col(EventParticipant.id))
    )
    participants = list(rows.scalars())
    user_ids = {event.organizer_id for event in events.values()}
    user_ids |= {p.user_id for p in participants if p.user_id is not None}
    users = {
        user.id: user
        for user in (await session.execute(select(User).where(col(User.id).in_(user_ids))))
        .scalars()
        .all()
        if user.active
    }
    found: dict[int, list[_Recipient]] = {}
    for series_id, event in events.items():
        if (organizer := users.get(event.organizer_id)) is not None:
            found.setdefault(series_id, []).append(
                _Recipient(
                    organizer.email, organizer.display_name, organizer.time_zone, organizer, None
                )
            )
    for participant in participants:
        if participant.user_id is None:
            zone_name = events[participant.event_id].time_zone
            found.setdefault(participant.event_id, []).append(
                _Recipient(participant.email, participant.name, zone_name, None, participant)
            )
        elif (user := users.get(participant.user_id)) is not None:
            found.setdefault(participant.event_id, []).append(
                _Recipient(user.email, user.display_name, user.time_zone, user, participant)
            )
    return found


def occurrence_path(occurrence: Occurrence) -> str:
    """The occurrence's details page, inside the portal."""
    path = event_path(occurrence.series)
    return f"{path}?occurrence={occurrence.key}" if occurrence.series.rrule else path


async def _send(
    session: AsyncSession,
    settings: Settings,
    reminder: DueReminder,
    recipients: Sequence[_Recipient],
) -> None:
    occurrence = reminder.occurrence
    event = occurrence.event  # a moved occurrence's own title, place and room
    path = occurrence_path(occurrence)
    for recipient in recipients:
        when = wording.when(occurrence, recipient.time_zone, email=True)
        content = render_email(
            settings.templates_dir,
            TEMPLATE,
            {
                "name": recipient.name,
                "title": event.title,
                "when": when,
                "location": event.location,
                "uses_room": event.uses_room,
                "join_url": (
                    join_link(settings, recipient.participant)
                    if event.uses_room and recipient.participant is not None
                    else None
                ),
                # Guests cannot sign in: the details page is for portal users only.
                "details_url": f"{settings.base_url}{path}" if recipient.user else None,
            },
        )
        enqueue(
            session,
            settings,
            company_id=event.company_id,
            to_address=recipient.email,
            to_name=recipient.name,
            content=content,
            template=TEMPLATE,
        )
        if recipient.user is not None:
            await notify(
                session,
                recipient=recipient.user,
                actor=None,
                kind=NOTICE_KIND,
                text=f"Reminder: {event.title}, {when}",
                url=path,
            )
