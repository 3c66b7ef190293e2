"""RingCentral Video through RingCentral's platform API, signed in with an administrator's JWT.

Paths, fields and error codes follow RingCentral's public reference (developers.ringcentral.com):
the token from `POST /restapi/oauth/token` (Basic client auth, grant
`urn:ietf:params:oauth:grant-type:jwt-bearer`), people from
`/restapi/v1.0/account/~/extension` (`type=User`, `email=`, `page`/`perPage`), each person's
room from `/rcvideo/v2/account/~/extension/{id}/bridges/default` and meetings ("bridges") from
`POST /rcvideo/v2/account/~/extension/{id}/bridges`; errors as `{errorCode, message, errors}`.
"""

from __future__ import annotations

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
    UserPage,
)
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy

RINGCENTRAL_API_URL = "https://platform.ringcentral.com"

# People are created in the RingCentral admin portal, never from the portal.
PROVISIONING: tuple[tuple[str, str], ...] = ()

OAUTH_PATH = "/restapi/oauth/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ME_PATH = "/restapi/v1.0/account/~/extension/~"
EXTENSIONS_PATH = "/restapi/v1.0/account/~/extension"
# Renew the token before RingCentral's hour is up, so no request leaves with a dying token.
TOKEN_MARGIN = 300.0
PAGE_SIZE = 100  # RingCentral's documented default for perPage
STATUSES = {
    "Enabled": ACTIVE,
    "NotActivated": PENDING,
    "Disabled": INACTIVE,
    "Frozen": INACTIVE,
    "Unassigned": INACTIVE,
}
# A token RingCentral stopped taking before its hour was up: get a new one and ask again.
DEAD_TOKEN = {"TokenInvalid", "TokenExpired", "OAU-128", "OAU-129", "OAU-149"}

MISSING_CREDENTIALS = (
    "Enter the Client ID and Client secret of a RingCentral REST API app with JWT auth, and "
    "the JWT credential of a RingCentral administrator."
)
BAD_CLIENT = (
    "RingCentral did not accept the Client ID and Client secret: copy them again from the "
    "app's Credentials page in the RingCentral developer console."
)
NO_JWT_GRANT = (
    "RingCentral does not let this app sign in with a JWT: in the RingCentral developer "
    "console, set the app's auth to JWT auth flow and allow the JWT credential to use it."
)
BAD_JWT = (
    "RingCentral did not accept the JWT credential (it may have expired or been revoked): "
    "create a new one as an administrator in the RingCentral developer console and enter it "
    "here."
)
NOT_ADMINISTRATOR = (
    "RingCentral accepted the credentials, but the JWT credential's user is not an "
    "administrator of the RingCentral account: create the JWT credential as an administrator, "
    "and give the app the scopes ReadAccounts and Video."
)
NOT_DELEGATE = (
    "RingCentral Video refused to create a meeting for this person: in the RingCentral admin "
    "portal, open their User Details > Meetings and add the JWT credential's user under "
    '"Schedule meetings for me".'
)
ACCOUNTS_ELSEWHERE = (
    "RingCentral Video accounts are created in the RingCentral admin portal: add the person "
    "there, and the portal finds them by email at the next sync."
)


