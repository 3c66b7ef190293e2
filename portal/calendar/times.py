"""The event form's dates, times and repeat rule, read into what is stored (UTC, bounded RRULE).

A wall-clock time is read in the event's zone. On a daylight-saving day a time may not exist
(clocks go forward) or exist twice (clocks go back): the form takes the instant after the gap,
or the first of the two, and says so in a note rather than refusing what the person typed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from portal.calendar.recurrence import (
    MAX_OCCURRENCES,
    MAX_SPAN,
    series_starts,
    unsaved_series,
    wall_clock,
)
from portal.forms import FormErrors
from portal.timezones import is_time_zone, zone

# ASCII digits only: Python's int() and \d also take "٣", which no one types as a date.
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_COUNT = re.compile(r"[0-9]{1,9}")
# Years a form may name: enough for any meeting, and far from datetime's own limits.
FIRST_YEAR = 1970
LAST_YEAR = 2999

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
REPEATS = ("", "daily", "weekly", "monthly_date", "monthly_weekday")
ENDS = ("never", "on", "after")
CAP_NOTE = f"a series is limited to 2 years or {MAX_OCCURRENCES} occurrences"

Read = TypeVar("Read")


def day_text(day: dt.date) -> str:
    """A date as the notes say it: 29 Mar 2026."""
    return f"{day.day} {day:%b %Y}"


def parse_date(raw: str, field_name: str, label: str = "date") -> dt.date:
    """A form's YYYY-MM-DD; FormErrors on `field_name` for anything else or a day that is not."""
    text = raw.strip()
    if not text:
        raise FormErrors({field_name: f"Enter the {label}."})
    match = _DATE.fullmatch(text)
    if match is None:
        raise FormErrors({field_name: f"Enter the {label} as YYYY-MM-DD."})
    year, month, day = (int(part) for part in match.groups())
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise FormErrors({field_name: f"Pick a {label} between {FIRST_YEAR} and {LAST_YEAR}."})
    try:
        return dt.date(year, month, day)
    except ValueError:
        if 1 <= month <= 12 and 1 <= day <= 31:
            month_name = dt.date(year, month, 1).strftime("%B")
            raise FormErrors({field_name: f"There is no {day} {month_name} {year}."}) from None
        raise FormErrors({field_name: f"Enter the {label} as YYYY-MM-DD."}) from None


