"""The personal calendar feed: its settings page, its reset, and the feed itself."""

from __future__ import annotations

import email.utils
from urllib.parse import urlsplit, urlunsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.calendar import feeds
from portal.db import UNSCOPED
from portal.htmx import render
from portal.web import (
    company_of,
    database_of,
    db_session,
    flash,
    login_required,
    redirect,
    settings_of,
    viewer,
)

# Calendar apps revalidate with the ETag each time; the address is a secret, so no shared cache.
FEED_CACHE_CONTROL = "private, no-cache"


@login_required
async def settings_page(request: Request) -> Response:
    """The person's feed address (made on the first visit) to copy, and a way to reset it."""
    # A GET that may write the first token: its own unit of work, as login_required commits
    # only for POSTs.
    async with database_of(request).transaction(company_id=company_of(request).id) as session:
        token = await feeds.feed_token(session, viewer(request))
    # On the configured base URL, as emails' links are: the address leaves the browser.
    path = request.app.url_path_for("calendar.feed", token=token)
    https_url = settings_of(request).base_url.rstrip("/") + str(path)
    context = {"https_url": https_url, "webcal_url": _webcal(https_url)}
    return render(request, "calendar/feed.html", context)


def _webcal(url: str) -> str:
    """The same address with the scheme calendar apps open as a subscription."""
    return urlunsplit(urlsplit(url)._replace(scheme="webcal"))


@login_required
async def reset(request: Request) -> Response:
    await feeds.reset_feed(db_session(request), viewer(request))
    flash(request, "Your feed has a new address. The old one no longer works.", "success")
    return redirect(str(request.url_for("calendar.feed_settings")))


async def feed(request: Request) -> Response:
    """GET /calendar/feed/<token>.ics: public, the token is the key. 304 when unchanged."""
    token = request.path_params["token"]
    async with database_of(request).session(company_id=UNSCOPED) as session:
        state = await feeds.feed_state(session, token)
        if state is None:
            raise HTTPException(404)
        headers = {
            "ETag": state.etag,
            "Last-Modified": email.utils.format_datetime(state.last_modified, usegmt=True),
            "Cache-Control": FEED_CACHE_CONTROL,
        }
        if _not_modified(request, state):
            return Response(status_code=304, headers=headers)
        text = await feeds.build_feed(session, settings_of(request), state)
    return Response(text, media_type="text/calendar; charset=utf-8", headers=headers)


def _not_modified(request: Request, state: feeds.FeedState) -> bool:
    """RFC 9110's conditional GET: If-None-Match wins; If-Modified-Since only without it."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or state.etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        return False
    return state.last_modified <= since
