"""Zoom through its REST API v2, signed in with a Server-to-Server OAuth app.

Paths, fields and error codes follow Zoom's public reference (developers.zoom.us): the token
from `POST https://zoom.us/oauth/token` (grant `account_credentials`), users from `/users`,
meetings from `/users/{userId}/meetings`, errors as `{code, message}`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import httpx

from portal.conferencing.interfaces import (
    ACTIVE,
    INACTIVE,
    PENDING,
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    MeetingRequest,
    NewUser,
    NotAdministrator,
    NotFound,
    ProviderUnavailable,
    ProviderUser,
    RetiredCredentials,
    UserPage,
)
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy

ZOOM_API_URL = "https://api.zoom.us/v2"
ZOOM_OAUTH_URL = "https://zoom.us/oauth/token"
# A PMI's join link without its passcode, for a user Zoom gives no personal_meeting_url.
ZOOM_JOIN_URL = "https://zoom.us/j"

# Zoom's `action` for POST /users (camelCase on the wire) and how the admin page names it.
PROVISIONING: tuple[tuple[str, str], ...] = (
    ("create", "Regular creation (the user confirms by email)"),
    ("autoCreate", "Auto creation"),
    ("custCreate", "Creation for integrated use only (API partners)"),
    ("ssoCreate", "Creation with SSO sign-in"),
)

# Renew the token before Zoom's hour is up, so no request leaves with a token about to die.
TOKEN_MARGIN = 300.0
PAGE_SIZE = 300  # Zoom's maximum for GET /users
STATUSES = (ACTIVE, INACTIVE, PENDING)  # Zoom lists one status per query, with these names
LICENSED = 2
# People created for the portal are meant to host meetings, which a Basic (1) user cannot
# do for more than 40 minutes; Zoom refuses the creation if the account has no license left.
NEW_USER_TYPE = LICENSED
MEMBER_ROLE = "Member"  # Zoom's built-in role without any administration rights
EXPIRED_TOKEN = 124
MISSING_SCOPES = {4700, 4711}
UNKNOWN_USER_OR_MEETING = {1001, 1120, 3001}

JWT_RETIRED = (
    "Zoom switched off JWT apps in September 2023, so an API key and secret no longer work. "
    "In the Zoom App Marketplace choose Develop > Build App > Server-to-Server OAuth, add the "
    "scopes user:read:admin, user:write:admin and meeting:write:admin, activate the app, and "
    "enter its Account ID, Client ID and Client secret here."
)
MISSING_CREDENTIALS = (
    "Enter the Account ID, Client ID and Client secret of the company's Server-to-Server OAuth "
    "app from the Zoom App Marketplace."
)
BAD_CREDENTIALS = (
    "Zoom did not accept the Account ID, Client ID and Client secret: copy them again from the "
    "Server-to-Server OAuth app's page in the Zoom App Marketplace and check the app is activated."
)
NOT_ADMINISTRATOR = (
    "Zoom accepted the credentials, but the app may not manage the account's users: it must be "
    "created by an owner or admin of the Zoom account, with the scopes user:read:admin, "
    "user:write:admin and meeting:write:admin."
)


class ZoomProvider:
    """One Zoom account, reached through its Server-to-Server OAuth app."""

    def __init__(
        self,
        account_id: str,
        client_id: str,
        client_secret: str,
        *,
        api_url: str = ZOOM_API_URL,
        oauth_url: str = ZOOM_OAUTH_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._account_id = account_id.strip()
        self._client_id = client_id.strip()
        self._client_secret = client_secret.strip()
        self._api_url = api_url.rstrip("/")
        self._oauth_url = oauth_url
        self._timeout = timeout
        self._retry = retry or base.DEFAULT_RETRY
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._tokens = base.TokenCache(self._fetch_token, TOKEN_MARGIN)

    async def verify(self) -> None:
        """Raise unless the credentials work and are an administrator's."""
        me = await self._call("GET", "/users/me")
        if me.get("role_name") == MEMBER_ROLE:
            raise NotAdministrator(NOT_ADMINISTRATOR)
        # Custom roles have names of their own: whether one may list users, only Zoom knows.
        await self._call("GET", "/users", params={"status": ACTIVE, "page_size": 1})

    async def users(self, cursor: str | None = None) -> UserPage:
        """One page of the account's users: the active ones, then inactive, then pending."""
        status, page_token = _parse_cursor(cursor)
        params: dict[str, Any] = {"status": status, "page_size": PAGE_SIZE}
        if page_token:
            params["next_page_token"] = page_token
        page = await self._call("GET", "/users", params=params)
        with base.documented_shape("Zoom"):
            users = [_provider_user(record, status) for record in page.get("users") or []]
            next_token = page.get("next_page_token") or ""
        return UserPage(users=users, next_cursor=_next_cursor(status, next_token))

    async def user_by_email(self, email: str) -> ProviderUser:
        """The account's user with this email (raises NotFound)."""
        path = _user_path(email.strip())
        try:
            record = await self._call("GET", path)
        except NotFound as error:
            raise NotFound(f"Zoom has no user with the email {email.strip()}.") from error
        with base.documented_shape("Zoom"):
            return _provider_user(record, ACTIVE)

    async def personal_room(self, user_id: str) -> str:
        """The join link of the user's Personal Meeting ID room."""
        record = await self._call("GET", _user_path(user_id))
        with base.documented_shape("Zoom"):
            room_url = str(record.get("personal_meeting_url") or _pmi_url(record))
        if not room_url:
            raise NotFound("Zoom has no personal meeting room for this user yet.")
        return room_url

    async def create_meeting(self, user_id: str, request: MeetingRequest) -> CreatedMeeting:
        """A meeting hosted by the user: instant without a start, scheduled with one."""
        body: dict[str, Any] = {
            "topic": request.topic,
            "type": 1 if request.start is None else 2,
            "duration": request.duration_minutes,
            "timezone": request.time_zone,
            "settings": {"join_before_host": request.join_before_host},
        }
        if request.start is not None:
            body["start_time"] = _zoom_time(request.start)
        meeting = await self._call(
            "POST", f"{_user_path(user_id)}/meetings", json=body, repeatable=False
        )
        with base.documented_shape("Zoom"):
            return CreatedMeeting(
                id=str(meeting["id"]), join_url=meeting["join_url"], start_url=meeting["start_url"]
            )

    async def create_user(self, user: NewUser, method: str) -> ProviderUser:
        """A new Zoom user by one of the `PROVISIONING` actions; "create" leaves it pending."""
        if method not in dict(PROVISIONING):
            raise ConferencingError(f"Zoom has no user creation action {method!r}.")
        user_info = {
            "email": user.email.strip(),
            "type": NEW_USER_TYPE,
            "first_name": user.first_name,
            "last_name": user.last_name,
        }
        body = {"action": method, "user_info": user_info}
        created = await self._call("POST", "/users", json=body, repeatable=False)
        with base.documented_shape("Zoom"):
            user_id = str(created["id"])
            if method == "create":
                return _provider_user(created, PENDING)
        try:
            # The creation's answer holds no room link; the user's record does.
            record = await self._call("GET", _user_path(user_id))
        except ConferencingError:
            # The user exists now: the next sync reads their room, and creating them
            # again would only fail.
            record = created
        with base.documented_shape("Zoom"):
            return _provider_user(record, ACTIVE)

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""
        await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """Zoom's JSON answer to one API request, retried while Zoom is busy or unreachable.

        A request that is not `repeatable` (a creation) is sent again only when Zoom cannot
        have acted on it: after a 429, or when it never left; a 5xx or a timeout may come
        after Zoom created the meeting or user, and a second one must not follow.
        """
        return await base.retrying(
            lambda: self._send(method, path, params, json), self._retry, repeatable=repeatable
        )

    async def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json: dict[str, Any] | None
    ) -> dict[str, Any]:
        async def request(token: str) -> httpx.Response:
            return await base.bearer_request(
                self._client,
                "Zoom",
                method,
                self._api_url + path,
                token,
                params=params,
                json=json,
            )

        # Zoom may revoke a token before its hour is up (a new secret, a re-activated app).
        response = await self._tokens.send(
            request, lambda answer: _error_code(answer) == EXPIRED_TOKEN
        )
        if not response.is_success:
            raise self._error(response)
        return base.json_object(response, "Zoom")

    async def _fetch_token(self) -> tuple[str, float]:
        """A new token and its lifetime, for the token cache."""
        if not self._account_id and self._client_id and self._client_secret:
            raise RetiredCredentials(JWT_RETIRED)
        if not (self._account_id and self._client_id and self._client_secret):
            raise BadCredentials(MISSING_CREDENTIALS)
        try:
            response = await self._client.post(
                self._oauth_url,
                auth=(self._client_id, self._client_secret),
                data={"grant_type": "account_credentials", "account_id": self._account_id},
            )
        except httpx.TransportError as error:
            # Nothing is created by asking for a token: sending it again is always safe.
            raise base.NotSent(str(base.unreachable("Zoom", self._timeout, error))) from error
        if response.status_code == 429:
            raise base.rate_limited(response, "Zoom")
        if response.status_code >= 500:
            raise base.NotSent(base.server_error(response, "Zoom"))
        if response.status_code in (400, 401):
            raise BadCredentials(BAD_CREDENTIALS)
        if not response.is_success:
            raise self._error(response)
        token = base.json_object(response, "Zoom")
        with base.documented_shape("Zoom"):
            return str(token["access_token"]), float(token.get("expires_in", 3600))

    def _error(self, response: httpx.Response) -> ConferencingError:
        status = response.status_code
        code = _error_code(response)
        if status == 429:
            return base.rate_limited(response, "Zoom")
        if status >= 500:
            return ProviderUnavailable(base.server_error(response, "Zoom"))
        if status == 401:
            return BadCredentials(BAD_CREDENTIALS)
        if status == 403 or code in MISSING_SCOPES:
            return NotAdministrator(NOT_ADMINISTRATOR)
        if status == 404 or code in UNKNOWN_USER_OR_MEETING:
            return NotFound(f"Zoom has no such user or meeting: {_error_message(response)}.")
        if response.is_redirect:
            return ConferencingError(
                f"Zoom's address answered with a redirect ({status}): check the Zoom API address."
            )
        return ConferencingError(f"Zoom refused the request: {_error_message(response)}.")


