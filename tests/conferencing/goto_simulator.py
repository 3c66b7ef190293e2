"""A GoTo account in memory, served like GoTo's token endpoint and its Meeting, Training and
Webinar REST APIs.

    account = GoToAccount("client-1", "secret-1")
    ada = account.add_organizer("ada@example.com", "pw", "ada@example.com", "Ada", "Lovelace")
    with serve(goto_app(account)) as url:
        provider = GoToProvider("client-1", "secret-1", "meeting", **goto_urls(url))

Endpoint keys (as `open_password_provider` takes them): "goto_api" is the served URL (GoTo's
https://api.getgo.com, with /G2M/rest, /G2T/rest and /G2W/rest/v2 under it) and "goto_oauth" is
f"{url}/oauth/token" (GoTo's https://authentication.logmeininc.com/oauth/token);
`goto_endpoints(url)` builds both, and `goto_urls(url)` the same as GoToProvider's keywords.

Paths, fields and error bodies follow GoTo's public documentation: OAuth errors as
`{error, error_description}`, GoTo Meeting's as `{int_err_code, msg}`, Training's and
Webinar's as `{errorCode, description}`; an unknown token is a 403 `InvalidToken`. Join links
point at https://goto.example/join/<id> and host links at https://goto.example/start/<id>, so
nothing a test opens reaches GoTo. Tests make it misbehave through the account: `fail_next`
(429 with Retry-After, 500..., optionally for one path), `delay`, `change_password`, and a
client added without the password grant (`add_client`).
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conferencing.simulation import Fault, SimulatedService

GRANTS = ("password", "client_credentials")  # what the account's first client may use
MEETING_TYPES = ("immediate", "scheduled", "recurring")
WEBINAR_TYPES = ("single_session", "sequence", "series")


class GoToAccount(SimulatedService):
    """GoTo's side of one company: OAuth clients, organizers, what they created, and faults."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        web_url: str = "https://goto.example",
    ) -> None:
        super().__init__()
        # Links point at a reserved domain so that nothing a test opens reaches GoTo.
        self.web_url = web_url
        self.clients: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.organizers: dict[str, dict[str, Any]] = {}  # by username, casefolded
        self.meetings: list[dict[str, Any]] = []
        self.trainings: list[dict[str, Any]] = []
        self.webinars: list[dict[str, Any]] = []
        self.tokens: dict[str, dict[str, Any]] = {}  # access token: organizer
        self._numbers = itertools.count(1)
        self.add_client(client_id, client_secret)

    def add_client(
        self, client_id: str, client_secret: str, grants: tuple[str, ...] = GRANTS
    ) -> None:
        """An OAuth client; GoTo gives new clients no password grant (`grants` without it)."""
        self.clients[client_id] = (client_secret, grants)

    def add_organizer(
        self, username: str, password: str, email: str, first: str = "", last: str = ""
    ) -> dict[str, Any]:
        """A person who signs in to GoTo and organizes on its products (incl. "organizer_key")."""
        number = next(self._numbers)
        organizer = {
            "username": username,
            "password": password,
            "organizer_key": str(8_400_000_000_000_000_000 + number),
            "account_key": "9999982253621659654",
            "email": email,
            "firstName": first,
            "lastName": last,
        }
        self.organizers[username.casefold()] = organizer
        return organizer

    def change_password(self, username: str, new: str) -> None:
        self.organizers[username.casefold()]["password"] = new

    def _fault_for(self, fault: Fault, path: str) -> bool:
        """A fault with a `path` is played on requests whose path ends with it ("/start": any
        host link)."""
        return path.endswith(fault.path)

    def _number(self) -> int:
        return 5_000_000_000_000_000_000 + next(self._numbers)


def goto_endpoints(url: str) -> dict[str, str]:
    """The `endpoints` overrides that point `open_password_provider("goto", ...)` at a served
    simulator."""
    return {"goto_api": url, "goto_oauth": f"{url}/oauth/token"}


def goto_urls(url: str) -> dict[str, str]:
    """GoToProvider's keyword arguments that point it at a served simulator."""
    return {"api_url": url, "oauth_url": f"{url}/oauth/token"}


