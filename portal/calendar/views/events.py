"""The event form: create, edit (one occurrence, the following ones, or all), cancel, and each
participant's busy times while the organizer picks a slot."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import User
from portal.calendar import services
from portal.calendar.availability import Availability, busy_on_day
from portal.calendar.forms import MAX_REMINDERS, EventInput
from portal.calendar.invitees import MAX_PARTICIPANTS
from portal.calendar.lookup import NotOrganizer, editable_occurrence, organized_series
from portal.calendar.models import CalendarEvent
from portal.calendar.recurrence import Occurrence, occurrence_key, parse_key, wall_clock
from portal.calendar.rows import input_for
from portal.calendar.services import SavedEvent, Scope
from portal.calendar.times import WEEKDAYS, parse_date
from portal.db import utcnow
from portal.directory.people import UnknownPerson, picked_people
from portal.forms import FormErrors, parse_id, parse_ids
from portal.htmx import render
from portal.meetings.services import may_invite, new_request_key
from portal.timezones import is_time_zone, time_zones
from portal.web import (
    company_of,
    db_session,
    flash,
    int_param,
    login_required,
    read_form,
    redirect,
    settings_of,
    viewer,
)

FORM = "calendar/event_form.html"
WEEKDAY_NAMES = dict(zip(WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True))
SCOPE_LABELS = {
    "this": "This event",
    "following": "This and following events",
    "all": "All events",
}


def occurrence_from_key(raw: str | None) -> dt.datetime | None:
    """An occurrence key (see Occurrence.key) as the occurrence's original start; None when
    absent. Anything else is a 404: the key names no occurrence."""
    if raw is None or raw == "":
        return None
    original_start = parse_key(raw)
    if original_start is None:
        raise HTTPException(404, "That occurrence is not part of this event.")
    return original_start


@dataclass
class Editing:
    """What the edit form is about: the series, and the occurrence it was opened from."""

    series: CalendarEvent
    occurrence: Occurrence | None

    @property
    def recurring(self) -> bool:
        return bool(self.series.rrule)

    @property
    def key(self) -> str:
        return self.occurrence.key if self.occurrence else ""


async def _editing(request: Request, occurrence_key: str | None) -> Editing:
    """The event the viewer organizes, named by the path and the occurrence key; 404 or 403."""
    session = db_session(request)
    try:
        series, named = await organized_series(
            session, viewer(request), int_param(request, "event_id")
        )
        original = occurrence_from_key(occurrence_key) or named
        occurrence = None
        if original is not None and series.rrule:
            occurrence = await editable_occurrence(session, series, original)
        elif original is not None and original != series.starts_at:
            raise LookupError(original)
    except NotOrganizer:
        raise HTTPException(403, "Only the organizer can change this event.") from None
    except LookupError:
        raise HTTPException(404, "not found") from None
    if series.cancelled_at is not None:
        raise HTTPException(404, "This event was cancelled.")
    return Editing(series, occurrence)


async def _availability(
    request: Request, data: EventInput, person_ids: list[int]
) -> tuple[list[Availability] | None, str]:
    """Busy times of the picked people on the form's day, or why there are none to show.
    UnknownPerson for an id not of the company."""
    if not person_ids:
        return None, "Pick participants to see when they are busy that day."
    try:
        day = parse_date(data.start_date, "start_date")
    except FormErrors:
        return None, "Enter the date to see when the participants are busy."
    time_zone = data.time_zone if is_time_zone(data.time_zone) else viewer(request).time_zone
    found = await busy_on_day(db_session(request), viewer(request), day, time_zone, person_ids)
    return found, ""


async def _form(
    request: Request,
    data: EventInput,
    *,
    editing: Editing | None = None,
    scope: str = "all",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    chosen = await picked_people(db_session(request), data.participant_ids)
    busy, busy_hint = await _availability(request, data, [p.id or 0 for p in chosen])
    reminders = list(data.reminders)
    if len(reminders) < MAX_REMINDERS:
        reminders.append(("", "minutes"))
    context: dict[str, Any] = {
        "data": data,
        "chosen": chosen,
        "errors": errors or {},
        "editing": editing,
        "scope": scope,
        "scope_labels": SCOPE_LABELS,
        "weekday_names": WEEKDAY_NAMES,
        "reminders": reminders,
        "time_zones": time_zones(),
        "availability": busy,
        "availability_hint": busy_hint,
        "availability_day": data.start_date,
        "max_participants": MAX_PARTICIPANTS,
    }
    return render(request, FORM, context, status_code=status_code)


def _blank(request: Request) -> EventInput:
    """A new event's form: the day asked for (or today), the next full hour, an hour long."""
    me = viewer(request)
    now = wall_clock(utcnow(), me.time_zone)
    try:
        day = parse_date(request.query_params.get("date", ""), "date")
    except FormErrors:
        day = now.date()
    start = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    if day != now.date() or start.date() != day:
        start = dt.datetime.combine(day, dt.time(9))
    end = start + dt.timedelta(hours=1)
    return EventInput(
        start_date=day.isoformat(),
        start_time=f"{start:%H:%M}",
        end_date=end.date().isoformat(),
        end_time=f"{end:%H:%M}",
        time_zone=me.time_zone,
        request_key=new_request_key(),
    )


@login_required
async def new(request: Request) -> Response:
    """The new-event form; ?date= picks the day, ?with=<id> a first participant."""
    data = _blank(request)
    with_id = parse_id(request.query_params.get("with"))
    if with_id is not None:
        person = await db_session(request).get(User, with_id)
        if person is not None and may_invite(viewer(request), person):
            data.participant_ids = [str(with_id)]
    return await _form(request, data)


