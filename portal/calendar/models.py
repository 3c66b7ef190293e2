"""Calendar events, who is invited to them, their reminders, and each person's feed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.accounts.models import EMAIL_MAX, NAME_MAX
from portal.db import TenantScoped, UTCDateTime, utcnow

TITLE_MAX = 200
DESCRIPTION_MAX = 5000
LOCATION_MAX = 255
RRULE_MAX = 500
UID_MAX = 255
ROOM_URL_MAX = 500
REQUEST_KEY_MAX = 64

# iCalendar's PARTSTAT values, as stored and as sent.
NEEDS_ACTION = "NEEDS-ACTION"
ACCEPTED = "ACCEPTED"
DECLINED = "DECLINED"
TENTATIVE = "TENTATIVE"
ANSWERS = (ACCEPTED, DECLINED, TENTATIVE)


class CalendarEvent(TenantScoped, SQLModel, table=True):
    """An event, a recurring series, or one changed occurrence of a series (an exception).

    Times are stored in UTC; the wall clock the organizer chose is `starts_at` read in
    `time_zone`, which is also the clock a series repeats on (9:00 stays 9:00 across a
    daylight-saving change). An all-day event starts and ends at midnights of `time_zone`,
    the end exclusive.
    """

    __tablename__ = "calendar_event"
    __table_args__ = (
        # A person's calendar: the series they organize that are not over by a given time.
        Index("ix_calendar_event_organizer_until", "organizer_id", "last_ends_at"),
        # The reminders job, every minute, across companies: the series not over yet.
        Index("ix_calendar_event_until", "last_ends_at"),
        Index("ix_calendar_event_uid", "uid"),
        # One exception per occurrence of a series.
        UniqueConstraint("series_id", "recurrence_id", name="uq_calendar_event_occurrence"),
        # One Save, one event: a repeated request with the same key finds the first.
        UniqueConstraint("organizer_id", "request_key", name="uq_calendar_event_request"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    organizer_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    # iCalendar's UID: stable for the life of the event, shared by a series' exceptions.
    uid: str = Field(max_length=UID_MAX)
    # Raised on every change participants must hear of (time, place, room, recurrence).
    sequence: int = Field(default=0)
    title: str = Field(max_length=TITLE_MAX)
    description: str = Field(default="", sa_type=Text)
    location: str = Field(default="", max_length=LOCATION_MAX)
    time_zone: str = Field(max_length=64)
    all_day: bool = Field(default=False)
    # The first occurrence.
    starts_at: dt.datetime = Field(sa_type=UTCDateTime)
    ends_at: dt.datetime = Field(sa_type=UTCDateTime)
    # iCalendar's RRULE value (FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10), "" for a single event.
    rrule: str = Field(default="", max_length=RRULE_MAX)
    # When the last occurrence ends (every series is bounded), so a range query needs no
    # expansion to know whether a series reaches into it.
    last_ends_at: dt.datetime = Field(sa_type=UTCDateTime)
    uses_room: bool = Field(default=False)
    # The organizer's room as it was when the event was saved with the room option.
    room_url: str = Field(default="", max_length=ROOM_URL_MAX)
    cancelled_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # An exception: the series it belongs to, and the original start (UTC) of the occurrence
    # it replaces (iCalendar's RECURRENCE-ID). A cancelled occurrence is an exception with
    # `cancelled_at` set (an EXDATE in the series' iCalendar).
    series_id: int | None = Field(
        default=None, foreign_key="calendar_event.id", ondelete="CASCADE", index=True
    )
    recurrence_id: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The create form's per-Save key (None for rows made otherwise, such as exceptions).
    request_key: str | None = Field(default=None, max_length=REQUEST_KEY_MAX)


class EventParticipant(TenantScoped, SQLModel, table=True):
    """Someone invited to an event (a series' participants are invited to every occurrence)."""

    __tablename__ = "event_participant"
    __table_args__ = (
        UniqueConstraint("event_id", "email", name="uq_event_participant_email"),
        # A person's calendar: the events they are invited to.
        Index("ix_event_participant_user", "user_id", "event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    event_id: int = Field(foreign_key="calendar_event.id", ondelete="CASCADE")
    # None for a guest invited by email address who has no account here.
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    email: str = Field(max_length=EMAIL_MAX)
    name: str = Field(default="", max_length=NAME_MAX)
    partstat: str = Field(default=NEEDS_ACTION, max_length=16)
    responded_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # This participant's own link into the organizer's room, so each click is theirs.
    join_token: str = Field(max_length=64, unique=True)


class EventReminder(TenantScoped, SQLModel, table=True):
    __tablename__ = "event_reminder"
    __table_args__ = (
        UniqueConstraint("event_id", "minutes_before", name="uq_event_reminder_minutes"),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    event_id: int = Field(foreign_key="calendar_event.id", ondelete="CASCADE")
    minutes_before: int


class ReminderDelivery(TenantScoped, SQLModel, table=True):
    """A reminder sent for one occurrence: the unique row two workers race for, so it goes once."""

    __tablename__ = "reminder_delivery"
    __table_args__ = (
        UniqueConstraint(
            "event_id", "occurrence_start", "minutes_before", name="uq_reminder_delivery"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    event_id: int = Field(foreign_key="calendar_event.id", ondelete="CASCADE")
    occurrence_start: dt.datetime = Field(sa_type=UTCDateTime)
    minutes_before: int
    sent_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EventJoin(TenantScoped, SQLModel, table=True):
    """One click on "Join room" or "Start meeting": a log entry, like Meet Now's joins."""

    __tablename__ = "event_join"
    __table_args__ = (Index("ix_event_join_event", "event_id", "occurrence_start"),)

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    event_id: int = Field(foreign_key="calendar_event.id", ondelete="CASCADE")
    # None when the organizer started the meeting.
    participant_id: int | None = Field(
        default=None, foreign_key="event_participant.id", ondelete="CASCADE"
    )
    # Who was signed in when the link was used, if anyone (links get forwarded).
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    occurrence_start: dt.datetime = Field(sa_type=UTCDateTime)
    joined_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CalendarFeed(TenantScoped, SQLModel, table=True):
    """A person's secret feed address; resetting it replaces the token and the old one is gone."""

    __tablename__ = "calendar_feed"

    id: int | None = Field(default=None, primary_key=True)
    company_id: int = Field(foreign_key="company.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", unique=True)
    token: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
