"""Company Setup > Users: the admin's list of people, adding, editing, (de)activating, importing."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts import services
from portal.accounts.forms import clean_person
from portal.accounts.imports import ImportRefused, import_people
from portal.accounts.models import User
from portal.directory import search
from portal.forms import FormErrors, search_text
from portal.pagination import page_number
from portal.setup.menu import render_setup
from portal.timezones import time_zones
from portal.web import (
    admin_required,
    company_of,
    db_session,
    flash,
    form_data,
    int_param,
    read_form,
    redirect,
    settings_of,
    viewer,
)


@admin_required
async def setup_home(request: Request) -> Response:
    return redirect(str(request.url_for("setup.users")))


@admin_required
async def users(request: Request) -> Response:
    q = search_text(request.query_params.get("q", ""))
    status = request.query_params.get("status", "")
    if status not in (search.ACTIVE, search.INACTIVE):
        status = search.EVERYONE
    page = await search.search_people(
        db_session(request),
        q,
        status=status,
        columns=search.ADMIN_LISTED_COLUMNS,
        page=page_number(request.query_params.get("page")),
    )
    context = {"page": page, "q": q, "status": status}
    return render_setup(request, "setup/users.html", context, block="user_list")


async def _person_or_404(request: Request) -> User:
    user = await db_session(request).get(User, int_param(request, "user_id"))
    if user is None:
        raise HTTPException(404, "No such person in your company.")
    return user


def _form_context(
    person: User | None, values: dict[str, str], errors: dict[str, str]
) -> dict[str, object]:
    return {"person": person, "values": values, "errors": errors, "time_zones": time_zones()}


def _values_of(user: User) -> dict[str, str]:
    return {
        "display_name": user.display_name,
        "email": user.email,
        "title": user.title,
        "department": user.department,
        "phone": user.phone,
        "time_zone": user.time_zone,
        "role": user.role,
    }


@admin_required
async def user_new(request: Request) -> Response:
    company = company_of(request)
    if request.method == "GET":
        values = {"time_zone": company.default_time_zone, "role": "member"}
        return render_setup(request, "setup/user_form.html", _form_context(None, values, {}))
    data = await form_data(request)
    person, errors = clean_person(data, default_tz=company.default_time_zone)
    if not errors:
        try:
            user = await services.add_person(
                db_session(request), settings_of(request), company, viewer(request), person
            )
        except FormErrors as error:
            errors = error.errors
        else:
            flash(
                request,
                f"{user.display_name} is added. A link to set a password is on its way to them.",
                "success",
            )
            return redirect(str(request.url_for("setup.user_edit", user_id=user.id)))
    return render_setup(
        request, "setup/user_form.html", _form_context(None, data, errors), status_code=400
    )


@admin_required
async def user_edit(request: Request) -> Response:
    user = await _person_or_404(request)
    if request.method == "GET":
        return render_setup(
            request, "setup/user_form.html", _form_context(user, _values_of(user), {})
        )
    data = await form_data(request)
    person, errors = clean_person(data, default_tz=company_of(request).default_time_zone)
    if not errors:
        try:
            await services.update_person(db_session(request), viewer(request), user, person)
        except FormErrors as error:
            errors = error.errors
        else:
            flash(request, f"{user.display_name}'s details are saved.", "success")
            return redirect(str(request.url_for("setup.users")))
    return render_setup(
        request, "setup/user_form.html", _form_context(user, data, errors), status_code=400
    )


async def _set_active(request: Request, active: bool) -> Response:
    user = await _person_or_404(request)
    try:
        await services.set_active(db_session(request), viewer(request), user, active)
    except FormErrors as error:
        flash(request, " ".join(error.errors.values()), "error")
    else:
        state = "reactivated" if active else "deactivated and signed out"
        flash(request, f"{user.display_name} is {state}.", "success")
    return redirect(str(request.url_for("setup.user_edit", user_id=user.id)))


@admin_required
async def user_deactivate(request: Request) -> Response:
    return await _set_active(request, False)


@admin_required
async def user_reactivate(request: Request) -> Response:
    return await _set_active(request, True)


@admin_required
async def user_resend(request: Request) -> Response:
    user = await _person_or_404(request)
    if not user.active:
        flash(request, "Reactivate this person before sending them a link.", "error")
    else:
        await services.resend_invitation(
            db_session(request), settings_of(request), company_of(request), viewer(request), user
        )
        flash(request, f"A new set-password link is on its way to {user.email}.", "success")
    return redirect(str(request.url_for("setup.user_edit", user_id=user.id)))


@admin_required
async def users_import(request: Request) -> Response:
    if request.method == "GET":
        return render_setup(request, "setup/import.html", {})
    async with read_form(request) as form:
        upload = form.get("file")
        data = await upload.read() if upload is not None and not isinstance(upload, str) else b""
    try:
        report = await import_people(
            db_session(request), settings_of(request), company_of(request), viewer(request), data
        )
    except ImportRefused as error:
        return render_setup(
            request, "setup/import.html", {"file_error": str(error)}, status_code=400
        )
    return render_setup(request, "setup/import.html", {"report": report})
