"""A Zoom account in memory, served like Zoom's REST API v2 and its OAuth token endpoint.

    account = ZoomAccount("acct", "client", "secret")
    account.add_user("ada@example.com", "Ada", "Lovelace")
    with serve(zoom_app(account)) as url:
        provider = ZoomProvider("acct", "client", "secret", **zoom_endpoints(url))

Endpoint keys (as `open_provider` takes them): "zoom_api" is f"{url}/v2" (Zoom's
https://api.zoom.us/v2) and "zoom_oauth" is f"{url}/oauth/token" (Zoom's
https://zoom.us/oauth/token); `zoom_endpoints(url)` builds both, and `zoom_urls(url)` the
same as ZoomProvider's keyword arguments.

Paths, fields, pagination (`next_page_token`, page size up to 300) and error bodies
(`{code, message}`; OAuth errors `{reason, error}`) follow Zoom's public documentation. Tests
make it misbehave through the account: `fail_next` (429 with Retry-After, 500...), `delay`,
`expire_tokens` (code 124), `make_non_admin`, `change_email`, a lower `max_page_size`.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conferencing.simulation import Fault, SimulatedService

ADMIN_ROLES = ("Owner", "Admin")
ACTIONS = ("create", "autoCreate", "custCreate", "ssoCreate")
STATUSES = ("active", "inactive", "pending")
# Fields of GET /users/{userId} that the list of users leaves out (Zoom's reference).
DETAIL_ONLY = ("personal_meeting_url", "use_pmi", "role_name")


class ZoomAccount(SimulatedService):
    """One Zoom account: its users, its app's credentials, its meetings, and the faults to play."""

    def __init__(
        self,
        account_id: str,
        client_id: str,
        client_secret: str,
        *,
        owner_email: str = "owner@zoom.example",
        web_url: str = "https://zoom.example",
    ) -> None:
        super().__init__()
        self.account_id = account_id
        self.client_id = client_id
        self.client_secret = client_secret
        # Links point at a reserved domain so that nothing a test opens reaches the real Zoom.
        self.web_url = web_url
        self.users: dict[str, dict[str, Any]] = {}
        self.meetings: list[dict[str, Any]] = []
        self.max_page_size = 300  # Zoom's cap on page_size
        self.token_lifetime = 3600
        self.tokens: set[str] = set()
        self._page_tokens: dict[str, tuple[list[str], int]] = {}
        # Each user as the list of users shows them, serialized once: a page of 300 users built
        # and encoded afresh costs the simulator more than the portal's reading of it, and the
        # sync benchmark measures the portal. Changed through the methods below, which forget it.
        self._listed_json: dict[str, bytes] = {}
        self._numbers = itertools.count(1)
        self.owner = self.add_user(owner_email, "Account", "Owner", role_name="Owner")
        # The user who created the Server-to-Server OAuth app: its tokens act as them.
        self.app_user_id = self.owner["id"]

    def add_user(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        type: int = 2,
        status: str = "active",
        role_name: str = "Member",
    ) -> dict[str, Any]:
        """A user of the account as GET /users/{userId} shows it (incl. "id")."""
        number = next(self._numbers)
        pmi = 8_000_000_000 + number
        user = {
            "id": f"zu{number:06d}{secrets.token_hex(4)}",
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "display_name": f"{first_name} {last_name}".strip(),
            "type": type,
            "pmi": pmi,
            "personal_meeting_url": f"{self.web_url}/j/{pmi}?pwd={secrets.token_urlsafe(12)}",
            "use_pmi": False,
            "timezone": "UTC",
            "verified": 1,
            "dept": "",
            "status": status,
            "role_name": role_name,
            "role_id": {"Owner": "0", "Admin": "1"}.get(role_name, "2"),
            "created_at": "2024-01-02T03:04:05Z",
        }
        self.users[user["id"]] = user
        return user

    def change_email(self, user_id: str, new_email: str) -> None:
        self.users[user_id]["email"] = new_email
        self._listed_json.pop(user_id, None)

    def set_status(self, user_id: str, status: str) -> None:
        self.users[user_id]["status"] = status
        self._listed_json.pop(user_id, None)

    def remove_user(self, user_id: str) -> None:
        del self.users[user_id]
        self._listed_json.pop(user_id, None)

    def listed(self, user_id: str) -> bytes:
        """The user as JSON, with the fields GET /users lists."""
        if (encoded := self._listed_json.get(user_id)) is None:
            encoded = json.dumps(_listed(self.users[user_id]), separators=(",", ":")).encode()
            self._listed_json[user_id] = encoded
        return encoded

    def make_non_admin(self, email: str = "member-app@zoom.example") -> dict[str, Any]:
        """From now on the app belongs to a plain Member: admin calls answer 403, code 4711."""
        member = self.add_user(email, "App", "Creator", role_name="Member")
        self.app_user_id = member["id"]
        return member

    def expire_tokens(self) -> None:
        """Every token issued so far answers code 124, as after a secret is regenerated."""
        self.tokens.clear()

    def _by_key(self, key: str) -> dict[str, Any] | None:
        """A user by id, by email (any letter case) or "me", as Zoom's {userId} reads it."""
        if key == "me":
            return self.users.get(self.app_user_id)
        if "@" in key:
            wanted = key.casefold()
            return next((u for u in self.users.values() if u["email"].casefold() == wanted), None)
        return self.users.get(key)


