"""A BlueJeans enterprise in memory, served like BlueJeans' REST API (api.bluejeans.com).

    account = BlueJeansAccount("app-key", "app-secret")
    ada = account.add_user("ada", "pa55word", "ada@example.com", "Ada", "Lovelace")
    with serve(bluejeans_app(account)) as url:
        provider = BlueJeansProvider("app-key", "app-secret", **bluejeans_urls(url))

Endpoint key (as `open_password_provider` takes it): "bluejeans_api" is the served URL
(BlueJeans' https://api.bluejeans.com); `bluejeans_endpoints(url)` builds it, and
`bluejeans_urls(url)` BlueJeansProvider's keyword arguments, with the join links on
`account.web_url` (https://bluejeans.example), a reserved domain.

Paths, fields and grants follow the BlueJeans reference as Verizon left it: `POST
/oauth2/token?Client|Password` with a JSON body; the token back as `Authorization: Bearer` (or,
as older docs had it, an `access_token` query parameter); `GET /v1/user/{user_id}`, `GET
/v1/user/{user_id}/personal_meeting`, `POST /v1/user/{user_id}/scheduled_meeting`; errors as
`{message}`, token refusals with OAuth's `error` too. Tests make it misbehave through the
account: `fail_next` (429 with Retry-After, 500...), `delay`.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conferencing.simulation import Fault, SimulatedService

ENTERPRISE_ID = 81234
PARTITION = {"partitionName": "z2", "partition": {"id": 2, "name": "z2"}}


class BlueJeansAccount(SimulatedService):
    """One BlueJeans enterprise: its app's key and secret, its people, and the faults to play."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        web_url: str = "https://bluejeans.example",
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        # Join links are built from this; a reserved domain, so nothing reaches BlueJeans.
        self.web_url = web_url
        self.users: dict[int, dict[str, Any]] = {}
        self.rooms: dict[int, dict[str, Any]] = {}  # user id -> their personal meeting
        self.meetings: list[dict[str, Any]] = []
        self.tokens: dict[str, dict[str, Any]] = {}  # token -> its grant's scope
        self._passwords: dict[str, tuple[str, int]] = {}  # username -> (password, user id)
        self._numbers = itertools.count(1)

    def add_user(
        self, username: str, password: str, email: str, first: str = "", last: str = ""
    ) -> dict[str, Any]:
        """A person who signs in with `username` and `password`, as GET /v1/user/{id} shows them
        (with "id"); their personal meeting is `rooms[id]`."""
        number = next(self._numbers)
        user_id = 1_440_000 + number
        self.users[user_id] = {
            "id": user_id,
            "username": username,
            "firstName": first,
            "middleName": "",
            "lastName": last,
            "emailId": email,
            "company": "",
            "title": "",
            "phone": "",
            "timezone": "America/New_York",
            "timeFormat": 12,
            "language": "en",
        }
        self.rooms[user_id] = {
            "id": 70_000 + number,
            "uuid": secrets.token_hex(16),
            "title": f"{first}'s Personal Meeting Room".strip(),
            "numericMeetingId": str(4_150_000_000 + number),
            "attendeePasscode": "",
            "isPersonalMeeting": True,
            "endPointType": "WEB_APP",
            "isLargeMeeting": False,
        }
        self._passwords[username] = (password, user_id)
        return self.users[user_id]


def bluejeans_endpoints(url: str) -> dict[str, str]:
    """The `endpoints` override that points the registry's BlueJeans at a served simulator."""
    return {"bluejeans_api": url}


def bluejeans_urls(url: str, web_url: str = "https://bluejeans.example") -> dict[str, str]:
    """BlueJeansProvider's keyword arguments for a served simulator and its join links."""
    return {"api_url": url, "web_url": web_url}