def goto_app(account: GoToAccount) -> Starlette:
    """The simulator's ASGI app for `account`."""

    front = account.front(_fault)

    async def token(request: Request) -> Response:
        client = _basic(request)
        known = account.clients.get(client[0]) if client else None
        if client is None or known is None or known[0] != client[1]:
            return _oauth_error(401, "invalid_client", "Bad client credentials")
        form = await request.form()
        grant = form.get("grant_type")
        if grant not in ("password", "client_credentials", "authorization_code"):
            return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
        if grant not in known[1]:
            return _oauth_error(400, "unauthorized_client", "Unauthorized grant type")
        issued = secrets.token_urlsafe(24)
        if grant == "client_credentials":
            return JSONResponse(
                {"access_token": issued, "token_type": "Bearer", "expires_in": 3600}
            )
        username, password = str(form.get("username") or ""), str(form.get("password") or "")
        if not username or not password:
            return _oauth_error(400, "invalid_request", "Missing username or password")
        organizer = account.organizers.get(username.casefold())
        if organizer is None or organizer["password"] != password:
            return _oauth_error(400, "invalid_grant", "Bad credentials")
        account.tokens[issued] = organizer
        fields = ("organizer_key", "account_key", "email", "firstName", "lastName")
        return JSONResponse(
            {
                "access_token": issued,
                "token_type": "Bearer",
                "refresh_token": secrets.token_urlsafe(24),
                "expires_in": 3600,
                "scope": "collab:",
                "principal": organizer["email"],
                "account_type": "",
                "version": "3",
                **{field: organizer[field] for field in fields},
            }
        )

    def organizer_of(request: Request) -> dict[str, Any] | Response:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        organizer = account.tokens.get(bearer) if scheme.lower() == "bearer" else None
        if organizer is None:
            # GoTo answers an unknown token so on every product's API.
            return JSONResponse(
                {"int_err_code": "InvalidToken", "msg": "Invalid token passed"}, 403
            )
        return organizer

    def own_path(request: Request) -> dict[str, Any] | Response:
        """The organizer whose key the path names, if the token is theirs."""
        organizer = organizer_of(request)
        if isinstance(organizer, dict) and (
            request.path_params["organizer"] != organizer["organizer_key"]
        ):
            return _error(request.url.path, 403, "Forbidden", "Not the organizer of this key.")
        return organizer

    async def create_meeting(request: Request) -> Response:
        organizer = organizer_of(request)
        if isinstance(organizer, Response):
            return organizer
        body = await _json_object(request)
        required = ("subject", "starttime", "endtime", "conferencecallinfo", "meetingtype")
        if (
            body is None
            or not all(body.get(field) for field in required)
            or not isinstance(body.get("passwordrequired"), bool)
            or body.get("timezonekey") != ""
            or body["meetingtype"] not in MEETING_TYPES
            or len(body["subject"]) > 100
            or "<" in body["subject"]
        ):
            return _error(request.url.path, 400, "InvalidRequest", "Invalid meeting request.")
        meeting_id = 100_000_000 + next(account._numbers)
        meeting = {
            **body,
            "meetingid": meeting_id,
            "organizer_key": organizer["organizer_key"],
            "joinURL": f"{account.web_url}/join/{meeting_id}",
            "hostURL": f"{account.web_url}/start/{meeting_id}?token={secrets.token_urlsafe(16)}",
        }
        account.meetings.append(meeting)
        created = {
            "joinURL": meeting["joinURL"],
            "meetingid": meeting_id,
            "maxParticipants": 250,
            "uniqueMeetingId": meeting_id,
            "conferenceCallInfo": body["conferencecallinfo"],
        }
        return JSONResponse([created], status_code=201)

    async def start_meeting(request: Request) -> Response:
        organizer = organizer_of(request)
        if isinstance(organizer, Response):
            return organizer
        wanted = request.path_params["meeting"]
        for meeting in account.meetings:
            if str(meeting["meetingid"]) == wanted:
                if meeting["organizer_key"] != organizer["organizer_key"]:
                    break
                return JSONResponse({"hostURL": meeting["hostURL"]})
        return _error(request.url.path, 404, "NotFound", "Meeting not found.")

    async def create_training(request: Request) -> Response:
        organizer = own_path(request)
        if isinstance(organizer, Response):
            return organizer
        body = await _json_object(request)
        if body is None or not _has_times(body, "startDate", "endDate"):
            return _error(request.url.path, 400, "InvalidRequest", "Invalid training request.")
        if not body.get("name") or not body.get("timeZone"):
            return _error(request.url.path, 400, "InvalidRequest", "Name and timeZone required.")
        training_key = str(account._number())
        account.trainings.append(
            {
                **body,
                "trainingKey": training_key,
                "trainingId": str(100_000_000 + next(account._numbers)),
                "organizer_key": organizer["organizer_key"],
                "hostURL": f"{account.web_url}/start/{training_key}"
                f"?token={secrets.token_urlsafe(16)}",
            }
        )
        # GoTo Training answers a creation with the bare key, a JSON string.
        return JSONResponse(training_key, status_code=201)

    async def start_training(request: Request) -> Response:
        organizer = organizer_of(request)
        if isinstance(organizer, Response):
            return organizer
        wanted = request.path_params["training"]
        for training in account.trainings:
            if training["trainingKey"] == wanted and (
                training["organizer_key"] == organizer["organizer_key"]
            ):
                return JSONResponse({"hostURL": training["hostURL"]})
        return _error(request.url.path, 404, "NotFound", "Training not found.")

    async def create_webinar(request: Request) -> Response:
        organizer = own_path(request)
        if isinstance(organizer, Response):
            return organizer
        body = await _json_object(request)
        if (
            body is None
            or not body.get("subject")
            or not body.get("timeZone")
            or body.get("type", "single_session") not in WEBINAR_TYPES
            or not _has_times(body, "startTime", "endTime")
        ):
            return _error(request.url.path, 400, "InvalidRequest", "Invalid webinar request.")
        webinar_key = str(account._number())
        account.webinars.append(
            {
                **body,
                "webinarKey": webinar_key,
                "webinarID": str(100_000_000 + next(account._numbers)),
                "organizerKey": organizer["organizer_key"],
                "accountKey": organizer["account_key"],
                "registrationUrl": f"{account.web_url}/join/{webinar_key}",
                "recurrenceType": body.get("type", "single_session"),
                "experienceType": "CLASSIC",
                "impromptu": False,
            }
        )
        return JSONResponse({"webinarKey": webinar_key}, status_code=201)

    async def get_webinar(request: Request) -> Response:
        organizer = own_path(request)
        if isinstance(organizer, Response):
            return organizer
        wanted = request.path_params["webinar"]
        for webinar in account.webinars:
            if (
                webinar["webinarKey"] == wanted
                and webinar["organizerKey"] == (organizer["organizer_key"])
            ):
                return JSONResponse(webinar)
        return _error(request.url.path, 404, "NotFound", "Webinar not found.")

    trainings = "/G2T/rest/organizers/{organizer}/trainings"
    webinars = "/G2W/rest/v2/organizers/{organizer}/webinars"
    return Starlette(
        routes=[
            Route("/oauth/token", front(token), methods=["POST"]),
            Route("/G2M/rest/meetings", front(create_meeting), methods=["POST"]),
            Route("/G2M/rest/meetings/{meeting}/start", front(start_meeting), methods=["GET"]),
            Route(trainings, front(create_training), methods=["POST"]),
            Route("/G2T/rest/trainings/{training}/start", front(start_training), methods=["GET"]),
            Route(webinars, front(create_webinar), methods=["POST"]),
            Route(webinars + "/{webinar}", front(get_webinar), methods=["GET"]),
        ]
    )


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _has_times(body: dict[str, Any], start: str, end: str) -> bool:
    times = body.get("times")
    return (
        isinstance(times, list)
        and bool(times)
        and all(isinstance(t, dict) and t.get(start) and t.get(end) for t in times)
    )


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return client_id, secret


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _error(path: str, status: int, code: str, message: str) -> Response:
    """An error in the shape of the product whose path was asked."""
    if path.startswith("/G2M/"):
        return JSONResponse({"int_err_code": code, "msg": message}, status_code=status)
    body = {"errorCode": code, "description": message, "incident": secrets.token_hex(8)}
    return JSONResponse(body, status_code=status)


def _fault(fault: Fault, path: str) -> Response:
    headers = fault.headers()
    phrase = HTTPStatus(fault.status).phrase
    if path == "/oauth/token":
        error = {400: "invalid_request", 401: "invalid_client"}.get(fault.status)
        body = {"error": error or "temporarily_unavailable", "error_description": phrase}
        return JSONResponse(body, fault.status, headers=headers)
    response = _error(path, fault.status, phrase.title().replace(" ", ""), f"{phrase}.")
    response.headers.update(headers)
    return response