def _parse_cursor(cursor: str | None) -> tuple[str, str]:
    """(status, next_page_token) from a cursor of `users()`."""
    if cursor is None:
        return ACTIVE, ""
    status, _, page_token = cursor.partition(":")
    if status not in STATUSES:
        raise ValueError(f"{cursor!r} is not a cursor from ZoomProvider.users()")
    return status, page_token


def _next_cursor(status: str, page_token: str) -> str | None:
    if page_token:
        return f"{status}:{page_token}"
    following = STATUSES.index(status) + 1
    return f"{STATUSES[following]}:" if following < len(STATUSES) else None


def _provider_user(record: dict[str, Any], status: str) -> ProviderUser:
    get = record.get  # made 100,000 times in a sync: each lookup saved counts
    name = f"{get('first_name') or ''} {get('last_name') or ''}".strip()
    record_status = get("status")
    return ProviderUser(
        str(record["id"]),
        str(get("email") or ""),
        name or str(get("display_name") or ""),
        record_status if record_status in STATUSES else status,
        get("type") == LICENSED,
        # The list of users carries the PMI but not the personal_meeting_url with its
        # passcode: "" asks resolve_room to fetch it (personal_room) when the person hosts.
        str(get("personal_meeting_url") or ""),
    )


def _pmi_url(record: dict[str, Any]) -> str:
    """The join link of the user's Personal Meeting ID, from the PMI the user list carries."""
    pmi = record.get("pmi")
    return f"{ZOOM_JOIN_URL}/{pmi}" if pmi else ""


def _user_path(user: str) -> str:
    if not user:
        # "/users/" is the list of all users, not a lookup.
        raise NotFound("Zoom cannot look up a user without an id or email.")
    return f"/users/{quote(user, safe='@')}"


def _zoom_time(start: dt.datetime) -> str:
    """Zoom's start_time: UTC with a Z, or local time that Zoom reads in the meeting's timezone."""
    if start.tzinfo is None:
        return start.strftime("%Y-%m-%dT%H:%M:%S")
    return start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_code(response: httpx.Response) -> int | None:
    code = base.error_body(response).get("code")
    return code if isinstance(code, int) else None


def _error_message(response: httpx.Response) -> str:
    body = base.error_body(response)
    message = str(body.get("message") or body.get("reason") or response.reason_phrase).rstrip(".")
    code = body.get("code")
    return f"{message} (Zoom error {code})" if code else message
