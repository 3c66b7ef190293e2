"""Each person's side of conferencing in Chromium: a GoTo Meeting host enters their GoTo
username and password and their Meet Now opens a GoTo meeting; a Webex (SSO) host authorizes
the portal at Webex the first time they host, and again once 3 months passed without hosting."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import Server, serve_demo, signed_in
from tests.conferencing.conftest import serve
from tests.conferencing.goto_simulator import GoToAccount, goto_app
from tests.conferencing.webex_simulator import WebexAccount, webex_app

pytestmark = pytest.mark.browser

ADA = "ada.lovelace@acme.example"
GRACE = "grace.hopper@acme.example"
ALAN = "alan.turing@acme.example"
GOTO_LABEL = "GoTo Meeting, Training or Webinar"
# Three months are at most 92 days: a day past any of them.
PAST_THREE_MONTHS_AND_A_DAY = 93 * 24 * 3600


def _stand_in(context: BrowserContext, pattern: str, title: str) -> None:
    """Providers' own sites are out of this machine's reach: a page stands in for them."""
    context.route(
        pattern,
        lambda route: route.fulfill(content_type="text/html", body=f"<title>{title}</title>"),
    )


def _map_account(page: Page, server: Server, provider: str, fields: dict[str, str]) -> None:
    page.goto(f"{server.url}/setup/conferencing")
    page.get_by_label("Provider").select_option(provider)
    for label, value in fields.items():
        field = page.get_by_label(label)
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_role("button", name=re.compile(r"^Map .* Account$")).click()
    expect(page.get_by_text(re.compile("account is connected"))).to_be_visible()


def _meet_now_with(page: Page, name: str) -> None:
    """Start Meet Now from the hover card over `name` on the People page."""
    page.get_by_label("Search people").first.fill(name.split()[0].lower())
    link = page.locator("#people-results").get_by_role("link", name=name)
    link.hover()
    card = page.get_by_role("dialog", name=name)
    expect(card).to_be_visible()
    card.get_by_role("button", name="Meet Now").click()


# GoTo Meeting: each person's own username and password.


@pytest.fixture(scope="module")
def goto() -> Iterator[tuple[GoToAccount, str]]:
    account = GoToAccount("acme-goto-client", "acme-goto-secret")
    account.add_organizer("grace@goto.example", "grace-goto-pass", GRACE, "Grace", "Hopper")
    with serve(goto_app(account)) as url:
        yield account, url


@pytest.fixture(scope="module")
def goto_server(
    tmp_path_factory: pytest.TempPathFactory, goto: tuple[GoToAccount, str], rooms_url: str
) -> Iterator[Server]:
    env = {
        "PORTAL_GOTO_API_URL": goto[1],
        "PORTAL_GOTO_OAUTH_URL": f"{goto[1]}/oauth/token",
        "PORTAL_JITSI_URL": rooms_url,
    }
    with serve_demo(tmp_path_factory.mktemp("goto"), env) as running:
        yield running


def test_a_goto_host_enters_their_password_and_meet_now_opens_a_goto_meeting(
    browser: Browser, goto_server: Server, goto: tuple[GoToAccount, str]
) -> None:
    admin, page = signed_in(browser, goto_server, ADA)
    _map_account(
        page,
        goto_server,
        "goto",
        {
            "OAuth client ID": "acme-goto-client",
            "OAuth client secret": "acme-goto-secret",
            "Product": "meeting",
        },
    )
    admin.close()

    host, grace = signed_in(browser, goto_server, GRACE)
    _stand_in(host, "https://goto.example/**", "GoTo Meeting")
    # Until she enters her GoTo password, Meet Now sends her to her Conferencing Accounts.
    _meet_now_with(grace, "Alan Turing")
    toast = grace.locator("#toasts .toast-error")
    expect(toast).to_contain_text("username and password")
    toast.get_by_role("link", name=re.compile("Conferencing Accounts")).click()
    expect(grace.get_by_role("heading", name="Conferencing Accounts")).to_be_visible()
    expect(grace.get_by_role("link", name="Conferencing Accounts")).to_have_attribute(
        "aria-current", "page"
    )

    grace.get_by_label(f"{GOTO_LABEL} username").fill("grace@goto.example")
    grace.get_by_label(f"{GOTO_LABEL} password").fill("not-her-password")
    grace.get_by_role("button", name="Save").click()
    expect(grace.get_by_text("GoTo refused this username and password")).to_be_visible()
    grace.get_by_label(f"{GOTO_LABEL} password").fill("grace-goto-pass")
    grace.get_by_role("button", name="Save").click()
    account = grace.locator("dl.facts")
    expect(account).to_contain_text("grace@goto.example")
    expect(account).to_contain_text(GRACE)

    grace.get_by_role("link", name="People").first.click()
    with host.expect_page() as opened:
        _meet_now_with(grace, "Alan Turing")
    opened.value.wait_for_url(re.compile(r"^https://goto\.example/start/"))
    assert len(goto[0].meetings) == 1
    host.close()


# Webex in SSO mode: synced by email, and each host authorizes the portal.


@pytest.fixture(scope="module")
def webex() -> Iterator[tuple[WebexAccount, str]]:
    account = WebexAccount("acme-webex-client", "acme-webex-secret")
    account.add_person(ALAN, "Alan Turing")
    with serve(webex_app(account)) as url:
        yield account, url


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clock") / "offset"


@pytest.fixture(scope="module")
def webex_server(
    tmp_path_factory: pytest.TempPathFactory,
    webex: tuple[WebexAccount, str],
    rooms_url: str,
    clock_file: Path,
) -> Iterator[Server]:
    env = {
        "PORTAL_WEBEX_API_URL": f"{webex[1]}/v1",
        "PORTAL_WEBEX_XML_URL": f"{webex[1]}/WBXService/XMLService",
        "PORTAL_JITSI_URL": rooms_url,
        "PORTAL_TEST_CLOCK_FILE": str(clock_file),
    }
    with serve_demo(tmp_path_factory.mktemp("webex"), env) as running:
        yield running


def _authorize_at_webex(page: Page) -> None:
    """The toast's window: the Webex account's email and Proceed, then Webex's own page."""
    toast = page.locator("#toasts .toast-error")
    expect(toast).to_contain_text("asks you to let the portal start meetings for you")
    expect(toast.locator(".host-action-email")).to_have_text(ALAN)
    toast.get_by_role("link", name="Proceed").click()
    expect(page.get_by_role("heading", name="Sign in to Webex")).to_be_visible()
    page.get_by_label("Email address").fill(ALAN)
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_text("Webex (SSO) is authorized")).to_be_visible()


