"""Signing in and out, passwords, and a person's own Account Settings."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from portal.accounts import views

GET_POST = ["GET", "POST"]

routes: list[BaseRoute] = [
    Route("/signin", views.sign_in, methods=GET_POST, name="accounts.sign_in"),
    Route("/signout", views.sign_out, methods=["POST"], name="accounts.sign_out"),
    Route(
        "/forgot-password", views.forgot_password, methods=GET_POST, name="accounts.forgot_password"
    ),
    Route(
        "/set-password/{token}", views.set_password, methods=GET_POST, name="accounts.set_password"
    ),
    Route("/settings/profile", views.profile, methods=GET_POST, name="accounts.profile"),
    Route(
        "/settings/password",
        views.change_password,
        methods=["POST"],
        name="accounts.change_password",
    ),
]
