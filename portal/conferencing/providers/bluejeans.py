"""BlueJeans through its REST API, each person signing in with their own username and password.

Verizon retired BlueJeans in 2024; this follows the public reference as it was left
(api.bluejeans.com, the `bluejeans/api-rest-meetings` spec and docs.bluejeans.com): tokens from
`POST /oauth2/token?Client` (the company's app key and secret) and `POST /oauth2/token?Password`
(a person's), sent back as `Authorization: Bearer`; a person from `GET /v1/user/{user_id}`
(`emailId`, `firstName`, `lastName`), their personal room from
`GET /v1/user/{user_id}/personal_meeting` (`numericMeetingId`, `isPersonalMeeting`), meetings
from `POST /v1/user/{user_id}/scheduled_meeting`; errors as `{message}`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    MeetingRequest,
    NotFound,
    PersonalAccount,
    ProviderUnavailable,
)
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy

BLUEJEANS_API_URL = "https://api.bluejeans.com"
# Where a meeting's numeric id is joined: the API answers with ids, never with links.
BLUEJEANS_WEB_URL = "https://bluejeans.com"

# People are created in the BlueJeans enterprise admin console, never from the portal.
PROVISIONING: tuple[tuple[str, str], ...] = ()

# What BlueJeans' reference asks a scheduling client to say it is.
END_POINT = {"endPointType": "WEB_APP", "endPointVersion": "2.10"}

MISSING_APP = (
    "Enter the app key and secret of an app from the BlueJeans admin console "
    "(Admin > Enterprise Apps)."
)
BAD_APP = (
    "BlueJeans did not accept the app key and secret: copy them again from the app in the "
    "BlueJeans admin console (Admin > Enterprise Apps)."
)
REFUSED_SIGN_IN = (
    "BlueJeans refused this username and password: check them and try again. People who sign "
    "in to BlueJeans through their company's single sign-on have no BlueJeans password and "
    "cannot connect this way."
)
SIGN_IN_LAPSED = "BlueJeans no longer accepts this sign-in: enter your username and password again."


class BlueJeansProvider:
    """A company's BlueJeans app, and each person's account through their own sign-in."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        api_url: str = BLUEJEANS_API_URL,
        web_url: str = BLUEJEANS_WEB_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client_id = client_id.strip()
        self._client_secret = client_secret.strip()
        self._api_url = api_url.rstrip("/")
        self._web_url = web_url.rstrip("/")
        self._timeout = timeout
        self._retry = retry or base.DEFAULT_RETRY
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def verify(self) -> None:
        """Raise unless BlueJeans gives the company's app a token."""
        if not (self._client_id and self._client_secret):
            raise BadCredentials(MISSING_APP)
        body = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        grant = await self._grant("Client", body, BAD_APP)
        if not grant.get("access_token"):
            raise ProviderUnavailable(
                "BlueJeans answered without the token its documentation promises: try again later."
            )

    async def sign_in(self, username: str, password: str) -> PersonalAccount:
        """The person's account and personal room (BadCredentials: BlueJeans refuses them)."""
        token, user_id = await self._sign_in(username, password)
        user = await self._call("GET", f"/v1/user/{user_id}", token)
        room = await self._call("GET", f"/v1/user/{user_id}/personal_meeting", token)
        with base.documented_shape("BlueJeans"):
            first, last = user.get("firstName") or "", user.get("lastName") or ""
            return PersonalAccount(
                user_id=user_id,
                email=str(user.get("emailId") or ""),
                name=f"{first} {last}".strip() or str(user.get("username") or ""),
                room_url=self._join_url(room),
            )

    async def start_meeting(
        self, username: str, password: str, request: MeetingRequest
    ) -> CreatedMeeting:
        """The person's personal room for an instant meeting; a scheduled meeting otherwise."""
        token, user_id = await self._sign_in(username, password)
        if request.start is None:
            room = await self._call("GET", f"/v1/user/{user_id}/personal_meeting", token)
            with base.documented_shape("BlueJeans"):
                link = self._join_url(room)
                return CreatedMeeting(
                    id=str(room["numericMeetingId"]), join_url=link, start_url=link
                )
        start = _epoch_ms(request.start, request.time_zone)
        body = {
            "title": request.topic,
            "start": start,
            "end": start + request.duration_minutes * 60_000,
            "timezone": request.time_zone,
            "isLargeMeeting": False,
            "advancedMeetingOptions": {"moderatorLess": request.join_before_host},
            **END_POINT,
        }
        path = f"/v1/user/{user_id}/scheduled_meeting"
        meeting = await self._call("POST", path, token, json=body, repeatable=False)
        with base.documented_shape("BlueJeans"):
            link = self._join_url(meeting)
            return CreatedMeeting(id=str(meeting["id"]), join_url=link, start_url=link)

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""
        await self._client.aclose()

    async def _sign_in(self, username: str, password: str) -> tuple[str, str]:
        """(access token, user id) of the person's password grant."""
        username = username.strip()
        if not (username and password):
            raise BadCredentials(REFUSED_SIGN_IN)
        body = {"grant_type": "password", "username": username, "password": password}
        grant = await self._grant("Password", body, REFUSED_SIGN_IN)
        with base.documented_shape("BlueJeans"):
            return str(grant["access_token"]), str(int(grant["scope"]["user"]))

    async def _grant(self, kind: str, body: dict[str, str], refused: str) -> dict[str, Any]:
        """A token from `/oauth2/token?{kind}`; asking again is always safe, nothing is made."""

        async def send() -> dict[str, Any]:
            try:
                response = await self._client.post(
                    f"{self._api_url}/oauth2/token?{kind}", json=body
                )
            except httpx.TransportError as error:
                raise base.unreachable("BlueJeans", self._timeout, error) from error
            if response.status_code in (400, 401):
                raise BadCredentials(refused)
            if not response.is_success:
                raise _error(response)
            return base.json_object(response, "BlueJeans")

        return await base.retrying(send, self._retry)

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        json: dict[str, Any] | None = None,
        repeatable: bool = True,
    ) -> dict[str, Any]:
        """BlueJeans' JSON answer, retried while it is busy or unreachable; a creation (not
        `repeatable`) only when BlueJeans cannot have acted on it."""

        async def send() -> dict[str, Any]:
            url = self._api_url + path
            response = await base.bearer_request(
                self._client, "BlueJeans", method, url, token, json=json
            )
            if not response.is_success:
                raise _error(response)
            return base.json_object(response, "BlueJeans")

        return await base.retrying(send, self._retry, repeatable=repeatable)

    def _join_url(self, meeting: dict[str, Any]) -> str:
        return f"{self._web_url}/{quote(str(meeting['numericMeetingId']), safe='')}"


def _epoch_ms(start: dt.datetime, time_zone: str) -> int:
    """Milliseconds since the epoch; a naive start is read in the meeting's time zone."""
    if start.tzinfo is None:
        start = start.replace(tzinfo=ZoneInfo(time_zone))
    return int(start.timestamp() * 1000)


def _error_message(response: httpx.Response) -> str:
    message = base.error_body(response).get("message")
    return str(message or response.reason_phrase).rstrip(".")


def _error(response: httpx.Response) -> ConferencingError:
    status = response.status_code
    if status == 429:
        return base.rate_limited(response, "BlueJeans")
    if status >= 500:
        return ProviderUnavailable(base.server_error(response, "BlueJeans"))
    if status == 401:
        return BadCredentials(SIGN_IN_LAPSED)
    if status == 404:
        return NotFound(f"BlueJeans has no such user or meeting: {_error_message(response)}.")
    if response.is_redirect:
        return ConferencingError(
            f"BlueJeans' address answered with a redirect ({status}): check the BlueJeans API "
            "address."
        )
    return ConferencingError(f"BlueJeans refused the request: {_error_message(response)}.")