class RingCentralProvider:
    """One RingCentral account, reached through a JWT app as one of its administrators."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        jwt: str,
        *,
        api_url: str = RINGCENTRAL_API_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client_id = client_id.strip()
        self._client_secret = client_secret.strip()
        self._jwt = jwt.strip()
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._retry = retry or base.DEFAULT_RETRY
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._tokens = base.TokenCache(self._fetch_token, TOKEN_MARGIN)

    async def verify(self) -> None:
        """Raise unless the JWT's user is an administrator whose app may list the users."""
        me = await self._call("GET", ME_PATH)
        with base.documented_shape("RingCentral"):
            admin = (me.get("permissions") or {}).get("admin") or {}
            if admin.get("enabled") is not True:
                raise NotAdministrator(NOT_ADMINISTRATOR)
        await self._call("GET", EXTENSIONS_PATH, params={"type": "User", "perPage": 1})

    async def users(self, cursor: str | None = None) -> UserPage:
        """One page of the account's users; the cursor is RingCentral's next page number."""
        page = _parse_cursor(cursor)
        params = {"type": "User", "perPage": PAGE_SIZE, "page": page}
        answer = await self._call("GET", EXTENSIONS_PATH, params=params)
        with base.documented_shape("RingCentral"):
            users = [_provider_user(record) for record in answer["records"]]
            more = bool((answer.get("navigation") or {}).get("nextPage"))
        return UserPage(users=users, next_cursor=str(page + 1) if more and users else None)

    async def user_by_email(self, email: str) -> ProviderUser:
        """The account's user with this email (raises NotFound)."""
        wanted = email.strip()
        if not wanted:
            raise NotFound("RingCentral cannot look up a user without an email.")
        params = {"type": "User", "email": wanted, "perPage": PAGE_SIZE}
        answer = await self._call("GET", EXTENSIONS_PATH, params=params)
        with base.documented_shape("RingCentral"):
            for record in answer["records"]:
                found = str((record.get("contact") or {}).get("email") or "")
                # RingCentral's filter picks the records; an exact match is still checked here.
                if found.casefold() == wanted.casefold():
                    return _provider_user(record)
        raise NotFound(f"RingCentral has no user with the email {wanted}.")

    async def personal_room(self, user_id: str) -> str:
        """The join link of the user's default RingCentral Video bridge."""
        bridge = await self._call("GET", f"{_bridges_path(user_id)}/default")
        with base.documented_shape("RingCentral"):
            return str(bridge["discovery"]["web"])

    async def create_meeting(self, user_id: str, request: MeetingRequest) -> CreatedMeeting:
        """A bridge hosted by the user; RingCentral Video keeps no time, the calendar does."""
        body = {
            "name": request.topic,
            "type": "Instant" if request.start is None else "Scheduled",
            "security": {"passwordProtected": False},
            "preferences": {"joinBeforeHost": request.join_before_host},
        }
        try:
            bridge = await self._call("POST", _bridges_path(user_id), json=body, repeatable=False)
        except NotAdministrator as error:
            raise NotAdministrator(NOT_DELEGATE) from error
        with base.documented_shape("RingCentral"):
            # Hosts are recognised by signing in to RingCentral, so both open the same link.
            link = str(bridge["discovery"]["web"])
            return CreatedMeeting(id=str(bridge["id"]), join_url=link, start_url=link)

    async def create_user(self, user: NewUser, method: str) -> ProviderUser:
        """Not possible: RingCentral users are made in RingCentral's admin portal."""
        raise ConferencingError(ACCOUNTS_ELSEWHERE)

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
        """RingCentral's JSON answer, retried while it is busy or unreachable; a creation (not
        `repeatable`) only when RingCentral cannot have acted on it."""
        return await base.retrying(
            lambda: self._send(method, path, params, json), self._retry, repeatable=repeatable
        )

    async def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json: dict[str, Any] | None
    ) -> dict[str, Any]:
        async def request(token: str) -> httpx.Response:
            return await base.bearer_request(
                self._client,
                "RingCentral",
                method,
                self._api_url + path,
                token,
                params=params,
                json=json,
            )

        # Revoked early (a new JWT, a changed password): one new token, then ask again.
        response = await self._tokens.send(
            request, lambda answer: bool(_error_codes(answer) & DEAD_TOKEN)
        )
        if not response.is_success:
            raise _error(response)
        return base.json_object(response, "RingCentral")

    async def _fetch_token(self) -> tuple[str, float]:
        """A new token and its lifetime, for the token cache."""
        if not (self._client_id and self._client_secret and self._jwt):
            raise BadCredentials(MISSING_CREDENTIALS)
        try:
            response = await self._client.post(
                self._api_url + OAUTH_PATH,
                auth=(self._client_id, self._client_secret),
                data={"grant_type": JWT_GRANT, "assertion": self._jwt},
            )
        except httpx.TransportError as error:
            # Nothing is created by asking for a token: sending it again is always safe.
            raise base.NotSent(
                str(base.unreachable("RingCentral", self._timeout, error))
            ) from error
        if response.status_code == 429:
            raise base.rate_limited(response, "RingCentral")
        if response.status_code >= 500:
            raise base.NotSent(base.server_error(response, "RingCentral"))
        if response.status_code in (400, 401, 403):
            raise BadCredentials(_refusal(response))
        if not response.is_success:
            raise _error(response)
        token = base.json_object(response, "RingCentral")
        with base.documented_shape("RingCentral"):
            return str(token["access_token"]), float(token.get("expires_in", 3600))


