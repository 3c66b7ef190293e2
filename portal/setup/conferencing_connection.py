"""Company Setup > Web Conferencing > one connection: its credentials, its own settings (which
override the sitewide ones), syncing its users and who is mapped to whom; or, where people
sign in to the provider themselves, who has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.conferencing import mapping, serving
from portal.conferencing.connections import (
    disconnect,
    kind_of,
    masked_credentials,
    provisioning_method,
    replace_credentials,
    sitewide_settings,
)
from portal.conferencing.models import SERVES, ConferencingConnection, SyncRun, reason_text
from portal.conferencing.options import update_settings
from portal.conferencing.providers import AUTOMATIC, ProviderKind
from portal.conferencing.sync import latest_run, request_sync, sync_run
from portal.directory import services as directory
from portal.forms import FormErrors, search_text
from portal.htmx import STOP_POLLING, is_htmx
from portal.pagination import page_number
from portal.setup.conferencing import connection_or_404, notes_context
from portal.setup.menu import render_setup
from portal.web import (
    admin_required,
    company_of,
    db_session,
    flash,
    form_data,
    int_param,
    keep_despite_refusal,
    read_form,
    redirect,
    settings_of,
    viewer,
)

PAGE = "setup/conferencing_connection.html"
# The mapping's three lists, by the `show` parameter; the first is shown by default.
LISTS = ("mapped", "people", "provider")
_OVERRIDE = {None: "", True: "on", False: "off"}


def _url(request: Request, connection: ConferencingConnection, **query: str) -> str:
    url = request.url_for("setup.conferencing_connection", connection_id=connection.id)
    return str(url.include_query_params(**query) if query else url)


def _syncs(kind: ProviderKind) -> bool:
    return kind.people == AUTOMATIC


async def _people_context(request: Request, connection: ConferencingConnection) -> dict[str, Any]:
    """The list the admin asked for (`show`; the first by default), searched (`q`) and paged,
    with every list's count: the mapping's lists where users are synced, else who signed in."""
    session = db_session(request)
    syncs = _syncs(kind_of(connection))
    lists = LISTS if syncs else serving.LOGIN_LISTS
    show = request.query_params.get("show", "")
    show = show if show in lists else lists[0]
    q = search_text(request.query_params.get("q", ""))
    number = page_number(request.query_params.get("page"))
    if not syncs:
        rows = await serving.people_logins(session, connection, show, q, number)
        counts = await serving.login_counts(session, connection)
        return {"show": show, "q": q, "rows": rows, "counts": counts}
    lister = {
        "mapped": mapping.mapped_people,
        "people": mapping.people_without_account,
        "provider": mapping.provider_users_without_person,
    }[show]
    return {
        "show": show,
        "q": q,
        "rows": await lister(session, connection, q, number),
        "counts": await mapping.counts(session, connection),
        "run": await latest_run(session, connection),
    }


def _settings_values(connection: ConferencingConnection) -> dict[str, Any]:
    return {
        "name": connection.name,
        "serves": connection.serves,
        "departments": connection.departments,
        "auto_create": _OVERRIDE[connection.auto_create],
        "provisioning": provisioning_method(connection),
        "join_before_host": _OVERRIDE[connection.join_before_host],
        "sync_hour": str(connection.sync_hour),
    }


async def _connection_context(
    request: Request,
    connection: ConferencingConnection,
    *,
    values: Mapping[str, str] | None = None,
    departments: Sequence[str] = (),
    errors: dict[str, str] | None = None,
    failed: str = "",
) -> dict[str, Any]:
    """Everything the page shows of a connection; `failed` names the form `errors` are for,
    whose `values` (and ticked `departments`) are shown back as sent."""
    session = db_session(request)
    kind = kind_of(connection)
    options = _settings_values(connection)
    if failed == "settings" and values is not None:
        options = {**options, **values, "departments": list(departments)}
    credentials = {**connection.public_credentials}
    if failed == "credentials" and values is not None:
        credentials = {f.name: values.get(f.name, "") for f in kind.fields if not f.secret}
    known = await directory.departments(session)
    return {
        "connection": connection,
        "kind": kind,
        "syncs": _syncs(kind),
        "masked": masked_credentials(connection),
        "credential_values": credentials,
        "options": options,
        "errors": errors or {},
        "failed": failed,
        "serves_choices": SERVES,
        "departments": sorted({*known, *connection.departments}),
        "member_count": await serving.member_count(session, connection),
        "sitewide": await sitewide_settings(session, company_of(request).id or 0),
        "time_zone": company_of(request).default_time_zone,
        "reason_text": reason_text,
        **notes_context(request),
        **await _people_context(request, connection),
    }


@admin_required
async def conferencing_connection(request: Request) -> Response:
    """The connection's page; its lists alone for htmx (search, tabs, a finished sync)."""
    connection = await connection_or_404(request)
    context = await _connection_context(request, connection)
    block = "mapping" if context["syncs"] else "logins"
    return render_setup(request, PAGE, context, block=block)


