"""The iMeet adapter against the simulated PGi provisioning API, faults included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from portal.conferencing.interfaces import (
    ACTIVE,
    INACTIVE,
    BadCredentials,
    ConferencingError,
    MeetingRequest,
    NewUser,
    NotAdministrator,
    NotFound,
    ProviderUnavailable,
    ProviderUser,
    RateLimited,
)
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.providers.imeet import DEFAULT_PAGE_SIZE, IMeetProvider
from tests.conferencing.conftest import PATIENCE, serve
from tests.conferencing.imeet_simulator import IMeetAccount, imeet_app
from tests.servers import free_port

KEY = "admin-key-0123"
# Backoffs of milliseconds so that the retrying tests stay fast.
FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02, wait_jitter=0, retry_after_cap=0.5)
LIST = ("POST", "/provisioning/client/list")
JSON = "application/json"


@pytest.fixture
def account() -> IMeetAccount:
    account = IMeetAccount(KEY)
    account.add_client("ada@example.com", "Ada", "Lovelace")
    account.add_client("bob@example.com", "Bob", "", active=False)
    return account


@pytest.fixture
def url(account: IMeetAccount) -> Iterator[str]:
    with serve(imeet_app(account)) as url:
        yield url


@pytest.fixture
async def imeet(url: str) -> AsyncIterator[IMeetProvider]:
    provider = _opened(url)
    yield provider
    await provider.aclose()


def _opened(
    url: str,
    key: str = KEY,
    *,
    timeout: float = PATIENCE,
    page_size: int = DEFAULT_PAGE_SIZE,
    retry: RetryPolicy = FAST,
) -> IMeetProvider:
    return IMeetProvider(key, api_url=url, timeout=timeout, page_size=page_size, retry=retry)


async def test_verify_lists_one_client_with_the_key(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    await imeet.verify()
    assert account.requests == [LIST]
    assert account.bodies == [{"page": 1, "pageSize": 1}]


async def test_a_wrong_key_is_bad_credentials_and_not_retried(
    url: str, account: IMeetAccount
) -> None:
    provider = _opened(url, "not-the-key")
    with pytest.raises(BadCredentials, match="PGi account manager"):
        await provider.verify()
    await provider.aclose()
    assert account.requests == [LIST]


async def test_a_non_administrator_key_is_refused(url: str, account: IMeetAccount) -> None:
    account.issue_member_key("member-key")
    provider = _opened(url, "member-key")
    with pytest.raises(NotAdministrator, match="administrator API key"):
        await provider.verify()
    await provider.aclose()
    assert account.requests == [LIST]


@pytest.mark.parametrize("key", ["", "   ", "clé", "key\nX-Other: 1"])
async def test_a_key_that_cannot_be_one_is_refused_without_asking(
    url: str, account: IMeetAccount, key: str
) -> None:
    provider = _opened(url, key)
    with pytest.raises(BadCredentials, match="iMeet API key"):
        await provider.verify()
    await provider.aclose()
    assert account.requests == []


async def test_users_reads_every_client_as_the_portal_sees_them(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    page = await imeet.users()
    assert page.next_cursor is None
    ada, bob = account.clients.values()
    assert page.users == [
        ProviderUser(
            id=str(ada["clientId"]),
            email="ada@example.com",
            name="Ada Lovelace",
            status=ACTIVE,
            licensed=True,
            room_url=ada["roomUrl"],
        ),
        ProviderUser(
            id=str(bob["clientId"]),
            email="bob@example.com",
            name="Bob",
            status=INACTIVE,
            licensed=True,
            room_url=bob["roomUrl"],
        ),
    ]


async def test_users_walks_many_pages(url: str, account: IMeetAccount) -> None:
    for number in range(5):
        account.add_client(f"person{number}@example.com", "Person", str(number))
    provider = _opened(url, page_size=3)
    seen, cursor, pages = [], None, 0
    while True:
        page = await provider.users(cursor)
        pages += 1
        seen += [user.email for user in page.users]
        if (cursor := page.next_cursor) is None:
            break
    await provider.aclose()
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert account.bodies == [{"page": n, "pageSize": 3} for n in (1, 2, 3)]


async def test_users_of_an_empty_company_is_one_empty_page(url: str) -> None:
    empty = IMeetAccount(KEY)
    with serve(imeet_app(empty)) as empty_url:
        provider = _opened(empty_url)
        page = await provider.users()
        await provider.aclose()
    assert (page.users, page.next_cursor) == ([], None)


async def test_user_by_email(imeet: IMeetProvider, account: IMeetAccount) -> None:
    user = await imeet.user_by_email(" Ada@Example.com ")
    assert user.name == "Ada Lovelace"
    assert account.requests == [("POST", "/provisioning/client/find")]
    assert account.bodies == [{"email": "Ada@Example.com"}]
    with pytest.raises(NotFound, match=r"nobody@example\.com"):
        await imeet.user_by_email("nobody@example.com")


async def test_a_client_whose_email_changed_is_found_by_its_id(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    ada_id = next(iter(account.clients))
    account.change_email(ada_id, "ada.king@example.com")
    with pytest.raises(NotFound):
        await imeet.user_by_email("ada@example.com")
    assert (await imeet.client(str(ada_id))).email == "ada.king@example.com"
    assert "ada.king@example.com" in [user.email for user in (await imeet.users()).users]


async def test_client_by_id(imeet: IMeetProvider, account: IMeetAccount) -> None:
    ada_id = next(iter(account.clients))
    assert (await imeet.client(str(ada_id))).email == "ada@example.com"
    assert account.bodies == [{"clientId": ada_id}]
    with pytest.raises(NotFound, match="no client 1 "):
        await imeet.client("1")
    with pytest.raises(NotFound, match="no client zoom-abc "):
        await imeet.client("zoom-abc")
    assert len(account.requests) == 2  # an id that is no PGi clientId is not sent


async def test_personal_room_and_sign_on(imeet: IMeetProvider, account: IMeetAccount) -> None:
    ada_id, ada = next(iter(account.clients.items()))
    assert await imeet.personal_room(str(ada_id)) == ada["roomUrl"]
    assert await imeet.sign_on_url(str(ada_id)) == f"{ada['roomUrl']}?signon=token-{ada_id}"
    assert account.requests[-1] == ("POST", "/provisioning/client/signon")
    with pytest.raises(NotFound):
        await imeet.sign_on_url("1")


async def test_a_client_without_a_room_has_no_personal_room(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    roomless = account.add_client("new@example.com")
    roomless["roomUrl"] = ""
    with pytest.raises(NotFound, match="no personal room"):
        await imeet.personal_room(str(roomless["clientId"]))


async def test_deactivate_and_reactivate(imeet: IMeetProvider, account: IMeetAccount) -> None:
    ada_id = str(next(iter(account.clients)))
    await imeet.deactivate(ada_id)
    await imeet.deactivate(ada_id)  # PGi: already inactive is still a success
    assert (await imeet.client(ada_id)).status == INACTIVE
    await imeet.reactivate(ada_id)
    assert (await imeet.client(ada_id)).status == ACTIVE
    assert ("POST", "/provisioning/client/deactivate") in account.requests
    assert ("POST", "/provisioning/client/reactivate") in account.requests
    with pytest.raises(NotFound):
        await imeet.deactivate("1")


async def test_create_meeting_opens_the_hosts_personal_room(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    ada_id, ada = next(iter(account.clients.items()))
    request = MeetingRequest("Standup", None, 15, "Europe/Paris", join_before_host=True)
    meeting = await imeet.create_meeting(str(ada_id), request)
    assert meeting.join_url == ada["roomUrl"]
    assert meeting.start_url.startswith(ada["roomUrl"] + "?signon=")
    assert meeting.id == str(ada_id)


async def test_create_user_provisions_a_client_once(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    user = await imeet.create_user(NewUser("cy@example.com", "Cy", "Young"), "provision")
    assert (user.email, user.name, user.status) == ("cy@example.com", "Cy Young", ACTIVE)
    assert user.room_url
    assert account.bodies[0] == {
        "client": {"first": "Cy", "last": "Young", "email": "cy@example.com"}
    }
    again = await imeet.create_user(NewUser("cy@example.com", "Cy", "Young"), "provision")
    assert again.id == user.id
    assert len(account.clients) == 3


async def test_create_user_with_another_method_is_refused(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    with pytest.raises(ConferencingError, match="autoCreate"):
        await imeet.create_user(NewUser("cy@example.com", "Cy", "Young"), "autoCreate")
    assert account.requests == []


async def test_429_waits_as_long_as_retry_after_says(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    account.fail_next(429, count=2, retry_after=0.2)
    started = time.monotonic()
    await imeet.verify()
    assert time.monotonic() - started >= 0.4
    assert account.requests == [LIST] * 3


async def test_a_long_retry_after_is_capped(url: str, account: IMeetAccount) -> None:
    account.fail_next(429, count=1, retry_after=3600)
    provider = _opened(url, retry=RetryPolicy(wait_jitter=0, retry_after_cap=0.05))
    started = time.monotonic()
    await provider.verify()
    await provider.aclose()
    assert time.monotonic() - started < 1
    assert len(account.requests) == 2


async def test_429_that_persists_is_rate_limited(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    account.fail_next(429, count=3, retry_after=0.01)
    with pytest.raises(RateLimited) as raised:
        await imeet.verify()
    assert raised.value.retry_after == 0.01
    assert account.requests == [LIST] * 3


async def test_500s_are_retried(imeet: IMeetProvider, account: IMeetAccount) -> None:
    account.fail_next(500, count=2)
    await imeet.verify()
    assert account.requests == [LIST] * 3


async def test_500s_that_persist_are_provider_unavailable(
    imeet: IMeetProvider, account: IMeetAccount
) -> None:
    account.fail_next(503, count=5)
    with pytest.raises(ProviderUnavailable, match="server error"):
        await imeet.verify()
    assert account.requests == [LIST] * 3


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, ConferencingError), (401, BadCredentials), (403, NotAdministrator), (404, NotFound)],
)
async def test_other_4xx_are_not_retried(
    imeet: IMeetProvider, account: IMeetAccount, status: int, error: type[Exception]
) -> None:
    account.fail_next(status, count=3)
    with pytest.raises(error):
        await imeet.verify()
    assert account.requests == [LIST]


async def test_a_400_says_what_imeet_said(imeet: IMeetProvider, account: IMeetAccount) -> None:
    account.fail_next(400)
    with pytest.raises(ConferencingError, match=r"\(400\): Simulated failure"):
        await imeet.verify()


async def test_slow_answers_time_out_and_are_retried(url: str, account: IMeetAccount) -> None:
    account.delay = 0.5
    provider = _opened(url, timeout=0.1)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"within 0\.1 seconds"):
        await provider.verify()
    await provider.aclose()
    assert time.monotonic() - started < 1.5
    assert account.requests == [LIST] * 3


async def test_an_unreachable_host_is_provider_unavailable() -> None:
    provider = _opened(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await provider.verify()
    await provider.aclose()


def _odd_api(response: Response) -> Starlette:
    async def answer(request: Request) -> Response:
        return response

    return Starlette(routes=[Route("/provisioning/client/{call}", answer, methods=["POST"])])


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (PlainTextResponse("<html>maintenance</html>"), ProviderUnavailable, "cannot read"),
        (RedirectResponse("https://elsewhere.example/"), ConferencingError, r"\(307\)"),
        (
            Response('{"status": "error", "message": "Quota"}', media_type=JSON),
            ConferencingError,
            "Quota",
        ),
        (
            Response(
                '{"status": "success", "data": {"clients": 3}}', media_type="application/json"
            ),
            ProviderUnavailable,
            "a page of clients",
        ),
    ],
)
async def test_answers_that_make_no_sense_are_typed_errors(
    response: Response, error: type[Exception], message: str
) -> None:
    with serve(_odd_api(response)) as odd_url:
        provider = _opened(odd_url)
        with pytest.raises(error, match=message):
            await provider.users()
        await provider.aclose()
