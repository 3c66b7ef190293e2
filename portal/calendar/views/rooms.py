"""The organizer's room: a participant's join link, and the organizer's Start meeting."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import User
from portal.calendar import rooms
from portal.calendar.recurrence import parse_key
from portal.db import UNSCOPED
from portal.htmx import render
from portal.meetings.services import is_link_preview
from portal.web import (
    company_of,
    database_of,
    int_param,
    login_required,
    redirect,
    signed_in_visitor,
    viewer,
)

NOT_VALID = "This join link is not valid."


async def join(request: Request) -> Response:
    """A participant's join link: while the room is open, record the click and go there."""
    token = request.path_params["token"]
    if not isinstance(token, str) or len(token) > 64:
        raise HTTPException(404, NOT_VALID)
    visitor = await signed_in_visitor(request)
    # Chat apps and mail scanners fetch links to preview or check them: those are no joins.
    record = request.method == "GET" and not is_link_preview(request.headers.get("user-agent", ""))
    # A public page, so no login_required to commit: the click is kept when the block ends.
    async with database_of(request).transaction(company_id=UNSCOPED) as session:
        try:
            visit = await rooms.use_join_link(session, token, visitor, record=record)
        except LookupError:
            raise HTTPException(404, NOT_VALID) from None
    return _answer(request, visit, visitor)


@login_required
async def start(request: Request) -> Response:
    """Start meeting, for the organizer: the occurrence's room, while it is open."""
    event_id = int_param(request, "event_id")
    raw_key = request.query_params.get("occurrence") or None
    original_start = parse_key(raw_key) if raw_key is not None else None
    if raw_key is not None and original_start is None:
        raise HTTPException(404)
    me = viewer(request)
    # A GET that writes: login_required commits only for POSTs, so the click gets its own unit.
    async with database_of(request).transaction(company_id=company_of(request).id) as session:
        try:
            visit = await rooms.start_meeting(session, me, event_id, original_start)
        except rooms.NotOrganizer:
            raise HTTPException(403, "Only the organizer starts this meeting.") from None
        except LookupError:
            raise HTTPException(404) from None
    return _answer(request, visit, me)


def _answer(request: Request, visit: rooms.RoomVisit, visitor: User | None) -> Response:
    if visit.state == "not_yet_open":
        # 403, not 425 Too Early (about TLS early data, and clients resend on their own): this
        # request is refused, and the page says when to come back.
        context = {"visit": visit, "visitor": visitor}
        return render(request, "calendar/join_not_yet_open.html", context, status_code=403)
    if visit.state == "ended":
        return render(request, "calendar/join_ended.html", {"visit": visit}, status_code=410)
    return redirect(visit.room_url)
