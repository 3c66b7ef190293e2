"""Company Setup, for a company's admins: everything under /setup."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route

from portal.setup import (
    conferencing,
    conferencing_connection,
    conferencing_people,
    outbox,
    users,
)

GET_POST = ["GET", "POST"]

routes: list[BaseRoute] = [
    # Outside the mount: a mount answers only the paths below it.
    Route("/setup", users.setup_home, name="setup.home"),
    Mount(
        "/setup",
        routes=[
            Route("/conferencing", conferencing.conferencing, name="setup.conferencing"),
            # The fixed paths first: "/conferencing/{connection_id}" would take them.
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
                "/conferencing/sitewide",
                conferencing.conferencing_sitewide,
                methods=["POST"],
                name="setup.conferencing_sitewide",
            ),
            Route(
                "/conferencing/{connection_id}",
                conferencing_connection.conferencing_connection,
                name="setup.conferencing_connection",
            ),
            Route(
                "/conferencing/{connection_id}/credentials",
                conferencing_connection.conferencing_credentials,
                methods=["POST"],
                name="setup.conferencing_credentials",
            ),
            Route(
                "/conferencing/{connection_id}/settings",
                conferencing_connection.conferencing_settings,
                methods=["POST"],
                name="setup.conferencing_settings",
            ),
            Route(
                "/conferencing/{connection_id}/disconnect",
                conferencing_connection.conferencing_disconnect,
                methods=GET_POST,
                name="setup.conferencing_disconnect",
            ),
            Route(
                "/conferencing/{connection_id}/sync",
                conferencing_connection.conferencing_sync,
                methods=["POST"],
                name="setup.conferencing_sync",
            ),
            Route(
                "/conferencing/{connection_id}/runs",
                conferencing_connection.conferencing_history,
                name="setup.conferencing_history",
            ),
            Route(
                "/conferencing/{connection_id}/runs/{run_id}",
                conferencing_connection.conferencing_run,
                name="setup.conferencing_run",
            ),
            Route(
                "/conferencing/{connection_id}/accounts/{account_id}/map",
                conferencing_people.conferencing_map,
                methods=GET_POST,
                name="setup.conferencing_map",
            ),
            Route(
                "/conferencing/{connection_id}/accounts/{account_id}/unmap",
                conferencing_people.conferencing_unmap,
                methods=["POST"],
                name="setup.conferencing_unmap",
            ),
            Route(
                "/conferencing/{connection_id}/accounts/{account_id}/by-email",
                conferencing_people.conferencing_clear_manual,
                methods=["POST"],
                name="setup.conferencing_clear_manual",
            ),
            Route(
                "/conferencing/{connection_id}/members",
                conferencing_people.conferencing_members,
                name="setup.conferencing_members",
            ),
            Route(
                "/conferencing/{connection_id}/members/add",
                conferencing_people.conferencing_member_add,
                methods=["POST"],
                name="setup.conferencing_member_add",
            ),
            Route(
                "/conferencing/{connection_id}/members/{user_id}/remove",
                conferencing_people.conferencing_member_remove,
                methods=["POST"],
                name="setup.conferencing_member_remove",
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
