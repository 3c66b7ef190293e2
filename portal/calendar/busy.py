"""Busy: "In a meeting until 15:00" on a person's hover card and profile.

The card is on a hot path, so this is lean reads (one table each, see portal.db.CompanyQuery),
and a recurring series is expanded only when its time of day says it could be on.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam

from portal import timezones
from portal.calendar.models import DECLINED, CalendarEvent, EventParticipant
from portal.calendar.recurrence import occurrences, wall_clock
from portal.db import CompanyQuery, CompanyReader, Read

MEETING_LOOKAHEAD = dt.timedelta(hours=12)
# Wall-clock arithmetic around a daylight-saving change may be an hour off: the time-of-day
# test lets that much through, and the expansion that follows decides.
_DST_SLACK = dt.timedelta(hours=1)
_INSTANT = dt.timedelta(microseconds=1)
# Invitations are read back in batches of these sizes (a statement is compiled per size, on
# first use). Larger batches save round trips but not time: PostgreSQL's cost is per id sent.
_BATCHES = (16, 512)
_EVENTS = CalendarEvent.__table__.c  # type: ignore[attr-defined]
_PARTICIPANTS = EventParticipant.__table__.c  # type: ignore[attr-defined]
_EVENT_FIELDS = (
    "id", "series_id", "rrule", "time_zone", "all_day", "starts_at", "ends_at", "last_ends_at",
    "recurrence_id", "cancelled_at",
)  # fmt: skip


# Series (and single events) reaching into [now, now + lookahead) that could make one busy.
_TIMED_SERIES = and_(
    _EVENTS.series_id.is_(None),
    _EVENTS.cancelled_at.is_(None),
    _EVENTS.all_day.is_(False),
    _EVENTS.last_ends_at > bindparam("now"),
    _EVENTS.starts_at < bindparam("horizon"),
)
_EVENT_COLUMNS = [_EVENTS[name] for name in _EVENT_FIELDS]
_ORGANIZED = CompanyQuery(
    CalendarEvent,
    *_EVENT_COLUMNS,
    where=and_(_EVENTS.organizer_id == bindparam("person"), _TIMED_SERIES),
)
_INVITATIONS = CompanyQuery(
    EventParticipant,
    _PARTICIPANTS.event_id,
    where=and_(
        _PARTICIPANTS.user_id == bindparam("person"),
        _PARTICIPANTS.partstat != bindparam("declined"),
    ),
)


def _ids_in(column: Any, size: int) -> Any:
    return column.in_([bindparam(f"id{number}") for number in range(size)])


@functools.cache
def _invited(size: int) -> CompanyQuery:
    """Events by id (a batch of `size`) that could make one busy; compiled on first use."""
    return CompanyQuery(
        CalendarEvent, *_EVENT_COLUMNS, where=and_(_ids_in(_EVENTS.id, size), _TIMED_SERIES)
    )


@functools.cache
def _exceptions(size: int) -> CompanyQuery:
    """The exceptions of a batch of `size` series; compiled on first use."""
    return CompanyQuery(CalendarEvent, *_EVENT_COLUMNS, where=_ids_in(_EVENTS.series_id, size))


async def _rows_by_ids(
    reader: CompanyReader, queries: Callable[[int], CompanyQuery], ids: list[int], **params: Any
) -> list[dict[str, Any]]:
    """The rows of `queries` for `ids`, in as few statements as the batch sizes allow."""
    rows: list[dict[str, Any]] = []
    while ids:
        size = next((size for size in _BATCHES if size >= len(ids)), _BATCHES[-1])
        batch, ids = ids[:size], ids[size:]
        # 0 is no row's id: it fills a short batch.
        values = {
            f"id{number}": batch[number] if number < len(batch) else 0 for number in range(size)
        }
        rows += await reader.rows(queries(size), **values, **params)
    return rows


@dataclass
class _Lean:
    """An event row read lean; `event` makes the CalendarEvent recurrence expands, only for
    the few rows that need it (a model instance costs half a millisecond to make)."""

    row: dict[str, Any]
    starts_at: dt.datetime
    ends_at: dt.datetime
    cancelled: bool

    @classmethod
    def of(cls, row: dict[str, Any]) -> _Lean:
        return cls(row, row["starts_at"], row["ends_at"], row["cancelled_at"] is not None)

    @functools.cached_property
    def event(self) -> CalendarEvent:
        return CalendarEvent(**self.row)

    def may_be_on(self, moment: dt.datetime) -> bool:
        """Whether an occurrence could be on at `moment`, by the time of day alone (a series'
        occurrences start at one wall-clock time)."""
        if not self.row["rrule"]:
            return self.starts_at <= moment < self.ends_at
        if not self.starts_at <= moment < self.row["last_ends_at"]:
            return False
        time_zone = self.row["time_zone"]
        start = wall_clock(self.starts_at, time_zone)
        length = wall_clock(self.ends_at, time_zone) - start
        if length >= dt.timedelta(days=1) - 2 * _DST_SLACK:
            return True
        local = wall_clock(moment, time_zone)
        for day in (local.date(), local.date() - dt.timedelta(days=1)):
            begins = dt.datetime.combine(day, start.time())
            if begins - _DST_SLACK <= local < begins + length + _DST_SLACK:
                return True
        return False


@dataclass
class Meetings:
    """A person's timed series reaching into the next hours, with their exceptions."""

    series: list[_Lean]
    exceptions: dict[int, list[_Lean]]

    def ends_of_those_on(self, moment: dt.datetime) -> list[dt.datetime]:
        """When each occurrence that is on at `moment` ends."""
        ends = []
        for series in self.series:
            changed = self.exceptions.get(series.row["id"], [])
            moved_here = any(not e.cancelled and e.starts_at <= moment < e.ends_at for e in changed)
            if not moved_here and not series.may_be_on(moment):
                continue
            found = occurrences(series.event, [e.event for e in changed], moment, moment + _INSTANT)
            ends += [occurrence.end for occurrence in found if occurrence.start <= moment]
        return ends


