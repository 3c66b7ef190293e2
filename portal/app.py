"""create_app(settings): the routes, the middleware and the app's lifetime."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from jinja2 import pass_context
from jinja2.runtime import Context
from jinja2_fragments.starlette import Jinja2Blocks
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from portal import features, jobs, migrate, timezones
from portal.accounts.models import User
from portal.db import Database, database_unavailable, set_clock_file
from portal.health.routes import PROBE_PATHS
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
# The names of this machine: with a base URL on one of them, `make run` answers all three.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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


class RoutePaths:
    """Paths by route name in one dict lookup.

    Starlette's url_for tries each route in turn and catches an exception from every one that
    is not it, then rebuilds the URL from its parts: 15 to 40 µs a link, a quarter of a page's
    rendering time here, and most of a list's. This costs about 3 µs.
    """

    def __init__(self, app_routes: Sequence[BaseRoute]) -> None:
        self._by_name = {route.name: (prefix, route) for prefix, route in named_routes(app_routes)}

    def path(self, name: str, /, **path_params: Any) -> str | None:
        """The route's path (None for a name no route has, which Starlette then explains)."""
        found = self._by_name.get(name)
        if found is None:
            return None
        prefix, route = found
        return prefix + route.url_path_for(name, **path_params)

    def template(self, name: str, /) -> str:
        """The route's path with its parameters as str.format fields ("/people/{user_id}"):
        a list's links in one format each, at a tenth of the cost of a lookup per link."""
        prefix, route = self._by_name[name]
        return prefix + route.path_format


def _url_for(paths: RoutePaths, base_url: str) -> Callable[..., URL]:
    """Jinja's url_for on the configured base URL: PORTAL_BASE_URL, never the request's Host
    header, which the client chooses."""
    base = base_url.rstrip("/")

    @pass_context
    def url_for(context: Context, name: str, /, **path_params: Any) -> URL:
        path = paths.path(name, **path_params)
        if path is None:  # let Starlette say what is wrong
            request: Request = context["request"]
            return request.url_for(name, **path_params)
        return URL(base + path)

    return url_for


def allowed_hosts(base_url: str) -> list[str]:
    """The Host headers the portal answers: the base URL's, and this machine's names with it."""
    host = (urlsplit(base_url).hostname or "").lower()
    return (
        [host, *(name for name in LOOPBACK_HOSTS if name != host)]
        if host in LOOPBACK_HOSTS
        else [host]
    )


class ProbesOnAnyHost:
    """`check` (a host check) for every request but the health probes.

    A load balancer or process manager probes the machine by its address, not by the portal's
    name; the probes build no links and show no company's data, so any Host may ask.
    """

    def __init__(self, app: ASGIApp, *, check: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app = app
        self.checked = check(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        probe = scope["type"] == "http" and scope["path"] in PROBE_PATHS
        await (self.app if probe else self.checked)(scope, receive, send)


class OnBaseHostMiddleware:
    """Sends a request on another name of this machine to the base URL's host.

    Links and cookies live on the base URL's host, so a browser that opened
    http://localhost:8000 while the base is http://127.0.0.1:8000 moves there first.
    TrustedHostMiddleware, outside this one, has already refused every other host.
    """

    def __init__(self, app: ASGIApp, *, base_url: str) -> None:
        self.app = app
        self.base_url = base_url.rstrip("/")
        self.host = (urlsplit(base_url).hostname or "").lower()
        # What a browser on the base URL sends as its Host header: such a request (nearly all)
        # passes without the URL that Request builds, 3% of a hover card's time.
        self.netloc = urlsplit(base_url).netloc.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._on_base_host(scope):
            await self.app(scope, receive, send)
            return
        url = Request(scope).url
        target = self.base_url + url.path + (f"?{url.query}" if url.query else "")
        await RedirectResponse(target, status_code=307)(scope, receive, send)

    def _on_base_host(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"host":
                if value.lower() == self.netloc:
                    return True
                break
        return Request(scope).url.hostname == self.host


def _templates(settings: Settings, paths: RoutePaths) -> Jinja2Blocks:
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
    templates.env.globals["static_version"] = "6"
    templates.env.globals["url_for"] = _url_for(paths, settings.base_url)
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


# How long a client should wait before asking again when the database cannot answer.
RETRY_AFTER_SECONDS = 5


async def _database_error(request: Request, exc: Exception) -> Response:
    """503 with Retry-After when the database could not answer; any other error of it is a 500."""
    if not database_unavailable(exc):
        raise exc  # a bug, not an outage: the server error page, and the traceback logged
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return PlainTextResponse(
        "The portal cannot reach its database just now. Try again in a moment.",
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _keep_for_life() -> None:
    """Leave what a started server holds (modules, routes, pools: 150,000 objects) out of the
    cycle collector's full passes, each of which walked all of it: 70 ms in which a worker
    answered no one, the slowest 1% of a search page under load. Garbage is collected first,
    so that only what lives on is set aside."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, server: bool = False) -> Starlette:
    """The portal as an ASGI app, built from `settings` (tests pass their own); `server`: for
    a server process (portal.asgi), which keeps what it starts with for its life."""
    set_clock_file(settings.test_clock_file)

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
        if server:
            _keep_for_life()
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
            # Links, redirects and emails are built on PORTAL_BASE_URL; any other host is refused.
            Middleware(
                ProbesOnAnyHost,
                check=functools.partial(
                    TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings.base_url)
                ),
            ),
            Middleware(
                ProbesOnAnyHost,
                check=functools.partial(OnBaseHostMiddleware, base_url=settings.base_url),
            ),
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
        exception_handlers={
            HTTPException: _http_error,
            DBAPIError: _database_error,
            PoolTimeout: _database_error,
            500: _server_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = Database(settings.database_url)
    app.state.paths = RoutePaths(app.router.routes)
    app.state.templates = _templates(settings, app.state.paths)
    app.state.notifications = Broadcaster(settings.database_url)
    app.state.session_cookie = SESSION_COOKIE
    return app
