"""iCalendar for invitations (iTIP REQUEST and CANCEL) and for personal feeds.

Mail clients are strict: the UID never changes (a series' exceptions share it), SEQUENCE
rises with every change, and every zone used gets an RRULE-style VTIMEZONE (vtimezone.py).
Times in UTC (or a zone icalendar knows as UTC) are written as `Z` times with no VTIMEZONE.

When an event uses the organizer's room, the recipient's join link leads LOCATION (any typed
location follows after " / "), is the URL, and ends the description as a "Join: <url>" line.

Both kinds are drafted alike (`_Draft` -> `Vevent`); invitations are then built by icalendar,
feeds, thousands of VEVENTs long, by contentlines.py's writer (icalendar would take seconds).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, Literal, NamedTuple

import icalendar

from portal.accounts.models import User
from portal.calendar.contentlines import CONTROLS, Address, Vevent, write
from portal.calendar.models import CalendarEvent, EventParticipant
from portal.calendar.vtimezone import Zones
from portal.db import utcnow
from portal.timezones import zone

PRODID = "-//Portal//Calendar//EN"
# Subscribed clients poll a feed this often when they honour the hint.
FEED_REFRESH = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One series (or single event) of a feed, with what its VEVENTs need."""

    series: CalendarEvent
    exceptions: Sequence[CalendarEvent]
    organizer: User
    participants: Sequence[EventParticipant]
    # The feed owner's own join link, for events that use the organizer's room.
    join_url: str | None = None


def parse(text: str) -> icalendar.Calendar:
    """The VCALENDAR in `text`; ValueError when it is not one."""
    calendar = icalendar.Calendar.from_ical(text)
    if not isinstance(calendar, icalendar.Calendar):
        raise ValueError("expected one VCALENDAR")
    return calendar


def event_calendar(
    method: Literal["REQUEST", "CANCEL"],
    series: CalendarEvent,
    exceptions: Sequence[CalendarEvent],
    organizer: User,
    participants: Sequence[EventParticipant],
    *,
    join_url: str | None = None,
    only: CalendarEvent | None = None,
    dtstamp: dt.datetime | None = None,
) -> str:
    """The iTIP calendar of an invitation (REQUEST) or a cancellation (CANCEL) of `series`."""
    zones = Zones()
    draft = _Draft(zones, _people(organizer, participants), dtstamp or utcnow(), join_url)
    main = _row(series)
    if method == "REQUEST":
        events = draft.series_events(main, list(map(_row, exceptions)))
    elif only is None:
        events = [draft.vevent(main, main, status="CANCELLED")]
    elif only.recurrence_id is None:
        # Without RECURRENCE-ID the UID alone would cancel every occurrence.
        raise ValueError("`only` must be an exception of the series")
    else:
        events = [draft.vevent(_row(only), main, status="CANCELLED")]
    calendar = _calendar(method=method)
    for component in [*zones.timezones(), *map(_component, events)]:
        calendar.add_component(component)
    return calendar.to_ical().decode()


def feed_calendar(entries: Sequence[FeedEntry], *, name: str) -> str:
    """A subscription calendar (no METHOD) of the entries' series that are not cancelled."""
    zones = Zones()
    events: list[str] = []
    for entry in entries:
        series = _row(entry.series)
        if series.cancelled_at is None:
            # A feed's DTSTAMP is when the event last changed (RFC 5545, METHOD-less objects).
            people = _people(entry.organizer, entry.participants)
            draft = _Draft(zones, people, None, entry.join_url)
            events += map(write, draft.series_events(series, list(map(_row, entry.exceptions))))
    calendar = _calendar(method=None)
    calendar.add("name", name)
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", FEED_REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", icalendar.vDuration(FEED_REFRESH))
    for timezone in zones.timezones():
        calendar.add_component(timezone)
    head, end = calendar.to_ical().decode().rsplit("END:VCALENDAR", 1)
    return "".join([head, *events, "END:VCALENDAR", end])


def _calendar(*, method: str | None) -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method is not None:
        calendar.add("method", method)
    return calendar


class _Fields:
    """Reads a fixed set of a row's attributes as a tuple."""

    def __init__(self, *names: str) -> None:
        self._loaded = itemgetter(*names)
        self._read = attrgetter(*names)

    def __call__(self, row: object) -> Any:
        # SQLAlchemy's instrumented reads would be a large share of a feed's time; loaded values
        # sit in the instance dict. An unloaded (expired) one is read the normal way.
        try:
            return self._loaded(vars(row))
        except KeyError:
            return self._read(row)


class _Row(NamedTuple):
    """What a VEVENT is built from, of a series or an exception row."""

    uid: str
    sequence: int
    title: str
    description: str
    location: str
    time_zone: str
    all_day: bool
    starts_at: dt.datetime
    ends_at: dt.datetime
    rrule: str
    last_ends_at: dt.datetime
    uses_room: bool
    cancelled_at: dt.datetime | None
    updated_at: dt.datetime
    recurrence_id: dt.datetime | None


_event_fields = _Fields(*_Row._fields)
_person_fields = _Fields("email", "name", "partstat")


def _row(event: CalendarEvent) -> _Row:
    return _Row._make(_event_fields(event))


