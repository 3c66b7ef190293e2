"""The RingCentral Video adapter against the RingCentral simulator: what it sends, what it reads,
how it fails."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs

import pytest

from portal.conferencing import interfaces
from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    MeetingRequest,
    NewUser,
    NotAdministrator,
    NotFound,
    ProviderUnavailable,
    RateLimited,
)
from portal.conferencing.providers import base, open_provider
from portal.conferencing.providers import ringcentral as ringcentral_module
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.providers.ringcentral import RingCentralProvider
from tests.conferencing.conftest import PATIENCE, serve
from tests.conferencing.ringcentral_simulator import (
    RingCentralAccount,
    ringcentral_app,
    ringcentral_endpoints,
)
from tests.servers import free_port

CREDENTIALS = ("client-1", "secret-1", "jwt-of-an-admin")
TIMEOUT = 0.25
# Backoffs of milliseconds, Retry-After included, so that the retrying tests stay fast.
FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02, wait_jitter=0, retry_after_cap=0.05)
TOKEN = ("POST", "/restapi/oauth/token")
ME = ("GET", "/restapi/v1.0/account/~/extension/~")
LIST = ("GET", "/restapi/v1.0/account/~/extension")
INSTANT = MeetingRequest("Meet Now", None, 30, "UTC", join_before_host=True)


@pytest.fixture
def account() -> RingCentralAccount:
    return RingCentralAccount(*CREDENTIALS)


@pytest.fixture
def url(account: RingCentralAccount) -> Iterator[str]:
    with serve(ringcentral_app(account)) as served:
        yield served


def opened(url: str, *credentials: str, timeout: float = PATIENCE) -> RingCentralProvider:
    return RingCentralProvider(
        *(credentials or CREDENTIALS), api_url=url, timeout=timeout, retry=FAST
    )


@pytest.fixture
async def ringcentral(url: str) -> AsyncIterator[RingCentralProvider]:
    provider = opened(url)
    yield provider
    await provider.aclose()


async def warm(ringcentral: RingCentralProvider, account: RingCentralAccount) -> None:
    """Fetch and cache a token, then forget the requests so far."""
    await ringcentral.personal_room(account.owner["id"])
    account.requests.clear()
    account.sent.clear()


def bridges(extension_id: str) -> str:
    return f"/rcvideo/v2/account/~/extension/{extension_id}/bridges"


def test_endpoint_key_and_the_real_host() -> None:
    assert ringcentral_endpoints("http://sim") == {"ringcentral_api": "http://sim"}
    assert ringcentral_module.RINGCENTRAL_API_URL == "https://platform.ringcentral.com"
    assert ringcentral_module.PROVISIONING == ()


async def test_the_registry_opens_ringcentral_on_the_simulator_s_endpoint_key(
    url: str, account: RingCentralAccount
) -> None:
    credentials = dict(zip(("client_id", "client_secret", "jwt"), CREDENTIALS, strict=True))
    provider = open_provider("ringcentral", credentials, ringcentral_endpoints(url))
    await provider.verify()
    await provider.aclose()

    assert account.requests[0] == TOKEN


# Credentials and tokens


async def test_verify_gets_a_jwt_token_reads_me_and_lists_users(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await ringcentral.verify()

    assert account.requests == [TOKEN, ME, LIST]
    token_request, me, listing = account.sent
    basic = base64.b64encode(b"client-1:secret-1").decode()
    assert token_request.headers["authorization"] == f"Basic {basic}"
    assert parse_qs(token_request.body.decode()) == {
        "grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "assertion": ["jwt-of-an-admin"],
    }
    bearer = me.headers["authorization"].removeprefix("Bearer ")
    assert bearer in account.tokens
    assert listing.query == {"type": "User", "perPage": "1"}


async def test_a_user_without_the_admin_permission_is_not_an_administrator(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    account.make_non_admin()

    with pytest.raises(NotAdministrator, match="not an administrator of the RingCentral account"):
        await ringcentral.verify()

    assert account.requests == [TOKEN, ME]


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (
            ("client-1", "wrong", "jwt-of-an-admin"),
            "did not accept the Client ID and Client secret",
        ),
        (("client-1", "secret-1", "old-jwt"), "did not accept the JWT credential"),
    ],
)
async def test_refused_credentials_are_bad_credentials_and_not_retried(
    url: str, account: RingCentralAccount, credentials: tuple[str, ...], message: str
) -> None:
    provider = opened(url, *credentials)
    with pytest.raises(BadCredentials, match=message):
        await provider.verify()
    await provider.aclose()

    assert account.requests == [TOKEN]


async def test_missing_credentials_send_nothing(url: str, account: RingCentralAccount) -> None:
    provider = opened(url, "client-1", "secret-1", "  ")
    with pytest.raises(BadCredentials, match="Enter the Client ID"):
        await provider.users()
    await provider.aclose()

    assert account.requests == []


async def test_the_token_is_reused_while_it_lives(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await ringcentral.verify()
    await ringcentral.users()
    await ringcentral.personal_room(account.owner["id"])

    assert account.count(*TOKEN) == 1


async def test_the_token_is_renewed_a_margin_before_it_expires(
    ringcentral: RingCentralProvider, account: RingCentralAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(base, "monotonic", lambda: now[0])
    await ringcentral.users()

    now[0] += 3600 - ringcentral_module.TOKEN_MARGIN - 1
    await ringcentral.users()
    assert account.count(*TOKEN) == 1

    now[0] += 1
    await ringcentral.users()
    assert account.count(*TOKEN) == 2


async def test_a_token_ended_early_is_dropped_and_replaced_once(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await warm(ringcentral, account)
    account.expire_tokens()

    page = await ringcentral.users()

    assert [user.email for user in page.users] == [account.owner["contact"]["email"]]
    assert account.requests == [LIST, TOKEN, LIST]


async def test_a_token_ended_by_a_revoked_jwt_is_bad_credentials(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await warm(ringcentral, account)
    account.jwt = "a-new-jwt"
    account.expire_tokens()

    with pytest.raises(BadCredentials, match="did not accept the JWT credential"):
        await ringcentral.users()

    assert account.requests == [LIST, TOKEN]


# Users


async def test_users_maps_ringcentral_s_statuses(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    account.add_user("new@example.com", "New", "Hire", status="NotActivated")
    account.add_user("gone@example.com", "Gone", "Away", status="Disabled")
    account.add_user("held@example.com", "", "", status="Frozen")

    page = await ringcentral.users()

    assert [(u.email, u.name, u.status) for u in page.users] == [
        ("admin@ringcentral.example", "Account Admin", interfaces.ACTIVE),
        ("new@example.com", "New Hire", interfaces.PENDING),
        ("gone@example.com", "Gone Away", interfaces.INACTIVE),
        ("held@example.com", "", interfaces.INACTIVE),
    ]
    assert all(u.licensed and u.room_url == "" for u in page.users)
    assert page.users[0].id == account.owner["id"]
    assert page.next_cursor is None
    assert account.sent[-1].query == {"type": "User", "perPage": "100", "page": "1"}


async def test_users_crosses_many_pages_without_losing_or_repeating_anyone(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    account.max_per_page = 7
    emails = {f"person{n}@example.com" for n in range(60)}
    for address in sorted(emails):
        account.add_user(address)
    emails.add(account.owner["contact"]["email"])

    listed: list[str] = []
    cursors: list[str | None] = []
    cursor: str | None = None
    while True:
        page = await ringcentral.users(cursor)
        listed += [user.email for user in page.users]
        cursors.append(page.next_cursor)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert sorted(listed) == sorted(emails)
    assert cursors == [*(str(n) for n in range(2, 10)), None]  # 61 people by 7
    assert [sent.query["page"] for sent in account.sent if sent.path == LIST[1]] == [
        str(n) for n in range(1, 10)
    ]


async def test_a_cursor_from_elsewhere_is_refused(ringcentral: RingCentralProvider) -> None:
    for cursor in ("0", "next", "-1"):
        with pytest.raises(ValueError, match="not a cursor"):
            await ringcentral.users(cursor)


async def test_user_by_email_asks_ringcentral_for_that_email(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    ada = account.add_user("Ada.Lovelace@example.com", "Ada", "Lovelace")

    user = await ringcentral.user_by_email(" ada.lovelace@EXAMPLE.com ")

    assert (user.id, user.email, user.name) == (
        ada["id"],
        "Ada.Lovelace@example.com",
        "Ada Lovelace",
    )
    assert account.sent[-1].query == {
        "type": "User",
        "email": "ada.lovelace@EXAMPLE.com",
        "perPage": "100",
    }


async def test_user_by_email_of_nobody_is_not_found(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    with pytest.raises(NotFound, match=r"no user with the email ghost@example\.com"):
        await ringcentral.user_by_email("ghost@example.com")
    with pytest.raises(NotFound):
        await ringcentral.user_by_email("  ")

    assert account.count(*LIST) == 1


async def test_a_user_whose_email_changed_keeps_their_id(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    ada = account.add_user("ada@old.example", "Ada", "Lovelace")
    account.change_email(ada["id"], "ada@new.example")

    with pytest.raises(NotFound):
        await ringcentral.user_by_email("ada@old.example")
    found = await ringcentral.user_by_email("ada@new.example")
    listed = {user.id: user.email for user in (await ringcentral.users()).users}

    assert found.id == ada["id"]
    assert listed[ada["id"]] == "ada@new.example"


async def test_personal_room_is_the_default_bridge(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    ada = account.add_user("ada@example.com")

    room = await ringcentral.personal_room(ada["id"])

    bridge = account.default_bridge(ada["id"])
    assert room == bridge["discovery"]["web"]
    assert room.startswith("https://v.ringcentral.example/join/")
    assert account.requests[-1] == ("GET", f"{bridges(ada['id'])}/default")
    assert await ringcentral.personal_room(ada["id"]) == room  # the same room every time
    with pytest.raises(NotFound, match="no such user or bridge"):
        await ringcentral.personal_room("99")


async def test_create_user_says_where_accounts_are_made_and_sends_nothing(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    with pytest.raises(ConferencingError, match="created in the RingCentral admin portal"):
        await ringcentral.create_user(NewUser("new@example.com", "New", "Person"), "create")

    assert account.requests == []


# Meetings


async def test_an_instant_meeting_is_an_instant_bridge(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    host = account.add_user("host@example.com")

    meeting = await ringcentral.create_meeting(host["id"], INSTANT)

    assert account.requests[-1] == ("POST", bridges(host["id"]))
    assert account.sent[-1].json() == {
        "name": "Meet Now",
        "type": "Instant",
        "security": {"passwordProtected": False},
        "preferences": {"joinBeforeHost": True},
    }
    created = account.bridges[meeting.id]
    link = created["discovery"]["web"]
    assert meeting == CreatedMeeting(id=created["id"], join_url=link, start_url=link)
    assert created["host"]["extensionId"] == host["id"]
    assert link.startswith("https://v.ringcentral.example/join/")


async def test_a_scheduled_meeting_is_a_scheduled_bridge(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    host = account.add_user("host@example.com")
    start = dt.datetime(2030, 1, 2, 10, 30, tzinfo=dt.UTC)
    request = MeetingRequest("Review", start, 45, "Europe/Paris", join_before_host=False)

    meeting = await ringcentral.create_meeting(host["id"], request)

    sent = account.sent[-1].json()
    assert (sent["type"], sent["preferences"]) == ("Scheduled", {"joinBeforeHost": False})
    assert account.bridges[meeting.id]["type"] == "Scheduled"


async def test_a_meeting_for_someone_who_has_not_delegated_says_how_to_fix_it(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    host = account.add_user("host@example.com", delegate=False)

    with pytest.raises(NotAdministrator, match="Schedule meetings for me"):
        await ringcentral.create_meeting(host["id"], INSTANT)

    assert account.count("POST", bridges(host["id"])) == 1
    assert len(account.bridges) == 0


# Faults


async def test_429_waits_as_asked_then_succeeds(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await warm(ringcentral, account)
    account.fail_next(429, retry_after=0)

    page = await ringcentral.users()

    assert page.users
    assert account.count(*LIST) == 2


async def test_429_on_every_attempt_is_rate_limited_with_the_retry_after(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await warm(ringcentral, account)
    account.fail_next(429, count=5, retry_after=7)

    with pytest.raises(RateLimited, match="try again in 7 seconds") as caught:
        await ringcentral.users()

    assert caught.value.retry_after == 7
    assert account.count(*LIST) == FAST.attempts


async def test_500s_then_success(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await warm(ringcentral, account)
    account.fail_next(500, count=2)

    page = await ringcentral.users()

    assert [user.id for user in page.users] == [account.owner["id"]]
    assert account.count(*LIST) == 3


async def test_500s_forever_make_ringcentral_unavailable(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await warm(ringcentral, account)
    account.fail_next(503, count=10)

    with pytest.raises(ProviderUnavailable, match=r"server error \(503\)"):
        await ringcentral.users()

    assert account.count(*LIST) == FAST.attempts


async def test_a_token_endpoint_error_is_retried_too(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    account.fail_next(502)

    await ringcentral.users()

    assert account.requests == [TOKEN, TOKEN, LIST]


async def test_other_4xx_are_not_retried(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    await warm(ringcentral, account)
    account.fail_next(400, count=3)

    with pytest.raises(ConferencingError, match="RingCentral refused the request") as caught:
        await ringcentral.users()

    assert type(caught.value) is ConferencingError
    assert account.count(*LIST) == 1


async def test_an_answer_slower_than_the_timeout_makes_ringcentral_unavailable(
    url: str, account: RingCentralAccount
) -> None:
    ringcentral = opened(url, timeout=TIMEOUT)
    await warm(ringcentral, account)
    account.delay = TIMEOUT * 2

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=f"within {TIMEOUT:g} seconds"):
        await ringcentral.users()
    await ringcentral.aclose()

    assert time.monotonic() - started < 1.5
    assert account.count(*LIST) == FAST.attempts


async def test_an_unreachable_ringcentral_is_unavailable() -> None:
    provider = opened(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await provider.verify()
    await provider.aclose()


async def test_a_meeting_is_not_created_twice_after_a_server_error(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    host = account.add_user("host@example.com")
    await warm(ringcentral, account)
    account.fail_next(500, count=3)

    with pytest.raises(ProviderUnavailable):
        await ringcentral.create_meeting(host["id"], INSTANT)

    assert account.requests == [("POST", bridges(host["id"]))]


async def test_a_meeting_is_sent_again_after_a_429(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    host = account.add_user("host@example.com")
    await warm(ringcentral, account)
    account.fail_next(429, retry_after=0)

    await ringcentral.create_meeting(host["id"], INSTANT)

    assert account.count("POST", bridges(host["id"])) == 2
    assert len([b for b in account.bridges.values() if b["type"] == "Instant"]) == 1


async def test_a_meeting_is_created_after_the_token_endpoint_recovers(
    ringcentral: RingCentralProvider, account: RingCentralAccount
) -> None:
    host = account.add_user("host@example.com")
    account.fail_next(500, path="/restapi/oauth/token")

    await ringcentral.create_meeting(host["id"], INSTANT)

    assert account.requests == [TOKEN, TOKEN, ("POST", bridges(host["id"]))]
    assert len(account.bridges) == 1