def _parse_cursor(cursor: str | None) -> int:
    """The page number in a cursor of `users()`."""
    if cursor is None:
        return 1
    if not cursor.isdigit() or int(cursor) < 1:
        raise ValueError(f"{cursor!r} is not a cursor from RingCentralProvider.users()")
    return int(cursor)


def _provider_user(record: dict[str, Any]) -> ProviderUser:
    contact = record.get("contact") or {}
    name = f"{contact.get('firstName') or ''} {contact.get('lastName') or ''}".strip()
    return ProviderUser(
        id=str(record["id"]),
        email=str(contact.get("email") or ""),
        name=name or str(record.get("name") or ""),
        status=STATUSES.get(str(record.get("status")), INACTIVE),
        # Every RingCentral user has Video; its default bridge is one request per person.
        licensed=True,
        room_url="",
    )


def _bridges_path(user_id: str) -> str:
    if not user_id.strip():
        # ".../extension//bridges" would not name anyone.
        raise NotFound("RingCentral cannot find a user without an id.")
    return f"/rcvideo/v2/account/~/extension/{quote(user_id.strip(), safe='')}/bridges"


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors = body.get("errors")
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _error_codes(response: httpx.Response) -> set[str]:
    """The answer's errorCode and those of its `errors`: RingCentral puts them in either."""
    body = base.error_body(response)
    codes = [body.get("errorCode"), *(e.get("errorCode") for e in _errors(body))]
    return {code for code in codes if isinstance(code, str)}


def _error_message(response: httpx.Response) -> str:
    body = base.error_body(response)
    first = next(iter(_errors(body)), {})
    message = body.get("message") or first.get("message") or body.get("error_description")
    code = body.get("errorCode") or first.get("errorCode")
    text = str(message or response.reason_phrase).rstrip(".")
    return f"{text} (RingCentral error {code})" if code else text


def _refusal(response: httpx.Response) -> str:
    """Which of the three credentials the token endpoint refused, as OAuth's `error` says."""
    error = base.error_body(response).get("error")
    if error == "invalid_client":
        return BAD_CLIENT
    if error in ("unauthorized_client", "unsupported_grant_type"):
        return NO_JWT_GRANT
    return BAD_JWT


def _error(response: httpx.Response) -> ConferencingError:
    status = response.status_code
    if status == 429:
        return base.rate_limited(response, "RingCentral")
    if status >= 500:
        return ProviderUnavailable(base.server_error(response, "RingCentral"))
    if status == 401:
        return BadCredentials(BAD_JWT)
    if status == 403:
        return NotAdministrator(NOT_ADMINISTRATOR)
    if status == 404:
        return NotFound(f"RingCentral has no such user or bridge: {_error_message(response)}.")
    if response.is_redirect:
        return ConferencingError(
            f"RingCentral's address answered with a redirect ({status}): check the RingCentral "
            "API address."
        )
    return ConferencingError(f"RingCentral refused the request: {_error_message(response)}.")
