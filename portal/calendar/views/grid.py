"""The calendar page: the viewer's events by month, week, day or as an agenda."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import User
from portal.calendar import grid, schedule
from portal.calendar.recurrence import Occurrence
from portal.calendar.rooms import join_links, room_state
from portal.db import utcnow
from portal.htmx import render
from portal.timezones import zone
from portal.web import db_session, login_required, path_for, settings_of, viewer

# An all-day event is on its own dates, which lie up to a day off the viewer's midnights:
# fetched this much wider, then placed by date.
ALL_DAY_REACH = dt.timedelta(days=1)


@login_required
async def calendar(request: Request) -> Response:
    """GET ?view=month|week|day|agenda&date=YYYY-MM-DD, in the viewer's time zone."""
    person = viewer(request)
    now = utcnow()
    today = now.astimezone(zone(person.time_zone)).date()
    params = request.query_params
    query = grid.read_query(params.get("view"), params.get("date"), today)
    span = grid.span_of(query.view, query.day)
    start, end = span.bounds(person.time_zone)
    found = await schedule.events_between(
        db_session(request), person.id or 0, start - ALL_DAY_REACH, end + ALL_DAY_REACH
    )
    rooms = await _rooms(request, person, found, now)
    link = functools.partial(_event_link, request)
    context: dict[str, Any] = {
        "query": query,
        "view": query.view,
        "day": query.day,
        "today": today,
        "title": grid.title(query.view, query.day),
        "previous": grid.step(query.view, query.day, -1),
        "next": grid.step(query.view, query.day, 1),
        "earliest": grid.EARLIEST,
        "latest": grid.LATEST,
    }
    if query.view == "month":
        weeks = grid.month(found, query.day, person.time_zone, today, rooms, link)
        context["weeks"] = weeks
        context["empty"] = not any(day.cards for week in weeks for day in week)
    elif query.view == "agenda":
        context["days"] = grid.agenda(found, span, person.time_zone, today, rooms, link)
    else:
        time_grid = grid.time_grid(found, span, person.time_zone, today, rooms, link)
        context["time_grid"] = time_grid
        context["empty"] = not time_grid.bars and not any(day.cards for day in time_grid.days)
    return render(request, "calendar/calendar.html", context, block="grid")


def _event_link(request: Request, occurrence: Occurrence) -> str:
    """The occurrence's page: the event's, naming the occurrence when it is one of a series."""
    path = path_for(request, "calendar.event", event_id=occurrence.series.id)
    return path if occurrence.recurrence_id is None else f"{path}?occurrence={occurrence.key}"


async def _rooms(
    request: Request, person: User, found: Sequence[Occurrence], now: dt.datetime
) -> dict[tuple[int, str], grid.Room]:
    """The room button of each live occurrence: Start for its organizer, a participant's own
    join link for the others (read only when a room is live)."""
    live = [o for o in found if o.series.uses_room and room_state(o, now) == "open"]
    invited = {o.series.id or 0 for o in live if o.series.organizer_id != person.id}
    links = await join_links(db_session(request), settings_of(request), person.id or 0, invited)
    rooms = {}
    for occurrence in live:
        series_id = occurrence.series.id or 0
        if occurrence.series.organizer_id == person.id:
            start = path_for(request, "calendar.start", event_id=series_id)
            href = f"{start}?occurrence={occurrence.key}"
            rooms[series_id, occurrence.key] = grid.Room(href, is_organizer=True)
        elif series_id in links:
            rooms[series_id, occurrence.key] = grid.Room(links[series_id], is_organizer=False)
    return rooms
