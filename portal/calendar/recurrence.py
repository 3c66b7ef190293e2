"""Occurrences: a single event, or a series (RRULE) with its changed and cancelled occurrences.

A timed series repeats on the wall clock of its time zone (9:00 stays 9:00 across a
daylight-saving change), so it is expanded from an aware start in that zone: Python's
arithmetic on one tzinfo is wall-clock arithmetic. An all-day series is dates, expanded
naive. Every series is bounded (MAX_OCCURRENCES, MAX_SPAN), so expanding one always ends.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass

from dateutil.rrule import rrule, rrulestr

from portal.calendar.models import CalendarEvent
from portal.timezones import zone

MAX_OCCURRENCES = 500
MAX_SPAN = dt.timedelta(days=731)
# An occurrence key is a UTC epoch second in ASCII digits (int() would also take "٣", " 3" or
# "+3": other URLs for one occurrence); events live between 1970 and 2999.
_KEY = re.compile(r"[0-9]{1,11}")
_LAST_KEY = int(dt.datetime(3000, 1, 1, tzinfo=dt.UTC).timestamp())


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
        return occurrence_key(self.recurrence_id or self.start)


def occurrence_key(original_start: dt.datetime) -> str:
    """The key of the occurrence whose original start is `original_start`."""
    return str(int(original_start.timestamp()))


def parse_key(raw: str) -> dt.datetime | None:
    """The original start an occurrence key (`Occurrence.key`) names; None if it names none."""
    if not _KEY.fullmatch(raw) or int(raw) >= _LAST_KEY:
        return None
    return dt.datetime.fromtimestamp(int(raw), dt.UTC)


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


def last_end(event: CalendarEvent) -> dt.datetime:
    """When the series' last occurrence ends; BadRecurrence when it has none."""
    starts = series_starts(event, MAX_OCCURRENCES)
    if not starts:
        raise BadRecurrence("the repeat rule leaves no occurrence")
    return _occurrence_end(event, starts[-1])


def _occurrence_end(
    event: CalendarEvent, start: dt.datetime, duration: dt.timedelta | None = None
) -> dt.datetime:
    """When the occurrence starting at `start` ends: as long on the wall clock as the first."""
    if not event.rrule or start == event.starts_at:
        return event.ends_at + (start - event.starts_at)
    local = start.astimezone(zone(event.time_zone))
    duration = _wall_duration(event) if duration is None else duration
    if event.all_day:
        return _to_utc(local.replace(tzinfo=None) + duration, event)
    return (local + duration).astimezone(dt.UTC)


def unsaved_series(
    rrule: str, starts_at: dt.datetime, ends_at: dt.datetime, time_zone: str, all_day: bool
) -> CalendarEvent:
    """A series that is stored nowhere, made only to expand its rule."""
    return CalendarEvent(
        company_id=0,
        organizer_id=0,
        uid="",
        title="",
        rrule=rrule,
        starts_at=starts_at,
        ends_at=ends_at,
        last_ends_at=ends_at,
        time_zone=time_zone,
        all_day=all_day,
    )


@functools.lru_cache(maxsize=1024)
def _expanded(
    rrule: str, starts_at: dt.datetime, ends_at: dt.datetime, time_zone: str, all_day: bool
) -> tuple[tuple[dt.datetime, ...], tuple[dt.datetime, ...]]:
    """A series' starts and ends (UTC), expanded once per version of what defines them.

    Reading an RRULE and walking it costs about 0.2 ms a series, on every calendar page, for
    every series on it; a series is at most MAX_OCCURRENCES long, so keeping it costs little.
    """
    event = unsaved_series(rrule, starts_at, ends_at, time_zone, all_day)
    starts = tuple(series_starts(event, MAX_OCCURRENCES))
    duration = _wall_duration(event)
    return starts, tuple(_occurrence_end(event, start, duration) for start in starts)


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
    starts, ends = _expanded(
        series.rrule, series.starts_at, series.ends_at, series.time_zone, series.all_day
    )
    earliest = window_start - (series.ends_at - series.starts_at) - dt.timedelta(days=1)
    for index in range(bisect_left(starts, earliest), bisect_left(starts, window_end)):
        start, end = starts[index], ends[index]
        if start not in changed and end > window_start:
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
