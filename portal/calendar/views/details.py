"""An event's details page, and the room button it keeps up to date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.calendar import details, rooms, wording
from portal.calendar.invitations import repeat_text
from portal.calendar.links import join_link
from portal.db import utcnow
from portal.htmx import is_htmx, render
from portal.web import db_session, int_param, login_required, settings_of, viewer


@login_required
async def detail(request: Request) -> Response:
    """GET ?occurrence=<key>: the occurrence named, or a series' one on now or next.

    htmx asks for the `room` block alone (the button's poll), which needs no guest list.
    """
    me = viewer(request)
    now = utcnow()
    session = db_session(request)
    key = request.query_params.get("occurrence") or None
    page = await details.event_page(session, me.id or 0, int_param(request, "event_id"), key, now)
    if page is None:
        raise HTTPException(404, "No such event in your calendar.")
    context: dict[str, Any] = {"page": page, "event": page.series, "participant": page.participant}
    context |= _room(request, page, now)
    if not is_htmx(request):
        occurrence = page.occurrence
        context |= {
            "attendees": await details.attendees(session, page.series),
            "repeats": repeat_text(page.series),
            "when": wording.when(occurrence, me.time_zone) if occurrence else "",
            "event_zone_when": _event_zone_when(page, me.time_zone),
            "occurrence_key": occurrence.key if occurrence and page.series.rrule else "",
        }
    return render(request, "calendar/event.html", context, block="room")


def _event_zone_when(page: details.EventPage, viewer_zone: str) -> str:
    """The time in the event's own zone, when the viewer's is another (all-day dates are
    the same in both)."""
    occurrence = page.occurrence
    if occurrence is None or occurrence.all_day or page.series.time_zone == viewer_zone:
        return ""
    return wording.when(occurrence, page.series.time_zone)


def _room(request: Request, page: details.EventPage, now: dt.datetime) -> dict[str, Any]:
    """The room button's context (see calendar/_room_button.html); empty without a room."""
    occurrence = page.occurrence
    if not page.series.uses_room or occurrence is None or page.cancelled:
        return {"room": False}
    if page.is_organizer:
        start = request.url_for("calendar.start", event_id=page.series.id)
        href = str(start.include_query_params(occurrence=occurrence.key))
    elif page.participant is not None:
        href = join_link(settings_of(request), page.participant)
    else:
        return {"room": False}
    return {
        "room": True,
        "occurrence": occurrence,
        "state": rooms.room_state(occurrence, now),
        "href": href,
        "is_organizer": page.is_organizer,
        "opens_at": rooms.opens_at(occurrence),
    }
