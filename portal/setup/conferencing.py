"""Company Setup > General > Web Conferencing: the company's conferencing account, its options,
syncing its users, and who is mapped to whom."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.conferencing import mapping
from portal.conferencing.connections import (
    connect,
    connection_of,
    disconnect,
    kind_of,
    masked_credentials,
    replace_credentials,
    update_options,
)
from portal.conferencing.models import (
    ConferencingConnection,
    ProviderAccount,
    SyncRun,
    reason_text,
)
from portal.conferencing.providers import KINDS, ProviderKind
from portal.conferencing.sync import latest_run, request_sync, sync_run
from portal.directory import services as directory
from portal.forms import FormErrors, parse_id, search_text
from portal.htmx import STOP_POLLING, is_htmx
from portal.pagination import page_number
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
    viewer,
)

PAGE = "setup/conferencing.html"
# The mapping's three lists, by the `show` parameter; the first is shown by default.
LISTS = ("mapped", "people", "provider")
# What a page shows while the company has no account: the first provider that needs one.
FIRST_KIND = next(kind for kind in KINDS.values() if kind.needs_account)


def _kind_chosen(raw: str | None) -> ProviderKind:
    """The provider the connect form is for; an unknown choice is the first one."""
    return KINDS.get(raw or "", FIRST_KIND)


def _connect_context(
    kind: ProviderKind, values: dict[str, str], errors: dict[str, str]
) -> dict[str, Any]:
    # A secret the admin typed is never sent back, not even to the admin who typed it.
    secrets = {field.name for field in kind.fields if field.secret}
    shown = {name: value for name, value in values.items() if name not in secrets}
    return {
        "connection": None,
        "kinds": KINDS,
        "kind": kind,
        "values": shown,
        "errors": errors,
    }


async def _connection_or_404(session: AsyncSession) -> ConferencingConnection:
    connection = await connection_of(session)
    if connection is None:
        raise HTTPException(404, "Your company has no conferencing account connected.")
    return connection


async def _mapping_context(request: Request, connection: ConferencingConnection) -> dict[str, Any]:
    """The list the admin asked for (`show`), searched (`q`) and paged, with every list's count."""
    session = db_session(request)
    show = request.query_params.get("show", "")
    if show not in LISTS:
        show = LISTS[0]
    q = search_text(request.query_params.get("q", ""))
    number = page_number(request.query_params.get("page"))
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
    }


async def _connected_context(
    request: Request,
    connection: ConferencingConnection,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    failed: str = "",
) -> dict[str, Any]:
    """Everything the page shows of a connection; `failed` names the form that `errors` are for."""
    kind = kind_of(connection)
    options = {
        "sync_hour": str(connection.sync_hour),
        "auto_create": connection.auto_create,
        "provisioning": connection.provisioning,
        "join_before_host": connection.join_before_host,
        "allow_jitsi_fallback": connection.allow_jitsi_fallback,
    }
    if failed == "options" and values is not None:
        options = {**values, "auto_create": bool(values.get("auto_create"))}
    credentials = {**connection.public_credentials}
    if failed == "credentials" and values is not None:
        credentials = {
            field.name: values.get(field.name, "") for field in kind.fields if not field.secret
        }
    return {
        "connection": connection,
        "kind": kind,
        "masked": masked_credentials(connection),
        "credential_values": credentials,
        "options": options,
        "errors": errors or {},
        "failed": failed,
        "run": await latest_run(db_session(request), connection),
        "time_zone": company_of(request).default_time_zone,
        "reason_text": reason_text,
        **await _mapping_context(request, connection),
    }


@admin_required
async def conferencing(request: Request) -> Response:
    """The page: the connect form, or the connection with its options, sync and mapping."""
    connection = await connection_of(db_session(request))
    if connection is None:
        kind = _kind_chosen(request.query_params.get("provider"))
        return render_setup(request, PAGE, _connect_context(kind, {}, {}))
    context = await _connected_context(request, connection)
    return render_setup(request, PAGE, context, block="mapping")


@admin_required
async def conferencing_provider(request: Request) -> Response:
    """The connect form's fields for another provider (htmx), or the page with them."""
    if await connection_of(db_session(request)) is not None:
        return redirect(str(request.url_for("setup.conferencing")))
    kind = _kind_chosen(request.query_params.get("provider"))
    return render_setup(request, PAGE, _connect_context(kind, {}, {}), block="connect_form")


@admin_required
async def conferencing_connect(request: Request) -> Response:
    data = await form_data(request)
    kind = _kind_chosen(data.get("provider"))
    try:
        await connect(
            db_session(request),
            settings_of(request),
            company_of(request).id or 0,
            data.get("provider", ""),
            data,
        )
    except FormErrors as error:
        context = _connect_context(kind, data, error.errors)
        return render_setup(request, PAGE, context, status_code=400)
    flash(
        request,
        f"The {kind.label} account is connected. Refresh sync to map its users to your people.",
        "success",
    )
    return redirect(str(request.url_for("setup.conferencing")))