def _window(now: dt.datetime, good_for: dt.timedelta) -> dict[str, dt.datetime]:
    # Later moments need nothing that ended before `now`, and nothing starting past their own
    # lookahead: the rows of the longer window hold those of every moment in it.
    return {"now": now, "horizon": now + MEETING_LOOKAHEAD + good_for}


def meetings_reads(
    person_id: int, now: dt.datetime, *, good_for: dt.timedelta = dt.timedelta(0)
) -> list[Read]:
    """The reads `meetings` begins with: a page may send them along with its own and hand
    `meetings` their rows (`first`)."""
    return [
        (_ORGANIZED, {"person": person_id, **_window(now, good_for)}),
        (_INVITATIONS, {"person": person_id, "declined": DECLINED}),
    ]


async def meetings(
    reader: CompanyReader,
    person_id: int,
    now: dt.datetime,
    *,
    first: list[list[dict[str, Any]]] | None = None,
    good_for: dt.timedelta = dt.timedelta(0),
) -> Meetings:
    """The meetings `busy_at` needs at any moment from `now` to `now + good_for`: timed
    events `person_id` organized or did not decline (as schedule.busy_between counts them),
    read lean for the hover card; `first`, the rows of meetings_reads (same `good_for`), when
    the page has read them already."""
    window = _window(now, good_for)
    if first is None:
        first = await reader.rows_together(*meetings_reads(person_id, now, good_for=good_for))
    rows, invitations = first
    invited = sorted({row["event_id"] for row in invitations} - {row["id"] for row in rows})
    rows += await _rows_by_ids(reader, _invited, invited, **window)
    series = [_Lean.of(row) for row in rows]
    recurring = [row["id"] for row in rows if row["rrule"]]
    exceptions: dict[int, list[_Lean]] = {}
    for row in await _rows_by_ids(reader, _exceptions, recurring):
        exceptions.setdefault(row["series_id"], []).append(_Lean.of(row))
    return Meetings(series, exceptions)


async def busy_until(
    reader: CompanyReader,
    person_id: int,
    now: dt.datetime,
    *,
    first: list[list[dict[str, Any]]] | None = None,
) -> dt.datetime | None:
    """When the meeting `person_id` is in at `now` ends (back-to-back ones joined), or None;
    `first` as `meetings` takes it."""
    return busy_at(await meetings(reader, person_id, now, first=first), now)


def busy_at(meetings: Meetings, now: dt.datetime) -> dt.datetime | None:
    """busy_until, from meetings read for a window that holds `now`."""
    until = max(meetings.ends_of_those_on(now), default=None)
    horizon = now + MEETING_LOOKAHEAD
    while until is not None and until < horizon:
        later = max(meetings.ends_of_those_on(until), default=until)
        if later <= until:
            break
        until = later
    return until


def meeting_status(until: dt.datetime | None, viewer_zone: str, now: dt.datetime) -> str:
    """The "In a meeting until 15:00" line (the viewer's clock), with the day unless today."""
    if until is None:
        return ""
    tz = timezones.zone(viewer_zone)
    local, today = until.astimezone(tz), now.astimezone(tz).date()
    days = (local.date() - today).days
    day = "" if days == 0 else " tomorrow" if days == 1 else f" on {local:%A}"
    return f"In a meeting until {local:%H:%M}{day}"