def _people(
    organizer: User, participants: Sequence[EventParticipant]
) -> tuple[Address, tuple[Address, ...]]:
    """The ORGANIZER and the ATTENDEEs, shared by all of a calendar's VEVENTs."""
    attendees = tuple([_attendee(*_person_fields(person)) for person in participants])
    return _organizer(organizer.email, organizer.display_name), attendees


# The same people are on event after event of a feed: each is made once.
@functools.lru_cache(maxsize=4096)
def _organizer(email: str, name: str) -> Address:
    return Address(f"mailto:{email}", (("CN", _display_name(name)),))


@functools.lru_cache(maxsize=4096)
def _attendee(email: str, name: str, partstat: str) -> Address:
    return Address(
        f"mailto:{email}",
        (
            ("CN", _display_name(name or email)),
            ("CUTYPE", "INDIVIDUAL"),
            ("PARTSTAT", partstat),
            ("ROLE", "REQ-PARTICIPANT"),
            ("RSVP", "TRUE"),
        ),
    )


def _display_name(name: str) -> str:
    """A name fit for CN: icalendar writes a double quote as ^', line breaks break lines, and
    it reads a backslash before the colon that ends an unquoted CN as an escape."""
    return " ".join(CONTROLS.sub("", name).replace('"', "").replace("\\", "").split())


@dataclass(frozen=True, slots=True)
class _Draft:
    """The VEVENTs of one calendar, noting the zones their times use."""

    zones: Zones
    people: tuple[Address, tuple[Address, ...]]
    # None: each row's own `updated_at` (feeds).
    dtstamp: dt.datetime | None
    join_url: str | None

    def series_events(self, series: _Row, exceptions: Sequence[_Row]) -> list[Vevent]:
        """The series' VEVENT (RRULE, EXDATE) and one VEVENT per changed occurrence."""
        if series.rrule and not series.all_day:
            # The series repeats until its last end: its VTIMEZONE must reach that far.
            self.zones.local(series.last_ends_at, series.time_zone)
        cancelled = [e.recurrence_id for e in exceptions if e.cancelled_at and e.recurrence_id]
        excluded = [self.moment(series, moment) for moment in sorted(cancelled)]
        main = self.vevent(series, series, status="CONFIRMED", rule=series.rrule, excluded=excluded)
        changed = [e for e in exceptions if e.cancelled_at is None and e.recurrence_id]
        changed.sort(key=lambda exception: exception.recurrence_id or exception.starts_at)
        return [main, *(self.vevent(e, series, status="CONFIRMED") for e in changed)]

    def vevent(
        self,
        row: _Row,
        series: _Row,
        *,
        status: str,
        rule: str = "",
        excluded: list[dt.date] | None = None,
    ) -> Vevent:
        """The VEVENT of `row` (the series, or an exception of it) with the series' UID."""
        # Typed like the series' DTSTART, as RFC 5545 requires (EXDATE too).
        original = row.recurrence_id if row is not series else None
        location, description, url = row.location, row.description, ""
        if row.uses_room and self.join_url:
            url, join = self.join_url, f"Join: {self.join_url}"
            location = f"{url} / {location}" if location else url
            description = f"{description}\n\n{join}" if description else join
        organizer, attendees = self.people
        return Vevent(  # by position: a feed makes thousands
            row.title,
            self.moment(row, row.starts_at),
            self.moment(row, row.ends_at),
            (self.dtstamp or row.updated_at).astimezone(dt.UTC),
            series.uid,
            None if original is None else self.moment(series, original),
            row.sequence,
            rule,
            excluded or [],
            description,
            location,
            url,
            status,
            attendees,
            organizer,
        )

    def moment(self, row: _Row, moment: dt.datetime) -> dt.date:
        """A stored time as `row` writes it: a date when all-day, else on its zone's clock."""
        if row.all_day:
            return moment.astimezone(zone(row.time_zone)).date()
        return self.zones.local(moment, row.time_zone)


def _component(event: Vevent) -> icalendar.Event:
    """The VEVENT built by icalendar (invitations), control characters left out of its text."""
    component = icalendar.Event()
    for name, value in [
        ("summary", _clean(event.summary)),
        ("dtstart", event.start),
        ("dtend", event.end),
        ("dtstamp", event.stamp),
        ("uid", _clean(event.uid)),
        ("recurrence-id", event.recurrence_id),
        ("sequence", event.sequence),
        ("rrule", event.rule and icalendar.vRecur.from_ical(event.rule)),
        ("exdate", event.excluded),
        *[("attendee", _address(person)) for person in event.attendees],
        ("description", _clean(event.description)),
        ("location", _clean(event.location)),
        ("organizer", _address(event.organizer)),
        ("status", event.status),
        ("url", event.url),
    ]:
        # SUMMARY is written even when empty; the optional ones only when they hold something.
        if name == "summary" or value not in (None, "", []):
            component.add(name, value)
    return component


def _clean(text: str) -> str:
    return CONTROLS.sub("", text)


def _address(address: Address) -> icalendar.vCalAddress:
    return icalendar.vCalAddress(address.uri, params=dict(address.params))
