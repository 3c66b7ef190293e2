"""A host's authorization of the portal at their provider, and each person's Account Settings >
Conferencing Accounts."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.conferencing import accounts_page, views
from portal.conferencing.people import AUTHORIZED_PATH

routes: list[BaseRoute] = [
    Route(
        "/conferencing/{connection_id}/authorize",
        views.authorize,
        name="conferencing.authorize",
    ),
    Route(AUTHORIZED_PATH, views.authorized, name="conferencing.authorized"),
    # Account Settings > Conferencing Accounts (portal.conferencing.accounts_page).
    Route("/settings/conferencing", accounts_page.accounts, name="accounts.conferencing"),
    Route(
        "/settings/conferencing/default",
        accounts_page.choose_default,
        methods=["POST"],
        name="accounts.conferencing_default",
    ),
    Route(
        "/settings/conferencing/{connection_id}/status",
        accounts_page.account_status,
        name="accounts.conferencing_status",
    ),
    Route(
        "/settings/conferencing/{connection_id}/password",
        accounts_page.save_password,
        methods=["POST"],
        name="accounts.conferencing_password",
    ),
    Route(
        "/settings/conferencing/{connection_id}/password/remove",
        accounts_page.forget_password,
        methods=["POST"],
        name="accounts.conferencing_forget",
    ),
    Route(
        "/settings/conferencing/{connection_id}/reassociate",
        accounts_page.reassociate,
        methods=["POST"],
        name="accounts.conferencing_reassociate",
    ),
]
