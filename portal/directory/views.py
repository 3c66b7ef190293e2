"""The People page: the company's directory."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.directory import services
from portal.htmx import render
from portal.pagination import page_number
from portal.web import db_session, login_required, redirect


@login_required
async def home(request: Request) -> Response:
    return redirect(str(request.url_for("directory.people")))


@login_required
async def people(request: Request) -> Response:
    q = request.query_params.get("q", "").strip()[:100]
    department = request.query_params.get("department", "").strip()[:100]
    session = db_session(request)
    page = await services.search_people(
        session, q, department=department, page=page_number(request.query_params.get("page"))
    )
    context = {
        "page": page,
        "q": q,
        "department": department,
        "departments": await services.departments(session),
    }
    return render(request, "directory/people.html", context, block="results")
