"""A host's authorization of the portal at their provider (Webex in SSO mode): off to the
provider's page, and back with its answer."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.conferencing import people
from portal.conferencing.connections import connection_by_id
from portal.conferencing.models import ConferencingConnection
from portal.conferencing.providers import KINDS
from portal.conferencing.secrets import UnreadableSecrets
from portal.web import (
    database_of,
    db_session,
    flash,
    int_param,
    login_required,
    redirect,
    safe_next,
    settings_of,
    viewer,
)

# The person's session holds the round trip under way: its nonce and where to go back to.
ROUND_TRIP = "host_authorization"


async def _host_connection(request: Request, connection_id: int) -> ConferencingConnection:
    """A connection of the viewer's company that serves them and asks hosts to authorize."""
    connection = await connection_by_id(db_session(request), connection_id)
    serving = await people.serving(db_session(request), viewer(request))
    if (
        connection is None
        or not KINDS[connection.provider].host_authorization
        or connection.id not in {c.id for c in serving}
    ):
        raise HTTPException(404, "No such conferencing account serves you.")
    return connection


def _back(request: Request, target: str | None) -> str:
    return target or str(request.url_for("accounts.conferencing"))


@login_required
async def authorize(request: Request) -> Response:
    """To the provider's authorization page, with a state good once and in this browser only."""
    connection = await _host_connection(request, int_param(request, "connection_id"))
    settings = settings_of(request)
    state, nonce = people.authorization_state(settings, connection, viewer(request))
    target = safe_next(request.query_params.get("next"))
    try:
        url = await people.authorize_url(settings, connection, state)
    except UnreadableSecrets as error:
        flash(request, str(error), "error")
        return redirect(_back(request, target))
    request.session[ROUND_TRIP] = {"nonce": nonce, "next": target or ""}
    # 303 like every redirect here, to the provider's own page.
    return RedirectResponse(url, status_code=303)


@login_required
async def authorized(request: Request) -> Response:
    """The provider's answer: keep the host's tokens, or say why not."""
    # Used up whatever the answer: a state is good for one return.
    trip = request.session.pop(ROUND_TRIP, None) or {}
    target = safe_next(trip.get("next")) if isinstance(trip, dict) else None
    back = _back(request, target)
    params = request.query_params
    person = viewer(request)
    settings = settings_of(request)
    try:
        connection_id = people.read_state(
            settings,
            params.get("state", ""),
            person,
            trip.get("nonce") if isinstance(trip, dict) else None,
        )
        connection = await _host_connection(request, connection_id)
        label = KINDS[connection.provider].label
        if params.get("error"):
            raise people.AuthorizationFailed(
                f"You did not authorize the portal at {label}: you can host there once you do."
            )
        host_tokens = await people.exchange_code(settings, connection, params.get("code", ""))
    except (people.AuthorizationFailed, UnreadableSecrets) as error:
        flash(request, str(error), "error")
        return redirect(back)
    # The page's own session only reads; the tokens are kept in a transaction of their own.
    async with database_of(request).transaction(company_id=person.company_id) as session:
        await people.keep_authorization(session, settings, connection, person, host_tokens)
    flash(request, f"{label} is authorized: you can host your meetings there now.", "success")
    return redirect(back)