def test_a_webex_host_authorizes_the_portal_then_hosts_and_is_asked_again_after_3_months(
    browser: Browser,
    webex_server: Server,
    webex: tuple[WebexAccount, str],
    clock_file: Path,
) -> None:
    account, _ = webex
    admin, page = signed_in(browser, webex_server, ADA)
    _map_account(
        page,
        webex_server,
        "webex",
        {
            "Integration client ID": account.client_id,
            "Integration client secret": account.client_secret,
            "Administrator's refresh token": account.admin_refresh_token,
        },
    )
    admin.close()

    host, alan = signed_in(browser, webex_server, ALAN)
    _stand_in(host, "https://acme.webex.example/**", "Webex")
    # His own page finds his Webex account by email, with no input.
    alan.goto(f"{webex_server.url}/settings/conferencing")
    expect(alan.get_by_text(ALAN).first).to_be_visible()
    expect(alan.locator(".conferencing-account")).to_contain_text(ALAN, timeout=15_000)
    expect(alan.locator(".conferencing-account")).not_to_contain_text("Syncing")

    alan.get_by_role("link", name="People").first.click()
    _meet_now_with(alan, "Grace Hopper")
    _authorize_at_webex(alan)

    alan.get_by_role("link", name="People").first.click()
    with host.expect_page() as opened:
        _meet_now_with(alan, "Grace Hopper")
    person = account.by_email(ALAN)
    assert person is not None
    opened.value.wait_for_url(account.rooms[person["id"]])

    # Three months and a day after that session, Webex must be authorized again.
    clock_file.write_text(str(PAST_THREE_MONTHS_AND_A_DAY))
    try:
        alan.get_by_role("link", name="People").first.click()
        _meet_now_with(alan, "Grace Hopper")
        _authorize_at_webex(alan)
    finally:
        clock_file.write_text("0")
    host.close()
