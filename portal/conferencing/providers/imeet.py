"""iMeet (PGi): the company's "clients", one per person, each with a personal room.

PGi publishes no API reference. This follows the provisioning API that PGi's partners
describe: the company's API key in the `X-AUTH-TOKEN` header, every call a POST with a JSON
body, every answer wrapped as `{"status": "success", "data": ...}` (or `"error"` with a
`message`). The paths and field names below are the only place the adapter spells them, so a
correction from PGi touches one block.
"""

from __future__ import annotations

from typing import Any

import httpx

from portal.conferencing.interfaces import (
    ACTIVE,
    INACTIVE,
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    MeetingRequest,
    NewUser,
    NotAdministrator,
    NotFound,
    ProviderUnavailable,
    ProviderUser,
    RateLimited,
    UserPage,
)
from portal.conferencing.providers import base
from portal.conferencing.providers.base import RetryPolicy

# The host PGi's account manager gives out with the key; PORTAL_IMEET_API_URL overrides it.
IMEET_API_URL = "https://api.pgi.com"

AUTH_HEADER = "X-AUTH-TOKEN"
LIST_PATH = "/provisioning/client/list"  # {page, pageSize} -> {clients, page, pageSize, totalCount}
FIND_PATH = "/provisioning/client/find"  # {email} -> client
GET_PATH = "/provisioning/client/get"  # {clientId} -> client
PROVISION_PATH = "/provisioning/client/provision"  # {client: {first, last, email}} -> {clientId}
DEACTIVATE_PATH = "/provisioning/client/deactivate"  # {clientId}
REACTIVATE_PATH = "/provisioning/client/reactivate"  # {clientId}
SIGN_ON_PATH = "/provisioning/client/signon"  # {clientId} -> {url}

STATUS = "status"
SUCCESS = "success"
DATA = "data"
MESSAGE = "message"
CLIENT = "client"
CLIENTS = "clients"
CLIENT_ID = "clientId"
EMAIL = "email"
FIRST = "first"
LAST = "last"
IS_ACTIVE = "active"
ROOM_URL = "roomUrl"
SIGN_ON_URL = "url"
PAGE = "page"
PAGE_SIZE = "pageSize"
TOTAL = "totalCount"

# iMeet has one way to create a person: provision a client in the key's company.
PROVISIONING = (("provision", "Create an iMeet client"),)

DEFAULT_PAGE_SIZE = 200


