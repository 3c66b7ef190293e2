"""Invitations and cancellations: an email each, with its iTIP calendar; notices for colleagues."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.calendar import wording
from portal.calendar.ics import event_calendar
from portal.calendar.links import join_link
from portal.calendar.models import ACCEPTED, DECLINED, TENTATIVE, CalendarEvent, EventParticipant
from portal.calendar.recurrence import wall_clock
from portal.calendar.replies import reply_link
from portal.calendar.rooms import ROOM_OPENS_BEFORE
from portal.calendar.rows import participants_of
from portal.calendar.schedule import exceptions_of
from portal.calendar.wording import as_occurrence, short_date
from portal.mail.messages import EmailContent, render_email
from portal.mail.outbox import enqueue
from portal.notifications.services import notify
from portal.settings import Settings

INVITATION_TEMPLATE = "event_invitation"
CANCELLED_TEMPLATE = "event_cancelled"

_WEEKDAYS = {
    "MO": "Monday",
    "TU": "Tuesday",
    "WE": "Wednesday",
    "TH": "Thursday",
    "FR": "Friday",
    "SA": "Saturday",
    "SU": "Sunday",
}
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}
_UNITS = {"DAILY": ("day", "days"), "WEEKLY": ("week", "weeks"), "MONTHLY": ("month", "months")}


def repeat_text(series: CalendarEvent) -> str:
    """The series' RRULE in words ("Every week on Monday, Wednesday, 10 times"); "" if single."""
    if not series.rrule:
        return ""
    parts = dict(part.partition("=")[::2] for part in series.rrule.split(";"))
    unit = _UNITS.get(parts.get("FREQ", ""))
    if unit is None:
        return "Repeats"
    interval = int(parts["INTERVAL"]) if parts.get("INTERVAL", "").isdigit() else 1
    words = f"Every {unit[0]}" if interval == 1 else f"Every {interval} {unit[1]}"
    days = [day for day in parts.get("BYDAY", "").split(",") if day]
    if parts["FREQ"] == "WEEKLY" and days:
        words += " on " + ", ".join(_WEEKDAYS.get(day[-2:], day) for day in days)
    elif parts["FREQ"] == "MONTHLY" and days:
        words += " on the " + _monthly_weekday(days[0], parts.get("BYSETPOS", ""))
    elif parts["FREQ"] == "MONTHLY" and parts.get("BYMONTHDAY"):
        words += f" on day {parts['BYMONTHDAY']}"
    if parts.get("COUNT"):
        words += f", {parts['COUNT']} times"
    elif parts.get("UNTIL"):
        words += f", until {_until_day(series, parts['UNTIL'])}"
    return words


def _monthly_weekday(day: str, set_position: str) -> str:
    """ "2TU" (or "TU" with BYSETPOS=2) as "second Tuesday"."""
    number = day[:-2] or set_position
    try:
        ordinal = _ORDINALS.get(int(number), number)
    except ValueError:
        ordinal = number
    return f"{ordinal} {_WEEKDAYS.get(day[-2:], day[-2:])}".strip()


def _until_day(series: CalendarEvent, until: str) -> str:
    """UNTIL's date as the event's zone reads it (a UTC time for a timed series)."""
    try:
        if "T" in until:
            moment = dt.datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            return short_date(wall_clock(moment, series.time_zone))
        return short_date(dt.datetime.strptime(until, "%Y%m%d").date())
    except ValueError:
        return until


@dataclass(frozen=True)
class Recipient:
    """A participant as an email addresses them: their name, zone and account (if any)."""

    participant: EventParticipant
    user: User | None

    @property
    def name(self) -> str:
        return self.participant.name or (self.user.display_name if self.user else "")

    def time_zone(self, event: CalendarEvent) -> str:
        """The zone they read times in: their own, or the event's for a guest."""
        return self.user.time_zone if self.user else event.time_zone


def when_for(event: CalendarEvent, own_zone: str) -> tuple[str, str]:
    """When, in someone's own zone; and in the event's zone when that reads otherwise ("")."""
    occurrence = as_occurrence(event)
    when = wording.when(occurrence, own_zone, email=True)
    if event.all_day or own_zone == event.time_zone:
        return when, ""
    return when, wording.when(occurrence, event.time_zone, email=True)


async def _recipients(
    session: AsyncSession, participants: Sequence[EventParticipant]
) -> list[Recipient]:
    ids = {p.user_id for p in participants if p.user_id is not None}
    users: dict[int | None, User] = {}
    if ids:
        rows = await session.execute(select(User).where(col(User.id).in_(ids)))
        users = {user.id: user for user in rows.scalars()}
    return [Recipient(p, users.get(p.user_id) if p.user_id else None) for p in participants]