def zoom_endpoints(url: str) -> dict[str, str]:
    """The `endpoints` overrides that point `open_provider("zoom", ...)` at a served simulator."""
    return {"zoom_api": f"{url}/v2", "zoom_oauth": f"{url}/oauth/token"}


def zoom_urls(url: str) -> dict[str, str]:
    """ZoomProvider's keyword arguments that point it at a served simulator."""
    return {"api_url": f"{url}/v2", "oauth_url": f"{url}/oauth/token"}


def zoom_app(account: ZoomAccount) -> Starlette:
    """The simulator's ASGI app for `account`."""

    front = account.front(_fault)

    async def token(request: Request) -> Response:
        form = await request.form()
        if form.get("grant_type") != "account_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
        if _basic(request) != (account.client_id, account.client_secret):
            return _oauth_error(401, "invalid_client", "Invalid client_id or client_secret")
        if form.get("account_id") != account.account_id:
            return _oauth_error(400, "invalid_request", "Invalid account_id")
        issued = secrets.token_urlsafe(24)
        account.tokens.add(issued)
        scope = "user:read:admin user:write:admin meeting:write:admin"
        return JSONResponse(
            {
                "access_token": issued,
                "token_type": "bearer",
                "expires_in": account.token_lifetime,
                "scope": scope,
            }
        )

    def app_user(request: Request) -> dict[str, Any] | Response:
        header = request.headers.get("authorization", "")
        scheme, _, bearer = header.partition(" ")
        if scheme.lower() != "bearer" or bearer not in account.tokens:
            return _error(401, 124, "Invalid access token.")
        user = account.users.get(account.app_user_id)
        return user if user is not None else _error(401, 124, "Invalid access token.")

    def admin_only(request: Request) -> Response | None:
        user = app_user(request)
        if isinstance(user, Response):
            return user
        if user["role_name"] not in ADMIN_ROLES:
            return _error(
                403, 4711, "Invalid access token, does not contain scopes:[user:read:admin]."
            )
        return None

    async def list_users(request: Request) -> Response:
        if (refusal := admin_only(request)) is not None:
            return refusal
        status = request.query_params.get("status", "active")
        if status not in STATUSES:
            return _error(400, 300, f"Invalid field: status {status}.")
        try:
            size = min(int(request.query_params.get("page_size", "30")), account.max_page_size)
        except ValueError:
            return _error(400, 300, "Invalid field: page_size.")
        page_token = request.query_params.get("next_page_token", "")
        if page_token:
            if page_token not in account._page_tokens:
                return _error(400, 300, "The next page token is invalid or expired.")
            ids, start = account._page_tokens.pop(page_token)
        else:
            # A snapshot, as Zoom's token walks the list as it was when the walk began.
            ids = [i for i, u in list(account.users.items()) if u["status"] == status]
            start = 0
        chunk = ids[start : start + size]
        next_token = ""
        if start + size < len(ids):
            next_token = secrets.token_urlsafe(16)
            account._page_tokens[next_token] = (ids, start + size)
        head = {
            "page_count": max(1, -(-len(ids) // size)),
            "page_number": start // size + 1,
            "page_size": size,
            "total_records": len(ids),
            "next_page_token": next_token,
        }
        users = b",".join(account.listed(i) for i in chunk if i in account.users)
        body = json.dumps(head, separators=(",", ":")).encode()[:-1] + b',"users":[' + users
        return Response(body + b"]}", media_type="application/json")

    async def create_user(request: Request) -> Response:
        if (refusal := admin_only(request)) is not None:
            return refusal
        try:
            body = json.loads(await request.body())
            action, info = body["action"], body["user_info"]
            email = info["email"]
        except (ValueError, KeyError, TypeError):
            return _error(400, 300, "Validation Failed.")
        if action not in ACTIONS or not email or "@" not in email:
            return _error(400, 300, "Validation Failed.")
        if account._by_key(email) is not None:
            return _error(409, 1005, f"User already in the account: {email}.")
        user = account.add_user(
            email,
            info.get("first_name", ""),
            info.get("last_name", ""),
            type=info.get("type", 1),
            status="pending" if action == "create" else "active",
        )
        fields = ("id", "first_name", "last_name", "email", "type")
        return JSONResponse({k: user[k] for k in fields}, status_code=201)

    async def get_user(request: Request) -> Response:
        key = request.path_params["user"]
        if key != "me" and (refusal := admin_only(request)) is not None:
            return refusal
        me = app_user(request)
        if isinstance(me, Response):
            return me
        user = account._by_key(key)
        if user is None:
            return _error(404, 1001, f"User does not exist: {key}.")
        return JSONResponse(user)

    async def create_meeting(request: Request) -> Response:
        key = request.path_params["user"]
        me = app_user(request)
        if isinstance(me, Response):
            return me
        if key not in ("me", me["id"]) and (refusal := admin_only(request)) is not None:
            return refusal
        host = account._by_key(key)
        if host is None:
            return _error(404, 1001, f"User does not exist: {key}.")
        try:
            body = json.loads(await request.body())
            kind = body.get("type", 2)
        except (ValueError, AttributeError):
            return _error(400, 300, "Request Body should be a valid JSON object.")
        if kind not in (1, 2, 3, 8) or (kind == 2 and not body.get("start_time")):
            return _error(400, 300, "Validation Failed.")
        number = 80_000_000_000 + next(account._numbers)
        passcode = secrets.token_hex(3)
        meeting = {
            "id": number,
            "uuid": base64.b64encode(secrets.token_bytes(16)).decode(),
            "host_id": host["id"],
            "host_email": host["email"],
            "topic": body.get("topic", "Zoom Meeting"),
            "type": kind,
            "start_time": body.get("start_time"),
            "duration": body.get("duration"),
            "timezone": body.get("timezone", host["timezone"]),
            "password": passcode,
            "join_url": f"{account.web_url}/j/{number}?pwd={passcode}",
            "start_url": f"{account.web_url}/s/{number}?zak={secrets.token_urlsafe(24)}",
            "settings": {"join_before_host": False, **(body.get("settings") or {})},
        }
        account.meetings.append(meeting)
        return JSONResponse(meeting, status_code=201)

    return Starlette(
        routes=[
            Route("/oauth/token", front(token), methods=["POST"]),
            Route("/v2/users", front(list_users), methods=["GET"]),
            Route("/v2/users", front(create_user), methods=["POST"]),
            Route("/v2/users/{user}", front(get_user), methods=["GET"]),
            Route("/v2/users/{user}/meetings", front(create_meeting), methods=["POST"]),
        ]
    )


def _listed(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k not in DETAIL_ONLY}


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    return client_id, secret


def _error(status: int, code: int, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def _oauth_error(status: int, error: str, reason: str) -> Response:
    return JSONResponse({"reason": reason, "error": error}, status_code=status)


def _fault(fault: Fault, path: str) -> Response:
    status, headers = fault.status, fault.headers()
    if status == 429:
        message = (
            "You have reached the maximum per-second rate limit for this API. Try again later."
        )
        return JSONResponse({"code": 429, "message": message}, status, headers=headers)
    return JSONResponse({"code": status, "message": "Internal Error."}, status, headers=headers)
