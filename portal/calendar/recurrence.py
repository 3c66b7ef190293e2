"""Occurrences: a single event, or a series (RRULE) with its changed and cancelled occurrences.

A timed series repeats on the wall clock of its time zone (9:00 stays 9:00 across a
daylight-saving change), so it is expanded from an aware start in that zone: Python's
arithmetic on one tzinfo is wall-clock arithmetic. An all-day series is dates, expanded
naive. Every series is bounded (MAX_OCCURRENCES, MAX_SPAN), so expanding one always ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from dateutil.rrule import rrule, rrulestr

from portal.calendar.models import CalendarEvent
from portal.timezones import zone

MAX_OCCURRENCES = 500
MAX_SPAN = dt.timedelta(days=731)


class BadRecurrence(ValueError):
    """An RRULE that cannot be read or expands to nothing."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One time an event happens, as a calendar shows it."""

    # The row that describes this occurrence: the series, or its exception.
    event: CalendarEvent
    # The series (the event itself when it does not repeat).
    series: CalendarEvent
    start: dt.datetime
    end: dt.datetime
    # The occurrence's original start (UTC) within its series; None for a single event.
    recurrence_id: dt.datetime | None

    @property
    def all_day(self) -> bool:
        return self.event.all_day

    @property
    def key(self) -> str:
        """What names this occurrence in a URL: the original start, as UTC seconds."""
        return str(int((self.recurrence_id or self.start).timestamp()))


def wall_clock(moment: dt.datetime, time_zone: str) -> dt.datetime:
    """A stored UTC time as the naive wall-clock time of `time_zone`."""
    return moment.astimezone(zone(time_zone)).replace(tzinfo=None)


def _rule(event: CalendarEvent) -> rrule:
    tz = zone(event.time_zone)
    start = wall_clock(event.starts_at, event.time_zone)
    dtstart = start if event.all_day else start.replace(tzinfo=tz)
    try:
        rule = rrulestr(event.rrule, dtstart=dtstart, forceset=False, cache=False)
    except (ValueError, TypeError, KeyError) as error:
        raise BadRecurrence(str(error)) from error
    if not isinstance(rule, rrule):
        raise BadRecurrence("one RRULE only")
    return rule


def _wall_duration(event: CalendarEvent) -> dt.timedelta:
    return wall_clock(event.ends_at, event.time_zone) - wall_clock(event.starts_at, event.time_zone)


def _to_utc(local: dt.datetime, event: CalendarEvent) -> dt.datetime:
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone(event.time_zone))
    return local.astimezone(dt.UTC)


def series_starts(event: CalendarEvent, limit: int = MAX_OCCURRENCES + 1) -> list[dt.datetime]:
    """The series' occurrence starts (UTC) in order, at most `limit` of them."""
    if not event.rrule:
        return [event.starts_at]
    starts: list[dt.datetime] = []
    horizon = event.starts_at + MAX_SPAN
    for local in _rule(event):
        start = _to_utc(local, event)
        if len(starts) >= limit or start > horizon:
            break
        starts.append(start)
    return starts


def _starts_between(
    event: CalendarEvent, after: dt.datetime, before: dt.datetime
) -> list[dt.datetime]:
    """The series' starts (UTC) in [after, before): its stored rule is always bounded."""
    rule = _rule(event)
    if event.all_day:
        bounds = (wall_clock(after, event.time_zone), wall_clock(before, event.time_zone))
    else:
        tz = zone(event.time_zone)
        bounds = (after.astimezone(tz), before.astimezone(tz))
    starts = (_to_utc(local, event) for local in rule.between(*bounds, inc=True))
    return [start for start in starts if after <= start < before]


def last_end(event: CalendarEvent) -> dt.datetime:
    """When the series' last occurrence ends; BadRecurrence when it has none."""
    starts = series_starts(event, MAX_OCCURRENCES)
    if not starts:
        raise BadRecurrence("the repeat rule leaves no occurrence")
    return _occurrence_end(event, starts[-1])


def _occurrence_end(event: CalendarEvent, start: dt.datetime) -> dt.datetime:
    if not event.rrule or start == event.starts_at:
        return event.ends_at + (start - event.starts_at)
    local = start.astimezone(zone(event.time_zone))
    if event.all_day:
        return _to_utc(local.replace(tzinfo=None) + _wall_duration(event), event)
    return (local + _wall_duration(event)).astimezone(dt.UTC)


def occurrences(
    series: CalendarEvent,
    exceptions: Iterable[CalendarEvent],
    window_start: dt.datetime,
    window_end: dt.datetime,
) -> list[Occurrence]:
    """The occurrences of `series` that overlap [window_start, window_end), in start order.

    `exceptions` are the series' changed or cancelled occurrences (rows whose series_id is
    the series' id); a changed one is shown at its own time, wherever the original was.
    """
    if series.cancelled_at is not None:
        return []
    if not series.rrule:
        if series.starts_at < window_end and series.ends_at > window_start:
            return [Occurrence(series, series, series.starts_at, series.ends_at, None)]
        return []
    changed = {e.recurrence_id: e for e in exceptions if e.recurrence_id is not None}
    found: list[Occurrence] = []
    earliest = window_start - (series.ends_at - series.starts_at) - dt.timedelta(days=1)
    for start in _starts_between(series, earliest, window_end):
        if start in changed:
            continue
        end = _occurrence_end(series, start)
        if end > window_start:
            found.append(Occurrence(series, series, start, end, start))
    for recurrence_id, exception in changed.items():
        if (
            exception.cancelled_at is None
            and exception.starts_at < window_end
            and exception.ends_at > window_start
        ):
            found.append(
                Occurrence(exception, series, exception.starts_at, exception.ends_at, recurrence_id)
            )
    found.sort(key=lambda occurrence: (occurrence.start, occurrence.end))
    return found