@admin_required
async def conferencing_credentials(request: Request) -> Response:
    connection = await connection_or_404(request)
    data = await form_data(request)
    try:
        await replace_credentials(db_session(request), settings_of(request), connection, data)
    except FormErrors as error:
        # Nothing was written but what the provider renewed of the stored credentials (Webex's
        # refresh token), which the connection needs from now on.
        keep_despite_refusal(request)
        context = await _connection_context(
            request, connection, values=data, errors=error.errors, failed="credentials"
        )
        return render_setup(request, PAGE, context, status_code=400)
    flash(request, "The new credentials work and are saved.", "success")
    return redirect(_url(request, connection))


@admin_required
async def conferencing_settings(request: Request) -> Response:
    connection = await connection_or_404(request)
    async with read_form(request) as form:
        data = {key: value for key, value in form.items() if isinstance(value, str)}
        departments = [value for value in form.getlist("departments") if isinstance(value, str)]
    try:
        await update_settings(db_session(request), connection, data, departments)
    except FormErrors as error:
        context = await _connection_context(
            request,
            connection,
            values=data,
            departments=departments,
            errors=error.errors,
            failed="settings",
        )
        return render_setup(request, PAGE, context, status_code=400)
    flash(request, f"The settings of “{connection.name}” are saved.", "success")
    return redirect(_url(request, connection))


@admin_required
async def conferencing_disconnect(request: Request) -> Response:
    """A confirmation page, then the removal (the mapping and the history go with it)."""
    session = db_session(request)
    connection = await connection_or_404(request)
    kind = kind_of(connection)
    if request.method == "GET":
        context = {"connection": connection, "kind": kind, "syncs": _syncs(kind)}
        if _syncs(kind):
            context["counts"] = await mapping.counts(session, connection)
        else:
            context["counts"] = await serving.login_counts(session, connection)
        return render_setup(request, "setup/conferencing_disconnect.html", context)
    name = connection.name
    await disconnect(session, connection)
    flash(
        request,
        f"“{name}” is removed. The people it served host on another connection, or Jitsi Meet.",
        "success",
    )
    return redirect(str(request.url_for("setup.conferencing")))


async def _synced_connection_or_404(request: Request) -> ConferencingConnection:
    connection = await connection_or_404(request)
    if not _syncs(kind_of(connection)):
        raise HTTPException(404, "Its people sign in themselves: this connection has no sync.")
    return connection


def _run_page(request: Request, run: SyncRun, connection: ConferencingConnection) -> Response:
    context = {"run": run, "connection": connection, "kind": kind_of(connection)}
    response = render_setup(request, "setup/conferencing_run.html", context, block="run_status")
    if is_htmx(request) and run.finished:
        # The page's lists and counts change with a finished run: they reload on this event.
        response.headers["HX-Trigger"] = "conferencing-synced"
    return response


@admin_required
async def conferencing_sync(request: Request) -> Response:
    """Refresh sync: start a run (or join the one under way) and show its progress."""
    connection = await _synced_connection_or_404(request)
    run = await request_sync(db_session(request), connection, requested_by=viewer(request).id)
    if is_htmx(request):
        return _run_page(request, run, connection)
    flash(request, "The sync is under way: reload this page to follow it.", "info")
    return redirect(_url(request, connection))


@admin_required
async def conferencing_run(request: Request) -> Response:
    """One run's progress and summary: what the page polls while a sync runs."""
    try:
        connection = await connection_or_404(request)
        run = await sync_run(db_session(request), int_param(request, "run_id"))
        if run is None or run.connection_id != connection.id or run.person_id is not None:
            raise HTTPException(404, "No such sync of this connection.")
    except HTTPException:
        if is_htmx(request):
            # Removed while a page followed it: stop the page polling for it every second.
            return Response(status_code=STOP_POLLING)
        raise
    return _run_page(request, run, connection)


@admin_required
async def conferencing_history(request: Request) -> Response:
    session = db_session(request)
    connection = await _synced_connection_or_404(request)
    runs = await mapping.sync_history(
        session, connection, page_number(request.query_params.get("page"))
    )
    context = {"connection": connection, "kind": kind_of(connection), "runs": runs}
    return render_setup(request, "setup/conferencing_history.html", context, block="history")
