"""Company Setup > General > Web Conferencing: the sitewide settings, the company's connections,
and adding one. Each connection's own page is conferencing_connection.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.conferencing import mapping, people, serving
from portal.conferencing.connections import (
    connect,
    connection_by_id,
    connections_of,
    kind_of,
    sitewide_settings,
)
from portal.conferencing.models import SERVES, ConferencingConnection, SyncRun
from portal.conferencing.options import update_sitewide
from portal.conferencing.providers import AUTOMATIC, KINDS, ProviderKind
from portal.conferencing.sync import latest_run
from portal.forms import FormErrors
from portal.htmx import is_htmx
from portal.setup.menu import render_setup
from portal.web import (
    admin_required,
    company_of,
    db_session,
    flash,
    form_data,
    int_param,
    redirect,
    settings_of,
)

PAGE = "setup/conferencing.html"
# What the add form shows first: the first provider that needs an account.
FIRST_KIND = next(kind for kind in KINDS.values() if kind.needs_account)


async def connection_or_404(request: Request) -> ConferencingConnection:
    """The connection the path names (`connection_id`), if it is the viewer's company's."""
    connection = await connection_by_id(db_session(request), int_param(request, "connection_id"))
    if connection is None:
        raise HTTPException(404, "No such conferencing connection in your company.")
    return connection


def notes_context(request: Request) -> dict[str, str]:
    """What the provider notes tell an admin to register at the provider."""
    settings = settings_of(request)
    return {"base_url": settings.base_url, "redirect_uri": people.redirect_uri(settings)}


def _kind_chosen(raw: str | None) -> ProviderKind:
    """The provider the add form is for; an unknown choice is the first one."""
    return KINDS.get(raw or "", FIRST_KIND)


@dataclass(frozen=True)
class ConnectionRow:
    """A connection as the overview lists it."""

    connection: ConferencingConnection
    kind: ProviderKind
    syncs: bool  # its users are synced (else people sign in themselves)
    linked: int  # people mapped (synced) or signed in (password providers)
    unlinked: int  # people served without a usable account
    members: int  # people chosen by hand
    run: SyncRun | None


async def _row(session: AsyncSession, connection: ConferencingConnection) -> ConnectionRow:
    kind = kind_of(connection)
    members = await serving.member_count(session, connection)
    if kind.people == AUTOMATIC:
        counts = await mapping.counts(session, connection)
        run = await latest_run(session, connection)
        return ConnectionRow(
            connection, kind, True, counts.mapped, counts.people_unmapped, members, run
        )
    logins = await serving.login_counts(session, connection)
    unlinked = logins.refused + logins.unlinked
    return ConnectionRow(connection, kind, False, logins.linked, unlinked, members, None)


async def _overview_context(
    request: Request, kind: ProviderKind, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    session = db_session(request)
    # A company has a handful of connections: a few counts each is cheap.
    rows = [await _row(session, connection) for connection in await connections_of(session)]
    return {
        "rows": rows,
        "serves": SERVES,
        "sitewide": await sitewide_settings(session, company_of(request).id or 0),
        **_connect_context(request, kind, values, errors),
    }


def _connect_context(
    request: Request, kind: ProviderKind, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    # A secret the admin typed is never sent back, not even to the admin who typed it.
    secrets = {field.name for field in kind.fields if field.secret}
    shown = {name: value for name, value in values.items() if name not in secrets}
    shown.setdefault("name", kind.label)
    context = {"kinds": KINDS, "kind": kind, "values": shown, "errors": errors}
    return {**context, **notes_context(request)}


@admin_required
async def conferencing(request: Request) -> Response:
    """The overview: sitewide settings, the connections, and the form to add one."""
    kind = _kind_chosen(request.query_params.get("provider"))
    return render_setup(request, PAGE, await _overview_context(request, kind, {}, {}))


@admin_required
async def conferencing_provider(request: Request) -> Response:
    """The add form's fields for another provider (htmx), or the page with them."""
    kind = _kind_chosen(request.query_params.get("provider"))
    if is_htmx(request):
        context = _connect_context(request, kind, {}, {})
    else:
        context = await _overview_context(request, kind, {}, {})
    return render_setup(request, PAGE, context, block="connect_form")


@admin_required
async def conferencing_connect(request: Request) -> Response:
    data = await form_data(request)
    kind = _kind_chosen(data.get("provider"))
    try:
        connection = await connect(
            db_session(request),
            settings_of(request),
            company_of(request).id or 0,
            data.get("provider", ""),
            data,
        )
    except FormErrors as error:
        context = await _overview_context(request, kind, data, error.errors)
        return render_setup(request, PAGE, context, status_code=400)
    then = (
        "Refresh sync to map its users to your people."
        if kind.people == AUTOMATIC
        else f"The people it serves can now enter their {kind.label} account on their "
        "Conferencing Accounts page."
    )
    flash(
        request, f"The {kind.label} account is connected as “{connection.name}”. {then}", "success"
    )
    return redirect(
        str(request.url_for("setup.conferencing_connection", connection_id=connection.id))
    )


@admin_required
async def conferencing_sitewide(request: Request) -> Response:
    data = await form_data(request)
    await update_sitewide(db_session(request), company_of(request).id or 0, data)
    flash(request, "The sitewide settings are saved.", "success")
    return redirect(str(request.url_for("setup.conferencing")))
