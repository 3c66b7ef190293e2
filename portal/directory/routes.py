"""The home page, the People page and its suggestions, profiles and hover cards."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.directory import views

# The most requested first (portal.features): hovering names, then typing a search.
routes: list[BaseRoute] = [
    Route("/people/{user_id}/card", views.card, name="directory.card"),
    # Before /people/{user_id}, which would otherwise take "suggestions" for an id.
    Route("/people/suggestions", views.suggestions, name="directory.suggestions"),
    Route("/people", views.people, name="directory.people"),
    Route("/people/{user_id}", views.profile, name="directory.profile"),
    Route("/", views.home, name="home"),
]
