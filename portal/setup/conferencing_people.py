"""Company Setup > Web Conferencing > one connection's people by hand: mapping a provider user
to a person, and choosing the people a connection serves."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.conferencing import mapping, serving
from portal.conferencing.connections import kind_of
from portal.conferencing.models import ConferencingConnection, ProviderAccount, reason_text
from portal.forms import FormErrors, parse_id, search_text
from portal.pagination import page_number
from portal.setup.conferencing import connection_or_404
from portal.setup.menu import render_setup
from portal.web import admin_required, db_session, flash, form_data, int_param, redirect

# The people offered to map a provider user to: a page of the connection's chooser.
CHOOSER_SIZE = 25
NO_PERSON = "No such person in your company."


def _connection_url(request: Request, connection: ConferencingConnection, **query: str) -> str:
    url = request.url_for("setup.conferencing_connection", connection_id=connection.id)
    return str(url.include_query_params(**query) if query else url)


async def _account_or_404(request: Request) -> tuple[ConferencingConnection, ProviderAccount]:
    session = db_session(request)
    connection = await connection_or_404(request)
    account = await session.get(ProviderAccount, int_param(request, "account_id"))
    # `get` may answer from the identity map, which the company scope does not filter.
    if account is None or account.connection_id != connection.id:
        raise HTTPException(404, "No such provider user in this connection.")
    return connection, account


@admin_required
async def conferencing_map(request: Request) -> Response:
    """Choose a person for a provider user: a search of the people served, then the mapping."""
    connection, account = await _account_or_404(request)
    session = db_session(request)
    errors: dict[str, str] = {}
    if request.method == "POST":
        user_id = parse_id((await form_data(request)).get("user_id"))
        if user_id is None:
            raise HTTPException(404, NO_PERSON)
        try:
            await mapping.map_by_hand(session, connection, account.id or 0, user_id)
        except serving.NotFoundError:
            raise HTTPException(404, NO_PERSON) from None
        except FormErrors as error:
            errors = error.errors
        else:
            flash(request, f"{account.email or account.name} is mapped by hand.", "success")
            return redirect(_connection_url(request, connection, show="mapped", q=account.email))
    q = search_text(request.query_params.get("q", ""))
    page = page_number(request.query_params.get("page"))
    people = await serving.served_people(session, connection, q, page, CHOOSER_SIZE)
    context = {
        "connection": connection,
        "kind": kind_of(connection),
        "account": account,
        "q": q,
        "people": people,
        "errors": errors,
        "reason_text": reason_text,
    }
    status = 400 if errors else 200
    return render_setup(
        request, "setup/conferencing_map.html", context, block="choices", status_code=status
    )


@admin_required
async def conferencing_unmap(request: Request) -> Response:
    connection, account = await _account_or_404(request)
    await mapping.unmap_by_hand(db_session(request), connection, account.id or 0)
    flash(
        request,
        f"{account.email or account.name} is unmapped by hand: syncs leave it so.",
        "success",
    )
    return redirect(_connection_url(request, connection))


@admin_required
async def conferencing_clear_manual(request: Request) -> Response:
    connection, account = await _account_or_404(request)
    await mapping.clear_manual(db_session(request), connection, account.id or 0)
    flash(
        request,
        f"{account.email or account.name} is matched by email again from the next sync.",
        "success",
    )
    return redirect(_connection_url(request, connection))


async def _members_context(
    request: Request, connection: ConferencingConnection, values: dict[str, str]
) -> dict[str, Any]:
    session = db_session(request)
    q = search_text(request.query_params.get("q", ""))
    find = search_text(request.query_params.get("find", ""))
    page = page_number(request.query_params.get("page"))
    return {
        "connection": connection,
        "kind": kind_of(connection),
        "q": q,
        "find": find,
        "members": await serving.members(session, connection, q, page),
        "candidates": await serving.candidates(session, connection, find),
        "values": values,
        "errors": {},
    }


def _members_url(request: Request, connection: ConferencingConnection) -> str:
    return str(request.url_for("setup.conferencing_members", connection_id=connection.id))


@admin_required
async def conferencing_members(request: Request) -> Response:
    """The people chosen for the connection (searched, paged), and finding more to choose."""
    connection = await connection_or_404(request)
    context = await _members_context(request, connection, {})
    return render_setup(request, "setup/conferencing_members.html", context, block="members")


@admin_required
async def conferencing_member_add(request: Request) -> Response:
    """Choose a person: by the id a search result sends, or by the email address typed."""
    connection = await connection_or_404(request)
    session = db_session(request)
    data = await form_data(request)
    try:
        if "user_id" in data:
            user_id = parse_id(data["user_id"])
            if user_id is None:
                raise HTTPException(404, NO_PERSON)
            person, added = await serving.add_member(session, connection, user_id)
        else:
            person, added = await serving.add_member_by_email(
                session, connection, data.get("email", "")
            )
    except serving.NotFoundError:
        raise HTTPException(404, NO_PERSON) from None
    except FormErrors as error:
        context = await _members_context(request, connection, data)
        context["errors"] = error.errors
        return render_setup(request, "setup/conferencing_members.html", context, status_code=400)
    said = "is chosen" if added else "was chosen already"
    flash(request, f"{person.display_name} {said} for “{connection.name}”.", "success")
    return redirect(_members_url(request, connection))


@admin_required
async def conferencing_member_remove(request: Request) -> Response:
    connection = await connection_or_404(request)
    try:
        person = await serving.remove_member(
            db_session(request), connection, int_param(request, "user_id")
        )
    except serving.NotFoundError:
        raise HTTPException(404, "No such person among the people chosen.") from None
    flash(request, f"{person.display_name} is no longer chosen for “{connection.name}”.", "success")
    return redirect(_members_url(request, connection))
