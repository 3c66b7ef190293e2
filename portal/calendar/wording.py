"""How an occurrence's time is said: on the portal's pages, in its emails and notifications.

An all-day occurrence is dates of its own zone wherever it is read, as calendars show it; a
timed one is read on the clock of the reader's zone.
"""

from __future__ import annotations

import datetime as dt

from portal.calendar.models import CalendarEvent
from portal.calendar.recurrence import Occurrence, wall_clock

_DAY = dt.timedelta(days=1)


def full_date(day: dt.date) -> str:
    """Monday 7 December 2026."""
    return f"{day:%A} {day.day} {day:%B} {day.year}"


def short_date(day: dt.date) -> str:
    """Mon 7 Dec 2026."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def clock(moment: dt.datetime) -> str:
    """09:30."""
    return f"{moment:%H:%M}"


def all_day_dates(occurrence: Occurrence) -> tuple[dt.date, dt.date]:
    """The first and last date an all-day occurrence covers, in its own zone (end exclusive)."""
    own = occurrence.event.time_zone
    first = wall_clock(occurrence.start, own).date()
    return first, max(first, wall_clock(occurrence.end, own).date() - _DAY)


def as_occurrence(event: CalendarEvent) -> Occurrence:
    """An event row's own time (a series' first occurrence) as an occurrence, to be said."""
    return Occurrence(event, event, event.starts_at, event.ends_at, event.recurrence_id)


def when(occurrence: Occurrence, zone_name: str, *, email: bool = False) -> str:
    """The occurrence's time as someone in `zone_name` reads it.

    `email` says it short and names the zone: a message is read away from the portal (and
    forwarded), where nothing else says which zone its times are in; the subject is short too.
    """
    day = short_date if email else full_date
    if occurrence.all_day:
        first, last = all_day_dates(occurrence)
        dates = day(first) if last == first else f"{day(first)} – {day(last)}"
        return f"{dates} (all day)" if email else f"{dates}, all day"
    start = wall_clock(occurrence.start, zone_name)
    end = wall_clock(occurrence.end, zone_name)
    if start.date() == end.date():
        dash = "–" if email else " – "
        said = f"{day(start.date())}, {clock(start)}{dash}{clock(end)}"
    else:
        said = f"{day(start.date())}, {clock(start)} – {day(end.date())}, {clock(end)}"
    return f"{said} ({zone_name})" if email else said
