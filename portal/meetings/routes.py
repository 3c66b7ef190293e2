"""Meet Now, meeting history and join links."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.meetings import views

routes: list[BaseRoute] = [
    Route("/meetings", views.history, name="meetings.history"),
    Route("/meetings/now", views.new, name="meetings.new"),
    Route("/meetings/start", views.start, methods=["POST"], name="meetings.start"),
    Route("/meetings/people", views.people_options, name="meetings.people_options"),
    Route("/join/{token}", views.join, name="meetings.join"),
]
