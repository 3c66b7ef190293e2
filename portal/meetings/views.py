"""Meet Now pages: the invite form, the one-click invite, join links and meeting history."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import User
from portal.conferencing.services import HostMustAct, PasswordRefused, Room
from portal.db import UNSCOPED
from portal.directory.people import UnknownPerson, picked_people
from portal.directory.search import LISTED_COLUMNS, search_people
from portal.forms import FormErrors, parse_id, parse_ids, search_text
from portal.htmx import is_htmx, render
from portal.meetings import services
from portal.pagination import page_number
from portal.web import (
    company_of,
    database_of,
    db_session,
    keep_despite_refusal,
    login_required,
    read_form,
    redirect,
    safe_next,
    settings_of,
    signed_in_visitor,
    viewer,
)

PICKER_SUGGESTIONS = 8


@login_required
async def new(request: Request) -> Response:
    """The Meet Now form: a page of its own, and the Create menu's dialog."""
    chosen: list[User] = []
    with_id = parse_id(request.query_params.get("with"))
    if with_id is not None:
        person = await db_session(request).get(User, with_id)
        if person is not None and services.may_invite(viewer(request), person):
            chosen.append(person)
    return _form(request, chosen=chosen)


def _form(
    request: Request,
    *,
    chosen: list[User],
    errors: dict[str, str] | None = None,
    emails: str = "",
    message: str = "",
    status_code: int = 200,
    room: Room | None = None,
) -> Response:
    context = {
        "room": room,
        "back": _page(request),
        "chosen": chosen,
        "errors": errors or {},
        "emails": emails,
        "message": message,
        "request_key": services.new_request_key(),
        "max_invitees": services.MAX_INVITEES,
    }
    return render(request, "meetings/new.html", context, block="form", status_code=status_code)


@login_required
async def start(request: Request) -> Response:
    async with read_form(request) as form:
        invitee_ids = [value for value in form.getlist("invitee") if isinstance(value, str)]
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
    meet_now = services.MeetNowRequest(
        invitee_ids=invitee_ids,
        emails=fields.get("emails", ""),
        message=fields.get("message", ""),
        request_key=fields.get("request_key", ""),
    )
    try:
        started = await services.start_meeting(
            db_session(request),
            settings_of(request),
            company_of(request),
            viewer(request),
            meet_now,
        )
    except UnknownPerson:
        raise HTTPException(404, "One of the people you picked is not in your company.") from None
    except FormErrors as error:
        room = error.room if isinstance(error, HostMustAct) else None
        if isinstance(error, PasswordRefused):
            # Nothing was written but the provider's refusal, which the host's settings page
            # must show too: keep it although the Send is refused.
            keep_despite_refusal(request)
        if fields.get("one_click") and is_htmx(request):
            return _toast(
                request,
                "meetings/_error_toast.html",
                {"message": " ".join(error.errors.values()), "room": room, "back": _page(request)},
                422,
            )
        chosen = await picked_people(db_session(request), invitee_ids)
        return _form(
            request,
            chosen=chosen,
            errors=error.errors,
            emails=meet_now.emails,
            message=meet_now.message,
            status_code=422,
            room=room,
        )
    if not is_htmx(request):
        # Without JavaScript: a page with the room's link (CSP's form-action keeps a POST from
        # redirecting to another site).
        return render(request, "meetings/started.html", {"started": started})
    response = _toast(request, "meetings/started.html", {"started": started}, block="toast")
    # The page opened a tab from the click itself; this tells it where to send that tab.
    response.headers["HX-Trigger"] = json.dumps(
        {
            "meeting-started": {
                "roomUrl": started.host_room_url,
                "nextKey": services.new_request_key(),
            }
        }
    )
    return response


def _page(request: Request) -> str | None:
    """The path of the page the person is on (htmx says), to come back to after acting."""
    return safe_next(urlsplit(request.headers.get("HX-Current-URL", "")).path)


def _toast(
    request: Request,
    template: str,
    context: dict[str, object],
    status_code: int = 200,
    *,
    block: str | None = None,
) -> Response:
    response = render(request, template, context, block=block, status_code=status_code)
    response.headers["HX-Retarget"] = "#toasts"
    response.headers["HX-Reswap"] = "beforeend"
    return response


@login_required
async def people_options(request: Request) -> Response:
    """Typeahead suggestions for the picker, leaving out the host and the people picked."""
    q = search_text(request.query_params.get("q", ""))
    picked = set(parse_ids(request.query_params.getlist("invitee")))
    suggestions: list[User] = []
    if q:
        page = await search_people(
            db_session(request),
            q,
            # may_invite reads `active`; the search loads only the columns it is told.
            columns=(*LISTED_COLUMNS, "active"),
            size=PICKER_SUGGESTIONS + len(picked) + 1,
        )
        me = viewer(request)
        suggestions = [p for p in page.items if services.may_invite(me, p) and p.id not in picked]
    return render(
        request,
        "meetings/_options.html",
        {"suggestions": suggestions[:PICKER_SUGGESTIONS], "q": q},
    )


async def join(request: Request) -> Response:
    """A join link from an email or a notice: record the click, then go to the room."""
    token = request.path_params["token"]
    if not isinstance(token, str) or len(token) > 64:
        raise HTTPException(404, "This join link is not valid.")
    visitor = await signed_in_visitor(request)
    # Chat apps and mail scanners fetch links to preview or check them: those are no joins.
    record = request.method == "GET" and not services.is_link_preview(
        request.headers.get("user-agent", "")
    )
    # A public page, so no login_required to commit: the click is kept when the block ends.
    async with database_of(request).transaction(company_id=UNSCOPED) as session:
        try:
            target = await services.use_join_link(session, token, visitor, record=record)
        except LookupError:
            raise HTTPException(404, "This join link is not valid.") from None
    if target.state == "not_yet_open":
        # 403, not 425 Too Early: 425 is about TLS early data and invites clients to resend
        # the request by themselves; 403 refuses this request, and the page says when to return.
        context = {"target": target, "visitor": visitor}
        return render(request, "meetings/not_yet_open.html", context, status_code=403)
    if target.state == "ended":
        return render(request, "meetings/ended.html", {"target": target}, status_code=410)
    return redirect(target.meeting.room_url)


@login_required
async def history(request: Request) -> Response:
    page = await services.history(
        db_session(request), viewer(request), page_number(request.query_params.get("page"))
    )
    return render(request, "meetings/history.html", {"page": page}, block="results")
