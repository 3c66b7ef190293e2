"""VTIMEZONEs written as yearly RRULEs derived from the zone database, never as RDATE lists.

Outlook misreads RDATE-style VTIMEZONEs (what icalendar's `add_missing_timezones()` writes) and
shifts the hour, so each zone's real transitions are read from zoneinfo and, where they repeat
on the nth (or last) weekday of a month, written as one DAYLIGHT and one STANDARD RRULE.
"""

from __future__ import annotations

import calendar as gregorian
import datetime as dt
import functools
from dataclasses import dataclass

import icalendar
from icalendar.timezone import tzid_from_tzinfo

from portal.timezones import zone

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY = 86_400


@functools.lru_cache(maxsize=512)
def tzid(zone_name: str) -> str | None:
    """The TZID icalendar writes for the zone; None for one it writes as UTC (`Z` times)."""
    tz = zone(zone_name)
    found = tzid_from_tzinfo(tz) or tz.key
    return None if found == "UTC" else found


def vtimezone(zone_name: str, first_year: int, last_year: int) -> icalendar.Timezone | None:
    """The zone's VTIMEZONE, right for times from `first_year` through `last_year`; None for
    a zone whose times are written in UTC."""
    key = tzid(zone_name)
    if key is None:
        return None
    timezone = icalendar.Timezone()
    timezone.add("tzid", key)
    # From the year before: a January time needs the previous autumn's onset.
    for observance in _observances(key, first_year - 1, last_year):
        part = icalendar.TimezoneDaylight() if observance.daylight else icalendar.TimezoneStandard()
        part.add("dtstart", observance.start)
        part.add("tzoffsetfrom", observance.offset_from)
        part.add("tzoffsetto", observance.offset_to)
        part.add("tzname", observance.name)
        if observance.rule:
            part.add("rrule", icalendar.vRecur.from_ical(observance.rule))
        timezone.add_component(part)
    return timezone


class Zones:
    """The zones a calendar's times are written in, and the years each VTIMEZONE must cover."""

    def __init__(self) -> None:
        self.years: dict[str, tuple[int, int]] = {}
        # Zone name -> the zone its times are written in (UTC for those written as UTC).
        self._clocks: dict[str, dt.tzinfo] = {}

    def local(self, moment: dt.datetime, zone_name: str) -> dt.datetime:
        """`moment` on the zone's wall clock (in UTC when its times are written in UTC)."""
        clock = self._clocks.get(zone_name)
        if clock is None:
            clock = self._clocks[zone_name] = zone(zone_name) if tzid(zone_name) else dt.UTC
        local = moment.astimezone(clock)
        if clock is not dt.UTC:
            year, known = local.year, self.years.get(zone_name)
            if known is None:
                self.years[zone_name] = (year, year)
            elif not known[0] <= year <= known[1]:
                self.years[zone_name] = (min(known[0], year), max(known[1], year))
        return local

    def timezones(self) -> list[icalendar.Timezone]:
        """A VTIMEZONE for each zone used, by name."""
        return [
            timezone
            for name, (first, last) in sorted(self.years.items())
            if (timezone := vtimezone(name, first, last)) is not None
        ]


@dataclass(frozen=True, slots=True)
class _Observance:
    """A STANDARD or DAYLIGHT sub-component: an onset, possibly repeating yearly."""

    daylight: bool
    # The onset on the wall clock in force before it (RFC 5545: local time, TZOFFSETFROM).
    start: dt.datetime
    offset_from: dt.timedelta
    offset_to: dt.timedelta
    name: str
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class _Transition:
    """A change of a zone's UTC offset."""

    at: int  # UTC epoch seconds of the first second of the new offset
    offset_from: dt.timedelta
    offset_to: dt.timedelta
    name: str
    dst: dt.timedelta

    @property
    def local(self) -> dt.datetime:
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=self.at) + self.offset_from

    def observance(self, daylight: bool, rule: str | None = None) -> _Observance:
        return _Observance(daylight, self.local, self.offset_from, self.offset_to, self.name, rule)


