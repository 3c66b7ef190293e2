"""create_app(settings): the routes, the middleware and the app's lifetime."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

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

from portal import features, jobs, migrate, timezones
from portal.accounts.models import User
from portal.db import Database
from portal.htmx import is_htmx
from portal.jobs.schema import apply_procrastinate_schema
from portal.mail.smtp import sender_for
from portal.notifications.live import Broadcaster
from portal.security import CSRFMiddleware, SecurityHeadersMiddleware, csrf_token
from portal.settings import Settings
from portal.web import take_flashes

log = logging.getLogger(__name__)

SESSION_COOKIE = "portal_session"
SESSION_DAYS = 14


def local_time(moment: dt.datetime, person: User, fmt: str = "%d %b %Y, %H:%M") -> str:
    """A stored UTC time as `person` reads it, in their own time zone."""
    return timezones.local_time(moment, person.time_zone, fmt)


def named_routes(
    app_routes: Sequence[BaseRoute], prefix: str = ""
) -> Iterator[tuple[str, Route | Mount]]:
    """Every named route with the path prefix of the mounts it sits in, mounts' routes too."""
    for route in app_routes:
        if isinstance(route, Mount) and route.name is None:
            yield from named_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route | Mount):
            yield prefix, route


def _url_for(app_routes: list[BaseRoute]) -> Callable[..., URL]:
    """Jinja's url_for, finding the route by name in a dict.

    Starlette's tries each route in turn and catches an exception from every one that is not
    it, then rebuilds the URL from its parts: 15 to 40 µs a link, a quarter of a page's
    rendering time here, and most of a list's. This one costs about 3 µs.
    """
    by_name = {route.name: (prefix, route) for prefix, route in named_routes(app_routes)}

    @pass_context
    def url_for(context: Context, name: str, /, **path_params: Any) -> URL:
        request: Request = context["request"]
        found = by_name.get(name)
        if found is None:  # let Starlette say what is wrong
            return request.url_for(name, **path_params)
        prefix, route = found
        path = prefix + route.url_path_for(name, **path_params)
        # What make_absolute_url gives for the app's own routes, without parsing the base again.
        return URL(str(request.base_url).rstrip("/") + path)

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
    templates.env.globals["static_version"] = "3"
    templates.env.globals["url_for"] = _url_for(app_routes)
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
        # Every feature's jobs, run in-process or deferred to procrastinate (PORTAL_JOBS).
        env = jobs.JobEnv(app.state.db, settings, functools.partial(sender_for, settings))
        app.state.jobs = await jobs.start(env, features.jobs())
        await app.state.notifications.start()
        yield
        await app.state.notifications.stop()
        await app.state.jobs.stop()
        await app.state.db.dispose()

    app = Starlette(
        routes=[
            *features.routes(),
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
