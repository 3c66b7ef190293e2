"""The calendar page's layout: which days a view shows, and where each occurrence goes on them.

Plain functions over the occurrences schedule.events_between found, so the view fetches once
and the template only prints. Days are the viewer's (their time zone), except an all-day
event's, which are its own dates wherever the viewer is: a holiday on 1 May is on 1 May.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from portal.calendar.recurrence import Occurrence
from portal.calendar.wording import all_day_dates, clock, full_date
from portal.timezones import zone

VIEWS = ("month", "week", "day", "agenda")
WEEKS_SHOWN = 6
AGENDA_DAYS = 30
# A month cell lists this many occurrences; more become "+N more" (a link to the day).
CELL_LIMIT = 4
# The week and day views place timed events on quarter hours (the stylesheet's .at-N/.len-N).
SLOT_MINUTES = 15
SLOTS = 24 * 60 // SLOT_MINUTES
# Dates the page shows: every range they start stays inside what datetime and the
# databases hold, wherever the viewer is.
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2999, 12, 31)

_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Query:
    """What the page shows: a view around a day; `problem` says what in the URL was ignored."""

    view: str
    day: dt.date
    problem: str = ""


def parse_date(text: str | None) -> dt.date | None:
    """A YYYY-MM-DD date the calendar can show, or None."""
    match = _ISO_DATE.fullmatch(text or "")
    if match is None:
        return None
    try:
        day = dt.date(*map(int, match.groups()))
    except ValueError:
        return None
    return day if EARLIEST <= day <= LATEST else None


def read_query(view: str | None, date: str | None, today: dt.date) -> Query:
    """The view and day asked for; the month and today for what is missing or cannot be read."""
    problems = []
    if view and view not in VIEWS:
        problems.append("There is no such view; showing the month.")
    day = parse_date(date)
    if date and day is None:
        problems.append(f"“{date[:20]}” is not a date the calendar can show; showing today.")
    return Query(view if view in VIEWS else "month", day or today, " ".join(problems))


@dataclass(frozen=True, slots=True)
class Span:
    """The days a view shows, [first, end)."""

    first: dt.date
    end: dt.date

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=n) for n in range((self.end - self.first).days)]

    def bounds(self, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
        """The span as UTC instants: the viewer's midnights that begin and end it."""
        tz = zone(time_zone)
        start = dt.datetime.combine(self.first, dt.time(), tzinfo=tz)
        end = dt.datetime.combine(self.end, dt.time(), tzinfo=tz)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def span_of(view: str, day: dt.date) -> Span:
    if view == "month":
        first = _monday(day.replace(day=1))
        return Span(first, first + dt.timedelta(weeks=WEEKS_SHOWN))
    if view == "week":
        return Span(_monday(day), _monday(day) + dt.timedelta(weeks=1))
    return Span(day, day + dt.timedelta(days=AGENDA_DAYS if view == "agenda" else 1))


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def step(view: str, day: dt.date, direction: int) -> dt.date | None:
    """The day the previous (-1) or next (1) page of `view` shows, None past the last one."""
    if view == "month":
        target = _add_months(day, direction)
    else:
        length = {"week": 7, "day": 1}.get(view, AGENDA_DAYS)
        target = span_of(view, day).first + dt.timedelta(days=direction * length)
    return target if EARLIEST <= target <= LATEST else None


def _short(day: dt.date, *, year: bool) -> str:
    return f"{day.day} {day:%b}" + (f" {day.year}" if year else "")


def title(view: str, day: dt.date) -> str:
    """December 2026; 30 Nov to 6 Dec 2026; Monday 30 November 2026."""
    if view == "month":
        return f"{day:%B} {day.year}"
    if view == "day":
        return full_date(day)
    span = span_of(view, day)
    last = span.end - _DAY
    if span.first.month == last.month and span.first.year == last.year:
        return f"{span.first.day} – {_short(last, year=True)}"
    return f"{_short(span.first, year=span.first.year != last.year)} – {_short(last, year=True)}"


# An occurrence's page, as the view's routes spell it.
EventLink = Callable[[Occurrence], str]


@dataclass(frozen=True, slots=True)
class Room:
    """The room button a live occurrence's card carries, for the include that draws it."""

    href: str
    is_organizer: bool
    state: str = "open"


