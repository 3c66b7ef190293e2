"""Account Settings > Conferencing Accounts: each connection serving the person, their
username and password where they sign in themselves, their account found by email where it is
linked automatically, and the connection they host on when several serve them."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.conferencing import my_accounts, people, person_sync
from portal.conferencing.rooms import jitsi_room_url
from portal.db import utcnow
from portal.forms import FormErrors, parse_id
from portal.htmx import STOP_POLLING, is_htmx, render
from portal.web import (
    database_of,
    db_session,
    flash,
    form_data,
    int_param,
    keep_despite_refusal,
    login_required,
    redirect,
    safe_next,
    settings_of,
    viewer,
)

PAGE = "conferencing/accounts.html"
STATUS = "conferencing/_account_status.html"


def _back(request: Request) -> Response:
    return redirect(str(request.url_for("accounts.conferencing")))


def _page(
    request: Request, shown: my_accounts.Overview, status_code: int = 200, **extra: Any
) -> Response:
    context = {
        "cards": shown.cards,
        "hosting": shown.hosting,
        "jitsi_url": jitsi_room_url(settings_of(request), viewer(request)),
        "next": safe_next(request.query_params.get("next")),
        "errors": {},
        "typed": {},
        "default_error": "",
        **extra,
    }
    return render(request, PAGE, context, status_code=status_code)


async def _refused(request: Request, status_code: int = 400, **extra: Any) -> Response:
    """The page again, with what was refused and why."""
    shown = await my_accounts.overview(db_session(request), viewer(request))
    return _page(request, shown, status_code, **extra)


async def _card(request: Request, *, signs_in: bool) -> my_accounts.Card:
    """The card of the path's connection, if it serves the viewer and is of that kind."""
    card = await my_accounts.card_of(
        db_session(request), viewer(request), int_param(request, "connection_id")
    )
    if card is None or card.kind.signs_in != signs_in:
        raise HTTPException(404, "No such conferencing account serves you.")
    return card


@login_required
async def accounts(request: Request) -> Response:
    person = viewer(request)
    shown = await my_accounts.overview(db_session(request), person)
    if any(card.wants_sync(utcnow()) for card in shown.cards):
        # A page's own session only reads. Starting the viewer's own lookup is a change a
        # forged link cannot abuse (it finds only their own account, at most one at a time),
        # like a join link's click: it gets a transaction of its own.
        async with database_of(request).transaction(company_id=person.company_id) as session:
            shown = await my_accounts.start_syncs(session, person, shown)
    return _page(request, shown)


@login_required
async def account_status(request: Request) -> Response:
    """An automatic account's status, which the page polls while the person's sync runs."""
    card = await _card(request, signs_in=False)
    if not is_htmx(request):
        return _back(request)
    status_code = 200 if card.syncing else STOP_POLLING
    response = render(request, STATUS, {"card": card}, status_code=status_code)
    response.headers["vary"] = "HX-Request"
    return response


@login_required
async def save_password(request: Request) -> Response:
    card = await _card(request, signs_in=True)
    form = await form_data(request)
    try:
        await people.save_password(
            db_session(request), settings_of(request), card.connection, viewer(request), form
        )
    except FormErrors as error:
        connection_id = card.connection.id
        return await _refused(
            request,
            errors={connection_id: error.errors},
            typed={connection_id: form.get("username", "")},
        )
    flash(request, f"Your {card.title} account is linked.", "success")
    return _back(request)


@login_required
async def forget_password(request: Request) -> Response:
    card = await _card(request, signs_in=True)
    await people.forget_login(db_session(request), card.connection, viewer(request))
    flash(request, f"Your {card.title} username and password are removed.", "success")
    return _back(request)


@login_required
async def reassociate(request: Request) -> Response:
    """Look the viewer up again by their email, at once: they wait for one answer, and it is
    what the page then says."""
    card = await _card(request, signs_in=False)
    try:
        found = await person_sync.reassociate(
            db_session(request), settings_of(request), card.connection, viewer(request)
        )
    except FormErrors as error:
        # Nothing was written but credentials the provider renewed on the way (Webex's refresh
        # token): the connection needs them from now on.
        keep_despite_refusal(request)
        return await _refused(request, errors={card.connection.id: error.errors})
    flash(request, found, "success")
    return _back(request)


@login_required
async def choose_default(request: Request) -> Response:
    form = await form_data(request)
    try:
        await people.choose(
            db_session(request), viewer(request), parse_id(form.get("default")) or 0
        )
    except FormErrors as error:
        return await _refused(request, default_error=error.errors["default"])
    flash(request, "Your meetings use the account you chose from now on.", "success")
    return _back(request)
