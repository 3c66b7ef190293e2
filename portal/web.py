"""What every view needs: the signed-in person, their company's database session, flashes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.accounts.models import ADMIN, Company, User
from portal.db import CompanyQuery, Database
from portal.htmx import is_htmx
from portal.security import SAFE_METHODS
from portal.settings import Settings

SESSION_USER = "uid"
SESSION_COMPANY = "cid"
SESSION_VERSION = "sv"
FLASHES = "flash"

MAX_ID = 2**31 - 1

View = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Person:
    """A person as the read-only pages about one person show them: plain columns, no session."""

    id: int
    company_id: int
    email: str
    display_name: str
    title: str
    department: str
    phone: str
    time_zone: str
    role: str
    active: bool
    session_version: int

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True, slots=True)
class CompanyName:
    """What a page's top bar shows of the viewer's company."""

    id: int
    name: str


PersonView = Callable[[Request, Person, Person | None], Awaitable[Response]]

_PERSON_FIELDS = tuple(field.name for field in fields(Person))
_PERSON_COLUMNS = [User.__table__.c[name] for name in _PERSON_FIELDS]  # type: ignore[attr-defined]
# The viewer's row and the person's in one statement: each query is a round trip, and the viewer
# is checked against the database on every request (a signed-out or deactivated session ends).
_VIEWER_AND_PERSON = CompanyQuery(
    User,
    *_PERSON_COLUMNS,
    select(col(Company.name))
    .where(col(Company.id) == User.__table__.c.company_id)  # type: ignore[attr-defined]
    .scalar_subquery()
    .label("company_name"),
    where=User.__table__.c.id.in_([bindparam("viewer"), bindparam("person")]),  # type: ignore[attr-defined]
)


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def database_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def viewer(request: Request) -> User:
    user: User = request.state.user
    return user


def company_of(request: Request) -> Company:
    company: Company = request.state.company
    return company


def db_session(request: Request) -> AsyncSession:
    """The request's session, scoped to the viewer's company."""
    session: AsyncSession = request.state.db
    return session


def flash(request: Request, message: str, level: str = "info") -> None:
    request.session.setdefault(FLASHES, []).append([level, message])


def take_flashes(request: Request) -> list[list[str]]:
    if "session" not in request.scope:
        return []
    flashes: list[list[str]] = request.session.pop(FLASHES, [])
    return flashes


def start_session(request: Request, user: User) -> None:
    """A fresh session for a person who just proved who they are (no fixation)."""
    request.session.clear()
    request.session.update(
        {
            SESSION_USER: user.id,
            SESSION_COMPANY: user.company_id,
            SESSION_VERSION: user.session_version,
        }
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _to_sign_in(request: Request, message: str | None) -> Response:
    if message:
        flash(request, message, "warning")
    target = str(request.url_for("accounts.sign_in"))
    if request.method == "GET" and not is_htmx(request):
        target += "?" + urlencode(
            {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
        )
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return redirect(target)


def _session_ids(request: Request) -> tuple[int, int] | None:
    """The session's person and company ids, if it names any."""
    user_id = request.session.get(SESSION_USER)
    company_id = request.session.get(SESSION_COMPANY)
    if not isinstance(user_id, int) or not isinstance(company_id, int):
        return None
    return user_id, company_id


def _signed_in_ids(request: Request) -> tuple[int, int] | Response:
    """The session's person and company ids, or the way to the sign-in page."""
    ids = _session_ids(request)
    if ids is None:
        cookie_name = request.app.state.session_cookie
        stale = cookie_name in request.cookies and not request.session
        return _to_sign_in(
            request, "Your session was not valid; please sign in again." if stale else None
        )
    return ids


def _still_signed_in(request: Request, user: User | Person | None) -> bool:
    """The stored person is active and has not been signed out everywhere since signing in."""
    return (
        user is not None
        and bool(user.active)
        and user.session_version == request.session.get(SESSION_VERSION)
    )


