"""The Webex adapters against the Webex simulator: what they send, what they read, how they fail,
and a host's authorization round trip through the simulator's authorize page."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
import stamina.instrumentation
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
    PersonalAccount,
    ProviderUnavailable,
    RateLimited,
    RenewsCredentials,
)
from portal.conferencing.providers import (
    base,
    open_host_authorizing,
    open_password_provider,
    open_provider,
    webex_xml,
)
from portal.conferencing.providers import webex as webex_module
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.providers.webex import WebexProvider
from portal.conferencing.providers.webex_xml import WebexPasswordProvider
from tests.conferencing.conftest import PATIENCE, serve
from tests.conferencing.webex_simulator import (
    READ_ONLY_ADMIN_ROLE,
    WebexAccount,
    webex_app,
    webex_endpoints,
)
from tests.servers import free_port

CLIENT = ("client-1", "secret-1")
TIMEOUT = 0.25
# Backoffs of milliseconds, Retry-After included, so that the retrying tests stay fast.
FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02, wait_jitter=0, retry_after_cap=0.05)
REDIRECT = "https://portal.example/conferencing/webex/authorized"
SITE_USER = ("ada", "pa<ss&word>")


@pytest.fixture
def account() -> WebexAccount:
    account = WebexAccount(*CLIENT)
    account.add_site_user(*SITE_USER, "ada@acme.example", "Ada Lovelace")
    return account


@pytest.fixture
def url(account: WebexAccount) -> Iterator[str]:
    with serve(webex_app(account)) as served:
        yield served


def open_webex(
    url: str, refresh_token: str, *client: str, timeout: float = PATIENCE
) -> WebexProvider:
    client_id, client_secret = client or CLIENT
    return WebexProvider(
        client_id, client_secret, refresh_token, api_url=f"{url}/v1", timeout=timeout, retry=FAST
    )


@pytest.fixture
async def webex(url: str, account: WebexAccount) -> AsyncIterator[WebexProvider]:
    provider = open_webex(url, account.admin_refresh_token)
    yield provider
    await provider.aclose()


@pytest.fixture
async def site(url: str) -> AsyncIterator[WebexPasswordProvider]:
    provider = open_site(url, "acme")
    yield provider
    await provider.aclose()


def open_site(url: str, name: str, timeout: float = PATIENCE) -> WebexPasswordProvider:
    xml_url = webex_endpoints(url)["webex_xml"]
    return WebexPasswordProvider(name, xml_url=xml_url, timeout=timeout, retry=FAST)


@pytest.fixture
def retries() -> Iterator[list[stamina.instrumentation.RetryDetails]]:
    """The retries stamina schedules, with how long each waits."""
    seen: list[stamina.instrumentation.RetryDetails] = []

    def record(details: stamina.instrumentation.RetryDetails) -> None:
        seen.append(details)

    hooks = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([record])
    yield seen
    stamina.instrumentation.set_on_retry_hooks(hooks)


async def warm(webex: WebexProvider, account: WebexAccount) -> None:
    """Fetch and cache a token, then forget the requests so far."""
    await webex.verify()
    account.requests.clear()
    account.sent.clear()


def instant(minutes: int = 30, *, join_before_host: bool = False) -> MeetingRequest:
    return MeetingRequest("Meet Now", None, minutes, "Europe/Paris", join_before_host)


def test_endpoint_keys_and_the_real_addresses() -> None:
    assert webex_endpoints("http://sim") == {
        "webex_api": "http://sim/v1",
        "webex_xml": "http://sim/WBXService/XMLService",
    }
    assert webex_module.WEBEX_API_URL == "https://webexapis.com/v1"
    assert webex_module.PROVISIONING == ()


async def test_the_registry_opens_both_modes_on_the_simulator_s_endpoint_keys(
    url: str, account: WebexAccount
) -> None:
    credentials = {
        "client_id": CLIENT[0],
        "client_secret": CLIENT[1],
        "refresh_token": account.admin_refresh_token,
    }
    endpoints = webex_endpoints(url)
    company = open_provider("webex", credentials, endpoints)
    await company.verify()
    await company.aclose()
    hosts = open_host_authorizing("webex", credentials, endpoints)
    assert hosts.authorize_url(REDIRECT, "s").startswith(f"{url}/v1/authorize?")
    assert isinstance(hosts, WebexProvider)
    await hosts.aclose()
    site = open_password_provider("webex_password", {"site": "acme"}, endpoints)
    await site.verify()
    await site.aclose()

    assert account.requests[0] == ("POST", "/v1/access_token")
    assert account.requests[-1] == ("POST", "/WBXService/XMLService")


def test_the_default_xml_address_is_the_site_s() -> None:
    assert webex_xml.WEBEX_XML_URL.format(site="acme") == (
        "https://acme.webex.com/WBXService/XMLService"
    )


# The company's token and its administrator


async def test_verify_refreshes_reads_me_and_lists_one_person(
    webex: WebexProvider, account: WebexAccount
) -> None:
    await webex.verify()

    assert account.requests == [
        ("POST", "/v1/access_token"),
        ("GET", "/v1/people/me"),
        ("GET", "/v1/people"),
    ]
    token_request, me, listing = account.sent
    assert token_request.form() == {
        "client_id": "client-1",
        "client_secret": "secret-1",
        "grant_type": "refresh_token",
        "refresh_token": account.admin_refresh_token,
    }
    bearer = me.headers["authorization"].removeprefix("Bearer ")
    assert bearer in account.access_tokens
    assert listing.headers["authorization"] == f"Bearer {bearer}"
    assert listing.query == {"max": "1"}


async def test_a_person_without_the_full_administrator_role_is_not_administrator(
    url: str, account: WebexAccount
) -> None:
    member = account.add_person("member@acme.example", "Mem Ber")
    read_only = account.add_person("ro@acme.example", "Read Only", roles=[READ_ONLY_ADMIN_ROLE])

    for person in (member, read_only):
        webex = open_webex(url, account.grant(person["id"]))
        with pytest.raises(NotAdministrator, match="full administrator"):
            await webex.verify()
        await webex.aclose()

    assert account.count("GET", "/v1/people") == 0


async def test_the_token_is_reused_while_it_lives(
    webex: WebexProvider, account: WebexAccount
) -> None:
    await webex.verify()
    await webex.users()
    await webex.user_by_email(account.admin["emails"][0])

    assert account.count("POST", "/v1/access_token") == 1


async def test_the_token_is_renewed_a_margin_before_it_expires(
    webex: WebexProvider, account: WebexAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(base, "monotonic", lambda: now[0])
    await webex.users()

    now[0] += account.access_token_lifetime - webex_module.TOKEN_MARGIN - 1
    await webex.users()
    assert account.count("POST", "/v1/access_token") == 1

    now[0] += 1
    await webex.users()
    assert account.count("POST", "/v1/access_token") == 2


async def test_the_newest_refresh_token_is_kept(
    webex: WebexProvider, account: WebexAccount
) -> None:
    account.rotate_refresh_tokens = True
    first = webex.credentials()["refresh_token"]
    await webex.verify()
    account.expire_access_tokens()

    await webex.users()

    newest = webex.credentials()
    assert isinstance(webex, RenewsCredentials)
    assert newest["refresh_token"] != first
    assert newest["refresh_token"] in account.refresh_tokens
    assert first not in account.refresh_tokens
    # The rest is as the adapter was opened with: the portal keeps the whole mapping as it is.
    assert (newest["client_id"], newest["client_secret"]) == (
        account.client_id,
        account.client_secret,
    )


async def test_a_401_refreshes_the_token_once_and_sends_again(
    webex: WebexProvider, account: WebexAccount
) -> None:
    await warm(webex, account)
    account.expire_access_tokens()

    await webex.users()

    assert account.requests == [
        ("GET", "/v1/people"),
        ("POST", "/v1/access_token"),
        ("GET", "/v1/people"),
    ]


@pytest.mark.parametrize(
    ("client", "revoke"),
    [(("client-1", "wrong-secret"), False), (("other-client", "secret-1"), False), (CLIENT, True)],
)
async def test_refused_company_credentials_are_bad_credentials(
    url: str, account: WebexAccount, client: tuple[str, str], revoke: bool
) -> None:
    if revoke:
        account.revoke_refresh_tokens()
    webex = open_webex(url, account.admin_refresh_token, *client)

    with pytest.raises(BadCredentials, match="authorize it again as a Webex full administrator"):
        await webex.verify()
    await webex.aclose()

    assert account.requests == [("POST", "/v1/access_token")]


async def test_missing_credentials_send_nothing(url: str, account: WebexAccount) -> None:
    webex = open_webex(url, "  ")
    with pytest.raises(BadCredentials, match="Enter the Webex integration's client ID"):
        await webex.users()
    await webex.aclose()
    assert account.requests == []


# People


async def test_users_follow_the_link_header_across_pages(
    webex: WebexProvider, account: WebexAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webex_module, "PAGE_SIZE", 2)
    for number in range(4):
        account.add_person(f"p{number}@acme.example", f"Person {number}")

    pages, cursor = [], None
    while True:
        page = await webex.users(cursor)
        pages.append(page.users)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert [len(users) for users in pages] == [2, 2, 1]
    assert [user.id for users in pages for user in users] == list(account.people)
    listings = [sent for sent in account.sent if sent.path == "/v1/people"]
    assert listings[0].query == {"max": "2"}
    assert set(listings[1].query) == {"max", "cursor"}


async def test_users_map_webex_people(webex: WebexProvider, account: WebexAccount) -> None:
    ada = account.add_person("ada@acme.example", "Ada Lovelace")
    pending = account.add_person("new@acme.example", "New Person", invite_pending=True)
    off = account.add_person("off@acme.example", "Off Boarded", login_enabled=False)
    free = account.add_person("free@acme.example", "Free Rider", licensed=False)

    users = {user.id: user for user in (await webex.users()).users}

    assert users[ada["id"]].email == "ada@acme.example"
    assert users[ada["id"]].name == "Ada Lovelace"
    # Presence says "inactive" (idle for 10 minutes): she may still use Webex.
    assert ada["status"] == "inactive"
    assert users[ada["id"]].status == ACTIVE
    assert users[pending["id"]].status == PENDING
    assert users[off["id"]].status == INACTIVE
    assert (users[ada["id"]].licensed, users[free["id"]].licensed) == (True, False)
    assert {user.room_url for user in users.values()} == {""}


async def test_a_cursor_from_elsewhere_is_refused(webex: WebexProvider) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        await webex.users("https://elsewhere.example/v1/rooms?cursor=x")


async def test_a_next_link_is_followed_on_the_api_address_only(
    webex: WebexProvider, account: WebexAccount
) -> None:
    await warm(webex, account)
    with pytest.raises(ConferencingError, match="cursor is invalid"):
        await webex.users("https://elsewhere.example/v1/people?max=2&cursor=forged")
    assert account.requests == [("GET", "/v1/people")]


async def test_user_by_email(webex: WebexProvider, account: WebexAccount) -> None:
    ada = account.add_person("ada@acme.example", "Ada Lovelace")

    found = await webex.user_by_email(" ada@acme.example ")

    assert found.id == ada["id"]
    assert account.sent[-1].query == {"email": "ada@acme.example"}
    with pytest.raises(NotFound, match=r"no person with the email ghost@acme\.example"):
        await webex.user_by_email("ghost@acme.example")
    with pytest.raises(NotFound):
        await webex.user_by_email(" ")


async def test_a_person_whose_email_changed_keeps_their_id(
    webex: WebexProvider, account: WebexAccount
) -> None:
    ada = account.add_person("ada@old.example", "Ada Lovelace")
    account.change_email(ada["id"], "ada@new.example")

    with pytest.raises(NotFound):
        await webex.user_by_email("ada@old.example")
    found = await webex.user_by_email("ada@new.example")

    assert found.id == ada["id"]
    assert await webex.personal_room(ada["id"]) == account.rooms[ada["id"]]


async def test_personal_room_asks_by_the_person_s_email(
    webex: WebexProvider, account: WebexAccount
) -> None:
    ada = account.add_person("ada@acme.example", "Ada Lovelace")
    await warm(webex, account)

    room = await webex.personal_room(ada["id"])

    assert room == "https://acme.webex.example/meet/ada"
    assert account.requests == [
        ("GET", f"/v1/people/{ada['id']}"),
        ("GET", "/v1/meetingPreferences/personalMeetingRoom"),
    ]
    assert account.sent[-1].query == {"userEmail": "ada@acme.example"}
    with pytest.raises(NotFound, match="no such person"):
        await webex.personal_room("no-such-id")
    with pytest.raises(NotFound):
        await webex.personal_room("")


# Meetings


async def test_an_instant_meeting_starts_a_minute_ahead(
    webex: WebexProvider, account: WebexAccount
) -> None:
    host = account.add_person("host@acme.example", "Host Person")

    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    meeting = await webex.create_meeting(host["id"], instant(30, join_before_host=True))

    sent = account.sent[-1].json()
    start = dt.datetime.fromisoformat(sent["start"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(sent["end"].replace("Z", "+00:00"))
    assert before + dt.timedelta(minutes=1) <= start <= before + dt.timedelta(minutes=1, seconds=5)
    assert end - start == dt.timedelta(minutes=30)
    assert {k: v for k, v in sent.items() if k not in ("start", "end")} == {
        "title": "Meet Now",
        "timezone": "Europe/Paris",
        "enabledJoinBeforeHost": True,
        "hostEmail": "host@acme.example",
    }
    created = account.meetings[-1]
    assert meeting == CreatedMeeting(created["id"], created["webLink"], created["webLink"])
    assert created["hostUserId"] == host["id"]


async def test_a_scheduled_meeting_is_sent_in_utc_and_lasts_at_least_10_minutes(
    webex: WebexProvider, account: WebexAccount
) -> None:
    host = account.add_person("host@acme.example")
    start = dt.datetime(2030, 1, 2, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))
    request = MeetingRequest("Review", start, 5, "Europe/Paris", join_before_host=False)

    await webex.create_meeting(host["id"], request)

    sent = account.sent[-1].json()
    assert (sent["start"], sent["end"]) == ("2030-01-02T09:30:00Z", "2030-01-02T09:40:00Z")
    assert sent["enabledJoinBeforeHost"] is False


async def test_a_meeting_for_an_unknown_host_is_not_found(webex: WebexProvider) -> None:
    with pytest.raises(NotFound):
        await webex.create_meeting("no-such-id", instant())


async def test_create_user_is_done_in_control_hub(
    webex: WebexProvider, account: WebexAccount
) -> None:
    with pytest.raises(ConferencingError, match="created in Control Hub"):
        await webex.create_user(NewUser("new@acme.example", "New", "Person"), "create")
    assert account.requests == []


# Faults


async def test_429_waits_as_long_as_retry_after_asks(
    webex: WebexProvider,
    account: WebexAccount,
    retries: list[stamina.instrumentation.RetryDetails],
) -> None:
    await warm(webex, account)
    account.fail_next(429, retry_after=1)

    page = await webex.users()

    assert page.users
    # One second asked, cut to the test policy's cap.
    assert [r.wait_for for r in retries] == [FAST.retry_after_cap]
    assert account.count("GET", "/v1/people") == 2


async def test_429_on_every_attempt_is_rate_limited(
    webex: WebexProvider, account: WebexAccount
) -> None:
    await warm(webex, account)
    account.fail_next(429, count=5, retry_after=7)

    with pytest.raises(RateLimited, match="try again in 7 seconds") as caught:
        await webex.users()

    assert caught.value.retry_after == 7
    assert account.count("GET", "/v1/people") == FAST.attempts


async def test_500s_then_success(webex: WebexProvider, account: WebexAccount) -> None:
    await warm(webex, account)
    account.fail_next(500, count=2)

    page = await webex.users()

    assert [user.id for user in page.users] == [account.admin["id"]]
    assert account.count("GET", "/v1/people") == 3


async def test_500s_forever_make_webex_unavailable(
    webex: WebexProvider, account: WebexAccount
) -> None:
    await warm(webex, account)
    account.fail_next(503, count=10)

    with pytest.raises(ProviderUnavailable, match=r"server error \(503\)"):
        await webex.users()

    assert account.count("GET", "/v1/people") == FAST.attempts


async def test_a_token_endpoint_error_is_retried_too(
    webex: WebexProvider, account: WebexAccount
) -> None:
    account.fail_next(502)

    await webex.users()

    assert account.requests == [
        ("POST", "/v1/access_token"),
        ("POST", "/v1/access_token"),
        ("GET", "/v1/people"),
    ]


async def test_other_4xx_are_not_retried(webex: WebexProvider, account: WebexAccount) -> None:
    await warm(webex, account)
    account.fail_next(400, count=3)

    with pytest.raises(ConferencingError, match="Webex refused the request") as caught:
        await webex.users()

    assert "tracking ID ROUTER_" in str(caught.value)
    assert account.count("GET", "/v1/people") == 1


async def test_an_answer_slower_than_the_timeout_makes_webex_unavailable(
    url: str, account: WebexAccount
) -> None:
    webex = open_webex(url, account.admin_refresh_token, timeout=TIMEOUT)
    await warm(webex, account)
    account.delay = TIMEOUT * 2

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=f"within {TIMEOUT:g} seconds"):
        await webex.users()
    await webex.aclose()

    assert time.monotonic() - started < 1.5
    assert account.count("GET", "/v1/people") == FAST.attempts


async def test_an_unreachable_webex_is_unavailable() -> None:
    webex = open_webex(f"http://127.0.0.1:{free_port()}", "refresh")
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await webex.verify()
    await webex.aclose()


async def test_a_meeting_is_not_created_twice_after_a_server_error(
    webex: WebexProvider, account: WebexAccount
) -> None:
    host = account.add_person("host@acme.example")
    await warm(webex, account)
    account.fail_next(500, path="/v1/meetings")

    with pytest.raises(ProviderUnavailable):
        await webex.create_meeting(host["id"], instant())

    assert account.count("POST", "/v1/meetings") == 1
    assert account.meetings == []


async def test_a_meeting_is_sent_again_after_a_429(
    webex: WebexProvider, account: WebexAccount
) -> None:
    host = account.add_person("host@acme.example")
    await warm(webex, account)
    account.fail_next(429, retry_after=0, path="/v1/meetings")

    await webex.create_meeting(host["id"], instant())

    assert account.count("POST", "/v1/meetings") == 2
    assert len(account.meetings) == 1


# A host's authorization


async def authorize(
    webex: WebexProvider, url: str, *, email: str, action: str = "accept", state: str = "st-1"
) -> str:
    """The Location Webex's authorize page sends the browser to, after `action`: what a browser
    does, the page fetched, the email typed, a button pressed."""
    address = webex.authorize_url(REDIRECT, state)
    async with httpx.AsyncClient() as browser:
        page = await browser.get(address)
        assert page.status_code == 200
        assert "Sign in to Webex" in page.text
        form = dict(parse_qs(urlsplit(address).query, keep_blank_values=True))
        fields = {name: values[0] for name, values in form.items()}
        answer = await browser.post(
            f"{url}/v1/authorize", data={**fields, "email": email, "action": action}
        )
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def code_from(location: str) -> str:
    assert location.startswith(f"{REDIRECT}?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


async def test_authorize_url_asks_for_the_host_s_room_only(webex: WebexProvider, url: str) -> None:
    address = webex.authorize_url(REDIRECT, "st-1")

    parts = urlsplit(address)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{url}/v1/authorize"
    assert "scope=meeting%3Apreferences_read" in parts.query
    assert parse_qs(parts.query) == {
        "client_id": ["client-1"],
        "response_type": ["code"],
        "redirect_uri": [REDIRECT],
        "scope": ["meeting:preferences_read"],
        "state": ["st-1"],
    }


def test_the_authorize_page_prefills_the_login_hint(url: str) -> None:
    query = {"client_id": "client-1", "response_type": "code", "redirect_uri": REDIRECT}
    hinted = httpx.get(f"{url}/v1/authorize", params={**query, "login_hint": "a@acme.example"})
    plain = httpx.get(f"{url}/v1/authorize", params=query)

    assert 'value="a@acme.example"' in hinted.text
    assert '<input id="email" name="email" type="email" value="">' in plain.text
    assert ">Accept</button>" in plain.text and ">Cancel</button>" in plain.text


async def test_the_round_trip_gives_tokens_and_the_host_s_room(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    host = account.add_person("host@acme.example", "Host Person")
    code = code_from(await authorize(webex, url, email="HOST@acme.example"))

    tokens = await webex.exchange_code(code, REDIRECT)
    room, after = await webex.host_room(tokens)

    assert account.sent[-2].form() == {
        "client_id": "client-1",
        "client_secret": "secret-1",
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
    }
    assert account.access_tokens[tokens.access_token][0] == host["id"]
    assert tokens.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(days=13)
    assert room == account.rooms[host["id"]]
    assert after == tokens
    assert account.sent[-1].headers["authorization"] == f"Bearer {tokens.access_token}"
    assert account.sent[-1].query == {}


async def test_a_replayed_code_is_refused(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    account.add_person("host@acme.example")
    code = code_from(await authorize(webex, url, email="host@acme.example"))
    await webex.exchange_code(code, REDIRECT)

    with pytest.raises(BadCredentials, match="did not accept the authorization: try again"):
        await webex.exchange_code(code, REDIRECT)


async def test_a_code_for_another_redirect_uri_is_refused(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    account.add_person("host@acme.example")
    code = code_from(await authorize(webex, url, email="host@acme.example"))

    with pytest.raises(BadCredentials, match="try again"):
        await webex.exchange_code(code, "https://elsewhere.example/callback")


async def test_an_exchange_with_a_wrong_secret_blames_the_integration(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    account.add_person("host@acme.example")
    code = code_from(await authorize(webex, url, email="host@acme.example"))
    wrong = open_webex(url, "unused", "client-1", "wrong")

    with pytest.raises(BadCredentials, match="client secret"):
        await wrong.exchange_code(code, REDIRECT)
    await wrong.aclose()


async def test_a_cancelled_authorization_comes_back_as_access_denied(
    webex: WebexProvider, url: str
) -> None:
    location = await authorize(webex, url, email="", action="cancel")

    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{REDIRECT}?")
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-1"]
    assert query["error_description"]


async def test_an_unknown_email_shows_the_page_again(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    address = webex.authorize_url(REDIRECT, "st-1")
    fields = {k: v[0] for k, v in parse_qs(urlsplit(address).query).items()}

    async with httpx.AsyncClient() as browser:
        answer = await browser.post(
            f"{url}/v1/authorize",
            data={**fields, "email": "ghost@acme.example", "action": "accept"},
        )

    assert answer.status_code == 200
    assert 'role="alert">No Webex account uses that email address.' in answer.text
    assert 'value="ghost@acme.example"' in answer.text
    assert account.codes == {}


async def test_an_expired_access_token_is_refreshed_before_asking(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    host = account.add_person("host@acme.example")
    tokens = await webex.exchange_code(
        code_from(await authorize(webex, url, email="host@acme.example")), REDIRECT
    )
    expired = HostTokens(tokens.access_token, tokens.refresh_token, dt.datetime.now(dt.UTC))
    account.requests.clear()

    room, after = await webex.host_room(expired)

    assert room == account.rooms[host["id"]]
    assert account.requests == [
        ("POST", "/v1/access_token"),
        ("GET", "/v1/meetingPreferences/personalMeetingRoom"),
    ]
    assert after.access_token != tokens.access_token
    assert after.refresh_token == tokens.refresh_token
    assert after.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(days=13)


async def test_an_expiry_read_back_without_its_zone_is_taken_as_utc(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    account.add_person("host@acme.example")
    code = code_from(await authorize(webex, url, email="host@acme.example"))
    tokens = await webex.exchange_code(code, REDIRECT)
    naive_past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    naive_future = naive_past + dt.timedelta(days=1)
    account.requests.clear()

    await webex.host_room(HostTokens(tokens.access_token, tokens.refresh_token, naive_future))
    assert account.requests == [("GET", "/v1/meetingPreferences/personalMeetingRoom")]
    await webex.host_room(HostTokens(tokens.access_token, tokens.refresh_token, naive_past))
    assert account.count("POST", "/v1/access_token") == 1


async def test_an_access_token_webex_ended_early_is_refreshed_on_its_401(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    account.add_person("host@acme.example")
    account.rotate_refresh_tokens = True
    tokens = await webex.exchange_code(
        code_from(await authorize(webex, url, email="host@acme.example")), REDIRECT
    )
    account.expire_access_tokens()
    account.requests.clear()

    _, after = await webex.host_room(tokens)

    assert account.requests == [
        ("GET", "/v1/meetingPreferences/personalMeetingRoom"),
        ("POST", "/v1/access_token"),
        ("GET", "/v1/meetingPreferences/personalMeetingRoom"),
    ]
    assert after.refresh_token != tokens.refresh_token
    assert after.refresh_token in account.refresh_tokens


async def test_a_refused_refresh_means_authorizing_again(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    account.add_person("host@acme.example")
    tokens = await webex.exchange_code(
        code_from(await authorize(webex, url, email="host@acme.example")), REDIRECT
    )
    account.expire_access_tokens()
    account.revoke_refresh_tokens()

    with pytest.raises(BadCredentials, match="authorize it at Webex again"):
        await webex.host_room(tokens)


async def test_host_room_retries_a_server_error(
    webex: WebexProvider, url: str, account: WebexAccount
) -> None:
    host = account.add_person("host@acme.example")
    tokens = await webex.exchange_code(
        code_from(await authorize(webex, url, email="host@acme.example")), REDIRECT
    )
    account.fail_next(500)

    room, _ = await webex.host_room(tokens)

    assert room == account.rooms[host["id"]]
    assert account.count("GET", "/v1/meetingPreferences/personalMeetingRoom") == 2


# Username and password mode (the site's XML API)


async def test_verify_asks_the_site_for_its_api_version_without_a_user(
    site: WebexPasswordProvider, account: WebexAccount
) -> None:
    await site.verify()

    (sent,) = account.sent
    assert sent.headers["content-type"] == "application/xml"
    message = sent.xml()
    assert message.tag == "{http://www.webex.com/schemas/2002/06/service}message"
    context = message.find("header/securityContext")
    assert context is not None
    assert [(child.tag, child.text) for child in context] == [("siteName", "acme")]
    content = message.find("body/bodyContent")
    assert content is not None
    assert content.get("{http://www.w3.org/2001/XMLSchema-instance}type") == (
        "java:com.webex.service.binding.ep.GetAPIVersion"
    )


@pytest.mark.parametrize("name", ["", "acme.webex.com", "https://acme", "ac me", "-acme"])
async def test_a_site_name_that_is_no_dns_label_sends_nothing(
    url: str, account: WebexAccount, name: str
) -> None:
    site = open_site(url, name)
    with pytest.raises(BadCredentials, match="is not a Webex site name"):
        await site.verify()
    with pytest.raises(BadCredentials, match="is not a Webex site name"):
        await site.sign_in(*SITE_USER)
    await site.aclose()
    assert account.requests == []


async def test_an_unknown_site_is_bad_credentials(url: str) -> None:
    site = open_site(url, "nowhere")
    with pytest.raises(BadCredentials, match="No Webex site named nowhere"):
        await site.verify()
    await site.aclose()


async def test_sign_in_reads_the_person_and_their_room(
    site: WebexPasswordProvider, account: WebexAccount
) -> None:
    person = await site.sign_in(*SITE_USER)

    assert person == PersonalAccount(
        user_id="ada",
        email="ada@acme.example",
        name="Ada Lovelace",
        room_url="https://acme.webex.example/meet/ada",
    )
    message = account.sent[-1].xml()
    context = message.find("header/securityContext")
    assert context is not None
    # The password's < & > arrive intact: ElementTree escaped them.
    assert {child.tag: child.text for child in context} == {
        "siteName": "acme",
        "webExID": "ada",
        "password": "pa<ss&word>",
    }
    assert message.findtext("body/bodyContent/webExId") == "ada"


@pytest.mark.parametrize(("username", "password"), [("ada", "wrong"), ("bob", "x"), ("", "")])
async def test_a_refused_sign_in_is_bad_credentials(
    site: WebexPasswordProvider, username: str, password: str
) -> None:
    with pytest.raises(BadCredentials, match="Webex refused this username and password"):
        await site.sign_in(username, password)


async def test_start_meeting_creates_it_with_both_links(
    site: WebexPasswordProvider, account: WebexAccount
) -> None:
    start = dt.datetime(2030, 1, 2, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))
    request = MeetingRequest("R&D <review>", start, 45, "Europe/Paris", join_before_host=True)

    meeting = await site.start_meeting(*SITE_USER, request)

    created = account.site_meetings[-1]
    assert meeting == CreatedMeeting(
        created["meetingkey"], created["attendee_url"], created["host_url"]
    )
    assert (created["host"], created["confName"]) == ("ada", "R&D <review>")
    assert (created["startDate"], created["timeZoneID"]) == ("01/02/2030 09:30:00", "20")
    assert (created["duration"], created["openTime"]) == (45, "900")
    schedule = account.sent[-1].xml().find("body/bodyContent/schedule")
    assert schedule is not None
    assert [child.tag for child in schedule] == [
        "startDate",
        "openTime",
        "joinTeleconfBeforeHost",
        "duration",
        "timeZoneID",
    ]


async def test_an_instant_site_meeting_starts_now_with_no_early_joining(
    site: WebexPasswordProvider, account: WebexAccount
) -> None:
    await site.start_meeting(*SITE_USER, instant(20))

    created = account.site_meetings[-1]
    start = dt.datetime.strptime(created["startDate"], "%m/%d/%Y %H:%M:%S").replace(tzinfo=dt.UTC)
    assert abs(start - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert (created["openTime"], created["joinTeleconfBeforeHost"]) == ("0", "FALSE")


async def test_start_meeting_with_a_wrong_password_is_bad_credentials(
    site: WebexPasswordProvider, account: WebexAccount
) -> None:
    with pytest.raises(BadCredentials):
        await site.start_meeting("ada", "wrong", instant())
    assert account.site_meetings == []


async def test_the_site_s_429_then_success(
    site: WebexPasswordProvider, account: WebexAccount
) -> None:
    account.fail_next(429, retry_after=0)
    account.fail_next(500)

    await site.sign_in(*SITE_USER)

    assert account.count("POST", "/WBXService/XMLService") == 3


async def test_the_site_s_500s_forever_and_slowness_make_it_unavailable(
    url: str, account: WebexAccount
) -> None:
    site = open_site(url, "acme", timeout=TIMEOUT)
    account.fail_next(500, count=FAST.attempts)
    with pytest.raises(ProviderUnavailable, match=r"server error \(500\)"):
        await site.sign_in(*SITE_USER)

    account.delay = TIMEOUT * 2
    with pytest.raises(ProviderUnavailable, match=f"within {TIMEOUT:g} seconds"):
        await site.verify()
    await site.aclose()


async def test_a_site_meeting_is_not_created_twice_after_a_server_error(
    site: WebexPasswordProvider, account: WebexAccount
) -> None:
    account.fail_next(503)

    with pytest.raises(ProviderUnavailable):
        await site.start_meeting(*SITE_USER, instant())

    assert account.count("POST", "/WBXService/XMLService") == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"<html><body>Site maintenance</body></html>",
        b"not XML at all",
        b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><serv:message/>',
    ],
)
async def test_an_answer_that_is_not_the_xml_service_s_is_unavailable(answer: bytes) -> None:
    async def page(request: Request) -> Response:
        return Response(answer, media_type="text/html")

    app = Starlette(routes=[Route("/WBXService/XMLService", page, methods=["POST"])])
    with serve(app) as elsewhere:
        site = open_site(elsewhere, "acme")
        with pytest.raises(ProviderUnavailable, match="something other than the XML"):
            await site.verify()
        await site.aclose()
