"""Answering an invitation: on the details page, and from the email's links without a sign-in."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.calendar import replies
from portal.calendar.invitations import repeat_text, when_for
from portal.calendar.models import ANSWERS, CalendarEvent, EventParticipant
from portal.forms import parse_id
from portal.htmx import is_htmx, render
from portal.web import (
    database_of,
    db_session,
    flash,
    form_data,
    int_param,
    login_required,
    redirect,
    settings_of,
    viewer,
)

REPLY_BLOCK = "calendar/_reply.html"
LINK_PAGE = "calendar/reply_link.html"


@login_required
async def reply(request: Request) -> Response:
    """A participant's Accept, Tentative or Decline on the details page."""
    event_id = int_param(request, "event_id")
    me = viewer(request)
    session = db_session(request)
    found = await replies.participation(session, me.id or 0, event_id)
    if found is None:
        raise HTTPException(404)
    series, participant = found
    fields = await form_data(request)
    answer = fields.get("answer", "")
    occurrence = fields.get("occurrence", "")
    occurrence_key = occurrence if parse_id(occurrence) is not None else ""
    error = ""
    if answer not in ANSWERS:
        error = "Choose Accept, Tentative or Decline."
    elif series.cancelled_at is not None:
        error = "This event was cancelled: there is nothing to answer."
    if error:
        if not is_htmx(request):
            raise HTTPException(422, error)
        return _reply_block(
            request, series, participant, occurrence_key, error=error, status_code=422
        )
    await replies.record_reply(session, participant, series, answer, actor=me)
    if is_htmx(request):
        return _reply_block(request, series, participant, occurrence_key)
    flash(request, f"Your answer is saved: {replies.REPLIES[answer]}.")
    target = request.url_for("calendar.event", event_id=series.id)
    if occurrence_key:
        target = target.include_query_params(occurrence=occurrence_key)
    return redirect(str(target))


def _reply_block(
    request: Request,
    series: CalendarEvent,
    participant: EventParticipant,
    occurrence_key: str,
    *,
    error: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "event": series,
        "participant": participant,
        "occurrence_key": occurrence_key,
        "reply_error": error,
    }
    response = render(request, REPLY_BLOCK, context, status_code=status_code)
    response.headers["vary"] = "HX-Request"
    return response


async def link(request: Request) -> Response:
    """The page a reply link opens: the event and a button that sends the answer.

    Changes nothing: mail scanners open links to check them, and would answer for people.
    """
    token = str(request.path_params["token"])
    settings = settings_of(request)
    try:
        claim = replies.read_reply_token(settings, token)
        async with database_of(request).session(company_id=claim.company_id) as session:
            target = await replies.reply_target(session, claim)
    except replies.ReplyRefused as refusal:
        return _refused(request, refusal)
    participant, series = target.participant, target.series
    others = [
        (replies.ANSWER_LABELS[answer], replies.reply_link(settings, participant, series, answer))
        for answer in replies.ANSWER_LABELS
        if answer != claim.answer
    ]
    context = _page_context(target) | {"token": token, "others": others}
    return render(request, LINK_PAGE, context)


async def answer_link(request: Request) -> Response:
    """The reply page's button: records the link's answer (no sign-in: guests answer too)."""
    token = str(request.path_params["token"])
    try:
        claim = replies.read_reply_token(settings_of(request), token)
        # A public page, so no login_required to commit: the block commits when it ends.
        async with database_of(request).transaction(company_id=claim.company_id) as session:
            target = await replies.reply_target(session, claim)
            changed = await replies.record_reply(
                session, target.participant, target.series, claim.answer, actor=target.user
            )
    except replies.ReplyRefused as refusal:
        return _refused(request, refusal)
    label = replies.REPLIES[claim.answer]
    if changed:
        flash(request, f"Thank you: {target.organizer.display_name} now has your answer ({label}).")
    else:
        flash(request, f"Your answer was already {label}.")
    return redirect(str(request.url_for("calendar.reply_link", token=token)))


def _refused(request: Request, refusal: replies.ReplyRefused) -> Response:
    """Why the link cannot be used, with the event as it is now when there is one to show."""
    context: dict[str, Any] = {"refused": refusal.message, "target": refusal.target}
    if refusal.target is not None:
        context |= _page_context(refusal.target)
    return render(request, LINK_PAGE, context, status_code=refusal.status)


def _page_context(target: replies.ReplyTarget) -> dict[str, Any]:
    """The event as the participant reads it: in their own zone when they have an account."""
    series = target.series
    when, event_when = when_for(series, target.time_zone)
    partstat = target.participant.partstat
    return {
        "target": target,
        "series": series,
        "when": when,
        "event_when": event_when,
        "repeats": repeat_text(series),
        "answer_label": replies.ANSWER_LABELS[target.answer],
        # None until they answer: the page says so in words of its own.
        "current_label": replies.REPLIES[partstat] if partstat in ANSWERS else None,
        # Whether this link's answer is the one given: then the page offers the others only.
        "answered": partstat == target.answer,
    }