@functools.lru_cache(maxsize=2048)
def _observances(key: str, first_year: int, last_year: int) -> tuple[_Observance, ...]:
    """The zone's observances for those years: yearly rules when they hold, else each onset."""
    tz = zone(key)
    changes = _transitions(key, first_year, last_year)
    rises = [change for change in changes if change.offset_to > change.offset_from]
    falls = [change for change in changes if change.offset_to < change.offset_from]
    years = last_year - first_year + 1
    if changes and len(rises) == len(falls) == years:
        rise_rule, fall_rule = _yearly_rule(rises), _yearly_rule(falls)
        if rise_rule and fall_rule:
            return (rises[0].observance(True, rise_rule), falls[0].observance(False, fall_rule))
    # No rule fits (no DST, or the zone changed its rules): the offset at the start, then
    # each onset once (a DTSTART without RRULE), never an RDATE list.
    opening = _at(tz, _epoch(first_year))
    return tuple(state.observance(state.dst > dt.timedelta(0)) for state in [opening, *changes])


def _epoch(year: int) -> int:
    return int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp())


def _at(tz: dt.tzinfo, moment: int) -> _Transition:
    """The zone's state at UTC second `moment`, as a change from nothing."""
    local = dt.datetime.fromtimestamp(moment, tz)
    offset = local.utcoffset() or dt.timedelta(0)
    return _Transition(moment, offset, offset, local.tzname() or "", local.dst() or dt.timedelta(0))


def _transitions(key: str, first_year: int, last_year: int) -> list[_Transition]:
    """The zone's offset changes in those years."""
    return [change for year in range(first_year, last_year + 1) for change in _changes(key, year)]


@functools.lru_cache(maxsize=4096)
def _changes(key: str, year: int) -> tuple[_Transition, ...]:
    """The zone's offset changes in `year` (sampled daily, then pinned to the second)."""
    tz = zone(key)
    found: list[_Transition] = []
    start = _epoch(year)
    before = _offset(tz, start)
    for moment in range(start, _epoch(year + 1), _DAY):
        after = _offset(tz, moment + _DAY)
        if after != before:
            found.append(_pinned(tz, moment, moment + _DAY, before))
        before = after
    return tuple(found)


def _offset(tz: dt.tzinfo, moment: int) -> dt.timedelta:
    return dt.datetime.fromtimestamp(moment, tz).utcoffset() or dt.timedelta(0)


def _pinned(tz: dt.tzinfo, low: int, high: int, old: dt.timedelta) -> _Transition:
    """The change between UTC seconds `low` (offset `old`) and `high` (a new offset)."""
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(tz, middle) == old:
            low = middle
        else:
            high = middle
    new = _at(tz, high)
    return _Transition(high, old, new.offset_to, new.name, new.dst)


def _yearly_rule(changes: list[_Transition]) -> str | None:
    """An RRULE giving exactly these onsets, one a year on the nth weekday of a month, or None."""
    onsets = [change.local for change in changes]
    if not all(_same_onset(changes[0], change, index) for index, change in enumerate(changes)):
        return None
    first = onsets[0]
    prefix = f"FREQ=YEARLY;BYMONTH={first.month};BYDAY="
    weekday = _WEEKDAYS[first.weekday()]
    if all(onset.day + 7 > gregorian.monthrange(onset.year, onset.month)[1] for onset in onsets):
        return f"{prefix}-1{weekday}"
    nths = {(onset.day - 1) // 7 + 1 for onset in onsets}
    if len(nths) == 1:
        return f"{prefix}{nths.pop()}{weekday}"
    return None


def _same_onset(first: _Transition, change: _Transition, years_later: int) -> bool:
    """Whether `change` repeats `first` that many years on: same month, weekday, time, offsets."""
    one, other = first.local, change.local
    return (
        other.year == one.year + years_later
        and (other.month, other.weekday(), other.time()) == (one.month, one.weekday(), one.time())
        and (change.offset_from, change.offset_to, change.name)
        == (first.offset_from, first.offset_to, first.name)
    )