class IMeetProvider:
    """One company's iMeet account, reached with its administrator API key."""

    def __init__(
        self,
        api_key: str,
        *,
        api_url: str = IMEET_API_URL,
        timeout: float = 10.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._api_key = api_key.strip()
        self._timeout = timeout
        self._page_size = page_size
        self._retry = retry or base.DEFAULT_RETRY
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"), timeout=httpx.Timeout(timeout), follow_redirects=False
        )

    async def verify(self) -> None:
        """Raise unless the key works and is a company administrator's."""
        # Listing the company's clients is what the portal needs an administrator key for, and
        # PGi answers it with 401 for an unknown key and 403 for a non-administrator's.
        await self._call(LIST_PATH, {PAGE: 1, PAGE_SIZE: 1})

    async def users(self, cursor: str | None = None) -> UserPage:
        """One page of the company's clients; the cursor is the next page's number."""
        page = int(cursor) if cursor else 1
        data = await self._call(LIST_PATH, {PAGE: page, PAGE_SIZE: self._page_size})
        try:
            records = list(data[CLIENTS])
            total = int(data[TOTAL])
        except (KeyError, TypeError, ValueError) as error:
            raise _unreadable("a page of clients") from error
        users = [_user(record) for record in records]
        more = bool(records) and (page - 1) * self._page_size + len(records) < total
        return UserPage(users=users, next_cursor=str(page + 1) if more else None)

    async def user_by_email(self, email: str) -> ProviderUser:
        """The company's client with this email (raises NotFound)."""
        data = await self._call(
            FIND_PATH, {EMAIL: email.strip()}, missing=f"No iMeet client has the email {email}."
        )
        return _user(data)

    async def client(self, user_id: str) -> ProviderUser:
        """The client with this PGi clientId (raises NotFound)."""
        data = await self._call(GET_PATH, _client_ref(user_id), missing=_no_client(user_id))
        return _user(data)

    async def personal_room(self, user_id: str) -> str:
        """The join link of the client's personal room."""
        room_url = (await self.client(user_id)).room_url
        if not room_url:
            raise NotFound(f"iMeet client {user_id} has no personal room yet.")
        return room_url

    async def sign_on_url(self, user_id: str) -> str:
        """A URL that signs the client in and opens their room (the host's link)."""
        data = await self._call(SIGN_ON_PATH, _client_ref(user_id), missing=_no_client(user_id))
        url = data.get(SIGN_ON_URL) if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise _unreadable("a sign-on link")
        return url

    async def deactivate(self, user_id: str) -> None:
        """Switch the client off (PGi treats an already inactive client as a success)."""
        await self._call(DEACTIVATE_PATH, _client_ref(user_id), missing=_no_client(user_id))

    async def reactivate(self, user_id: str) -> None:
        """Switch the client back on (PGi treats an already active client as a success)."""
        await self._call(REACTIVATE_PATH, _client_ref(user_id), missing=_no_client(user_id))

    async def create_meeting(self, user_id: str, request: MeetingRequest) -> CreatedMeeting:
        """The host's personal room, with a sign-on link for the host.

        iMeet has no meetings to create: each client has one permanent room and every meeting
        they host is held there, so the topic, time and join-before-host of `request` have
        nowhere to go at PGi; the portal's own event carries them.
        """
        join_url = await self.personal_room(user_id)
        return CreatedMeeting(
            id=user_id, join_url=join_url, start_url=await self.sign_on_url(user_id)
        )

    async def create_user(self, user: NewUser, method: str) -> ProviderUser:
        """A new client in the key's company (PGi does not duplicate an existing one)."""
        if method not in dict(PROVISIONING):
            raise ConferencingError(f"iMeet has no provisioning method {method!r}.")
        body = {CLIENT: {FIRST: user.first_name, LAST: user.last_name, EMAIL: user.email.strip()}}
        # Safe to send again after a timeout or a 5xx: PGi provisions a client only once.
        data = await self._call(PROVISION_PATH, body)
        client_id = data.get(CLIENT_ID) if isinstance(data, dict) else None
        if client_id is None:
            raise _unreadable("the new client")
        # The provisioning answer carries ids and pass codes, not the room: ask for the client.
        return await self.client(str(client_id))

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""
        await self._client.aclose()

    async def _call(
        self, path: str, body: dict[str, Any], *, missing: str = "iMeet has no such client."
    ) -> Any:
        """POST `body` to `path`, retrying what is worth retrying; the answer's `data`."""
        if not self._api_key or not self._api_key.isascii() or not self._api_key.isprintable():
            raise BadCredentials(
                "Enter the company's iMeet API key as your PGi account manager gave it."
            )
        return await base.retrying(lambda: self._post(path, body, missing), self._retry)

    async def _post(self, path: str, body: dict[str, Any], missing: str) -> Any:
        try:
            response = await self._client.post(
                path, json=body, headers={AUTH_HEADER: self._api_key}
            )
        except httpx.TransportError as error:
            raise base.unreachable("iMeet", self._timeout, error) from error
        return self._read(response, missing)

    def _read(self, response: httpx.Response, missing: str) -> Any:
        """The answer's `data`, or the typed error its status stands for."""
        status = response.status_code
        if status == 401:
            raise BadCredentials(
                "iMeet did not accept the API key: check it, or ask your PGi account manager "
                "for the company's key."
            )
        if status == 403:
            raise NotAdministrator(
                "The iMeet API key works but is not a company administrator's: ask your PGi "
                "account manager for the company's administrator API key."
            )
        if status == 404:
            raise NotFound(missing)
        if status == 429:
            retry_after = base.retry_after(response.headers.get("Retry-After", ""))
            raise RateLimited(
                "iMeet is limiting the portal's requests: try again in a few minutes.", retry_after
            )
        if status >= 500:
            raise ProviderUnavailable(f"iMeet failed with a server error ({status}): try later.")
        if status != 200:
            raise ConferencingError(f"iMeet refused the request ({status}): {_message(response)}")
        try:
            answer = response.json()
        except ValueError as error:
            raise _unreadable("its answer") from error
        if not isinstance(answer, dict) or answer.get(STATUS) != SUCCESS:
            raise ConferencingError(f"iMeet refused the request: {_message(response)}")
        return answer.get(DATA) or {}


def _user(record: Any) -> ProviderUser:
    """A client record as the portal sees it."""
    try:
        name = " ".join(part for part in (record.get(FIRST), record.get(LAST)) if part)
        return ProviderUser(
            id=str(record[CLIENT_ID]),
            email=record.get(EMAIL) or "",
            name=name,
            status=ACTIVE if record.get(IS_ACTIVE, True) else INACTIVE,
            # Every iMeet client is a paid seat with its own room: there is no unlicensed kind.
            licensed=True,
            room_url=record.get(ROOM_URL) or "",
        )
    except (AttributeError, KeyError, TypeError) as error:
        raise _unreadable("a client") from error


def _client_ref(user_id: str) -> dict[str, int]:
    """The request body naming one client; an id that is not PGi's (a number) is no client."""
    try:
        return {CLIENT_ID: int(user_id)}
    except ValueError:
        raise NotFound(_no_client(user_id)) from None


def _no_client(user_id: str) -> str:
    return f"iMeet has no client {user_id} in this company."


def _message(response: httpx.Response) -> str:
    try:
        message = response.json().get(MESSAGE)
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else "no reason given."


def _unreadable(what: str) -> ProviderUnavailable:
    return ProviderUnavailable(f"iMeet sent {what} in a form the portal cannot read: try later.")
