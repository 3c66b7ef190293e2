"""Webex with SSO, through the Webex REST API and an OAuth integration (the older site login,
webExID and password, is webex_xml.py's).

REST (https://webexapis.com/v1, developer.webex.com): tokens from `POST /access_token`, people
from `/people` (paged by the `Link: <...>; rel="next"` header), personal rooms from
`/meetingPreferences/personalMeetingRoom`, meetings from `/meetings`; errors carry
`{message, errors: [{description}], trackingId}`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from portal.conferencing.interfaces import (
    ACTIVE,
    INACTIVE,
    PENDING,
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    HostTokens,
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

WEBEX_API_URL = "https://webexapis.com/v1"

# Webex accounts are created in Control Hub, not from the portal.
PROVISIONING: tuple[tuple[str, str], ...] = ()

# Access tokens live 14 days: renew a while before, so no request leaves with a dying one.
TOKEN_MARGIN = 600.0
PAGE_SIZE = 100  # Webex's default `max` for GET /people
# Role ids are unpadded base64 of "ciscospark://<cluster>/ROLE/<name>"; the full administrator's
# name is the same in every cluster.
FULL_ADMIN_ROLE = "id_full_admin"
# What a host grants the portal: reading their own personal room, nothing else.
HOST_SCOPES = ("meeting:preferences_read",)
ROOM_PATH = "/meetingPreferences/personalMeetingRoom"
# Webex refuses a meeting shorter than 10 minutes, and a start already in the past: "now" is,
# by the time it arrives, so an instant meeting starts a minute ahead.
MIN_MEETING_MINUTES = 10
INSTANT_LEAD = dt.timedelta(minutes=1)

MISSING_CREDENTIALS = (
    "Enter the Webex integration's client ID and client secret, and the refresh token from "
    "authorizing it once as a Webex full administrator."
)
BAD_CREDENTIALS = (
    "Webex did not accept the integration's client ID, client secret or refresh token: copy the "
    "ID and secret again from the integration's page at developer.webex.com, and authorize it "
    "again as a Webex full administrator for a new refresh token (one lapses after 90 days "
    "unused)."
)
NOT_ADMINISTRATOR = (
    "Webex accepted the credentials, but not as a full administrator's with the integration's "
    "admin scopes: authorize the integration again as a full administrator of the Webex "
    "organization, with the scopes spark:people_read, spark-admin:people_read, "
    "meeting:admin_preferences_read and meeting:admin_schedule_write."
)
AUTHORIZATION_REFUSED = "Webex did not accept the authorization: try again."
HOST_AUTHORIZATION_LAPSED = (
    "Webex no longer accepts this host's authorization of the portal: authorize it at Webex again."
)
NO_ACCOUNT_CREATION = (
    "Webex accounts are created in Control Hub: add the person there, and the next sync finds "
    "them by email."
)


class WebexProvider:
    """A Webex organization, reached through an OAuth integration that a full administrator
    authorized; hosts authorize the same integration to read their own personal room."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        api_url: str = WEBEX_API_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client_id = client_id.strip()
        self._client_secret = client_secret.strip()
        self._refresh_token = refresh_token.strip()
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._retry = retry or base.DEFAULT_RETRY
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._tokens = base.TokenCache(self._fetch_token, TOKEN_MARGIN)

    def credentials(self) -> dict[str, str]:
        """The integration's credentials as they are now: the administrator's refresh token is
        the newest Webex gave (see RenewsCredentials)."""
        return {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "refresh_token": self._refresh_token,
        }

    async def verify(self) -> None:
        """Raise unless the credentials work and are a full administrator's."""
        me = _json(await self._call("GET", "/people/me"))
        with base.documented_shape("Webex"):
            roles = [str(role) for role in me.get("roles") or []]
        if not any(_is_full_admin(role) for role in roles):
            raise NotAdministrator(NOT_ADMINISTRATOR)
        # The role alone lists nobody: the integration needs spark-admin:people_read as well.
        await self._call("GET", "/people", params={"max": 1})

    async def users(self, cursor: str | None = None) -> UserPage:
        """One page of the organization's people; the cursor is Webex's link to the next."""
        if cursor is None:
            response = await self._call("GET", "/people", params={"max": PAGE_SIZE})
        else:
            response = await self._call("GET", _next_page_path(cursor))
        with base.documented_shape("Webex"):
            users = [_provider_user(person) for person in _json(response)["items"]]
        next_page = response.links.get("next", {}).get("url")
        return UserPage(users=users, next_cursor=next_page or None)

    async def user_by_email(self, email: str) -> ProviderUser:
        """The organization's person with this email (raises NotFound)."""
        wanted = email.strip()
        if not wanted:
            raise NotFound("Webex cannot look up a person without an email.")
        response = await self._call("GET", "/people", params={"email": wanted})
        with base.documented_shape("Webex"):
            people = _json(response)["items"]
            if not people:
                raise NotFound(f"Webex has no person with the email {wanted}.")
            return _provider_user(people[0])

    async def personal_room(self, user_id: str) -> str:
        """The join link of the person's Webex personal room."""
        email = await self._email_of(user_id)
        response = await self._call("GET", ROOM_PATH, params={"userEmail": email})
        with base.documented_shape("Webex"):
            return str(_json(response)["personalMeetingRoomLink"])

    async def create_meeting(self, user_id: str, request: MeetingRequest) -> CreatedMeeting:
        """A meeting hosted by the person; Webex gives one link, for host and attendees alike."""
        host_email = await self._email_of(user_id)
        start = request.start or (dt.datetime.now(dt.UTC) + INSTANT_LEAD).replace(microsecond=0)
        end = start + dt.timedelta(minutes=max(request.duration_minutes, MIN_MEETING_MINUTES))
        body = {
            "title": request.topic,
            "start": _webex_time(start),
            "end": _webex_time(end),
            "timezone": request.time_zone,
            "enabledJoinBeforeHost": request.join_before_host,
            "hostEmail": host_email,
        }
        meeting = _json(await self._call("POST", "/meetings", json=body, repeatable=False))
        with base.documented_shape("Webex"):
            link = str(meeting["webLink"])
            return CreatedMeeting(id=str(meeting["id"]), join_url=link, start_url=link)

    async def create_user(self, user: NewUser, method: str) -> ProviderUser:
        """Not done from the portal: Webex people are added in Control Hub."""
        raise ConferencingError(NO_ACCOUNT_CREATION)

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """Webex's page where a host lets the portal read their personal room."""
        query = {
            "client_id": self._client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": " ".join(HOST_SCOPES),
            "state": state,
        }
        return f"{self._api_url}/authorize?{urlencode(query, quote_via=quote)}"

    async def exchange_code(self, code: str, redirect_uri: str) -> HostTokens:
        """The host's tokens for the code Webex sent back (BadCredentials: refused or used)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        grant = await base.retrying(lambda: self._grant(form, AUTHORIZATION_REFUSED), self._retry)
        return _host_tokens(grant)

    async def host_room(self, tokens: HostTokens) -> tuple[str, HostTokens]:
        """The host's personal room link, asked as the host, refreshing their token if needed."""
        refreshed = False
        expires_at = tokens.expires_at
        if expires_at.tzinfo is None:
            # A database column without a zone (SQLite's) gives the UTC time back naive.
            expires_at = expires_at.replace(tzinfo=dt.UTC)
        if expires_at - dt.timedelta(seconds=TOKEN_MARGIN) <= dt.datetime.now(dt.UTC):
            tokens, refreshed = await self._refresh_host(tokens), True
        response = await base.retrying(lambda: self._host_request(tokens.access_token), self._retry)
        if response.status_code == 401 and not refreshed:
            # Webex may end an access token early (the host signed out everywhere, for one).
            tokens = await self._refresh_host(tokens)
            response = await base.retrying(
                lambda: self._host_request(tokens.access_token), self._retry
            )
        if response.status_code == 401:
            raise BadCredentials(HOST_AUTHORIZATION_LAPSED)
        with base.documented_shape("Webex"):
            return str(_json(response)["personalMeetingRoomLink"]), tokens

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""
        await self._client.aclose()

    async def _email_of(self, user_id: str) -> str:
        if not user_id:
            # "/people/" is the list of everyone, not a lookup.
            raise NotFound("Webex cannot look up a person without an id.")
        person = _json(await self._call("GET", f"/people/{quote(user_id, safe='')}"))
        with base.documented_shape("Webex"):
            emails = person.get("emails") or []
        if not emails:
            raise NotFound("Webex has no email for this person, so no room or meeting either.")
        return str(emails[0])

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        repeatable: bool = True,
    ) -> httpx.Response:
        """Webex's answer to one request with the administrator's token, retried while Webex
        is busy or unreachable; a creation (not `repeatable`) only when Webex cannot have
        acted on it."""
        return await base.retrying(
            lambda: self._send(method, path, params, json), self._retry, repeatable=repeatable
        )

    async def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json: dict[str, Any] | None
    ) -> httpx.Response:
        async def request(token: str) -> httpx.Response:
            return await self._request(method, path, token, params=params, json=json)

        # Webex may end a token early (a regenerated secret, a revoked authorization).
        response = await self._tokens.send(request)
        if not response.is_success:
            raise _error(response)
        return response

    async def _host_request(self, access_token: str) -> httpx.Response:
        """The host's room as the host; a 401 is returned for the caller to refresh."""
        response = await self._request("GET", ROOM_PATH, access_token)
        if response.status_code != 401 and not response.is_success:
            raise _error(response)
        return response

    async def _request(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        return await base.bearer_request(
            self._client,
            "Webex",
            method,
            self._api_url + path,
            token,
            params=params,
            json=json,
        )

    async def _fetch_token(self) -> tuple[str, float]:
        """A new administrator's token and its lifetime, for the token cache; Webex may rotate
        the refresh token on the way."""
        if not (self._client_id and self._client_secret and self._refresh_token):
            raise BadCredentials(MISSING_CREDENTIALS)
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        grant = await self._grant(form, BAD_CREDENTIALS)
        with base.documented_shape("Webex"):
            token = str(grant["access_token"])
            lifetime = float(grant["expires_in"])
            self._refresh_token = str(grant.get("refresh_token") or self._refresh_token)
        return token, lifetime

    async def _refresh_host(self, tokens: HostTokens) -> HostTokens:
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        grant = await base.retrying(
            lambda: self._grant(form, HOST_AUTHORIZATION_LAPSED), self._retry
        )
        return _host_tokens(grant, tokens.refresh_token)

    async def _grant(self, form: dict[str, str], refused: str) -> dict[str, Any]:
        """Webex's token answer to `form`; `refused` is what a refused grant means here."""
        if not (self._client_id and self._client_secret):
            raise BadCredentials(MISSING_CREDENTIALS)
        data = {"client_id": self._client_id, "client_secret": self._client_secret, **form}
        try:
            response = await self._client.post(f"{self._api_url}/access_token", data=data)
        except httpx.TransportError as error:
            # Nothing is created by asking for a token: sending it again is always safe.
            raise base.NotSent(str(base.unreachable("Webex", self._timeout, error))) from error
        if response.status_code == 429:
            raise base.rate_limited(response, "Webex")
        if response.status_code >= 500:
            raise base.NotSent(base.server_error(response, "Webex"))
        refused_client = base.error_body(response).get("error") == "invalid_client"
        if response.status_code == 401 or refused_client:
            raise BadCredentials(BAD_CREDENTIALS)
        if response.status_code == 400:
            raise BadCredentials(refused)
        if not response.is_success:
            raise _error(response)
        return _json(response)


def _is_full_admin(role_id: str) -> bool:
    try:
        decoded = base64.urlsafe_b64decode(role_id + "=" * (-len(role_id) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return decoded.rpartition("/ROLE/")[2] == FULL_ADMIN_ROLE


def _next_page_path(cursor: str) -> str:
    """The next page's path from Webex's link, kept on the API address: the administrator's
    token is never sent to a host a cursor names."""
    link = urlsplit(cursor)
    if not link.path.endswith("/people") or not link.query:
        raise ValueError(f"{cursor!r} is not a cursor from WebexProvider.users()")
    return f"/people?{link.query}"


def _provider_user(person: dict[str, Any]) -> ProviderUser:
    # `status` is presence (in a meeting, out of office...); whether someone may use Webex is
    # in `invitePending` and `loginEnabled`, which Webex shows to administrators only.
    if _flag(person.get("invitePending")) is True:
        status = PENDING
    elif _flag(person.get("loginEnabled")) is False:
        status = INACTIVE
    else:
        status = ACTIVE
    emails = person.get("emails") or []
    return ProviderUser(
        id=str(person["id"]),
        email=str(emails[0]) if emails else "",
        name=str(person.get("displayName") or ""),
        status=status,
        licensed=bool(person.get("licenses")),
        # The room is one call per person (meetingPreferences): personal_room() makes it.
        room_url="",
    )


def _flag(value: object) -> bool | None:
    """A Webex yes/no: answers carry booleans, the reference types them "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _host_tokens(grant: dict[str, Any], previous_refresh: str = "") -> HostTokens:
    with base.documented_shape("Webex"):
        # A refresh may answer without a new refresh token: the old one stays good.
        refresh = str(grant.get("refresh_token") or previous_refresh)
        lifetime = dt.timedelta(seconds=float(grant["expires_in"]))
        tokens = HostTokens(
            access_token=str(grant["access_token"]),
            refresh_token=refresh,
            expires_at=dt.datetime.now(dt.UTC) + lifetime,
        )
    if not tokens.refresh_token:
        raise base.undocumented("Webex")
    return tokens


def _webex_time(when: dt.datetime) -> str:
    """ISO 8601 in UTC, or local time that Webex reads in the meeting's `timezone`."""
    if when.tzinfo is None:
        return when.strftime("%Y-%m-%dT%H:%M:%S")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(response: httpx.Response) -> dict[str, Any]:
    return base.json_object(response, "Webex")


def _error_message(response: httpx.Response) -> str:
    body = base.error_body(response)
    errors = body.get("errors")
    errors = errors if isinstance(errors, list) else []
    described = next((e.get("description") for e in errors if isinstance(e, dict)), None)
    message = str(body.get("message") or described or response.reason_phrase).rstrip(".")
    # Webex support asks for the tracking ID of a failed request.
    tracking = body.get("trackingId")
    return f"{message} (Webex tracking ID {tracking})" if tracking else message


def _error(response: httpx.Response) -> ConferencingError:
    status = response.status_code
    if status == 429:
        return base.rate_limited(response, "Webex")
    if status >= 500:
        return ProviderUnavailable(base.server_error(response, "Webex"))
    if status == 401:
        return BadCredentials(BAD_CREDENTIALS)
    if status == 403:
        return NotAdministrator(NOT_ADMINISTRATOR)
    if status == 404:
        return NotFound(f"Webex has no such person or meeting: {_error_message(response)}.")
    if response.is_redirect:
        return ConferencingError(
            f"Webex's address answered with a redirect ({status}): check the Webex API address."
        )
    return ConferencingError(f"Webex refused the request: {_error_message(response)}.")
