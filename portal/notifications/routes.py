"""The bell, its menu, the Notifications page and the live stream."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.notifications import views

routes: list[BaseRoute] = [
    Route("/notifications", views.notification_list, name="notifications.list"),
    Route("/notifications/menu", views.menu, name="notifications.menu"),
    Route("/notifications/stream", views.stream, name="notifications.stream"),
    Route(
        "/notifications/read-all", views.read_all, methods=["POST"], name="notifications.read_all"
    ),
    Route(
        "/notifications/{notification_id}/open",
        views.open_notice,
        methods=["POST"],
        name="notifications.open",
    ),
]
