"""What every view needs: the signed-in person, their company's database session, flashes."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.accounts.models import Company, User
from portal.db import CompanyReader, Database, database_unavailable
from portal.forms import parse_id
from portal.htmx import is_htmx
from portal.security import SAFE_METHODS, InputRefused, open_form
from portal.settings import Settings

SESSION_USER = "uid"
SESSION_COMPANY = "cid"
SESSION_VERSION = "sv"
FLASHES = "flash"

log = logging.getLogger(__name__)

View = Callable[[Request], Awaitable[Response]]
Loaded = TypeVar("Loaded")


class SignedIn(Protocol):
    """What the sign-in check reads of a person, as an ORM row or a page's lean record."""

    @property
    def active(self) -> bool: ...

    @property
    def session_version(self) -> int: ...


class CompanyName(Protocol):
    """What a page's top bar shows of the viewer's company."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


# A lean page's query: the viewer (None if not in the company), their company, and what the
# page shows.
LeanLoad = Callable[
    [CompanyReader, Request, int], Awaitable[tuple[SignedIn | None, CompanyName | None, Loaded]]
]
LeanView = Callable[[Request, Any, Loaded], Awaitable[Response]]


def path_for(request: Request, name: str, /, **path_params: Any) -> str:
    """A route's path, as url_for in templates finds it (one dict lookup, not a walk of every
    route): for views that make a link per row."""
    path: str | None = request.app.state.paths.path(name, **path_params)
    return path if path is not None else str(request.app.url_path_for(name, **path_params))


def path_template(request: Request, name: str, /) -> str:
    """A route's path with its parameters as str.format fields, for views that make a link per
    row of a long list: `path_template(request, "directory.card").format(user_id=7)`."""
    template: str = request.app.state.paths.template(name)
    return template


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
    # A new list, not an append: the session is saved only when set, and a flash added to one
    # still waiting to be shown would otherwise be lost.
    request.session[FLASHES] = [*request.session.get(FLASHES, []), [level, message]]


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


def end_session(request: Request) -> None:
    """Forget who this browser was signed in as (the flashes that follow start a new session)."""
    request.session.clear()


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, for a `next` parameter; else None."""
    # "//evil.example" and "/\\evil.example" are other sites to a browser.
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None


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


def still_signed_in(request: Request, user: SignedIn | None) -> bool:
    """The stored person is active and has not been signed out everywhere since signing in."""
    return (
        user is not None
        and bool(user.active)
        and user.session_version == request.session.get(SESSION_VERSION)
    )


def signed_in_ids(request: Request) -> tuple[int, int] | None:
    """The signed session's person and company ids, if it names any (not yet checked)."""
    return _session_ids(request)


async def signed_in_visitor(request: Request) -> User | None:
    """The signed-in person on a page that anyone may open, or None for a guest."""
    ids = _session_ids(request)
    if ids is None:
        return None
    user_id, company_id = ids
    async with database_of(request).session(company_id=company_id) as session:
        user = await session.get(User, user_id)
    return user if still_signed_in(request, user) else None


def _signed_out(request: Request) -> Response:
    end_session(request)
    return _to_sign_in(request, "You have been signed out. Please sign in again.")


def login_required(view: View) -> View:
    """Runs the view with the signed-in person and a session scoped to their company."""

    @functools.wraps(view)
    async def wrapper(request: Request) -> Response:
        ids = _signed_in_ids(request)
        if isinstance(ids, Response):
            return ids
        user_id, company_id = ids
        if request.method not in SAFE_METHODS:
            return await _run_in_session(request, view, user_id, company_id, write=True)
        return await read_again_once(
            request, lambda: _run_in_session(request, view, user_id, company_id, write=False)
        )

    return wrapper


async def read_again_once(request: Request, read: Callable[[], Awaitable[Response]]) -> Response:
    """`read()`, and once more if the database dropped the connection under it.

    A server restart, a failover or an idle-connection killer cuts queries off mid-way; the
    pool's pre-ping only catches connections that died while idle. A read changes nothing, so
    running it again on a fresh connection is safe. Writes are never run twice.
    """
    try:
        return await read()
    except SQLAlchemyError as error:
        # No connection came free in the pool's time: reading again would wait as long again.
        if not database_unavailable(error) or isinstance(error, PoolTimeout):
            raise
        log.warning(
            "%s %s: the database cut the read off (%s); reading again",
            request.method,
            request.url.path,
            type(error).__name__,
        )
    return await read()


async def _run_in_session(
    request: Request, view: View, user_id: int, company_id: int, *, write: bool
) -> Response:
    """The view with the signed-in person and a session scoped to their company."""
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
        if not still_signed_in(request, user):
            return _signed_out(request)
        request.state.user = user
        request.state.company = company
        request.state.db = session
        response = await view(request)
        # The request owns the transaction: services add and flush, and what they wrote is
        # kept only when the view answered with success. A refusal keeps nothing, unless the
        # view said what it wrote is a fact to keep all the same (keep_despite_refusal).
        kept = response.status_code < 400 or getattr(request.state, "keep_writes", False)
        if write and kept:
            await session.commit()
        return response


def keep_despite_refusal(request: Request) -> None:
    """Commit what services flushed even though the view answers with a refusal: for a fact
    learned on the way that must not be lost with the request (a provider that stopped
    accepting a person's password). The view must know nothing else was written."""
    request.state.keep_writes = True


def lean_page(load: LeanLoad[Loaded]) -> Callable[[LeanView[Loaded]], View]:
    """login_required for a hot read-only page: `load` reads the viewer and the page's rows in
    one lean query (see CompanyReader), and the view gets both; there is no ORM session.

    The sign-in check is the one login_required makes. Made for the hover card and the
    profile, which every list of people links to.
    """

    def decorate(view: LeanView[Loaded]) -> View:
        @functools.wraps(view)
        async def wrapper(request: Request) -> Response:
            ids = _signed_in_ids(request)
            if isinstance(ids, Response):
                return ids
            user_id, company_id = ids
            reader = database_of(request).reader(company_id=company_id)

            async def page() -> Response:
                user, company, loaded = await load(reader, request, user_id)
                if not still_signed_in(request, user):
                    return _signed_out(request)
                request.state.user = user
                request.state.company = company
                return await view(request, user, loaded)

            return await read_again_once(request, page)

        return wrapper

    return decorate


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
    number = parse_id(request.path_params.get(name))
    if number is None:
        raise HTTPException(404)
    return number


@contextlib.asynccontextmanager
async def read_form(request: Request) -> AsyncIterator[FormData]:
    """The submitted form, fields and files; one too large, malformed or holding a NUL is a
    400 or 413 page that says why (the CSRF middleware has refused it already; this is for
    the view that meets one all the same)."""
    try:
        async with open_form(request) as form:
            yield form
    except InputRefused as refusal:
        raise HTTPException(refusal.status, refusal.message) from None


async def form_data(request: Request) -> dict[str, str]:
    """The submitted form's text fields (files are read by the views that take them)."""
    async with read_form(request) as form:
        return {key: value for key, value in form.items() if isinstance(value, str)}
