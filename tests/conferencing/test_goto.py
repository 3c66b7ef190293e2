"""The GoTo adapter against the GoTo simulator: what it sends, what it reads, how it fails."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator
from zoneinfo import ZoneInfo

import pytest
import stamina.instrumentation

from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    CreatedMeeting,
    MeetingRequest,
    PersonalAccount,
    ProviderUnavailable,
    RateLimited,
)
from portal.conferencing.providers import base, goto, open_password_provider
from portal.conferencing.providers.base import RetryPolicy
from portal.conferencing.providers.goto import GoToProvider
from tests.conferencing.conftest import PATIENCE, serve
from tests.conferencing.goto_simulator import GoToAccount, goto_app, goto_endpoints, goto_urls
from tests.servers import free_port

CLIENT = ("client-1", "secret-1")
ADA = ("ada@example.com", "correct horse")
TIMEOUT = 0.25
WAIT_CAP = 0.05
NOW = MeetingRequest("Meet Now", None, 30, "Europe/Paris", join_before_host=False)
TOKEN = "/oauth/token"


@pytest.fixture
def account() -> GoToAccount:
    account = GoToAccount(*CLIENT)
    account.add_organizer(ADA[0], ADA[1], "ada@example.com", "Ada", "Lovelace")
    return account


@pytest.fixture
def url(account: GoToAccount) -> Iterator[str]:
    with serve(goto_app(account)) as served:
        yield served


def capped(wait_cap: float) -> RetryPolicy:
    """Waits of at most `wait_cap`, Retry-After included, so that retrying tests stay fast."""
    return RetryPolicy(
        wait_initial=min(0.5, wait_cap), wait_max=wait_cap, wait_jitter=0, retry_after_cap=wait_cap
    )


def open_goto(
    url: str,
    product: str = "meeting",
    *client: str,
    wait_cap: float = WAIT_CAP,
    timeout: float = PATIENCE,
) -> GoToProvider:
    return GoToProvider(
        *(client or CLIENT), product, **goto_urls(url), timeout=timeout, retry=capped(wait_cap)
    )


@pytest.fixture
async def meeting(url: str) -> AsyncIterator[GoToProvider]:
    provider = open_goto(url, "meeting")
    yield provider
    await provider.aclose()


@pytest.fixture
async def training(url: str) -> AsyncIterator[GoToProvider]:
    provider = open_goto(url, "training")
    yield provider
    await provider.aclose()


@pytest.fixture
async def webinar(url: str) -> AsyncIterator[GoToProvider]:
    provider = open_goto(url, "webinar")
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


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_endpoint_keys_name_the_api_and_the_token_endpoint() -> None:
    assert goto_endpoints("http://sim") == {
        "goto_api": "http://sim",
        "goto_oauth": "http://sim/oauth/token",
    }
    assert goto.GOTO_API_URL == "https://api.getgo.com"
    assert goto.GOTO_OAUTH_URL == "https://authentication.logmeininc.com/oauth/token"
    assert [value for value, _ in goto.PRODUCTS] == ["meeting", "training", "webinar"]


async def test_the_registry_opens_goto_on_the_simulator_s_endpoint_keys(
    url: str, account: GoToAccount
) -> None:
    credentials = {"client_id": CLIENT[0], "client_secret": CLIENT[1], "product": "webinar"}
    provider = open_password_provider("goto", credentials, goto_endpoints(url))
    await provider.verify()
    await provider.aclose()

    assert account.requests == [("POST", TOKEN)]


# The company's OAuth client


async def test_verify_asks_for_a_client_credentials_token(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    await meeting.verify()

    (sent,) = account.sent
    assert sent.headers["authorization"] == basic(*CLIENT)
    assert sent.form() == {"grant_type": "client_credentials"}


async def test_verify_refuses_a_wrong_secret(url: str, account: GoToAccount) -> None:
    provider = open_goto(url, "meeting", CLIENT[0], "not-the-secret")

    with pytest.raises(BadCredentials, match="did not accept the OAuth client ID and secret"):
        await provider.verify()
    await provider.aclose()

    assert account.count("POST", TOKEN) == 1


async def test_verify_accepts_a_client_that_may_not_use_the_grant(
    url: str, account: GoToAccount
) -> None:
    account.add_client("new-client", "new-secret", grants=("authorization_code",))
    provider = open_goto(url, "training", "new-client", "new-secret")

    await provider.verify()
    with pytest.raises(ConferencingError, match="password grant") as caught:
        await provider.sign_in(*ADA)
    await provider.aclose()

    assert not isinstance(caught.value, BadCredentials)


@pytest.mark.parametrize("product", ["", "gotomeeting", "Meeting"])
async def test_verify_refuses_a_product_goto_does_not_have(
    url: str, account: GoToAccount, product: str
) -> None:
    provider = open_goto(url, product)

    with pytest.raises(BadCredentials) as caught:
        await provider.verify()
    await provider.aclose()

    assert str(caught.value) == "Choose GoTo Meeting, GoTo Training or GoTo Webinar."
    assert account.requests == []


async def test_verify_without_a_client_sends_nothing(url: str, account: GoToAccount) -> None:
    provider = open_goto(url, "meeting", " ", "")

    with pytest.raises(BadCredentials, match="client ID and client secret"):
        await provider.verify()
    await provider.aclose()

    assert account.requests == []


# Signing in


async def test_sign_in_uses_the_password_grant(meeting: GoToProvider, account: GoToAccount) -> None:
    organizer = account.organizers["ada@example.com"]

    person = await meeting.sign_in(" ada@example.com ", ADA[1])

    assert person == PersonalAccount(
        user_id=organizer["organizer_key"],
        email="ada@example.com",
        name="Ada Lovelace",
        room_url="",
    )
    (sent,) = account.sent
    assert sent.path == TOKEN
    assert sent.headers["authorization"] == basic(*CLIENT)
    assert sent.form() == {
        "grant_type": "password",
        "username": "ada@example.com",
        "password": "correct horse",
    }


async def test_a_wrong_password_is_refused(meeting: GoToProvider, account: GoToAccount) -> None:
    with pytest.raises(BadCredentials, match="GoTo refused this username and password"):
        await meeting.sign_in(ADA[0], "wrong")
    with pytest.raises(BadCredentials, match="GoTo refused"):
        await meeting.sign_in("nobody@example.com", "anything")

    assert account.count("POST", TOKEN) == 2


async def test_a_changed_password_takes_over(meeting: GoToProvider, account: GoToAccount) -> None:
    account.change_password(ADA[0], "new password")

    with pytest.raises(BadCredentials):
        await meeting.sign_in(*ADA)
    person = await meeting.sign_in(ADA[0], "new password")

    assert person.email == "ada@example.com"


async def test_an_empty_username_or_password_sends_nothing(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    with pytest.raises(BadCredentials, match="Enter your GoTo username"):
        await meeting.sign_in("  ", "pw")
    with pytest.raises(BadCredentials, match="Enter your GoTo username"):
        await meeting.start_meeting(ADA[0], "", NOW)

    assert account.requests == []


async def test_a_company_client_goto_refuses_is_not_the_person_s_fault(
    url: str, account: GoToAccount
) -> None:
    provider = open_goto(url, "meeting", CLIENT[0], "rotated-secret")

    with pytest.raises(ConferencingError, match="ask the administrator") as caught:
        await provider.sign_in(*ADA)
    await provider.aclose()

    assert not isinstance(caught.value, BadCredentials)


# GoTo Meeting


async def test_an_instant_meeting_starts_now(meeting: GoToProvider, account: GoToAccount) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)

    created = await meeting.start_meeting(*ADA, NOW)

    stored = account.meetings[-1]
    assert created == CreatedMeeting(
        id=str(stored["meetingid"]), join_url=stored["joinURL"], start_url=stored["hostURL"]
    )
    assert created.join_url.startswith("https://goto.example/join/")
    assert created.start_url.startswith(f"https://goto.example/start/{created.id}?token=")
    assert account.requests == [
        ("POST", TOKEN),
        ("POST", "/G2M/rest/meetings"),
        ("GET", f"/G2M/rest/meetings/{created.id}/start"),
    ]
    sent = account.sent[1]
    assert sent.headers["authorization"] == f"Bearer {next(iter(account.tokens))}"
    body = sent.json()
    start = dt.datetime.fromisoformat(body.pop("starttime"))
    end = dt.datetime.fromisoformat(body.pop("endtime"))
    assert body == {
        "subject": "Meet Now",
        "passwordrequired": False,
        "conferencecallinfo": "VoIP",
        "timezonekey": "",
        "meetingtype": "immediate",
    }
    assert before <= start <= dt.datetime.now(dt.UTC)
    assert end - start == dt.timedelta(minutes=30)


async def test_a_scheduled_meeting_is_sent_in_utc(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    start = dt.datetime(2030, 1, 2, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))

    await meeting.start_meeting(*ADA, MeetingRequest("Review", start, 45, "Europe/Paris", False))

    stored = account.meetings[-1]
    assert (stored["meetingtype"], stored["starttime"], stored["endtime"]) == (
        "scheduled",
        "2030-01-02T09:30:00Z",
        "2030-01-02T10:15:00Z",
    )


async def test_a_naive_start_is_local_time_in_the_meeting_s_time_zone(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    start = dt.datetime(2030, 7, 1, 9, 0)

    await meeting.start_meeting(
        *ADA, MeetingRequest("Standup", start, 15, "America/New_York", False)
    )

    assert account.meetings[-1]["starttime"] == "2030-07-01T13:00:00Z"
    with pytest.raises(ConferencingError, match="time zone 'Mars/Olympus' is unknown"):
        await meeting.start_meeting(*ADA, MeetingRequest("x", start, 15, "Mars/Olympus", False))


async def test_a_meeting_subject_is_escaped_and_cut_to_goto_s_limit(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    topic = "A <b> plan " + "x" * 200

    await meeting.start_meeting(*ADA, MeetingRequest(topic, None, 30, "UTC", False))

    subject = account.meetings[-1]["subject"]
    assert subject.startswith("A &lt;b&gt; plan xxx")
    assert len(subject) == 100


async def test_a_wrong_password_creates_nothing(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    with pytest.raises(BadCredentials, match="GoTo refused this username and password"):
        await meeting.start_meeting(ADA[0], "wrong", NOW)

    assert account.requests == [("POST", TOKEN)]
    assert account.meetings == []


async def test_a_failed_host_link_leaves_the_meeting_with_its_join_link(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    account.fail_next(500, count=10, path="/start")

    created = await meeting.start_meeting(*ADA, NOW)

    assert created.start_url == created.join_url == account.meetings[-1]["joinURL"]
    assert account.count("POST", "/G2M/rest/meetings") == 1


# GoTo Training


async def test_a_training_is_scheduled_and_started(
    training: GoToProvider, account: GoToAccount
) -> None:
    start = dt.datetime(2030, 3, 4, 14, 0, tzinfo=dt.UTC)
    organizer = account.organizers["ada@example.com"]["organizer_key"]

    created = await training.start_meeting(
        *ADA, MeetingRequest("Onboarding", start, 90, "Europe/Paris", False)
    )

    stored = account.trainings[-1]
    assert created == CreatedMeeting(
        id=stored["trainingKey"],
        join_url=f"https://attendee.gototraining.com/r/{stored['trainingKey']}",
        start_url=stored["hostURL"],
    )
    assert account.requests == [
        ("POST", TOKEN),
        ("POST", f"/G2T/rest/organizers/{organizer}/trainings"),
        ("GET", f"/G2T/rest/trainings/{created.id}/start"),
    ]
    assert account.sent[1].json() == {
        "name": "Onboarding",
        "description": "Onboarding",
        "timeZone": "Europe/Paris",
        "times": [{"startDate": "2030-03-04T14:00:00Z", "endDate": "2030-03-04T15:30:00Z"}],
        "registrationSettings": {
            "disableWebRegistration": False,
            "disableConfirmationEmail": False,
        },
    }


async def test_a_training_s_host_link_error_is_said_in_its_product_s_name(
    training: GoToProvider, account: GoToAccount
) -> None:
    account.fail_next(404, path="/start")

    with pytest.raises(ConferencingError, match=r"GoTo Training has no such .*NotFound"):
        await training.start_meeting(*ADA, NOW)


# GoTo Webinar


async def test_a_webinar_is_created_and_its_registration_page_returned(
    webinar: GoToProvider, account: GoToAccount
) -> None:
    start = dt.datetime(2030, 5, 6, 16, 0, tzinfo=dt.UTC)
    organizer = account.organizers["ada@example.com"]["organizer_key"]

    created = await webinar.start_meeting(
        *ADA, MeetingRequest("Launch", start, 60, "America/Chicago", False)
    )

    stored = account.webinars[-1]
    assert created == CreatedMeeting(
        id=stored["webinarKey"],
        join_url=f"https://goto.example/join/{stored['webinarKey']}",
        start_url=stored["registrationUrl"],
    )
    webinars = f"/G2W/rest/v2/organizers/{organizer}/webinars"
    assert account.requests == [
        ("POST", TOKEN),
        ("POST", webinars),
        ("GET", f"{webinars}/{created.id}"),
    ]
    assert account.sent[1].json() == {
        "subject": "Launch",
        "description": "Launch",
        "times": [{"startTime": "2030-05-06T16:00:00Z", "endTime": "2030-05-06T17:00:00Z"}],
        "timeZone": "America/Chicago",
        "type": "single_session",
        "isPasswordProtected": False,
    }


async def test_a_refused_webinar_names_the_product_and_the_licence(
    webinar: GoToProvider, account: GoToAccount
) -> None:
    organizer = account.organizers["ada@example.com"]["organizer_key"]
    account.fail_next(403, path=f"/G2W/rest/v2/organizers/{organizer}/webinars")

    with pytest.raises(ConferencingError, match="GoTo Webinar refused this GoTo account") as caught:
        await webinar.start_meeting(*ADA, NOW)

    assert "GoTo Webinar licence" in str(caught.value)
    assert account.webinars == []


# Faults


async def test_429_waits_as_long_as_retry_after_asks(
    url: str, account: GoToAccount, retries: list[stamina.instrumentation.RetryDetails]
) -> None:
    provider = open_goto(url, wait_cap=5.0)
    account.fail_next(429, retry_after=1, path=TOKEN)

    started = time.monotonic()
    await provider.sign_in(*ADA)
    waited = time.monotonic() - started
    await provider.aclose()

    assert [r.wait_for for r in retries] == [1.0]
    assert 1.0 <= waited < 2.0
    assert account.count("POST", TOKEN) == 2


async def test_429_on_every_attempt_is_rate_limited_with_goto_s_retry_after(
    meeting: GoToProvider, account: GoToAccount
) -> None:
    account.fail_next(429, count=5, retry_after=7, path="/G2M/rest/meetings")

    with pytest.raises(RateLimited, match=r"GoTo Meeting is limiting .* in 7 seconds") as caught:
        await meeting.start_meeting(*ADA, NOW)

    assert caught.value.retry_after == 7
    # A 429 means GoTo did not act, so even a creation is sent again.
    assert account.count("POST", "/G2M/rest/meetings") == base.DEFAULT_RETRY.attempts


async def test_500s_then_success(meeting: GoToProvider, account: GoToAccount) -> None:
    account.fail_next(500, count=2, path=TOKEN)

    person = await meeting.sign_in(*ADA)

    assert person.name == "Ada Lovelace"
    assert account.count("POST", TOKEN) == 3


async def test_500s_forever_make_goto_unavailable(
    webinar: GoToProvider, account: GoToAccount
) -> None:
    account.fail_next(503, count=10)

    with pytest.raises(ProviderUnavailable, match=r"GoTo Webinar answered .* server error \(503\)"):
        await webinar.sign_in(*ADA)

    assert account.count("POST", TOKEN) == base.DEFAULT_RETRY.attempts


async def test_a_host_link_is_asked_again_after_a_server_error(
    training: GoToProvider, account: GoToAccount
) -> None:
    account.fail_next(502, path="/start")

    created = await training.start_meeting(*ADA, NOW)

    assert created.start_url == account.trainings[-1]["hostURL"]
    assert account.count("GET", f"/G2T/rest/trainings/{created.id}/start") == 2


async def test_other_4xx_are_not_retried(meeting: GoToProvider, account: GoToAccount) -> None:
    account.fail_next(400, count=3, path="/G2M/rest/meetings")

    with pytest.raises(ConferencingError, match="GoTo Meeting refused the request"):
        await meeting.start_meeting(*ADA, NOW)

    assert account.count("POST", "/G2M/rest/meetings") == 1


async def test_an_answer_slower_than_the_timeout_makes_goto_unavailable(
    url: str, account: GoToAccount
) -> None:
    meeting = open_goto(url, timeout=TIMEOUT)
    account.delay = TIMEOUT * 2

    started = time.monotonic()
    with pytest.raises(
        ProviderUnavailable, match=f"GoTo Meeting did not answer within {TIMEOUT:g}"
    ):
        await meeting.sign_in(*ADA)
    await meeting.aclose()

    assert time.monotonic() - started < 1.5
    assert account.count("POST", TOKEN) == base.DEFAULT_RETRY.attempts


async def test_an_unreachable_goto_is_unavailable() -> None:
    provider = open_goto(f"http://127.0.0.1:{free_port()}", "training")

    with pytest.raises(ProviderUnavailable, match="GoTo Training could not be reached"):
        await provider.verify()
    await provider.aclose()


@pytest.mark.parametrize(
    ("product", "path"),
    [
        ("meeting", "/G2M/rest/meetings"),
        ("training", "/G2T/rest/organizers/{key}/trainings"),
        ("webinar", "/G2W/rest/v2/organizers/{key}/webinars"),
    ],
)
async def test_a_creation_is_not_sent_twice_after_a_server_error(
    url: str, account: GoToAccount, product: str, path: str
) -> None:
    path = path.format(key=account.organizers["ada@example.com"]["organizer_key"])
    provider = open_goto(url, product)
    account.fail_next(500, path=path)

    with pytest.raises(ProviderUnavailable, match="server error"):
        await provider.start_meeting(*ADA, NOW)
    await provider.aclose()

    assert account.requests == [("POST", TOKEN), ("POST", path)]