def _input(form: FormData) -> EventInput:
    def text(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    def texts(name: str) -> list[str]:
        return [value for value in form.getlist(name) if isinstance(value, str)]

    return EventInput(
        title=text("title"),
        description=text("description"),
        location=text("location"),
        start_date=text("start_date"),
        start_time=text("start_time"),
        end_date=text("end_date"),
        end_time=text("end_time"),
        time_zone=text("time_zone"),
        all_day=bool(text("all_day")),
        participant_ids=texts("invitee"),
        emails=text("emails"),
        reminders=list(zip(texts("reminder_amount"), texts("reminder_unit"), strict=False)),
        repeat=text("repeat"),
        weekdays=texts("weekdays"),
        ends=text("ends") or "never",
        until=text("until"),
        count=text("count"),
        uses_room=bool(text("uses_room")),
        request_key=text("request_key"),
    )


def _saved(request: Request, saved: SavedEvent, message: str) -> Response:
    flash(request, message, "success")
    for note in saved.notes:
        flash(request, note)
    event = saved.event
    url = str(request.url_for("calendar.event", event_id=event.series_id or event.id))
    if event.recurrence_id is not None:
        url += f"?occurrence={occurrence_key(event.recurrence_id)}"
    return redirect(url)


@login_required
async def create(request: Request) -> Response:
    async with read_form(request) as form:
        data = _input(form)
        checking = form.get("check") == "availability"
    if checking:
        # Without JavaScript, "Check availability" sends the form here: show it again with
        # the busy times of the day and people typed, saving nothing.
        return await _form(request, data)
    try:
        saved = await services.create_event(
            db_session(request), settings_of(request), company_of(request), viewer(request), data
        )
    except UnknownPerson:
        raise HTTPException(404, "not found") from None
    except FormErrors as error:
        return await _form(request, data, errors=error.errors, status_code=422)
    return _saved(request, saved, "Event created." if saved.created else "Event saved.")


def _scope(raw: object, editing: Editing) -> str:
    if not editing.recurring or editing.occurrence is None:
        return "all"
    return raw if isinstance(raw, str) and raw in SCOPE_LABELS else "this"


@login_required
async def edit(request: Request) -> Response:
    """The form filled in with the event (or the occurrence it was opened from)."""
    editing = await _editing(request, request.query_params.get("occurrence"))
    data = await input_for(db_session(request), editing.series, editing.occurrence)
    return await _form(
        request, data, editing=editing, scope=_scope(request.query_params.get("scope"), editing)
    )


@login_required
async def update(request: Request) -> Response:
    async with read_form(request) as form:
        data = _input(form)
        key = form.get("occurrence")
        raw_scope = form.get("scope")
        checking = form.get("check") == "availability"
    editing = await _editing(request, key if isinstance(key, str) else None)
    scope = _scope(raw_scope, editing)
    if checking:
        return await _form(request, data, editing=editing, scope=scope)
    chosen: Scope = "this" if scope == "this" else "following" if scope == "following" else "all"
    try:
        saved = await services.update_event(
            db_session(request),
            settings_of(request),
            company_of(request),
            viewer(request),
            editing.series.id or 0,
            data,
            scope=chosen,
            occurrence=editing.occurrence.recurrence_id if editing.occurrence else None,
        )
    except NotOrganizer:
        raise HTTPException(403, "Only the organizer can change this event.") from None
    except LookupError:
        # A person not of the company, or an occurrence cancelled since the form was opened.
        raise HTTPException(404, "not found") from None
    except FormErrors as error:
        return await _form(
            request, data, editing=editing, scope=scope, errors=error.errors, status_code=422
        )
    return _saved(request, saved, "Event saved.")


@login_required
async def cancel(request: Request) -> Response:
    """Cancel the event, or the one occurrence the form names; participants are told."""
    async with read_form(request) as form:
        key = form.get("occurrence")
    occurrence = occurrence_from_key(key if isinstance(key, str) else None)
    try:
        cancelled = await services.cancel_event(
            db_session(request),
            settings_of(request),
            company_of(request),
            viewer(request),
            int_param(request, "event_id"),
            occurrence=occurrence,
        )
    except NotOrganizer:
        raise HTTPException(403, "Only the organizer can cancel this event.") from None
    except LookupError:
        raise HTTPException(404, "not found") from None
    if cancelled.recurrence_id is not None:
        day = wall_clock(cancelled.recurrence_id, cancelled.time_zone)
        message = f"“{cancelled.title}” on {day.day} {day:%b %Y} was cancelled."
    else:
        message = f"“{cancelled.title}” was cancelled."
    flash(request, message, "success")
    return redirect(str(request.url_for("calendar.home")))


@login_required
async def availability(request: Request) -> Response:
    """The chosen participants' busy times on a day, in the zone the organizer plans in."""
    query = request.query_params
    ids = parse_ids(query.getlist("participant"))
    data = EventInput(start_date=query.get("date", ""), time_zone=query.get("time_zone", ""))
    try:
        busy, hint = await _availability(request, data, ids)
    except UnknownPerson:
        raise HTTPException(404, "not found") from None
    context = {
        "availability": busy,
        "availability_hint": hint,
        "availability_day": data.start_date,
    }
    return render(request, "calendar/availability.html", context, block="availability")
