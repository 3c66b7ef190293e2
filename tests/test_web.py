"""login_required owns the request's transaction: kept on success, dropped on any refusal."""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from portal.accounts.models import Company, User
from portal.db import Database
from portal.notifications.models import Notification
from portal.notifications.services import notify
from portal.web import db_session, flash, login_required, redirect, viewer
from tests.conftest import PortalClient


@login_required
async def _notify_then_answer(request: Request) -> Response:
    """Writes a notice through a service, then answers with the status it is asked for."""
    await notify(
        db_session(request),
        recipient=viewer(request),
        actor=None,
        kind="test",
        text="written",
        url="/people",
    )
    return PlainTextResponse("", status_code=int(request.query_params["status"]))


async def _notices(db: Database, company: Company) -> int:
    async with db.session(company_id=company.id) as session:
        query = select(func.count()).select_from(Notification)
        return int((await session.execute(query)).scalar_one())


async def test_a_view_that_succeeds_keeps_what_services_wrote_and_a_refusal_keeps_nothing(
    app: Starlette, client: PortalClient, db: Database, acme: Company, member: User
) -> None:
    app.router.routes.append(Route("/test/write", _notify_then_answer, methods=["POST"]))
    await client.sign_in(member.email)
    for status in (400, 404, 422):
        response = await client.post(f"/test/write?status={status}")
        assert response.status_code == status
    assert await _notices(db, acme) == 0
    for status in (200, 303):
        response = await client.post(f"/test/write?status={status}")
        assert response.status_code == status
    assert await _notices(db, acme) == 2


@login_required
async def _flash_then_redirect(request: Request) -> Response:
    flash(request, request.query_params["say"])
    return redirect("/people")


async def test_flashes_added_before_a_page_shows_them_are_all_shown(
    app: Starlette, client: PortalClient, member: User
) -> None:
    app.router.routes.append(Route("/test/flash", _flash_then_redirect))
    await client.sign_in(member.email)
    await client.get("/test/flash?say=first")
    await client.get("/test/flash?say=second")
    page = await client.get("/people")
    assert "first" in page.text and "second" in page.text
