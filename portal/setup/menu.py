"""Company Setup's side menu, and rendering a page inside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal.htmx import render


@dataclass(frozen=True)
class Entry:
    key: str  # what a page sets as `setup_section` to be marked current
    label: str
    route: str


@dataclass(frozen=True)
class Group:
    label: str
    entries: tuple[Entry, ...]


# A feature's admin page joins Company Setup with an entry here and its views in portal/setup/.
MENU: tuple[Group, ...] = (
    Group("General", (Entry("conferencing", "Web Conferencing", "setup.conferencing"),)),
    Group("People", (Entry("users", "Users", "setup.users"),)),
    Group("Email", (Entry("outbox", "Outbox", "setup.outbox"),)),
)


def render_setup(
    request: Request, template: str, context: dict[str, Any] | None = None, **options: Any
) -> Response:
    """A Company Setup page (or its htmx block), with the side menu."""
    return render(request, template, {"setup_menu": MENU, **(context or {})}, **options)