def parse_time(raw: str, field_name: str, label: str = "time") -> dt.time:
    """A form's HH:MM (24-hour clock)."""
    text = raw.strip()
    if not text:
        raise FormErrors({field_name: f"Enter the {label}."})
    match = _TIME.fullmatch(text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise FormErrors({field_name: f"Enter the {label} as HH:MM, from 00:00 to 23:59."})
    return dt.time(int(match[1]), int(match[2]))


def parse_zone(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise FormErrors({"time_zone": "Pick a time zone."})
    if not is_time_zone(name):
        message = f"“{name[:64]}” is not a time zone we know; pick one from the list."
        raise FormErrors({"time_zone": message})
    return name


def _offset(moment: dt.datetime) -> str:
    offset = moment.utcoffset() or dt.timedelta()
    sign = "-" if offset < dt.timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def instant(day: dt.date, time: dt.time, time_zone: str) -> tuple[dt.datetime, str | None]:
    """The UTC instant of a wall-clock time in `time_zone`, and a note when the day's
    daylight-saving change made the time missing (the instant after the gap is taken) or
    ambiguous (the first one is taken)."""
    tz = zone(time_zone)
    naive = dt.datetime.combine(day, time)
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    moment = first.astimezone(dt.UTC)
    if first.utcoffset() == second.utcoffset():
        return moment, None
    shown = f"{time:%H:%M}"
    if moment.astimezone(tz).replace(tzinfo=None) != naive:
        # zoneinfo reads a missing time with the offset from before the change, which lands
        # as far after the gap as the time was into it: 02:30 becomes 03:30.
        taken = moment.astimezone(tz)
        return moment, (
            f"{shown} does not exist on {day_text(day)} in {time_zone} (clocks go forward); "
            f"the event starts at {taken:%H:%M}."
        )
    return moment, (
        f"{shown} happens twice on {day_text(day)} in {time_zone} (clocks go back); the event "
        f"starts at the first {shown} ({_offset(first)}), not the second ({_offset(second)})."
    )


@dataclass
class EventTimes:
    """When an event is, as stored: UTC, the end exclusive; notes on DST choices."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    time_zone: str
    all_day: bool
    notes: list[str] = field(default_factory=list)


def collect(errors: dict[str, str], read: Callable[[], Read]) -> Read | None:
    """`read()`, or None with its messages added to `errors`: a form reports every bad field."""
    try:
        return read()
    except FormErrors as error:
        errors.update(error.errors)
        return None


def event_times(
    *,
    start_date: str,
    start_time: str,
    end_date: str,
    end_time: str,
    time_zone: str,
    all_day: bool,
) -> EventTimes:
    """The form's start and end read in its zone; FormErrors naming each bad field. An empty
    end date is the start's day, as most meetings are."""
    errors: dict[str, str] = {}
    tz = collect(errors, lambda: parse_zone(time_zone))
    start_day = collect(errors, lambda: parse_date(start_date, "start_date", "start date"))
    end_day = start_day
    if end_date.strip():
        end_day = collect(errors, lambda: parse_date(end_date, "end_date", "end date"))
    start_clock: dt.time | None = dt.time()
    end_clock: dt.time | None = dt.time()
    if not all_day:
        start_clock = collect(errors, lambda: parse_time(start_time, "start_time", "start time"))
        end_clock = collect(errors, lambda: parse_time(end_time, "end_time", "end time"))
    if errors or tz is None or start_day is None or end_day is None:
        raise FormErrors(errors)
    if all_day:
        return _all_day(start_day, end_day, tz)
    if start_clock is None or end_clock is None:
        raise FormErrors(errors)
    return _timed(
        dt.datetime.combine(start_day, start_clock), dt.datetime.combine(end_day, end_clock), tz
    )


def _all_day(start_day: dt.date, end_day: dt.date, tz: str) -> EventTimes:
    if end_day < start_day:
        raise FormErrors({"end_date": "The event must end after it starts."})
    # The form's end date is the last day of the event; storage ends at the next midnight.
    starts_at, _ = instant(start_day, dt.time(), tz)
    ends_at, _ = instant(end_day + dt.timedelta(days=1), dt.time(), tz)
    return EventTimes(starts_at, ends_at, tz, True)


def _timed(start: dt.datetime, end: dt.datetime, tz: str) -> EventTimes:
    """Wall-clock start and end in `tz`, with a note for each the daylight-saving change moved."""
    starts_at, start_note = instant(start.date(), start.time(), tz)
    ends_at, end_note = instant(end.date(), end.time(), tz)
    if ends_at <= starts_at:
        raise FormErrors({"end_time": "The event must end after it starts."})
    notes = [note for note in (start_note, end_note) if note]
    return EventTimes(starts_at, ends_at, tz, False, notes)


@dataclass
class Repeat:
    """What the form says about repeating."""

    repeat: str
    weekdays: list[str]
    ends: str
    until: str
    count: str


@dataclass
class RepeatRule:
    rrule: str
    # When the rule leaves out the start the form gave (weekly on other days than the
    # start's), the series starts at its first occurrence instead.
    times: EventTimes
    notes: list[str] = field(default_factory=list)


def _frequency(repeat: Repeat, local_start: dt.datetime) -> str:
    if repeat.repeat == "daily":
        return "FREQ=DAILY"
    if repeat.repeat == "weekly":
        if any(day not in WEEKDAYS for day in repeat.weekdays):
            raise FormErrors({"weekdays": "Pick days of the week from the list."})
        days = [day for day in WEEKDAYS if day in repeat.weekdays]
        return f"FREQ=WEEKLY;BYDAY={','.join(days or [WEEKDAYS[local_start.weekday()]])}"
    if repeat.repeat == "monthly_date":
        return f"FREQ=MONTHLY;BYMONTHDAY={local_start.day}"
    if repeat.repeat == "monthly_weekday":
        nth = (local_start.day - 1) // 7 + 1
        # A fifth weekday is the month's last: most months have no fifth.
        return f"FREQ=MONTHLY;BYDAY={-1 if nth == 5 else nth}{WEEKDAYS[local_start.weekday()]}"
    raise FormErrors({"repeat": "Pick how the event repeats from the list."})


def until_value(last_start: dt.datetime, time_zone: str, *, all_day: bool) -> str:
    """RRULE's UNTIL: in UTC for a timed series, a DATE for an all-day one."""
    if all_day:
        return f"{wall_clock(last_start, time_zone):%Y%m%d}"
    return f"{last_start.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


def _bound(repeat: Repeat, times: EventTimes) -> tuple[str, int | None]:
    """The RRULE's own end ("" when the cap must decide it) and the count asked for, if any."""
    if repeat.ends == "after":
        if not _COUNT.fullmatch(repeat.count.strip()) or int(repeat.count) < 1:
            raise FormErrors({"count": "Enter how many times the event happens, 1 or more."})
        count = min(int(repeat.count), MAX_OCCURRENCES + 1)
        return f";COUNT={count}", count
    if repeat.ends == "on":
        until = parse_date(repeat.until, "until", "last date")
        if until < wall_clock(times.starts_at, times.time_zone).date():
            raise FormErrors({"until": "The repeats must end on or after the first day."})
        last_moment, _ = instant(until, dt.time(23, 59, 59), times.time_zone)
        if last_moment > times.starts_at + MAX_SPAN:
            return "", None
        return ";UNTIL=" + until_value(last_moment, times.time_zone, all_day=times.all_day), None
    if repeat.ends == "never":
        return "", None
    raise FormErrors({"ends": "Pick when the repeats end."})


def _moved(times: EventTimes, first: dt.datetime) -> EventTimes:
    """`times` moved to start at `first`, lasting as long on the wall clock."""
    start = wall_clock(times.starts_at, times.time_zone)
    length = wall_clock(times.ends_at, times.time_zone) - start
    local_first = wall_clock(first, times.time_zone)
    end = local_first + length
    ends_at, _ = instant(end.date(), end.time(), times.time_zone)
    return replace(times, starts_at=first, ends_at=ends_at)


def repeat_rule(repeat: Repeat, times: EventTimes) -> RepeatRule:
    """The stored RRULE for the form's repeat choices: always bounded, at most MAX_OCCURRENCES
    occurrences within MAX_SPAN; a note says when the cap decided where it ends."""
    if not repeat.repeat:
        return RepeatRule("", times)
    base = _frequency(repeat, wall_clock(times.starts_at, times.time_zone))
    bound, count = _bound(repeat, times)
    starts = series_starts(
        unsaved_series(
            base + bound, times.starts_at, times.ends_at, times.time_zone, times.all_day
        ),
        MAX_OCCURRENCES + 1,
    )
    if not starts:
        raise FormErrors({"repeat": "These repeat choices leave no occurrence."})
    notes: list[str] = []
    # No end, an end past MAX_SPAN, or more occurrences than the cap (or MAX_SPAN) allows.
    if not bound or len(starts) > MAX_OCCURRENCES or (count and len(starts) < count):
        starts = starts[:MAX_OCCURRENCES]
        bound = ";UNTIL=" + until_value(starts[-1], times.time_zone, all_day=times.all_day)
        last_day = wall_clock(starts[-1], times.time_zone).date()
        notes.append(f"Repeats until {day_text(last_day)}: {CAP_NOTE}.")
    if starts[0] != times.starts_at:
        first = wall_clock(starts[0], times.time_zone)
        notes.append(
            f"The first occurrence is on {first:%a} {day_text(first.date())}, "
            "the first of the days picked."
        )
        times = _moved(times, starts[0])
    return RepeatRule(base + bound, times, notes)
