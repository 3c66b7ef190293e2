"""The People page, the top bar's suggestions, profiles and hover cards."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.calendar import busy
from portal.db import CompanyReader, utcnow
from portal.directory import search, services
from portal.directory.search import ListedPerson
from portal.directory.services import CompanyName, Person
from portal.forms import parse_id, search_text
from portal.htmx import is_htmx, render
from portal.meetings.services import may_invite, new_request_key
from portal.pagination import page_number
from portal.web import (
    database_of,
    lean_page,
    login_required,
    path_template,
    redirect,
    settings_of,
)

# Long enough that hovering the same names again costs no request, short enough that an edited
# title shows up within a minute; private because it is rendered for one viewer.
CARD_CACHE_CONTROL = "private, max-age=60"


@login_required
async def home(request: Request) -> Response:
    return redirect(str(request.url_for("directory.people")))


async def _viewer(
    reader: CompanyReader, request: Request, viewer_id: int
) -> tuple[Person | None, CompanyName | None, None]:
    viewer, company, _ = await services.viewer_and_person(reader, viewer_id, None)
    return viewer, company, None


@dataclass(frozen=True, slots=True)
class _Listed:
    """A listed person and their links, made here once rather than by Jinja for every row."""

    person: ListedPerson
    profile_url: str
    card_url: str


def _listed(request: Request, people: list[ListedPerson]) -> list[_Listed]:
    base = settings_of(request).base_url.rstrip("/")
    profile = path_template(request, "directory.profile")
    card = path_template(request, "directory.card")
    return [
        _Listed(
            person,
            base + profile.format(user_id=person.id),
            base + card.format(user_id=person.id),
        )
        for person in people
    ]


@lean_page(_viewer)
async def people(request: Request, viewer: Person, _: None) -> Response:
    q = search_text(request.query_params.get("q", ""))
    department = search_text(request.query_params.get("department", ""))
    db = database_of(request)
    page = await search.find_people(
        db.reader(company_id=viewer.company_id),
        q,
        department=department,
        page=page_number(request.query_params.get("page")),
    )
    departments: list[str] = []
    # Typing asks for the results block alone, which shows no department list.
    if not is_htmx(request):
        async with db.session(company_id=viewer.company_id) as session:
            departments = await services.departments(session)
    context = {
        "page": page,
        "people": _listed(request, page.items),
        "q": q,
        "department": department,
        "departments": departments,
    }
    return render(request, "directory/people.html", context, block="results")


@lean_page(_viewer)
async def suggestions(request: Request, viewer: Person, _: None) -> Response:
    q = search_text(request.query_params.get("q", ""))
    if not is_htmx(request):
        # Only the top bar's script asks for this fragment; a person who lands here gets the page.
        people_url = request.url_for("directory.people").include_query_params(q=q)
        return redirect(str(people_url))
    reader = database_of(request).reader(company_id=viewer.company_id)
    matches = await search.first_matches(reader, q)
    context = {"q": q, "people": _listed(request, matches)}
    response = render(request, "directory/suggestions.html", context)
    response.headers["vary"] = "HX-Request"
    return response


async def _viewer_and_person(
    reader: CompanyReader, request: Request, viewer_id: int
) -> tuple[Person | None, CompanyName | None, Person | None]:
    # A malformed id is nobody: the viewer is still checked first, so a stale session signs in.
    person_id = parse_id(request.path_params.get("user_id"))
    return await services.viewer_and_person(reader, viewer_id, person_id)


def _colleague_or_404(person: Person | None) -> Person:
    """An active person of the viewer's company; anyone else is nobody to this viewer."""
    if person is None or not person.active:
        raise HTTPException(404, "No such person in your company.")
    return person


async def _meeting_status(
    request: Request, viewer: Person, person: Person, now: dt.datetime
) -> str:
    """The person's "In a meeting until 15:00" on the viewer's clock, or "" when free."""
    reader = database_of(request).reader(company_id=viewer.company_id)
    until = await busy.busy_until(reader, person.id, now)
    return busy.meeting_status(until, viewer.time_zone, now)


@lean_page(_viewer_and_person)
async def profile(request: Request, viewer: Person, person: Person | None) -> Response:
    person = _colleague_or_404(person)
    now = utcnow()
    local = services.local_time(person.time_zone, viewer.time_zone, now)
    context = {
        "person": person,
        "local": local,
        "busy": await _meeting_status(request, viewer, person, now),
        "can_invite": may_invite(viewer, person),
        # One Send, one meeting; a cached hover card has none: the browser makes one per card.
        "request_key": new_request_key(),
    }
    return render(request, "directory/profile.html", context)


@lean_page(_viewer_and_person)
async def card(request: Request, viewer: Person, person: Person | None) -> Response:
    person = _colleague_or_404(person)
    if not is_htmx(request):
        # The card is a glimpse of the profile: opened on its own, the profile is what one wants.
        response: Response = redirect(str(request.url_for("directory.profile", user_id=person.id)))
    else:
        now = utcnow()
        context = {
            "person": person,
            "local": services.local_time(person.time_zone, viewer.time_zone, now),
            "busy": await _meeting_status(request, viewer, person, now),
            "can_invite": may_invite(viewer, person),
        }
        response = render(request, "directory/card.html", context)
        response.headers["cache-control"] = CARD_CACHE_CONTROL
    response.headers["vary"] = "HX-Request"
    return response