@dataclass(frozen=True, slots=True)
class Card:
    """An occurrence on a day of a view (a multi-day one has a card on each day, or a bar)."""

    occurrence: Occurrence
    # What the card says of the time: "09:30", a range, "from 22:00", "All day".
    when: str
    room: Room | None
    # The occurrence's page.
    href: str
    # "day 2 of 3" on each day's card of a multi-day occurrence.
    part: str = ""
    # It began on an earlier day, or goes on to a later one (drawn with square edges).
    continued: bool = False
    continues: bool = False
    # Quarter hours from the day's local midnight, for the week and day views.
    first_slot: int = 0
    last_slot: int = SLOTS

    @property
    def css(self) -> str:
        """The card's classes: read here, not in the template, where a month's hundred cards
        made three conditionals each cost more than the rest of the card."""
        classes = "event"
        if self.occurrence.all_day:
            classes += " all-day"
        if self.continued:
            classes += " continued"
        if self.continues:
            classes += " continues"
        return classes

    @property
    def slots(self) -> int:
        return self.last_slot - self.first_slot


# An occurrence on one shown day: which of its days that is (1-based), and how many it covers.
_Entry = tuple[Occurrence, int, int]


@dataclass(frozen=True, slots=True)
class _Piece:
    """An occurrence's stretch on one local day, as a card draws it."""

    occurrence: Occurrence
    day_number: int
    days: int
    whole_day: bool
    # The local wall clock it starts and ends at, None where it goes on past the day.
    starts: dt.datetime | None
    ends: dt.datetime | None


def _piece(entry: _Entry, tz: ZoneInfo) -> _Piece:
    occurrence, number, days = entry
    timed = not occurrence.all_day
    starts = occurrence.start.astimezone(tz) if timed and number == 1 else None
    ends = occurrence.end.astimezone(tz) if timed and number == days else None
    return _Piece(occurrence, number, days, starts is None and ends is None, starts, ends)


def _local_days(occurrence: Occurrence, tz: ZoneInfo) -> tuple[dt.date, dt.date]:
    """The first and last day the occurrence covers (its own dates when it is all-day)."""
    if occurrence.all_day:
        return all_day_dates(occurrence)
    start, end = occurrence.start.astimezone(tz), occurrence.end.astimezone(tz)
    last = (end - dt.timedelta(microseconds=1)).date() if end > start else start.date()
    return start.date(), last


def _entries(
    occurrences: Iterable[Occurrence], span: Span, tz: ZoneInfo
) -> dict[dt.date, list[_Entry]]:
    """Each shown day's occurrences: those on all of it first, then the others by start.

    This runs for every occurrence, of which a month cell then draws a few: most are timed
    and within one day, found by where they fall among the span's midnights (bisecting UTC
    instants costs half of converting each time to the viewer's zone).
    """
    days = span.days
    whole: list[list[_Entry]] = [[] for _ in days]
    timed: list[list[_Entry]] = [[] for _ in days]
    midnights = [
        dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC)
        for day in [*days, span.end]
    ]
    for occurrence in occurrences:
        all_day = occurrence.event.all_day
        if not all_day:
            index = bisect.bisect_right(midnights, occurrence.start) - 1
            if 0 <= index < len(days) and occurrence.end <= midnights[index + 1]:
                timed[index].append((occurrence, 1, 1))
                continue
        first, last = _local_days(occurrence, tz)
        covered = (last - first).days + 1
        for n in range(max(0, (span.first - first).days), covered):
            index = (first - span.first).days + n
            if index >= len(days):
                break
            on_all_of_it = all_day or 0 < n < covered - 1
            (whole if on_all_of_it else timed)[index].append((occurrence, n + 1, covered))
    return {day: whole[n] + timed[n] for n, day in enumerate(days)}


def _range(piece: _Piece) -> str:
    """From start to end; from 22:00 and until 02:00 for a night's two days; All day."""
    if piece.starts and piece.ends:
        return f"{clock(piece.starts)} – {clock(piece.ends)}"
    if piece.starts:
        return f"from {clock(piece.starts)}"
    if piece.ends:
        return f"until {clock(piece.ends)}"
    return "All day"