@admin_required
async def conferencing_credentials(request: Request) -> Response:
    session = db_session(request)
    connection = await _connection_or_404(session)
    data = await form_data(request)
    try:
        await replace_credentials(session, settings_of(request), connection, data)
    except FormErrors as error:
        context = await _connected_context(
            request, connection, values=data, errors=error.errors, failed="credentials"
        )
        return render_setup(request, PAGE, context, status_code=400)
    flash(request, "The new credentials work and are saved.", "success")
    return redirect(str(request.url_for("setup.conferencing")))


@admin_required
async def conferencing_options(request: Request) -> Response:
    session = db_session(request)
    connection = await _connection_or_404(session)
    data = await form_data(request)
    try:
        await update_options(session, connection, data)
    except FormErrors as error:
        context = await _connected_context(
            request, connection, values=data, errors=error.errors, failed="options"
        )
        return render_setup(request, PAGE, context, status_code=400)
    flash(request, "The options are saved.", "success")
    return redirect(str(request.url_for("setup.conferencing")))


@admin_required
async def conferencing_disconnect(request: Request) -> Response:
    """A confirmation page, then the removal (the mapping and the history go with it)."""
    session = db_session(request)
    connection = await _connection_or_404(session)
    kind = kind_of(connection)
    if request.method == "GET":
        counts = await mapping.counts(session, connection)
        context = {"connection": connection, "kind": kind, "counts": counts}
        return render_setup(request, "setup/conferencing_disconnect.html", context)
    await disconnect(session, connection)
    flash(
        request,
        f"The {kind.label} account is removed. Everyone's room is on Jitsi Meet again.",
        "success",
    )
    return redirect(str(request.url_for("setup.conferencing")))


def _run_page(request: Request, run: SyncRun, kind: ProviderKind) -> Response:
    context = {"run": run, "kind": kind}
    response = render_setup(request, "setup/conferencing_run.html", context, block="run_status")
    if is_htmx(request) and run.finished:
        # The page's lists and counts change with a finished run: they reload on this event.
        response.headers["HX-Trigger"] = "conferencing-synced"
    return response


@admin_required
async def conferencing_sync(request: Request) -> Response:
    """Refresh sync: start a run (or join the one under way) and show its progress."""
    session = db_session(request)
    connection = await _connection_or_404(session)
    run = await request_sync(session, connection, requested_by=viewer(request).id)
    if is_htmx(request):
        return _run_page(request, run, kind_of(connection))
    flash(request, "The sync is under way: reload this page to follow it.", "info")
    return redirect(str(request.url_for("setup.conferencing")))


@admin_required
async def conferencing_run(request: Request) -> Response:
    """One run's progress and summary: what the page polls while a sync runs."""
    session = db_session(request)
    run = await sync_run(session, int_param(request, "run_id"))
    connection = await connection_of(session)
    if (run is None or connection is None) and is_htmx(request):
        # Removed while a page followed it: stop the page polling for it every second.
        return Response(status_code=STOP_POLLING)
    if run is None or connection is None:
        raise HTTPException(404, "No such sync in your company.")
    return _run_page(request, run, kind_of(connection))


@admin_required
async def conferencing_history(request: Request) -> Response:
    session = db_session(request)
    connection = await _connection_or_404(session)
    runs = await mapping.sync_history(
        session, connection, page_number(request.query_params.get("page"))
    )
    context = {"connection": connection, "kind": kind_of(connection), "runs": runs}
    return render_setup(request, "setup/conferencing_history.html", context, block="history")


async def _account_or_404(request: Request) -> tuple[ConferencingConnection, ProviderAccount]:
    session = db_session(request)
    connection = await _connection_or_404(session)
    account_id = int_param(request, "account_id")
    account = await session.get(ProviderAccount, account_id)
    if account is None or account.connection_id != connection.id:
        raise HTTPException(404, "No such provider user in your company's account.")
    return connection, account


@admin_required
async def conferencing_map(request: Request) -> Response:
    """Choose a person for a provider user: a search of active people, then the mapping."""
    connection, account = await _account_or_404(request)
    account_id = account.id or 0
    session = db_session(request)
    errors: dict[str, str] = {}
    if request.method == "POST":
        user_id = parse_id((await form_data(request)).get("user_id"))
        if user_id is None:
            raise HTTPException(404, "No such person in your company.")
        try:
            await mapping.map_by_hand(session, connection, account_id, user_id)
        except mapping.NotFoundError:
            raise HTTPException(404, "No such person in your company.") from None
        except FormErrors as error:
            errors = error.errors
        else:
            flash(request, f"{account.email or account.name} is mapped by hand.", "success")
            mapped = request.url_for("setup.conferencing").include_query_params(
                show="mapped", q=account.email
            )
            return redirect(str(mapped))
    q = search_text(request.query_params.get("q", ""))
    page = page_number(request.query_params.get("page"))
    people = await directory.search_people(session, q, page=page)
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
    return redirect(str(request.url_for("setup.conferencing")))


@admin_required
async def conferencing_clear_manual(request: Request) -> Response:
    connection, account = await _account_or_404(request)
    await mapping.clear_manual(db_session(request), connection, account.id or 0)
    flash(
        request,
        f"{account.email or account.name} is matched by email again from the next sync.",
        "success",
    )
    return redirect(str(request.url_for("setup.conferencing")))
