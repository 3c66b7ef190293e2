"""The BlueJeans adapter against the BlueJeans simulator: what it sends, what it reads, how it
fails."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    MeetingRequest,
    PersonalAccount,
    ProviderUnavailable,
    RateLimited,
)
from portal.conferencing.providers import bluejeans as bluejeans_module
from portal.conferencing.providers import open_password_provider
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.providers.bluejeans import BlueJeansProvider
from tests.conferencing.bluejeans_simulator import (
    BlueJeansAccount,
    bluejeans_app,
    bluejeans_endpoints,
    bluejeans_urls,
)
from tests.conferencing.conftest import PATIENCE, serve
from tests.servers import free_port

KEY, SECRET = "app-key-1", "app-secret-1"
TIMEOUT = 0.25
# Backoffs of milliseconds, Retry-After included, so that the retrying tests stay fast.
FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02, wait_jitter=0, retry_after_cap=0.05)
TOKEN = ("POST", "/oauth2/token")
INSTANT = MeetingRequest("Meet Now", None, 30, "UTC", join_before_host=True)


@pytest.fixture
def account() -> BlueJeansAccount:
    return BlueJeansAccount(KEY, SECRET)


@pytest.fixture
def ada(account: BlueJeansAccount) -> dict[str, Any]:
    return account.add_user("ada", "pa55word", "ada@example.com", "Ada", "Lovelace")


@pytest.fixture
def url(account: BlueJeansAccount) -> Iterator[str]:
    with serve(bluejeans_app(account)) as served:
        yield served


def opened(
    url: str, key: str = KEY, secret: str = SECRET, *, timeout: float = PATIENCE
) -> BlueJeansProvider:
    return BlueJeansProvider(key, secret, **bluejeans_urls(url), timeout=timeout, retry=FAST)


@pytest.fixture
async def bluejeans(url: str) -> AsyncIterator[BlueJeansProvider]:
    provider = opened(url)
    yield provider
    await provider.aclose()


def room_link(account: BlueJeansAccount, user: dict[str, Any]) -> str:
    return f"{account.web_url}/{account.rooms[user['id']]['numericMeetingId']}"


def test_endpoint_key_and_the_real_hosts() -> None:
    assert bluejeans_endpoints("http://sim") == {"bluejeans_api": "http://sim"}
    assert bluejeans_module.BLUEJEANS_API_URL == "https://api.bluejeans.com"
    assert bluejeans_module.BLUEJEANS_WEB_URL == "https://bluejeans.com"
    assert bluejeans_module.PROVISIONING == ()


async def test_the_registry_opens_bluejeans_on_the_simulator_s_endpoint_key(
    url: str, account: BlueJeansAccount
) -> None:
    credentials = {"client_id": KEY, "client_secret": SECRET}
    provider = open_password_provider("bluejeans", credentials, bluejeans_endpoints(url))
    await provider.verify()
    await provider.aclose()

    assert account.requests == [TOKEN]


# The company's app


async def test_verify_asks_for_a_client_grant(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount
) -> None:
    await bluejeans.verify()

    (sent,) = account.sent
    assert (sent.method, sent.path, sent.query) == ("POST", "/oauth2/token", {"Client": ""})
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "grant_type": "client_credentials",
        "client_id": KEY,
        "client_secret": SECRET,
    }


async def test_verify_with_a_wrong_secret_is_bad_credentials(
    url: str, account: BlueJeansAccount
) -> None:
    provider = opened(url, secret="wrong")
    with pytest.raises(BadCredentials, match="did not accept the app key and secret"):
        await provider.verify()
    await provider.aclose()

    assert account.requests == [TOKEN]


async def test_verify_without_a_key_sends_nothing(url: str, account: BlueJeansAccount) -> None:
    provider = opened(url, key=" ", secret="")
    with pytest.raises(BadCredentials, match="Enter the app key and secret"):
        await provider.verify()
    await provider.aclose()

    assert account.requests == []


# A person's sign-in


async def test_sign_in_reads_the_person_and_their_personal_room(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    person = await bluejeans.sign_in(" ada ", "pa55word")

    assert person == PersonalAccount(
        user_id=str(ada["id"]),
        email="ada@example.com",
        name="Ada Lovelace",
        room_url=room_link(account, ada),
    )
    grant, user, room = account.sent
    assert (grant.path, grant.query) == ("/oauth2/token", {"Password": ""})
    assert grant.json() == {"grant_type": "password", "username": "ada", "password": "pa55word"}
    assert (user.method, user.path) == ("GET", f"/v1/user/{ada['id']}")
    assert (room.method, room.path) == ("GET", f"/v1/user/{ada['id']}/personal_meeting")
    bearer = user.headers["authorization"].removeprefix("Bearer ")
    assert account.tokens[bearer]["user"] == ada["id"]
    assert room.headers["authorization"] == user.headers["authorization"]
    assert "access_token" not in user.query  # the token stays out of URLs and their logs


async def test_room_links_are_on_bluejeans_com_unless_told_otherwise(
    url: str, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    provider = BlueJeansProvider(KEY, SECRET, api_url=url, retry=FAST)
    person = await provider.sign_in("ada", "pa55word")
    await provider.aclose()

    meeting_id = account.rooms[ada["id"]]["numericMeetingId"]
    assert person.room_url == f"https://bluejeans.com/{meeting_id}"


async def test_a_wrong_password_is_refused_once_with_a_sentence(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    with pytest.raises(BadCredentials) as caught:
        await bluejeans.sign_in("ada", "wrong")

    assert str(caught.value).startswith(
        "BlueJeans refused this username and password: check them and try again."
    )
    assert account.requests == [TOKEN]


async def test_an_empty_username_or_password_sends_nothing(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount
) -> None:
    with pytest.raises(BadCredentials):
        await bluejeans.sign_in("  ", "pa55word")
    with pytest.raises(BadCredentials):
        await bluejeans.start_meeting("ada", "", INSTANT)

    assert account.requests == []


# Meetings


async def test_an_instant_meeting_is_the_personal_room(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    meeting = await bluejeans.start_meeting("ada", "pa55word", INSTANT)

    link = room_link(account, ada)
    room_id = account.rooms[ada["id"]]["numericMeetingId"]
    assert meeting == CreatedMeeting(id=room_id, join_url=link, start_url=link)
    assert account.requests == [TOKEN, ("GET", f"/v1/user/{ada['id']}/personal_meeting")]
    assert account.meetings == []


async def test_a_scheduled_meeting_is_created_with_its_epoch_times(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    start = dt.datetime(2030, 1, 2, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))
    request = MeetingRequest("Review", start, 45, "Europe/Paris", join_before_host=False)

    meeting = await bluejeans.start_meeting("ada", "pa55word", request)

    posted = account.sent[-1]
    assert (posted.method, posted.path) == ("POST", f"/v1/user/{ada['id']}/scheduled_meeting")
    starts = int(start.timestamp() * 1000)
    assert posted.json() == {
        "title": "Review",
        "start": starts,
        "end": starts + 45 * 60_000,
        "timezone": "Europe/Paris",
        "isLargeMeeting": False,
        "advancedMeetingOptions": {"moderatorLess": False},
        "endPointType": "WEB_APP",
        "endPointVersion": "2.10",
    }
    (created,) = account.meetings
    link = f"{account.web_url}/{created['numericMeetingId']}"
    assert meeting == CreatedMeeting(id=str(created["id"]), join_url=link, start_url=link)


async def test_a_naive_start_is_read_in_the_meeting_s_time_zone(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    start = dt.datetime(2030, 7, 1, 9, 0)
    request = MeetingRequest("Stand-up", start, 15, "America/New_York", join_before_host=True)

    await bluejeans.start_meeting("ada", "pa55word", request)

    sent = account.sent[-1].json()
    assert sent["start"] == int(dt.datetime(2030, 7, 1, 13, 0, tzinfo=dt.UTC).timestamp() * 1000)
    assert sent["advancedMeetingOptions"] == {"moderatorLess": True}


async def test_a_meeting_with_a_wrong_password_creates_nothing(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    request = MeetingRequest("Review", dt.datetime(2030, 1, 2, tzinfo=dt.UTC), 30, "UTC", False)
    with pytest.raises(BadCredentials, match="refused this username and password"):
        await bluejeans.start_meeting("ada", "wrong", request)

    assert account.requests == [TOKEN]


# Faults


async def test_429_waits_as_asked_then_succeeds(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    account.fail_next(429, retry_after=0)

    person = await bluejeans.sign_in("ada", "pa55word")

    assert person.user_id == str(ada["id"])
    assert account.count(*TOKEN) == 2


async def test_429_on_every_attempt_is_rate_limited(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    account.fail_next(429, count=5, retry_after=7)

    with pytest.raises(RateLimited, match="try again in 7 seconds") as caught:
        await bluejeans.sign_in("ada", "pa55word")

    assert caught.value.retry_after == 7
    assert account.count(*TOKEN) == FAST.attempts


async def test_500s_then_success(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    account.fail_next(500, count=2)

    person = await bluejeans.sign_in("ada", "pa55word")

    assert person.email == "ada@example.com"
    assert account.count(*TOKEN) == 3


async def test_500s_forever_make_bluejeans_unavailable(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    account.fail_next(503, count=10)

    with pytest.raises(ProviderUnavailable, match=r"server error \(503\)"):
        await bluejeans.verify()

    assert account.count(*TOKEN) == FAST.attempts


async def test_other_4xx_are_not_retried(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    account.fail_next(403, count=3, path=f"/v1/user/{ada['id']}")

    with pytest.raises(ConferencingError, match="BlueJeans refused the request") as caught:
        await bluejeans.sign_in("ada", "pa55word")

    assert type(caught.value) is ConferencingError
    assert account.requests == [TOKEN, ("GET", f"/v1/user/{ada['id']}")]


async def test_an_answer_slower_than_the_timeout_makes_bluejeans_unavailable(
    url: str, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    bluejeans = opened(url, timeout=TIMEOUT)
    account.delay = TIMEOUT * 2

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=f"within {TIMEOUT:g} seconds"):
        await bluejeans.sign_in("ada", "pa55word")
    await bluejeans.aclose()

    assert time.monotonic() - started < 1.5
    assert account.count(*TOKEN) == FAST.attempts


async def test_an_unreachable_bluejeans_is_unavailable() -> None:
    provider = opened(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await provider.verify()
    await provider.aclose()


async def test_a_scheduled_meeting_is_not_sent_twice_after_a_server_error(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    request = MeetingRequest("Review", dt.datetime(2030, 1, 2, tzinfo=dt.UTC), 30, "UTC", False)
    schedule = ("POST", f"/v1/user/{ada['id']}/scheduled_meeting")
    account.fail_next(500, count=3, path=schedule[1])

    with pytest.raises(ProviderUnavailable, match=r"server error \(500\)"):
        await bluejeans.start_meeting("ada", "pa55word", request)

    assert account.requests == [TOKEN, schedule]
    assert account.meetings == []


async def test_a_scheduled_meeting_is_sent_again_after_a_429(
    bluejeans: BlueJeansProvider, account: BlueJeansAccount, ada: dict[str, Any]
) -> None:
    request = MeetingRequest("Review", dt.datetime(2030, 1, 2, tzinfo=dt.UTC), 30, "UTC", False)
    schedule = ("POST", f"/v1/user/{ada['id']}/scheduled_meeting")
    account.fail_next(429, retry_after=0, path=schedule[1])

    await bluejeans.start_meeting("ada", "pa55word", request)

    assert account.count(*schedule) == 2
    assert len(account.meetings) == 1
