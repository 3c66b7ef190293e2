"""render(): a whole page, or one of its blocks when htmx asks for it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

# htmx stops an `every` poll when it is answered with this status.
STOP_POLLING = 286


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    block: str | None = None,
    status_code: int = 200,
) -> Response:
    """The page; or only `block` of it for an htmx request, so fragment and page never drift."""
    templates = request.app.state.templates
    block_name = block if block and is_htmx(request) else None
    response: Response = templates.TemplateResponse(
        request, template, context or {}, status_code=status_code, block_name=block_name
    )
    if block:
        response.headers["vary"] = "HX-Request"
    return response
