"""The Zoom adapter against the Zoom simulator: what it sends, what it reads, how it fails."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
import stamina.instrumentation

from portal.conferencing import interfaces
from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    MeetingRequest,
    NewUser,
    NotAdministrator,
    NotFound,
    ProviderUnavailable,
    RateLimited,
    RetiredCredentials,
)
from portal.conferencing.providers import base, open_provider
from portal.conferencing.providers import zoom as zoom_module
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.providers.zoom import ZoomProvider
from tests.conferencing.conftest import PATIENCE, serve
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app, zoom_endpoints, zoom_urls
from tests.servers import free_port

CREDENTIALS = ("acct-1", "client-1", "secret-1")
TIMEOUT = 0.25
WAIT_CAP = 0.05


@pytest.fixture
def account() -> ZoomAccount:
    return ZoomAccount(*CREDENTIALS)


@pytest.fixture
def url(account: ZoomAccount) -> Iterator[str]:
    with serve(zoom_app(account)) as served:
        yield served


def capped(wait_cap: float) -> RetryPolicy:
    """Waits of at most `wait_cap`, Retry-After included, so that retrying tests stay fast."""
    return RetryPolicy(
        wait_initial=min(0.5, wait_cap),
        wait_max=wait_cap,
        wait_jitter=0,
        retry_after_cap=wait_cap,
    )


def open_zoom(
    url: str, *credentials: str, wait_cap: float = WAIT_CAP, timeout: float = PATIENCE
) -> ZoomProvider:
    return ZoomProvider(
        *(credentials or CREDENTIALS), **zoom_urls(url), timeout=timeout, retry=capped(wait_cap)
    )


@pytest.fixture
async def zoom(url: str) -> AsyncIterator[ZoomProvider]:
    provider = open_zoom(url)
    yield provider
    await provider.aclose()


@pytest.fixture
def retries() -> Iterator[list[stamina.instrumentation.RetryDetails]]:
    """The retries stamina schedules, with how long each waits."""
    seen: list[stamina.instrumentation.RetryDetails] = []
    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([seen.append])
    yield seen
    stamina.instrumentation.set_on_retry_hooks(hooks)


async def warm(zoom: ZoomProvider, account: ZoomAccount) -> None:
    """Fetch and cache a token, then forget the requests so far."""
    await zoom.personal_room(account.owner["id"])
    account.requests.clear()
    account.sent.clear()


def test_endpoint_keys_name_the_two_zoom_hosts() -> None:
    assert zoom_endpoints("http://sim") == {
        "zoom_api": "http://sim/v2",
        "zoom_oauth": "http://sim/oauth/token",
    }
    assert zoom_module.ZOOM_API_URL == "https://api.zoom.us/v2"
    assert zoom_module.ZOOM_OAUTH_URL == "https://zoom.us/oauth/token"


async def test_the_registry_opens_zoom_on_the_simulator_s_endpoint_keys(
    url: str, account: ZoomAccount
) -> None:
    credentials = dict(zip(("account_id", "client_id", "client_secret"), CREDENTIALS, strict=True))
    zoom = open_provider("zoom", credentials, zoom_endpoints(url))
    await zoom.verify()
    await zoom.aclose()

    assert account.requests[0] == ("POST", "/oauth/token")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("", None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_reads_seconds_and_dates(header: str, seconds: float | None) -> None:
    assert base.retry_after(header) == seconds


def test_retry_after_of_a_future_date_counts_the_seconds_until_then() -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
    assert 80 < base.retry_after(email.utils.format_datetime(later)) <= 90


# Credentials and tokens


async def test_verify_gets_a_token_reads_me_and_lists_users(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    await zoom.verify()

    assert account.requests == [
        ("POST", "/oauth/token"),
        ("GET", "/v2/users/me"),
        ("GET", "/v2/users"),
    ]
    token_request, me, listing = account.sent
    basic = base64.b64encode(b"client-1:secret-1").decode()
    assert token_request.headers["authorization"] == f"Basic {basic}"
    assert parse_qs(token_request.body.decode()) == {
        "grant_type": ["account_credentials"],
        "account_id": ["acct-1"],
    }
    bearer = me.headers["authorization"]
    assert bearer.startswith("Bearer ") and bearer.removeprefix("Bearer ") in account.tokens
    assert listing.headers["authorization"] == bearer
    assert listing.query == {"status": "active", "page_size": "1"}


async def test_the_token_is_reused_while_it_lives(zoom: ZoomProvider, account: ZoomAccount) -> None:
    await zoom.verify()
    await zoom.users()
    await zoom.personal_room(account.owner["id"])

    assert account.count("POST", "/oauth/token") == 1


async def test_the_token_is_renewed_a_margin_before_it_expires(
    zoom: ZoomProvider, account: ZoomAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(base, "monotonic", lambda: now[0])
    await zoom.users()

    now[0] += 3600 - zoom_module.TOKEN_MARGIN - 1
    await zoom.users()
    assert account.count("POST", "/oauth/token") == 1

    now[0] += 1
    await zoom.users()
    assert account.count("POST", "/oauth/token") == 2


async def test_error_124_drops_the_token_and_retries_once_with_a_new_one(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    await warm(zoom, account)
    account.expire_tokens()

    page = await zoom.users()

    assert [u.email for u in page.users] == [account.owner["email"]]
    assert account.requests == [
        ("GET", "/v2/users"),
        ("POST", "/oauth/token"),
        ("GET", "/v2/users"),
    ]


async def test_error_124_with_a_regenerated_secret_is_bad_credentials(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    await warm(zoom, account)
    account.client_secret = "regenerated"
    account.expire_tokens()

    with pytest.raises(BadCredentials) as caught:
        await zoom.users()

    assert "Client secret" in str(caught.value)
    assert account.requests == [("GET", "/v2/users"), ("POST", "/oauth/token")]


@pytest.mark.parametrize(
    "credentials",
    [("acct-1", "client-1", "wrong"), ("acct-1", "wrong", "secret-1"), ("wrong", *CREDENTIALS[1:])],
    ids=["secret", "client id", "account id"],
)
async def test_wrong_credentials_are_refused_without_retrying(
    url: str, account: ZoomAccount, credentials: tuple[str, str, str]
) -> None:
    zoom = open_zoom(url, *credentials)
    with pytest.raises(BadCredentials) as caught:
        await zoom.verify()
    await zoom.aclose()

    assert not isinstance(caught.value, RetiredCredentials)
    assert "Account ID, Client ID and Client secret" in str(caught.value)
    assert account.requests == [("POST", "/oauth/token")]


async def test_missing_credentials_are_refused_before_asking_zoom(
    url: str, account: ZoomAccount
) -> None:
    zoom = open_zoom(url, "acct-1", "", "  ")
    with pytest.raises(BadCredentials, match="Enter the Account ID"):
        await zoom.verify()
    await zoom.aclose()

    assert account.requests == []


async def test_jwt_key_and_secret_are_refused_with_the_way_to_an_oauth_app(
    url: str, account: ZoomAccount
) -> None:
    zoom = open_zoom(url, "", "jwt-api-key", "jwt-api-secret")
    with pytest.raises(RetiredCredentials) as caught:
        await zoom.verify()
    with pytest.raises(RetiredCredentials):
        await zoom.users()
    await zoom.aclose()

    message = str(caught.value)
    assert isinstance(caught.value, BadCredentials)
    for words in (
        "September 2023",
        "Develop > Build App > Server-to-Server OAuth",
        "user:read:admin, user:write:admin and meeting:write:admin",
        "Account ID, Client ID and Client secret",
    ):
        assert words in message
    assert account.requests == []


async def test_a_member_s_app_is_not_an_administrator(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    account.make_non_admin()

    with pytest.raises(NotAdministrator, match="owner or admin"):
        await zoom.verify()

    assert account.requests == [("POST", "/oauth/token"), ("GET", "/v2/users/me")]


async def test_a_custom_role_without_user_rights_is_not_an_administrator(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    auditor = account.add_user("auditor@example.com", role_name="Auditor")
    account.app_user_id = auditor["id"]

    with pytest.raises(NotAdministrator):
        await zoom.verify()
    with pytest.raises(NotAdministrator):
        await zoom.users()

    assert account.requests[-1] == ("GET", "/v2/users")
    assert account.count("GET", "/v2/users") == 2  # a 403 is never retried


# Users


async def test_users_reads_each_user_s_fields(zoom: ZoomProvider, account: ZoomAccount) -> None:
    ada = account.add_user("Ada@Example.com", "Ada", "Lovelace", type=2)
    basic = account.add_user("bob@example.com", "Bob", "", type=1)
    unnamed = account.add_user("nameless@example.com")
    unnamed["display_name"] = "Display Only"

    page = await zoom.users()

    by_id = {user.id: user for user in page.users}
    assert by_id[ada["id"]] == interfaces.ProviderUser(
        id=ada["id"],
        email="Ada@Example.com",
        name="Ada Lovelace",
        status=interfaces.ACTIVE,
        licensed=True,
        # The list has the PMI but not the link with its passcode: fetched when Ada hosts.
        room_url="",
    )
    assert by_id[basic["id"]].name == "Bob"
    assert not by_id[basic["id"]].licensed
    assert by_id[unnamed["id"]].name == "Display Only"
    assert account.sent[-1].query == {"status": "active", "page_size": "300"}


async def test_users_walks_active_then_inactive_then_pending_page_by_page(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    account.max_page_size = 2
    made = {account.owner["id"]: "active"}
    for status, count in (("active", 4), ("inactive", 3), ("pending", 2)):
        for n in range(count):
            made[account.add_user(f"{status}{n}@example.com", status=status)["id"]] = status

    seen: dict[str, str] = {}
    cursor: str | None = None
    while True:
        page = await zoom.users(cursor)
        seen.update({user.id: user.status for user in page.users})
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == made
    listings = [sent.query for sent in account.sent if sent.path == "/v2/users"]
    assert [q["status"] for q in listings] == ["active"] * 3 + ["inactive"] * 2 + ["pending"]
    assert all(q["page_size"] == "300" for q in listings)
    assert ["next_page_token" in q for q in listings] == [False, True, True, False, True, False]


async def test_users_crosses_many_pages_without_losing_or_repeating_anyone(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    account.max_page_size = 7
    emails = {f"person{n}@example.com" for n in range(200)} | {account.owner["email"]}
    for address in sorted(emails - {account.owner["email"]}):
        account.add_user(address)

    listed: list[str] = []
    cursor: str | None = None
    while True:
        page = await zoom.users(cursor)
        listed += [user.email for user in page.users]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert sorted(listed) == sorted(emails)
    assert account.count("GET", "/v2/users") == 29 + 1 + 1  # 201 active by 7; two empty lists


async def test_an_empty_status_moves_the_cursor_to_the_next_one(zoom: ZoomProvider) -> None:
    first = await zoom.users()
    inactive = await zoom.users(first.next_cursor)
    pending = await zoom.users(inactive.next_cursor)

    assert (first.next_cursor, inactive.next_cursor) == ("inactive:", "pending:")
    assert inactive.users == pending.users == []
    assert pending.next_cursor is None


async def test_a_cursor_from_elsewhere_is_refused(zoom: ZoomProvider) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        await zoom.users("deleted:abc")


async def test_user_by_email_asks_zoom_for_that_email(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    ada = account.add_user("ada+zoom@example.com", "Ada", "Lovelace")

    user = await zoom.user_by_email(" ADA+zoom@example.com ")

    assert user.id == ada["id"]
    assert user.room_url == ada["personal_meeting_url"]
    assert account.sent[-1].path == "/v2/users/ADA+zoom@example.com"


async def test_user_by_email_of_nobody_is_not_found(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    with pytest.raises(NotFound, match=r"no user with the email ghost@example\.com"):
        await zoom.user_by_email("ghost@example.com")
    with pytest.raises(NotFound):
        await zoom.user_by_email("  ")

    assert account.count("GET", "/v2/users/ghost@example.com") == 1


async def test_a_user_whose_email_changed_keeps_their_id(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    ada = account.add_user("ada@old.example", "Ada", "Lovelace")
    account.change_email(ada["id"], "ada@new.example")

    with pytest.raises(NotFound):
        await zoom.user_by_email("ada@old.example")
    found = await zoom.user_by_email("ada@new.example")
    listed = {user.id: user.email for user in (await zoom.users()).users}

    assert found.id == ada["id"]
    assert listed[ada["id"]] == "ada@new.example"
    assert await zoom.personal_room(ada["id"]) == ada["personal_meeting_url"]


async def test_personal_room_is_the_user_s_personal_meeting_url(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    ada = account.add_user("ada@example.com")

    assert await zoom.personal_room(ada["id"]) == ada["personal_meeting_url"]
    assert account.requests[-1] == ("GET", f"/v2/users/{ada['id']}")
    with pytest.raises(NotFound, match="no such user"):
        await zoom.personal_room("no-such-id")


# Meetings


async def test_an_instant_meeting(zoom: ZoomProvider, account: ZoomAccount) -> None:
    host = account.add_user("host@example.com")
    request = MeetingRequest("Meet Now", None, 30, "Europe/Paris", join_before_host=True)

    meeting = await zoom.create_meeting(host["id"], request)

    assert account.requests[-1] == ("POST", f"/v2/users/{host['id']}/meetings")
    assert account.sent[-1].json() == {
        "topic": "Meet Now",
        "type": 1,
        "duration": 30,
        "timezone": "Europe/Paris",
        "settings": {"join_before_host": True},
    }
    created = account.meetings[-1]
    assert meeting == interfaces.CreatedMeeting(
        id=str(created["id"]), join_url=created["join_url"], start_url=created["start_url"]
    )
    assert created["host_id"] == host["id"]


async def test_a_scheduled_meeting_starts_at_its_utc_time(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    host = account.add_user("host@example.com")
    start = dt.datetime(2030, 1, 2, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))
    request = MeetingRequest("Review", start, 45, "Europe/Paris", join_before_host=False)

    await zoom.create_meeting(host["id"], request)

    sent = account.sent[-1].json()
    assert (sent["type"], sent["start_time"]) == (2, "2030-01-02T09:30:00Z")
    assert sent["settings"] == {"join_before_host": False}
    assert account.meetings[-1]["duration"] == 45


async def test_a_meeting_for_an_unknown_host_is_not_found(zoom: ZoomProvider) -> None:
    request = MeetingRequest("Meet Now", None, 30, "UTC", join_before_host=False)
    with pytest.raises(NotFound):
        await zoom.create_meeting("no-such-id", request)


# Creating users


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("create", interfaces.PENDING),
        ("autoCreate", interfaces.ACTIVE),
        ("custCreate", interfaces.ACTIVE),
        ("ssoCreate", interfaces.ACTIVE),
    ],
)
async def test_create_user_sends_zoom_s_action(
    zoom: ZoomProvider, account: ZoomAccount, method: str, status: str
) -> None:
    user = await zoom.create_user(NewUser("new@example.com", "New", "Person"), method)

    posted = next(
        sent for sent in account.sent if sent.method == "POST" and sent.path == "/v2/users"
    )
    assert posted.json() == {
        "action": method,
        "user_info": {
            "email": "new@example.com",
            "type": 2,
            "first_name": "New",
            "last_name": "Person",
        },
    }
    record = account.users[user.id]
    assert (user.email, user.name, user.status, user.licensed) == (
        "new@example.com",
        "New Person",
        status,
        True,
    )
    assert record["status"] == status
    expected_room = "" if status == interfaces.PENDING else record["personal_meeting_url"]
    assert user.room_url == expected_room


async def test_create_user_for_an_email_zoom_has_says_so(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    account.add_user("taken@example.com")

    with pytest.raises(ConferencingError, match="User already in the account") as caught:
        await zoom.create_user(NewUser("taken@example.com", "T", "Aken"), "autoCreate")

    assert type(caught.value) is ConferencingError
    assert account.count("POST", "/v2/users") == 1


async def test_create_user_by_an_unknown_method_sends_nothing(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    with pytest.raises(interfaces.ConferencingError, match="no user creation action"):
        await zoom.create_user(NewUser("new@example.com", "New", "Person"), "auto_create")
    assert account.requests == []


# Faults


async def test_429_waits_as_long_as_retry_after_asks(
    url: str, account: ZoomAccount, retries: list[stamina.instrumentation.RetryDetails]
) -> None:
    zoom = open_zoom(url, wait_cap=5.0)
    await warm(zoom, account)
    account.fail_next(429, retry_after=1)

    started = time.monotonic()
    page = await zoom.users()
    waited = time.monotonic() - started
    await zoom.aclose()

    assert page.users
    assert [r.wait_for for r in retries] == [1.0]
    assert 1.0 <= waited < 2.0
    assert account.count("GET", "/v2/users") == 2


async def test_429_retry_after_is_capped(
    zoom: ZoomProvider,
    account: ZoomAccount,
    retries: list[stamina.instrumentation.RetryDetails],
) -> None:
    await warm(zoom, account)
    account.fail_next(429, count=2, retry_after=3600)

    page = await zoom.users()

    assert page.users
    assert [r.wait_for for r in retries] == [WAIT_CAP, WAIT_CAP]


async def test_429_on_every_attempt_is_rate_limited_with_zoom_s_retry_after(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    await warm(zoom, account)
    account.fail_next(429, count=5, retry_after=7)

    with pytest.raises(RateLimited, match="try again in 7 seconds") as caught:
        await zoom.users()

    assert caught.value.retry_after == 7
    assert account.count("GET", "/v2/users") == base.DEFAULT_RETRY.attempts


async def test_500s_then_success(zoom: ZoomProvider, account: ZoomAccount) -> None:
    await warm(zoom, account)
    account.fail_next(500, count=2)

    page = await zoom.users()

    assert [user.id for user in page.users] == [account.owner["id"]]
    assert account.count("GET", "/v2/users") == 3


async def test_500s_forever_make_zoom_unavailable(zoom: ZoomProvider, account: ZoomAccount) -> None:
    await warm(zoom, account)
    account.fail_next(503, count=10)

    with pytest.raises(ProviderUnavailable, match=r"server error \(503\)"):
        await zoom.users()

    assert account.count("GET", "/v2/users") == base.DEFAULT_RETRY.attempts


async def test_a_token_endpoint_error_is_retried_too(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    account.fail_next(502)

    await zoom.users()

    assert account.requests == [
        ("POST", "/oauth/token"),
        ("POST", "/oauth/token"),
        ("GET", "/v2/users"),
    ]


async def test_other_4xx_are_not_retried(zoom: ZoomProvider, account: ZoomAccount) -> None:
    await warm(zoom, account)
    account.fail_next(400, count=3)

    with pytest.raises(ConferencingError, match="Zoom refused the request"):
        await zoom.users()

    assert account.count("GET", "/v2/users") == 1


async def test_an_answer_slower_than_the_timeout_makes_zoom_unavailable(
    url: str, account: ZoomAccount
) -> None:
    zoom = open_zoom(url, timeout=TIMEOUT)
    await warm(zoom, account)
    account.delay = TIMEOUT * 2

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=f"within {TIMEOUT:g} seconds"):
        await zoom.users()
    await zoom.aclose()

    assert time.monotonic() - started < 1.5
    assert account.count("GET", "/v2/users") == base.DEFAULT_RETRY.attempts


async def test_an_unreachable_zoom_is_unavailable() -> None:
    zoom = open_zoom(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await zoom.verify()
    await zoom.aclose()


async def test_a_creation_is_not_sent_twice_after_a_server_error(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    host = account.add_user("host@example.com")
    await warm(zoom, account)
    account.fail_next(500)
    request = MeetingRequest("Meet Now", None, 30, "UTC", join_before_host=False)

    with pytest.raises(ProviderUnavailable):
        await zoom.create_meeting(host["id"], request)
    with pytest.raises(ProviderUnavailable):
        account.fail_next(500)
        await zoom.create_user(NewUser("new@example.com", "New", "Person"), "create")

    assert account.requests == [
        ("POST", f"/v2/users/{host['id']}/meetings"),
        ("POST", "/v2/users"),
    ]


async def test_a_creation_is_sent_again_after_a_429(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    host = account.add_user("host@example.com")
    await warm(zoom, account)
    account.fail_next(429, retry_after=0)
    request = MeetingRequest("Meet Now", None, 30, "UTC", join_before_host=False)

    await zoom.create_meeting(host["id"], request)

    assert account.count("POST", f"/v2/users/{host['id']}/meetings") == 2
    assert len(account.meetings) == 1


async def test_a_creation_is_sent_after_the_token_endpoint_recovers(
    zoom: ZoomProvider, account: ZoomAccount
) -> None:
    host = account.add_user("host@example.com")
    account.fail_next(500)
    request = MeetingRequest("Meet Now", None, 30, "UTC", join_before_host=False)

    await zoom.create_meeting(host["id"], request)

    assert account.count("POST", "/oauth/token") == 2
    assert len(account.meetings) == 1


async def test_the_module_s_wait_cap_applies_to_providers_opened_later(
    url: str,
    account: ZoomAccount,
    monkeypatch: pytest.MonkeyPatch,
    retries: list[stamina.instrumentation.RetryDetails],
) -> None:
    monkeypatch.setattr(base, "DEFAULT_RETRY", capped(0.01))
    credentials = dict(zip(("account_id", "client_id", "client_secret"), CREDENTIALS, strict=True))
    zoom = open_provider("zoom", credentials, zoom_endpoints(url))
    account.fail_next(429, retry_after=3600)

    await zoom.users()
    await zoom.aclose()

    assert [r.wait_for for r in retries] == [0.01]
