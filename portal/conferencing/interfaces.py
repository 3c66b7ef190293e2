"""What the portal asks of a conferencing provider, and the errors a provider may answer with.

Each adapter under `portal/conferencing/providers/` speaks its provider's own REST API and
answers in these terms, so that sync, Meet Now and the calendar never see a provider's JSON.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

# A provider user's status, as the mapping page shows it.
ACTIVE = "active"
INACTIVE = "inactive"
PENDING = "pending"  # created, not yet confirmed by the person (Zoom's "create" action)


class ConferencingError(Exception):
    """A provider refused or failed; `str(error)` is a sentence an admin can act on."""


class BadCredentials(ConferencingError):
    """The provider does not accept the account's credentials."""


class RetiredCredentials(BadCredentials):
    """Credentials of a kind the provider no longer accepts (Zoom's JWT apps)."""


class NotAdministrator(ConferencingError):
    """The credentials work but lack the administrator rights the portal needs."""


class RateLimited(ConferencingError):
    """Too many requests; `retry_after` seconds is what the provider asked for, if it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ConferencingError):
    """The provider could not be reached, timed out, or answered with a server error."""


class NotFound(ConferencingError):
    """No such user (or meeting) at the provider."""


class ProviderUser(NamedTuple):
    """A user of the provider's account. A tuple: a sync makes and holds 100,000 of them, and a
    frozen dataclass would cost three times the memory and twice the time to make."""

    id: str
    email: str
    name: str
    status: str  # ACTIVE, INACTIVE or PENDING
    licensed: bool
    room_url: str  # the personal room's join link ("" when the provider has none for them)


@dataclass(frozen=True)
class UserPage:
    users: list[ProviderUser]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True)
class NewUser:
    email: str
    first_name: str
    last_name: str


@dataclass(frozen=True)
class MeetingRequest:
    topic: str
    start: dt.datetime | None  # None: an instant meeting
    duration_minutes: int
    time_zone: str
    join_before_host: bool


@dataclass(frozen=True)
class CreatedMeeting:
    id: str
    join_url: str
    start_url: str  # the host's link; some providers' expire (Zoom's after about 2 hours)


@dataclass(frozen=True)
class PersonalAccount:
    """Who a person is at a provider they sign in to themselves (username and password)."""

    user_id: str  # the provider's id for them
    email: str
    name: str
    room_url: str  # their personal room's join link; "" where each meeting has its own


@dataclass(frozen=True)
class HostTokens:
    """What a host's authorization of the portal left it: kept encrypted, refreshed as needed."""

    access_token: str
    refresh_token: str
    expires_at: dt.datetime  # the access token's end (UTC)


class Provider(Protocol):
    """One company account at one provider, ready to be asked (see providers/__init__.py)."""

    async def verify(self) -> None:
        """Raise unless the credentials work and are an administrator's."""

    async def users(self, cursor: str | None = None) -> UserPage:
        """One page of the account's users; pass the page's `next_cursor` for the next."""

    async def user_by_email(self, email: str) -> ProviderUser:
        """The account's user with this email (raises NotFound)."""

    async def personal_room(self, user_id: str) -> str:
        """The join link of the user's personal room."""

    async def create_meeting(self, user_id: str, request: MeetingRequest) -> CreatedMeeting:
        """A meeting hosted by the user."""

    async def create_user(self, user: NewUser, method: str) -> ProviderUser:
        """A new user at the provider by the admin's provisioning method (see the provider's
        `PROVISIONING`); it may be PENDING until the person confirms."""

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""


@runtime_checkable
class RenewsCredentials(Protocol):
    """An adapter whose provider may hand it new credentials while it works (Webex may answer a
    token refresh with a new refresh token, after which the old one stops working): the portal
    must keep them, or the next adapter opens over dead ones."""

    def credentials(self) -> dict[str, str]:
        """Every credential field as it is now, by its name in the provider's kind."""


class PasswordProvider(Protocol):
    """A provider whose people sign in with their own username and password (GoTo, BlueJeans,
    Webex in username and password mode); the company's credentials are the API client's."""

    async def verify(self) -> None:
        """Raise unless the company's credentials (API client, site) are accepted."""

    async def sign_in(self, username: str, password: str) -> PersonalAccount:
        """The person's account (BadCredentials: the provider refuses them)."""

    async def start_meeting(
        self, username: str, password: str, request: MeetingRequest
    ) -> CreatedMeeting:
        """A meeting hosted by the person, signing in as them (BadCredentials as sign_in)."""

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""


class HostAuthorizing(Protocol):
    """A provider whose hosts authorize the portal to act for them (Webex in SSO mode)."""

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        """The provider's page where the host grants the portal access (OAuth authorize)."""

    async def exchange_code(self, code: str, redirect_uri: str) -> HostTokens:
        """The tokens for the code the provider sent back (BadCredentials: refused, used)."""

    async def host_room(self, tokens: HostTokens) -> tuple[str, HostTokens]:
        """The host's personal room link, asked as the host, with the tokens as they are now
        (refreshed when the access token had expired). BadCredentials when the refresh token
        is no longer accepted: the host must authorize again."""

    async def aclose(self) -> None:
        """Let go of the HTTP connections."""