def bluejeans_app(account: BlueJeansAccount) -> Starlette:
    """The simulator's ASGI app for `account`."""

    front = account.front(_fault)

    async def token(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            grant_type = body["grant_type"]
        except (ValueError, KeyError, TypeError):
            return _oauth_error(400, "invalid_request", "The body must be a JSON grant.")
        if grant_type == "client_credentials":
            if (body.get("client_id"), body.get("client_secret")) != (
                account.client_id,
                account.client_secret,
            ):
                return _oauth_error(401, "invalid_client", "Invalid client credentials.")
            return issue({"enterprise": ENTERPRISE_ID, **PARTITION}, 3600)
        if grant_type == "password":
            known = account._passwords.get(str(body.get("username", "")))
            if known is None or known[0] != body.get("password"):
                return _oauth_error(401, "invalid_grant", "Invalid username or password.")
            return issue({"user": known[1], **PARTITION}, 1_209_600)
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant {grant_type}.")

    def issue(scope: dict[str, Any], lifetime: int) -> Response:
        issued = secrets.token_hex(16)
        account.tokens[issued] = scope
        return JSONResponse(
            {"access_token": issued, "expires_in": lifetime, "scope": scope, "refresh_token": ""}
        )

    def owner(request: Request) -> int | Response:
        """The user in the path, if the request's token may act for them."""
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        token = bearer if scheme.lower() == "bearer" else request.query_params.get("access_token")
        scope = account.tokens.get(token or "")
        if scope is None:
            return _error(401, "Access token is invalid or expired.")
        try:
            user_id = int(request.path_params["user_id"])
        except ValueError:
            return _error(400, "user_id must be an integer.")
        if user_id not in account.users:
            return _error(404, f"User {user_id} not found.")
        if scope.get("user") != user_id and "enterprise" not in scope:
            return _error(403, "Access to this user is not allowed.")
        return user_id

    async def get_user(request: Request) -> Response:
        user_id = owner(request)
        if isinstance(user_id, Response):
            return user_id
        return JSONResponse(account.users[user_id])

    async def personal_meeting(request: Request) -> Response:
        user_id = owner(request)
        if isinstance(user_id, Response):
            return user_id
        return JSONResponse(account.rooms[user_id])

    async def schedule(request: Request) -> Response:
        user_id = owner(request)
        if isinstance(user_id, Response):
            return user_id
        try:
            body = json.loads(await request.body())
            start, end = int(body["start"]), int(body["end"])
            title = str(body["title"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "title, start and end are required.")
        if end <= start:
            return _error(400, "The meeting must end after it starts.")
        if not body.get("endPointType") or not body.get("endPointVersion"):
            return _error(400, "endPointType and endPointVersion are required.")
        number = next(account._numbers)
        passcode = f"{secrets.randbelow(10_000):04d}" if body.get("addAttendeePasscode") else ""
        meeting = {
            **body,
            "id": 9_000_000 + number,
            "uuid": secrets.token_hex(16),
            "title": title,
            "numericMeetingId": str(7_770_000_000 + number),
            "attendeePasscode": passcode,
            "moderator": {"id": user_id, "username": account.users[user_id]["username"]},
            "isPersonalMeeting": False,
            "status": "Scheduled",
        }
        account.meetings.append(meeting)
        return JSONResponse(meeting)

    return Starlette(
        routes=[
            Route("/oauth2/token", front(token), methods=["POST"]),
            Route("/v1/user/{user_id}", front(get_user), methods=["GET"]),
            Route("/v1/user/{user_id}/personal_meeting", front(personal_meeting), methods=["GET"]),
            Route("/v1/user/{user_id}/scheduled_meeting", front(schedule), methods=["POST"]),
        ]
    )


def _error(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status)


def _oauth_error(status: int, error: str, message: str) -> Response:
    return JSONResponse({"error": error, "message": message}, status)


def _fault(fault: Fault, path: str) -> Response:
    message = "Too many requests" if fault.status == 429 else "Internal server error"
    return JSONResponse({"message": message}, fault.status, headers=fault.headers())
