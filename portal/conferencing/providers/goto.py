"""GoTo Meeting, GoTo Training and GoTo Webinar, signed in as each person with their own GoTo
username and password.

Tokens come from GoTo's authentication service, `POST
https://authentication.logmeininc.com/oauth/token` with the OAuth client in a Basic header:
the password grant for a person, whose answer names their `organizer_key`, `email`,
`firstName` and `lastName`; the client credentials grant only to check the company's client.
Meetings follow the GoTo Meeting REST API (`/G2M/rest/meetings`, created as a JSON array),
trainings the GoTo Training API (`/G2T/rest/organizers/{organizerKey}/trainings`, created as
the bare training key) and webinars the GoTo Webinar API v2
(`/G2W/rest/v2/organizers/{organizerKey}/webinars`). Errors come as `{int_err_code, msg}` from
GoTo Meeting, `{errorCode, description}` from Training and Webinar, and as OAuth's
`{error, error_description}` from the token endpoint.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

GOTO_API_URL = "https://api.getgo.com"
GOTO_OAUTH_URL = "https://authentication.logmeininc.com/oauth/token"
PRODUCTS = (("meeting", "GoTo Meeting"), ("training", "GoTo Training"), ("webinar", "GoTo Webinar"))
# People are created in GoTo's admin center, not from the portal.
PROVISIONING: tuple[tuple[str, str], ...] = ()

# GoTo Training's API returns no attendee link: trainees register on this page, by training key.
TRAINING_REGISTRATION_URL = "https://attendee.gototraining.com/r"
SUBJECT_MAX = 100  # GoTo Meeting's limit on a meeting's subject, counted after escaping < and >
SUBJECT_ESCAPES = {"<": "&lt;", ">": "&gt;"}  # GoTo Meeting requires these two escaped
# OAuth errors that mean the client itself was refused, not the person's username and password.
CLIENT_ERRORS = {"invalid_client", "unauthorized_client", "unsupported_grant_type"}

BAD_PRODUCT = "Choose GoTo Meeting, GoTo Training or GoTo Webinar."
MISSING_CLIENT = (
    "Enter the client ID and client secret of the company's OAuth client from developer.goto.com."
)
BAD_CLIENT = (
    "GoTo did not accept the OAuth client ID and secret: copy them again from the client's page "
    "at developer.goto.com (GoTo shows a secret only once: make a new one if it was lost)."
)
CLIENT_REFUSED = (
    "GoTo did not let the company's OAuth client sign you in: ask the administrator who connected "
    "GoTo to check its client ID and secret, and that GoTo allows this client the password grant "
    "(GoTo allows it only to clients that had it before it was retired for new ones)."
)
MISSING_SIGN_IN = "Enter your GoTo username (your email address) and password."
REFUSED = (
    "GoTo refused this username and password: check them and try again (an account that signs "
    "in to GoTo through the company's single sign-on or with two-step verification cannot sign "
    "in here)."
)


class GoToProvider:
    """The company's GoTo OAuth client, creating meetings on one GoTo product as each person."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        product: str,
        *,
        api_url: str = GOTO_API_URL,
        oauth_url: str = GOTO_OAUTH_URL,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client_id = client_id.strip()
        self._client_secret = client_secret.strip()
        self._product = product.strip()
        self._name = dict(PRODUCTS).get(self._product, "GoTo")
        self._api_url = api_url.rstrip("/")
        self._oauth_url = oauth_url
        self._timeout = timeout
        self._retry = retry or base.DEFAULT_RETRY
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def verify(self) -> None:
        """Raise unless the product is one of GoTo's and GoTo accepts the OAuth client."""
        self._check_setup()
        response = await base.retrying(
            lambda: self._token_request({"grant_type": "client_credentials"}), self._retry
        )
        error = _oauth_error(response)
        # A client that may not use this grant has still authenticated: it is accepted.
        if response.status_code == 401 or error == "invalid_client":
            raise BadCredentials(BAD_CLIENT)
        if not response.is_success and error not in CLIENT_ERRORS:
            raise ConferencingError(f"GoTo refused the OAuth client: {_message(response)}.")

    async def sign_in(self, username: str, password: str) -> PersonalAccount:
        """The person's GoTo organizer account (BadCredentials: GoTo refuses them)."""
        session = await self._sign_in(username, password)
        with self._documented_shape():
            name = f"{session.get('firstName') or ''} {session.get('lastName') or ''}".strip()
            email = str(session.get("email") or username.strip())
            return PersonalAccount(
                user_id=str(session["organizer_key"]), email=email, name=name, room_url=""
            )

    async def start_meeting(
        self, username: str, password: str, request: MeetingRequest
    ) -> CreatedMeeting:
        """A meeting, training or webinar (the company's product) hosted by the person."""
        start, end = _window(request)
        session = await self._sign_in(username, password)
        with self._documented_shape():
            token, organizer = str(session["access_token"]), str(session["organizer_key"])
        if self._product == "meeting":
            return await self._create_meeting(token, request, start, end)
        if self._product == "training":
            return await self._create_training(token, organizer, request, start, end)
        return await self._create_webinar(token, organizer, request, start, end)

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""
        await self._client.aclose()

    async def _create_meeting(
        self, token: str, request: MeetingRequest, start: dt.datetime, end: dt.datetime
    ) -> CreatedMeeting:
        body = {
            "subject": _meeting_subject(request.topic),
            "starttime": _utc(start),
            "endtime": _utc(end),
            "passwordrequired": False,
            "conferencecallinfo": "VoIP",
            "timezonekey": "",  # deprecated by GoTo, yet required, and empty
            "meetingtype": "immediate" if request.start is None else "scheduled",
        }
        created = await self._call("POST", "/G2M/rest/meetings", token, body, repeatable=False)
        with self._documented_shape():
            meeting_id, join_url = str(created[0]["meetingid"]), str(created[0]["joinURL"])
        try:
            host = await self._call("GET", f"/G2M/rest/meetings/{meeting_id}/start", token)
            with self._documented_shape():
                start_url = str(host["hostURL"])
        except ConferencingError:
            # The meeting exists now and a second must not follow: its organizer starts it
            # from the join link too, signed in to GoTo.
            start_url = join_url
        return CreatedMeeting(id=meeting_id, join_url=join_url, start_url=start_url)

    async def _create_training(
        self,
        token: str,
        organizer: str,
        request: MeetingRequest,
        start: dt.datetime,
        end: dt.datetime,
    ) -> CreatedMeeting:
        body = {
            "name": request.topic,
            "description": request.topic,
            "timeZone": request.time_zone,
            "times": [{"startDate": _utc(start), "endDate": _utc(end)}],
            "registrationSettings": {
                "disableWebRegistration": False,
                "disableConfirmationEmail": False,
            },
        }
        path = f"/G2T/rest/organizers/{quote(organizer)}/trainings"
        created = await self._call("POST", path, token, body, repeatable=False)
        if not isinstance(created, str | int):
            raise self._undocumented()
        training_key = str(created)
        host = await self._call("GET", f"/G2T/rest/trainings/{quote(training_key)}/start", token)
        with self._documented_shape():
            start_url = str(host["hostURL"])
        join_url = f"{TRAINING_REGISTRATION_URL}/{training_key}"
        return CreatedMeeting(id=training_key, join_url=join_url, start_url=start_url)

    async def _create_webinar(
        self,
        token: str,
        organizer: str,
        request: MeetingRequest,
        start: dt.datetime,
        end: dt.datetime,
    ) -> CreatedMeeting:
        body = {
            "subject": request.topic,
            "description": request.topic,
            "times": [{"startTime": _utc(start), "endTime": _utc(end)}],
            "timeZone": request.time_zone,
            "type": "single_session",
            "isPasswordProtected": False,
        }
        webinars = f"/G2W/rest/v2/organizers/{quote(organizer)}/webinars"
        created = await self._call("POST", webinars, token, body, repeatable=False)
        with self._documented_shape():
            webinar_key = str(created["webinarKey"])
        webinar = await self._call("GET", f"{webinars}/{quote(webinar_key)}", token)
        with self._documented_shape():
            registration_url = str(webinar["registrationUrl"])
        # GoTo Webinar's API has no host link: organizers start webinars from the GoTo app,
        # signed in, and reach it from the webinar's page like everyone else.
        return CreatedMeeting(id=webinar_key, join_url=registration_url, start_url=registration_url)

    def _check_setup(self) -> None:
        if self._product not in dict(PRODUCTS):
            raise BadCredentials(BAD_PRODUCT)
        if not (self._client_id and self._client_secret):
            raise BadCredentials(MISSING_CLIENT)

    async def _sign_in(self, username: str, password: str) -> dict[str, Any]:
        """GoTo's token answer for the person, by the password grant."""
        self._check_setup()
        if not (username.strip() and password):
            raise BadCredentials(MISSING_SIGN_IN)
        form = {"grant_type": "password", "username": username.strip(), "password": password}
        response = await base.retrying(lambda: self._token_request(form), self._retry)
        if response.status_code in (400, 401):
            refused = _oauth_error(response) in CLIENT_ERRORS
            raise ConferencingError(CLIENT_REFUSED) if refused else BadCredentials(REFUSED)
        if not response.is_success:
            raise ConferencingError(f"GoTo refused to sign you in: {_message(response)}.")
        session = self._json(response)
        if not isinstance(session, dict):
            raise self._undocumented()
        return session

    async def _token_request(self, form: dict[str, str]) -> httpx.Response:
        """The token endpoint's answer; a 429 or 5xx raised for `retrying` (nothing is created
        by asking for a token, so it is always safe to ask again)."""
        try:
            response = await self._client.post(
                self._oauth_url,
                auth=(self._client_id, self._client_secret),
                data=form,
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as error:
            raise base.unreachable(self._name, self._timeout, error) from error
        if response.status_code == 429 or response.status_code >= 500:
            raise self._error(response)
        return response

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        json: dict[str, Any] | None = None,
        *,
        repeatable: bool = True,
    ) -> Any:
        """GoTo's JSON answer to one API request, retried while GoTo is busy or unreachable;
        a creation (not `repeatable`) only when GoTo cannot have acted on it."""
        return await base.retrying(
            lambda: self._send(method, path, token, json), self._retry, repeatable=repeatable
        )

    async def _send(self, method: str, path: str, token: str, json: dict[str, Any] | None) -> Any:
        response = await base.bearer_request(
            self._client,
            self._name,
            method,
            self._api_url + path,
            token,
            json=json,
            headers={"Accept": "application/json"},
        )
        if not response.is_success:
            raise self._error(response)
        return self._json(response)

    def _error(self, response: httpx.Response) -> ConferencingError:
        status = response.status_code
        if status == 429:
            return base.rate_limited(response, self._name)
        if status >= 500:
            return ProviderUnavailable(base.server_error(response, self._name))
        if status in (401, 403):
            return ConferencingError(
                f"{self._name} refused this GoTo account ({_message(response)}): check that it "
                f"has a {self._name} licence and that the company's OAuth client includes "
                f"{self._name}."
            )
        if status == 404:
            return NotFound(f"{self._name} has no such organizer or session: {_message(response)}.")
        if response.is_redirect:
            return ConferencingError(
                f"GoTo's address answered with a redirect ({status}): check the GoTo API address."
            )
        return ConferencingError(f"{self._name} refused the request: {_message(response)}.")

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise self._undocumented() from None

    def _undocumented(self) -> ProviderUnavailable:
        return base.undocumented(self._name)

    def _documented_shape(self) -> AbstractContextManager[None]:
        return base.documented_shape(self._name)


