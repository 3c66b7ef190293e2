"""create_app(settings): the routes, the middleware and the app's lifetime."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import pass_context
from jinja2.runtime import Context
from jinja2_fragments.starlette import Jinja2Blocks
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from portal import jobs, migrate
from portal.accounts import setup_views
from portal.accounts import views as accounts
from portal.accounts.models import User
from portal.conferencing.rooms import personal_room_url
from portal.db import Database
from portal.directory import views as directory
from portal.htmx import is_htmx
from portal.jobs_schema import apply_procrastinate_schema
from portal.mail import views as mail
from portal.meetings import views as meetings
from portal.meetings.services import new_request_key
from portal.notifications import views as notifications
from portal.notifications.live import Broadcaster
from portal.security import CSRFMiddleware, SecurityHeadersMiddleware, csrf_token
from portal.settings import Settings
from portal.web import take_flashes

log = logging.getLogger(__name__)

SESSION_COOKIE = "portal_session"
SESSION_DAYS = 14

GET_POST = ["GET", "POST"]

routes = [
    Route("/", directory.home, name="home"),
    Route("/signin", accounts.sign_in, methods=GET_POST, name="accounts.sign_in"),
    Route("/signout", accounts.sign_out, methods=["POST"], name="accounts.sign_out"),
    Route(
        "/forgot-password",
        accounts.forgot_password,
        methods=GET_POST,
        name="accounts.forgot_password",
    ),
    Route(
        "/set-password/{token}",
        accounts.set_password,
        methods=GET_POST,
        name="accounts.set_password",
    ),
    Route("/settings/profile", accounts.profile, methods=GET_POST, name="accounts.profile"),
    Route(
        "/settings/password",
        accounts.change_password,
        methods=["POST"],
        name="accounts.change_password",
    ),
    Route("/people", directory.people, name="directory.people"),
    # Before /people/{user_id}, which would otherwise take "suggestions" for an id.
    Route("/people/suggestions", directory.suggestions, name="directory.suggestions"),
    Route("/people/{user_id}", directory.profile, name="directory.profile"),
    Route("/people/{user_id}/card", directory.card, name="directory.card"),
    Route("/meetings", meetings.history, name="meetings.history"),
    Route("/meetings/now", meetings.new, name="meetings.new"),
    Route("/meetings/start", meetings.start, methods=["POST"], name="meetings.start"),
    Route("/meetings/people", meetings.people_options, name="meetings.people_options"),
    Route("/join/{token}", meetings.join, name="meetings.join"),
    Route("/notifications", notifications.notification_list, name="notifications.list"),
    Route("/notifications/menu", notifications.menu, name="notifications.menu"),
    Route("/notifications/stream", notifications.stream, name="notifications.stream"),
    Route(
        "/notifications/read-all",
        notifications.read_all,
        methods=["POST"],
        name="notifications.read_all",
    ),
    Route(
        "/notifications/{notification_id}/open",
        notifications.open_notice,
        methods=["POST"],
        name="notifications.open",
    ),
    Route("/setup", setup_views.setup_home, name="setup.home"),
    Route("/setup/users", setup_views.users, name="setup.users"),
    Route("/setup/users/new", setup_views.user_new, methods=GET_POST, name="setup.user_new"),
    Route(
        "/setup/users/import", setup_views.users_import, methods=GET_POST, name="setup.users_import"
    ),
    Route(
        "/setup/users/{user_id}", setup_views.user_edit, methods=GET_POST, name="setup.user_edit"
    ),
    Route(
        "/setup/users/{user_id}/deactivate",
        setup_views.user_deactivate,
        methods=["POST"],
        name="setup.user_deactivate",
    ),
    Route(
        "/setup/users/{user_id}/reactivate",
        setup_views.user_reactivate,
        methods=["POST"],
        name="setup.user_reactivate",
    ),
    Route(
        "/setup/users/{user_id}/resend",
        setup_views.user_resend,
        methods=["POST"],
        name="setup.user_resend",
    ),
    Route("/setup/outbox", mail.outbox, name="mail.outbox"),
    Route("/setup/outbox/{message_id}", mail.outbox_message, name="mail.outbox_message"),
    Route(
        "/setup/outbox/{message_id}/html", mail.outbox_message_html, name="mail.outbox_message_html"
    ),
    Route(
        "/setup/outbox/{message_id}/retry",
        mail.outbox_retry,
        methods=["POST"],
        name="mail.outbox_retry",
    ),
]


def local_time(moment: dt.datetime, person: User, fmt: str = "%d %b %Y, %H:%M") -> str:
    """A stored UTC time as `person` reads it, in their own time zone."""
    try:
        zone = ZoneInfo(person.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone).strftime(fmt)


def _url_for(app_routes: list[BaseRoute]) -> Callable[..., URL]:
    """Jinja's url_for, finding the route by name in a dict.

    Starlette's tries each route in turn and catches an exception from every one that is not
    it, then rebuilds the URL from its parts: 15 to 40 µs a link, a quarter of a page's
    rendering time here, and most of a list's. This one costs about 3 µs.
    """
    by_name = {route.name: route for route in app_routes if isinstance(route, Route | Mount)}

    @pass_context
    def url_for(context: Context, name: str, /, **path_params: Any) -> URL:
        request: Request = context["request"]
        route = by_name.get(name)
        if route is None:  # let Starlette say what is wrong
            return request.url_for(name, **path_params)
        # What make_absolute_url gives for the app's own routes, without parsing the base again.
        return URL(str(request.base_url).rstrip("/") + route.url_path_for(name, **path_params))

    return url_for


def _templates(settings: Settings, app_routes: list[BaseRoute]) -> Jinja2Blocks:
    def page_context(request: Request) -> dict[str, Any]:
        state = request.scope.get("state", {})
        return {
            "current_user": state.get("user"),
            "company": state.get("company"),
            "csrf_token": lambda: csrf_token(str(settings.secret_key), request.session),
            "get_flashes": lambda: take_flashes(request),
        }

    templates = Jinja2Blocks(
        directory=str(settings.templates_dir), context_processors=[page_context]
    )
    # Templates change only with a deploy, which restarts the process; checking their files
    # on every render cost a hover card about 4% of its time.
    templates.env.auto_reload = False
    templates.env.globals["static_version"] = "2"
    templates.env.globals["url_for"] = _url_for(app_routes)
    templates.env.globals["personal_room_url"] = functools.partial(personal_room_url, settings)
    templates.env.globals["new_request_key"] = new_request_key
    templates.env.filters["local_time"] = local_time
    return templates


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: "This page does not exist, or you don't have access to it.",
        405: "That is not allowed here.",
    }
    detail = exc.detail if exc.detail and exc.detail not in {"Not Found", "Forbidden"} else None
    message = detail or messages.get(exc.status_code, "Something is wrong with this request.")
    if is_htmx(request):
        return PlainTextResponse(message, status_code=exc.status_code)
    templates: Jinja2Blocks = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "errors/error.html",
        {"status": exc.status_code, "message": message},
        status_code=exc.status_code,
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return PlainTextResponse(
        "Something went wrong on our side; nothing you did caused it. Try again in a moment.",
        status_code=500,
    )


def create_app(settings: Settings) -> Starlette:
    """The portal as an ASGI app, built from `settings` (tests pass their own)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await run_in_threadpool(migrate.upgrade, settings.database_url)
            if not settings.is_embedded:
                await run_in_threadpool(apply_procrastinate_schema, settings.database_url)
        # The in-process runner, or procrastinate to defer to (PORTAL_JOBS); None: nothing to run.
        app.state.jobs = await jobs.start(app.state.db, settings)
        await app.state.notifications.start()
        yield
        await app.state.notifications.stop()
        if app.state.jobs is not None:
            await app.state.jobs.stop()
        await app.state.db.dispose()

    app = Starlette(
        routes=[
            *routes,
            Mount("/static", StaticFiles(directory=settings.static_dir), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeadersMiddleware, https=settings.https),
            Middleware(
                SessionMiddleware,
                secret_key=str(settings.secret_key),
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_DAYS * 24 * 3600,
                same_site="lax",
                https_only=settings.https,
            ),
            Middleware(CSRFMiddleware, secret=str(settings.secret_key), base_url=settings.base_url),
        ],
        exception_handlers={HTTPException: _http_error, 500: _server_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = Database(settings.database_url)
    app.state.templates = _templates(settings, app.router.routes)
    app.state.notifications = Broadcaster(settings.database_url)
    app.state.session_cookie = SESSION_COOKIE
    return app