async def signed_in_visitor(request: Request) -> User | None:
    """The signed-in person on a page that anyone may open, or None for a guest."""
    ids = _session_ids(request)
    if ids is None:
        return None
    user_id, company_id = ids
    async with database_of(request).session(company_id=company_id) as session:
        user = await session.get(User, user_id)
    return user if _still_signed_in(request, user) else None


def _signed_out(request: Request) -> Response:
    request.session.clear()
    return _to_sign_in(request, "You have been signed out. Please sign in again.")


def login_required(view: View) -> View:
    """Runs the view with the signed-in person and a session scoped to their company."""

    @functools.wraps(view)
    async def wrapper(request: Request) -> Response:
        ids = _signed_in_ids(request)
        if isinstance(ids, Response):
            return ids
        user_id, company_id = ids
        write = request.method not in SAFE_METHODS
        async with database_of(request).session(company_id=company_id, write=write) as session:
            # One query for both: each ORM query costs about half a millisecond, on every page.
            row = (
                await session.execute(
                    select(User, Company)
                    .join(Company, col(Company.id) == col(User.company_id))
                    .where(col(User.id) == user_id)
                )
            ).one_or_none()
            user, company = row if row is not None else (None, None)
            if not _still_signed_in(request, user):
                return _signed_out(request)
            request.state.user = user
            request.state.company = company
            request.state.db = session
            return await view(request)

    return wrapper


def person_page(view: PersonView) -> View:
    """login_required for a read-only page about one person: both rows in one lean query.

    The view gets the viewer and the person named by the `user_id` path parameter, or None
    when no such person is in the viewer's company. There is no ORM session: the rows come
    from a CompanyReader, scoped to the company in the signed session like every session.
    Made for the hover card and the profile, which every list of people links to.
    """

    @functools.wraps(view)
    async def wrapper(request: Request) -> Response:
        ids = _signed_in_ids(request)
        if isinstance(ids, Response):
            return ids
        user_id, company_id = ids
        try:
            person_id: int | None = int_param(request, "user_id")
        except HTTPException:
            person_id = None  # still check the viewer first: a signed-out session signs in
        reader = database_of(request).reader(company_id=company_id)
        rows = await reader.rows(_VIEWER_AND_PERSON, viewer=user_id, person=person_id or 0)
        by_id = {row["id"]: row for row in rows}
        user = _person(by_id.get(user_id))
        if user is None or not _still_signed_in(request, user):
            return _signed_out(request)
        if person_id is None:
            raise HTTPException(404)
        request.state.user = user
        request.state.company = CompanyName(company_id, by_id[user_id]["company_name"])
        return await view(request, user, _person(by_id.get(person_id)))

    return wrapper


def _person(row: dict[str, Any] | None) -> Person | None:
    if row is None:
        return None
    values = {name: row[name] for name in _PERSON_FIELDS}
    values["active"] = bool(values["active"])  # SQLite keeps booleans as 0 and 1
    return Person(**values)


def admin_required(view: View) -> View:
    """Like login_required, and only for the company's admins."""

    @functools.wraps(view)
    async def check_admin(request: Request) -> Response:
        if not viewer(request).is_admin:
            raise HTTPException(403, "Only company admins can open Company Setup.")
        return await view(request)

    return login_required(check_admin)


def int_param(request: Request, name: str) -> int:
    """A path parameter as an id; anything else is simply not found."""
    value: Any = request.path_params.get(name)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HTTPException(404) from None
    # Ids are 32-bit integer columns; a larger number would be a database error, not a 404.
    if not 0 < number <= MAX_ID:
        raise HTTPException(404)
    return number


async def form_data(request: Request) -> dict[str, str]:
    """The submitted form's text fields (files are read by the views that take them)."""
    async with request.form() as form:
        return {key: value for key, value in form.items() if isinstance(value, str)}
