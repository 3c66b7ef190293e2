"""What every view needs: the signed-in person, their company's database session, flashes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.accounts.models import Company, User
from portal.db import Database
from portal.htmx import is_htmx
from portal.security import SAFE_METHODS
from portal.settings import Settings

SESSION_USER = "uid"
SESSION_COMPANY = "cid"
SESSION_VERSION = "sv"
FLASHES = "flash"

MAX_ID = 2**31 - 1

View = Callable[[Request], Awaitable[Response]]


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


def login_required(view: View) -> View:
    """Runs the view with the signed-in person and a session scoped to their company."""

    @functools.wraps(view)
    async def wrapper(request: Request) -> Response:
        user_id = request.session.get(SESSION_USER)
        company_id = request.session.get(SESSION_COMPANY)
        if not isinstance(user_id, int) or not isinstance(company_id, int):
            cookie_name = request.app.state.session_cookie
            stale = cookie_name in request.cookies and not request.session
            return _to_sign_in(
                request, "Your session was not valid; please sign in again." if stale else None
            )
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
            if (
                user is None
                or not user.active
                or user.session_version != request.session.get(SESSION_VERSION)
            ):
                request.session.clear()
                return _to_sign_in(request, "You have been signed out. Please sign in again.")
            request.state.user = user
            request.state.company = company
            request.state.db = session
            return await view(request)

    return wrapper


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