def _window(request: MeetingRequest) -> tuple[dt.datetime, dt.datetime]:
    """Start and end, aware: an instant meeting starts now; a naive start is local time in the
    meeting's time zone, since GoTo takes UTC only."""
    start = request.start or dt.datetime.now(dt.UTC)
    if start.tzinfo is None:
        try:
            start = start.replace(tzinfo=ZoneInfo(request.time_zone))
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ConferencingError(
                f"The meeting's time zone {request.time_zone!r} is unknown: choose another."
            ) from error
    return start, start + dt.timedelta(minutes=request.duration_minutes)


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meeting_subject(topic: str) -> str:
    """GoTo Meeting's subject: < and > escaped, cut to its limit without splitting an escape."""
    subject = ""
    for char in topic.strip():
        piece = SUBJECT_ESCAPES.get(char, char)
        if len(subject) + len(piece) > SUBJECT_MAX:
            break
        subject += piece
    return subject


def _oauth_error(response: httpx.Response) -> str:
    return str(base.error_body(response).get("error") or "")


def _message(response: httpx.Response) -> str:
    """GoTo's own words for an error, whichever of its products (or OAuth) answered."""
    body = base.error_body(response)
    text = (
        body.get("msg")
        or body.get("description")
        or body.get("error_description")
        or body.get("message")
        or response.reason_phrase
    )
    code = body.get("int_err_code") or body.get("errorCode") or body.get("error")
    text = str(text).rstrip(".")
    return f"{text} (GoTo error {code})" if code else text
