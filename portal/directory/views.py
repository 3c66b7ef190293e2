"""The People page, the top bar's suggestions, profiles and hover cards."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.calendar import busy
from portal.db import CompanyReader, utcnow
from portal.directory import cards, search, services
from portal.directory.search import ListedPerson
from portal.directory.services import CompanyName, Person
from portal.forms import parse_id, search_text
from portal.htmx import is_htmx, render
from portal.meetings.services import may_invite, new_request_key
from portal.pagination import Page, page_number
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


async def _viewer_and_people(
    reader: CompanyReader, request: Request, viewer_id: int
) -> tuple[Person | None, CompanyName | None, Page[ListedPerson]]:
    """The viewer and the page of people the search finds, read together."""
    params = request.query_params
    wanted = search.people_search(
        reader.is_sqlite,
        search_text(params.get("q", "")),
        department=search_text(params.get("department", "")),
        page=page_number(params.get("page")),
    )
    viewing = await services.viewer_and_person(reader, viewer_id, None, *wanted.first)
    # (Rows of a signed-out viewer's session are read, never shown: lean_page checks first.)
    found = await search.read_people(reader, wanted, viewing.along)
    return viewing.viewer, viewing.company, found


@lean_page(_viewer_and_people)
async def people(request: Request, viewer: Person, page: Page[ListedPerson]) -> Response:
    departments: list[str] = []
    # Typing asks for the results block alone, which shows no department list.
    if not is_htmx(request):
        async with database_of(request).session(company_id=viewer.company_id) as session:
            departments = await services.departments(session)
    context = {
        "page": page,
        "people": _listed(request, page.items),
        "q": search_text(request.query_params.get("q", "")),
        "department": search_text(request.query_params.get("department", "")),
        "departments": departments,
    }
    return render(request, "directory/people.html", context, block="results")


async def _viewer_and_suggestions(
    reader: CompanyReader, request: Request, viewer_id: int
) -> tuple[Person | None, CompanyName | None, list[ListedPerson] | None]:
    """The viewer and the people the typed text finds, read together; no people (None) for
    a request that is not the top bar's script's."""
    if not is_htmx(request):
        viewing = await services.viewer_and_person(reader, viewer_id, None)
        return viewing.viewer, viewing.company, None
    q = search_text(request.query_params.get("q", ""))
    matches = search.first_matches_of(reader.is_sqlite, q)
    along = [matches.read] if matches.read is not None else []
    viewing = await services.viewer_and_person(reader, viewer_id, None, *along)
    people = await matches.people(reader, viewing.along[0]) if viewing.along else []
    return viewing.viewer, viewing.company, people


@lean_page(_viewer_and_suggestions)
async def suggestions(
    request: Request, viewer: Person, matches: list[ListedPerson] | None
) -> Response:
    q = search_text(request.query_params.get("q", ""))
    if matches is None:
        # Only the top bar's script asks for this fragment; a person who lands here gets the page.
        people_url = request.url_for("directory.people").include_query_params(q=q)
        return redirect(str(people_url))
    context = {"q": q, "people": _listed(request, matches)}
    response = render(request, "directory/suggestions.html", context)
    response.headers["vary"] = "HX-Request"
    return response


@dataclass(frozen=True, slots=True)
class _Glimpse:
    """The person a profile or card is about (None: nobody to this viewer), and the first rows
    of their "in a meeting" status as of `now`, read with the viewer's."""

    person: Person | None
    now: dt.datetime
    meetings: list[list[dict[str, Any]]]


async def _viewer_and_person(
    reader: CompanyReader, request: Request, viewer_id: int, *, meetings: bool = True
) -> tuple[Person | None, CompanyName | None, _Glimpse]:
    # A malformed id is nobody: the viewer is still checked first, so a stale session signs in.
    person_id = parse_id(request.path_params.get("user_id"))
    now = utcnow()
    along = busy.meetings_reads(person_id, now) if person_id is not None and meetings else []
    viewing = await services.viewer_and_person(reader, viewer_id, person_id, *along)
    return viewing.viewer, viewing.company, _Glimpse(viewing.person, now, viewing.along)


async def _viewer_and_card(
    reader: CompanyReader, request: Request, viewer_id: int
) -> tuple[Person | None, CompanyName | None, cards.Card]:
    if not is_htmx(request):
        # A card opened on its own goes to the profile: it shows no meeting to read for.
        viewer, company, glimpse = await _viewer_and_person(
            reader, request, viewer_id, meetings=False
        )
        return viewer, company, cards.Card(glimpse.person, None, glimpse.now)
    person_id = parse_id(request.path_params.get("user_id"))
    return await cards.card_reads(reader, viewer_id, person_id, utcnow())


def _colleague_or_404(person: Person | None) -> Person:
    """An active person of the viewer's company; anyone else is nobody to this viewer."""
    if person is None or not person.active:
        raise HTTPException(404, "No such person in your company.")
    return person


async def _meeting_status(
    request: Request, viewer: Person, person: Person, glimpse: _Glimpse
) -> str:
    """The person's "In a meeting until 15:00" on the viewer's clock, or "" when free."""
    reader = database_of(request).reader(company_id=viewer.company_id)
    until = await busy.busy_until(reader, person.id, glimpse.now, first=glimpse.meetings)
    return busy.meeting_status(until, viewer.time_zone, glimpse.now)


@lean_page(_viewer_and_person)
async def profile(request: Request, viewer: Person, glimpse: _Glimpse) -> Response:
    person = _colleague_or_404(glimpse.person)
    context = {
        "person": person,
        "local": services.local_time(person.time_zone, viewer.time_zone, glimpse.now),
        "busy": await _meeting_status(request, viewer, person, glimpse),
        "can_invite": may_invite(viewer, person),
        # One Send, one meeting; a cached hover card has none: the browser makes one per card.
        "request_key": new_request_key(),
    }
    return render(request, "directory/profile.html", context)


@lean_page(_viewer_and_card)
async def card(request: Request, viewer: Person, shown: cards.Card) -> Response:
    person = _colleague_or_404(shown.person)
    if not is_htmx(request):
        # The card is a glimpse of the profile: opened on its own, the profile is what one wants.
        response: Response = redirect(str(request.url_for("directory.profile", user_id=person.id)))
    else:
        context = {
            "person": person,
            "local": services.local_time(person.time_zone, viewer.time_zone, shown.now),
            "busy": busy.meeting_status(shown.busy_until(), viewer.time_zone, shown.now),
            "can_invite": may_invite(viewer, person),
        }
        response = render(request, "directory/card.html", context)
        response.headers["cache-control"] = CARD_CACHE_CONTROL
    response.headers["vary"] = "HX-Request"
    return response
