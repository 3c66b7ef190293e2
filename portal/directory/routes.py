"""The home page, the People page and its suggestions, profiles and hover cards."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.directory import views

routes: list[BaseRoute] = [
    Route("/", views.home, name="home"),
    Route("/people", views.people, name="directory.people"),
    # Before /people/{user_id}, which would otherwise take "suggestions" for an id.
    Route("/people/suggestions", views.suggestions, name="directory.suggestions"),
    Route("/people/{user_id}", views.profile, name="directory.profile"),
    Route("/people/{user_id}/card", views.card, name="directory.card"),
]
