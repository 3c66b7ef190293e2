"""Company Setup, for a company's admins: everything under /setup."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route

from portal.setup import conferencing, outbox, users

GET_POST = ["GET", "POST"]

routes: list[BaseRoute] = [
    # Outside the mount: a mount answers only the paths below it.
    Route("/setup", users.setup_home, name="setup.home"),
    Mount(
        "/setup",
        routes=[
            Route("/conferencing", conferencing.conferencing, name="setup.conferencing"),
            Route(
                "/conferencing/provider",
                conferencing.conferencing_provider,
                name="setup.conferencing_provider",
            ),
            Route(
                "/conferencing/connect",
                conferencing.conferencing_connect,
                methods=["POST"],
                name="setup.conferencing_connect",
            ),
            Route(
                "/conferencing/credentials",
                conferencing.conferencing_credentials,
                methods=["POST"],
                name="setup.conferencing_credentials",
            ),
            Route(
                "/conferencing/options",
                conferencing.conferencing_options,
                methods=["POST"],
                name="setup.conferencing_options",
            ),
            Route(
                "/conferencing/disconnect",
                conferencing.conferencing_disconnect,
                methods=GET_POST,
                name="setup.conferencing_disconnect",
            ),
            Route(
                "/conferencing/sync",
                conferencing.conferencing_sync,
                methods=["POST"],
                name="setup.conferencing_sync",
            ),
            Route(
                "/conferencing/runs",
                conferencing.conferencing_history,
                name="setup.conferencing_history",
            ),
            Route(
                "/conferencing/runs/{run_id}",
                conferencing.conferencing_run,
                name="setup.conferencing_run",
            ),
            Route(
                "/conferencing/accounts/{account_id}/map",
                conferencing.conferencing_map,
                methods=GET_POST,
                name="setup.conferencing_map",
            ),
            Route(
                "/conferencing/accounts/{account_id}/unmap",
                conferencing.conferencing_unmap,
                methods=["POST"],
                name="setup.conferencing_unmap",
            ),
            Route(
                "/conferencing/accounts/{account_id}/by-email",
                conferencing.conferencing_clear_manual,
                methods=["POST"],
                name="setup.conferencing_clear_manual",
            ),
            Route("/users", users.users, name="setup.users"),
            Route("/users/new", users.user_new, methods=GET_POST, name="setup.user_new"),
            Route("/users/import", users.users_import, methods=GET_POST, name="setup.users_import"),
            Route("/users/{user_id}", users.user_edit, methods=GET_POST, name="setup.user_edit"),
            Route(
                "/users/{user_id}/deactivate",
                users.user_deactivate,
                methods=["POST"],
                name="setup.user_deactivate",
            ),
            Route(
                "/users/{user_id}/reactivate",
                users.user_reactivate,
                methods=["POST"],
                name="setup.user_reactivate",
            ),
            Route(
                "/users/{user_id}/resend",
                users.user_resend,
                methods=["POST"],
                name="setup.user_resend",
            ),
            Route("/outbox", outbox.outbox, name="setup.outbox"),
            Route("/outbox/{message_id}", outbox.outbox_message, name="setup.outbox_message"),
            Route(
                "/outbox/{message_id}/html",
                outbox.outbox_message_html,
                name="setup.outbox_message_html",
            ),
            Route(
                "/outbox/{message_id}/retry",
                outbox.outbox_retry,
                methods=["POST"],
                name="setup.outbox_retry",
            ),
        ],
    ),
]