@dataclass(frozen=True)
class _Mailing:
    """What every email about one series is built from, read once for all its recipients."""

    company: Company
    series: CalendarEvent
    organizer: User
    exceptions: list[CalendarEvent]
    attendees: list[EventParticipant]

    def context(self, recipient: Recipient, when: str, event_when: str) -> dict[str, object]:
        """What the invitation and the cancellation both say."""
        return {
            "name": recipient.name,
            "organizer_name": self.organizer.display_name,
            "organizer_email": self.organizer.email,
            "company_name": self.company.name,
            "title": self.series.title,
            "when": when,
            "event_when": event_when,
        }

    def enqueue(
        self,
        session: AsyncSession,
        settings: Settings,
        recipient: Recipient,
        template: str,
        content: EmailContent,
        method: Literal["REQUEST", "CANCEL"],
        calendar: str,
    ) -> None:
        """The email into the outbox, with its iTIP calendar; replies go to the organizer."""
        enqueue(
            session,
            settings,
            company_id=self.series.company_id,
            to_address=recipient.participant.email,
            to_name=recipient.name,
            content=content,
            template=template,
            reply_to=self.organizer.email,
            calendar_method=method,
            calendar_ics=calendar,
        )


async def _mailing(session: AsyncSession, company: Company, series: CalendarEvent) -> _Mailing:
    organizer = await session.get(User, series.organizer_id)
    if organizer is None:
        raise LookupError(f"event {series.id} has no organizer")
    exceptions = (await exceptions_of(session, [series])).get(series.id or 0, [])
    attendees = await participants_of(session, series)
    return _Mailing(company, series, organizer, exceptions, attendees)


def event_path(series: CalendarEvent) -> str:
    """The event's details page, inside the portal."""
    return f"/calendar/events/{series.id}"


async def send_invitations(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    series: CalendarEvent,
    recipients: Sequence[EventParticipant],
    *,
    updated: bool,
) -> None:
    """Email each recipient the event with its REQUEST calendar and reply links; notify colleagues.

    Adds to the caller's transaction: nothing goes out unless it commits.
    """
    if not recipients:
        return
    mailing = await _mailing(session, company, series)
    organizer = mailing.organizer
    for recipient in await _recipients(session, recipients):
        participant = recipient.participant
        join_url = join_link(settings, participant) if series.uses_room else None
        when, event_when = when_for(series, recipient.time_zone(series))
        content = render_email(
            settings.templates_dir,
            INVITATION_TEMPLATE,
            mailing.context(recipient, when, event_when)
            | {
                "updated": updated,
                "repeats": repeat_text(series),
                "location": series.location,
                "description": series.description,
                "join_url": join_url or "",
                "join_opens_minutes": int(ROOM_OPENS_BEFORE.total_seconds() // 60),
                "event_url": f"{settings.base_url}{event_path(series)}" if recipient.user else "",
                "replies": [
                    ("Accept", reply_link(settings, participant, series, ACCEPTED)),
                    ("Tentative", reply_link(settings, participant, series, TENTATIVE)),
                    ("Decline", reply_link(settings, participant, series, DECLINED)),
                ],
            },
        )
        calendar = event_calendar(
            "REQUEST", series, mailing.exceptions, organizer, mailing.attendees, join_url=join_url
        )
        mailing.enqueue(
            session, settings, recipient, INVITATION_TEMPLATE, content, "REQUEST", calendar
        )
        if recipient.user is not None:
            verb = "updated" if updated else "invited you to"
            await notify(
                session,
                recipient=recipient.user,
                actor=organizer,
                kind="calendar_invitation",
                text=f"{organizer.display_name} {verb} “{series.title}”: {when}",
                url=event_path(series),
            )


async def send_cancellations(
    session: AsyncSession,
    settings: Settings,
    company: Company,
    series: CalendarEvent,
    recipients: Sequence[EventParticipant],
    *,
    occurrence: CalendarEvent | None = None,
) -> None:
    """Email each recipient a CANCEL calendar (the series, or the one `occurrence`); notify
    colleagues. Recipients of a series that goes on were removed from it."""
    if not recipients:
        return
    mailing = await _mailing(session, company, series)
    organizer = mailing.organizer
    removed = series.cancelled_at is None and occurrence is None
    for recipient in await _recipients(session, recipients):
        participant = recipient.participant
        when, event_when = when_for(occurrence or series, recipient.time_zone(series))
        content = render_email(
            settings.templates_dir,
            CANCELLED_TEMPLATE,
            mailing.context(recipient, when, event_when)
            | {
                "repeats": "" if occurrence else repeat_text(series),
                "one_occurrence": occurrence is not None,
                "removed": removed,
            },
        )
        # A removed participant is no longer among the attendees; the CANCEL names them.
        attendees = mailing.attendees
        known = {p.id for p in attendees}
        listed = attendees if participant.id in known else [*attendees, participant]
        calendar = event_calendar(
            "CANCEL", series, mailing.exceptions, organizer, listed, only=occurrence
        )
        mailing.enqueue(
            session, settings, recipient, CANCELLED_TEMPLATE, content, "CANCEL", calendar
        )
        if recipient.user is not None:
            await notify(
                session,
                recipient=recipient.user,
                actor=organizer,
                kind="calendar_cancelled",
                text=_cancel_notice(
                    organizer, series, when, one=occurrence is not None, removed=removed
                ),
                # A removed participant may no longer open the event.
                url="/calendar" if removed else event_path(series),
            )


def _cancel_notice(
    organizer: User, series: CalendarEvent, when: str, *, one: bool, removed: bool
) -> str:
    if removed:
        return f"{organizer.display_name} removed you from “{series.title}”"
    if one:
        return f"{organizer.display_name} cancelled “{series.title}” on {when}"
    return f"{organizer.display_name} cancelled “{series.title}”"
