"""Signing in and out, setting passwords, and a person's own Account Settings."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.accounts import services, signin
from portal.accounts.forms import clean_profile
from portal.accounts.models import User
from portal.accounts.tokens import InvalidLink
from portal.conferencing import my_accounts
from portal.db import UNSCOPED
from portal.forms import FormErrors, parse_id
from portal.htmx import render
from portal.timezones import time_zones
from portal.web import (
    company_of,
    database_of,
    db_session,
    end_session,
    flash,
    form_data,
    login_required,
    redirect,
    safe_next,
    settings_of,
    signed_in_ids,
    start_session,
    viewer,
)


async def sign_in(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        if signed_in_ids(request):
            return redirect(next_url or str(request.url_for("home")))
        return render(request, "accounts/sign_in.html", {"email": "", "next": next_url})
    data = await form_data(request)
    next_url = safe_next(data.get("next"))
    result = await _sign_in(request, data)
    if result.user is None:
        context = {
            "email": data.get("email", ""),
            "next": next_url,
            "error": result.error,
            "companies": result.companies,
        }
        return render(
            request, "accounts/sign_in.html", context, status_code=200 if result.companies else 400
        )
    start_session(request, result.user)
    landing = await _conferencing_landing(request, result.user, next_url)
    return redirect(landing or next_url or str(request.url_for("home")))


async def _conferencing_landing(request: Request, user: User, next_url: str | None) -> str | None:
    """Conferencing Accounts, when the company asks for an account the person has not linked;
    where they were going stays a link there."""
    async with database_of(request).session(company_id=user.company_id) as session:
        if not await my_accounts.must_link_account(session, user):
            return None
    flash(request, my_accounts.LINK_FIRST, "warning")
    landing = request.url_for("accounts.conferencing")
    return str(landing.include_query_params(next=next_url) if next_url else landing)


async def _sign_in(request: Request, data: dict[str, str]) -> signin.SignInResult:
    """Claim a try (committed before the check), check the password outside any transaction,
    then settle the claim."""
    db, settings, password = database_of(request), settings_of(request), data.get("password", "")
    source = signin.sign_in_source(
        request.client.host if request.client else None,
        request.headers.getlist("x-forwarded-for"),
        settings.trusted_proxies,
    )
    async with db.transaction(company_id=UNSCOPED) as session:
        attempt = await signin.begin_sign_in(session, data.get("email", ""), password, source)
    if attempt.error is not None:
        return signin.SignInResult(error=attempt.error)
    matches = await signin.check_password(settings.password_hasher, attempt, password)
    async with db.transaction(company_id=UNSCOPED) as session:
        return await signin.finish_sign_in(
            session, attempt, matches, parse_id(data.get("company_id", ""))
        )


async def sign_out(request: Request) -> Response:
    ids = signed_in_ids(request)
    if ids is not None:
        user_id, company_id = ids
        async with database_of(request).transaction(company_id=company_id) as session:
            await services.end_sessions(session, user_id)
    end_session(request)
    flash(request, "You are signed out.")
    return redirect(str(request.url_for("accounts.sign_in")))


async def forgot_password(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "accounts/forgot_password.html", {"email": ""})
    data = await form_data(request)
    async with database_of(request).transaction(company_id=UNSCOPED) as session:
        await services.request_password_reset(session, settings_of(request), data.get("email", ""))
    flash(
        request,
        "If that address belongs to an active account, a link to choose a new password "
        "is on its way. It expires in "
        f"{settings_of(request).set_password_link_hours} hours.",
    )
    return redirect(str(request.url_for("accounts.sign_in")))


async def set_password(request: Request) -> Response:
    token = request.path_params["token"]
    db, settings = database_of(request), settings_of(request)
    try:
        if request.method == "GET":
            user = await services.user_for_link(db, settings, token)
            return render(request, "accounts/set_password.html", {"person": user, "errors": {}})
        data = await form_data(request)
        user, password_hash = await services.password_from_link(
            db, settings, token, data.get("new_password", ""), data.get("confirm_password", "")
        )
        async with db.transaction(company_id=user.company_id) as session:
            user = await services.set_password_from_link(session, user, password_hash)
    except InvalidLink as error:
        return render(
            request, "accounts/set_password.html", {"link_error": str(error)}, status_code=400
        )
    except FormErrors as error:
        user = await services.user_for_link(db, settings, token)
        return render(
            request,
            "accounts/set_password.html",
            {"person": user, "errors": error.errors},
            status_code=400,
        )
    start_session(request, user)
    flash(request, "Your password is set. Welcome!", "success")
    return redirect(str(request.url_for("home")))


def _profile_context(request: Request, **extra: object) -> dict[str, object]:
    user = viewer(request)
    values = {
        "display_name": user.display_name,
        "title": user.title,
        "phone": user.phone,
        "time_zone": user.time_zone,
    }
    return {
        "time_zones": time_zones(),
        "values": values,
        "profile_errors": {},
        "password_errors": {},
        **extra,
    }


@login_required
async def profile(request: Request) -> Response:
    if request.method == "GET":
        return render(request, "accounts/profile.html", _profile_context(request))
    data = await form_data(request)
    cleaned, errors = clean_profile(data, default_tz=company_of(request).default_time_zone)
    if errors:
        return render(
            request,
            "accounts/profile.html",
            _profile_context(request, profile_errors=errors, values=data),
            status_code=400,
        )
    await services.update_profile(db_session(request), viewer(request), cleaned)
    flash(request, "Your profile is saved.", "success")
    return redirect(str(request.url_for("accounts.profile")))


@login_required
async def change_password(request: Request) -> Response:
    data = await form_data(request)
    try:
        await services.change_password(
            db_session(request),
            settings_of(request).password_hasher,
            viewer(request),
            data.get("current_password", ""),
            data.get("new_password", ""),
            data.get("confirm_password", ""),
        )
    except FormErrors as error:
        return render(
            request,
            "accounts/profile.html",
            _profile_context(request, password_errors=error.errors),
            status_code=400,
        )
    start_session(request, viewer(request))
    flash(
        request,
        "Your password is changed. Other browsers where you were signed in are signed out.",
        "success",
    )
    return redirect(str(request.url_for("accounts.profile")))
