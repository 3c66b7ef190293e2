"""The bell, its menu, the Notifications page, and the live stream that keeps them current."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from jinja2_fragments.starlette import Jinja2Blocks
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from portal.accounts.models import User
from portal.htmx import is_htmx, render
from portal.notifications import services
from portal.notifications.live import Broadcaster, Event, Subscription
from portal.pagination import page_number
from portal.web import (
    database_of,
    db_session,
    flash,
    int_param,
    login_required,
    redirect,
    still_signed_in,
    viewer,
)

# A comment line: keeps proxies and the browser from timing the connection out.
HEARTBEAT = ": heartbeat\n\n"


def broadcaster_of(request: Request) -> Broadcaster:
    broadcaster: Broadcaster = request.app.state.notifications
    return broadcaster


@login_required
async def notification_list(request: Request) -> Response:
    user, session = viewer(request), db_session(request)
    page = await services.recent(session, user, page_number(request.query_params.get("page")))
    context = {
        "page": page,
        "unread": await services.unread_count(session, user),
    }
    return render(request, "notifications/list.html", context)


async def _menu(request: Request, *, bell: bool) -> Response:
    user, session = viewer(request), db_session(request)
    context = {
        "notices": await services.latest(session, user),
        "unread": await services.unread_count(session, user),
        "bell": bell,
    }
    return render(request, "notifications/menu.html", context)


@login_required
async def menu(request: Request) -> Response:
    return await _menu(request, bell=False)


@login_required
async def read_all(request: Request) -> Response:
    await services.mark_all_read(db_session(request), viewer(request))
    if is_htmx(request):
        return await _menu(request, bell=True)
    flash(request, "All your notifications are marked as read.", "success")
    return redirect(str(request.url_for("notifications.list")))


@login_required
async def open_notice(request: Request) -> Response:
    notice = await services.mark_read(
        db_session(request), viewer(request), int_param(request, "notification_id")
    )
    if notice is None:
        raise HTTPException(404, "No such notification.")
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": notice.url})
    return redirect(notice.url)


@login_required
async def stream(request: Request) -> Response:
    """Server-sent events for the signed-in person: "count" for the bell, "notice" for a toast."""
    user = viewer(request)
    return StreamingResponse(
        _events(request, user.id or 0, user.company_id),
        media_type="text/event-stream",
        # Proxies must pass each event on at once rather than buffer the response.
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _events(request: Request, user_id: int, company_id: int) -> AsyncIterator[str]:
    broadcaster = broadcaster_of(request)
    with broadcaster.subscribe(user_id, company_id) as subscription:
        # Subscribed first, then counted: nothing committed in between goes unseen.
        text = await _render(request, subscription, Event(None, user_id, company_id))
        while text is not None:
            yield text
            try:
                event = await asyncio.wait_for(subscription.next(), broadcaster.heartbeat)
            except TimeoutError:
                text = HEARTBEAT
                continue
            if event is None:
                return  # the server is stopping; the browser reconnects to whoever serves next
            text = await _render(request, subscription, event)


async def _render(request: Request, subscription: Subscription, event: Event) -> str | None:
    """The SSE text for `event`, loaded as its recipient may see it; None once signed out."""
    async with database_of(request).session(company_id=subscription.company_id) as session:
        user = await session.get(User, subscription.user_id)
        if user is None or not still_signed_in(request, user):
            return None
        notice = None
        if event.notification_id is not None:
            notice = await services.get(session, user, event.notification_id)
        unread = await services.unread_count(session, user)
        text = _sse("count", _fragment(request, "notifications/_bell.html", unread=unread))
        if notice is not None:
            text += _sse("notice", _fragment(request, "notifications/_toast.html", notice=notice))
        return text


def _fragment(request: Request, template: str, **context: Any) -> str:
    """A template rendered with what a page would have (url_for, csrf_token, current_user)."""
    templates: Jinja2Blocks = request.app.state.templates
    values: dict[str, Any] = {"request": request}
    for processor in templates.context_processors:
        values.update(processor(request))
    return templates.get_template(template).render(values | context)


def _sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"