def _slot(moment: dt.datetime, *, round_up: bool) -> int:
    minutes = moment.hour * 60 + moment.minute + (moment.second > 0 or moment.microsecond > 0)
    return -(-minutes // SLOT_MINUTES) if round_up else minutes // SLOT_MINUTES


def _room(occurrence: Occurrence, rooms: dict[tuple[int, str], Room]) -> Room | None:
    """The occurrence's room button, for its first card only (the button has an id)."""
    return rooms.pop((occurrence.series.id or 0, occurrence.key), None) if rooms else None


def _card(piece: _Piece, when: str, rooms: dict[tuple[int, str], Room], link: EventLink) -> Card:
    first = _slot(piece.starts, round_up=False) if piece.starts else 0
    last = _slot(piece.ends, round_up=True) if piece.ends else SLOTS
    return Card(
        piece.occurrence,
        when,
        _room(piece.occurrence, rooms),
        link(piece.occurrence),
        part=f"day {piece.day_number} of {piece.days}" if piece.days > 1 else "",
        continued=piece.day_number > 1,
        continues=piece.day_number < piece.days,
        first_slot=min(first, SLOTS - 1),
        last_slot=min(SLOTS, max(last, first + 1)),
    )


@dataclass(slots=True)
class Day:
    """One day of a view with its cards; `more` counts the ones a month cell leaves out."""

    date: dt.date
    is_today: bool
    cards: list[Card]
    more: int = 0
    in_month: bool = True

    @property
    def label(self) -> str:
        return full_date(self.date)

    @property
    def iso(self) -> str:
        return self.date.isoformat()


def month(
    occurrences: Iterable[Occurrence],
    day: dt.date,
    time_zone: str,
    today: dt.date,
    rooms: Mapping[tuple[int, str], Room],
    link: EventLink,
) -> list[list[Day]]:
    """Six weeks from the Monday on or before the 1st; each cell lists up to CELL_LIMIT."""
    tz, rooms = zone(time_zone), dict(rooms)
    cells = []
    for date, found in _entries(occurrences, span_of("month", day), tz).items():
        shown = found if len(found) <= CELL_LIMIT else found[: CELL_LIMIT - 1]
        cards = []
        for entry in shown:
            piece = _piece(entry, tz)
            cards.append(_card(piece, clock(piece.starts) if piece.starts else "", rooms, link))
        in_month = date.month == day.month
        cells.append(Day(date, date == today, cards, len(found) - len(shown), in_month))
    return [cells[week * 7 : week * 7 + 7] for week in range(WEEKS_SHOWN)]


@dataclass(slots=True)
class Bar:
    """An all-day (or day-long) occurrence across the columns of a week or a day."""

    card: Card
    # 1-based first column and how many it spans, as the stylesheet's .col-N/.cols-N place it.
    column: int
    span: int


@dataclass(slots=True)
class TimeGrid:
    """The week and day views: a row of all-day bars over columns of timed cards."""

    days: list[Day] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)


def _dates_label(occurrence: Occurrence, tz: ZoneInfo) -> str:
    """All day; 2 Dec to 4 Dec; 2 Dec 22:00 to 4 Dec 09:00 (with en dashes)."""
    first, last = _local_days(occurrence, tz)
    if occurrence.all_day:
        if first == last:
            return "All day"
        return f"{_short(first, year=False)} – {_short(last, year=False)}"
    start, end = occurrence.start.astimezone(tz), occurrence.end.astimezone(tz)
    return f"{_short(start, year=False)} {clock(start)} – {_short(end, year=False)} {clock(end)}"


def _bar(
    entry: _Entry,
    date: dt.date,
    span: Span,
    column: int,
    tz: ZoneInfo,
    rooms: dict[tuple[int, str], Room],
    link: EventLink,
) -> Bar:
    """The bar from the first day shown that `entry` covers, across the others it covers."""
    occurrence, number, days = entry
    left = days - number + 1
    length = min(left, (span.end - date).days)
    card = Card(
        occurrence,
        _dates_label(occurrence, tz),
        _room(occurrence, rooms),
        link(occurrence),
        continued=number > 1,
        continues=length < left,
    )
    return Bar(card, column, length)


def time_grid(
    occurrences: Iterable[Occurrence],
    span: Span,
    time_zone: str,
    today: dt.date,
    rooms: Mapping[tuple[int, str], Room],
    link: EventLink,
) -> TimeGrid:
    """Columns of the span's days with their timed cards, under a row of bars for the all-day
    occurrences and those of a day or longer (a shorter one past midnight is in two columns)."""
    tz, rooms = zone(time_zone), dict(rooms)
    grid = TimeGrid()
    for column, (date, found) in enumerate(_entries(occurrences, span, tz).items(), 1):
        cards = []
        for entry in found:
            occurrence, number, days = entry
            if not occurrence.all_day and days <= 2 and occurrence.end - occurrence.start < _DAY:
                piece = _piece(entry, tz)
                cards.append(_card(piece, _range(piece), rooms, link))
            elif number == 1 or date == span.first:
                grid.bars.append(_bar(entry, date, span, column, tz, rooms, link))
        grid.days.append(Day(date, date == today, cards))
    return grid


def agenda(
    occurrences: Iterable[Occurrence],
    span: Span,
    time_zone: str,
    today: dt.date,
    rooms: Mapping[tuple[int, str], Room],
    link: EventLink,
) -> list[Day]:
    """The span's days that have something on, each with its cards."""
    tz, rooms = zone(time_zone), dict(rooms)
    days = []
    for date, found in _entries(occurrences, span, tz).items():
        if found:
            pieces = [_piece(entry, tz) for entry in found]
            cards = [_card(piece, _range(piece), rooms, link) for piece in pieces]
            days.append(Day(date, date == today, cards))
    return days
