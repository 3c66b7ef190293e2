"""Company Setup > General > Web Conferencing in Chromium: the admin maps the company's Zoom
account (the simulator), syncs, maps one person by hand, narrows whom the connection serves to
two departments, and a mapped person's Meet Now opens their Zoom personal room."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Server, serve_demo, signed_in
from tests.conferencing.conftest import serve
from tests.conferencing.zoom_simulator import ZoomAccount, zoom_app

pytestmark = pytest.mark.browser

ADA = "ada.lovelace@acme.example"
CREDENTIALS = {"Account ID": "acme-account", "Client ID": "acme-client"}
SECRET = "acme-client-secret"


@dataclass(frozen=True)
class Zoom:
    account: ZoomAccount
    url: str
    users: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def zoom() -> Iterator[Zoom]:
    """A Zoom account with users that match the demo people by email (one in other letter
    case), one who matches no one, and one to map by hand."""
    account = ZoomAccount(CREDENTIALS["Account ID"], CREDENTIALS["Client ID"], SECRET)
    users = {
        "grace": account.add_user("grace.hopper@acme.example", "Grace", "Hopper"),
        "alan": account.add_user("Alan.Turing@ACME.example", "Alan", "Turing"),
        "stranger": account.add_user("stranger@elsewhere.example", "Sam", "Stranger"),
        "kenji": account.add_user("kenji@personal.example", "Kenji", "Watanabe"),
    }
    # Small pages, answered slowly: the sync takes long enough for its progress to show.
    account.max_page_size = 2
    with serve(zoom_app(account)) as url:
        yield Zoom(account, url, users)


@pytest.fixture(scope="module")
def conferencing_server(
    tmp_path_factory: pytest.TempPathFactory,
    zoom: Zoom,
    rooms_url: str,
) -> Iterator[Server]:
    env = {
        "PORTAL_ZOOM_API_URL": f"{zoom.url}/v2",
        "PORTAL_ZOOM_OAUTH_URL": f"{zoom.url}/oauth/token",
        "PORTAL_JITSI_URL": rooms_url,
    }
    with serve_demo(tmp_path_factory.mktemp("conferencing"), env) as running:
        yield running


def _refresh_sync(page: Page) -> None:
    page.get_by_role("button", name="Refresh sync").click()
    status = page.locator("#sync-status")
    expect(status).to_contain_text("Sync running")
    expect(status).to_contain_text(re.compile(r"\d+ pages? read"))
    expect(status).to_contain_text("Sync finished", timeout=30_000)


def test_admin_maps_zoom_syncs_and_meet_now_opens_the_zoom_room(
    browser: Browser,
    conferencing_server: Server,
    zoom: Zoom,
) -> None:
    admin, page = signed_in(browser, conferencing_server, ADA)
    page.get_by_role("link", name="Company Setup").click()
    nav = page.get_by_role("navigation", name="Company Setup")
    nav.get_by_role("link", name="Web Conferencing").click()
    expect(page.get_by_role("heading", name="Web Conferencing", exact=True)).to_be_visible()
    expect(page.get_by_text("Now: Jitsi Meet")).to_be_visible()

    # Switching the provider swaps the fields in place, with the provider's notes and name.
    page.get_by_label("Provider").select_option("bluejeans")
    expect(page.get_by_role("button", name="Map BlueJeans Account")).to_be_visible()
    expect(page.get_by_role("note")).to_contain_text("retired BlueJeans")
    page.get_by_label("Provider").select_option("goto")
    expect(page.get_by_label("Product")).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value("GoTo Meeting, Training or Webinar")
    page.get_by_label("Provider").select_option("zoom")
    expect(page.get_by_role("button", name="Map Zoom Account")).to_be_visible()
    expect(page.get_by_label("Name")).to_have_value("Zoom")

    # A wrong secret is explained, and the other fields are kept.
    for label, value in CREDENTIALS.items():
        page.get_by_label(label).fill(value)
    page.get_by_label("Client secret").fill("not-the-secret")
    page.get_by_role("button", name="Map Zoom Account").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved.")
    expect(page.get_by_label("Client ID")).to_have_value(CREDENTIALS["Client ID"])
    expect(page.get_by_label("Client secret")).to_have_value("")
    page.get_by_label("Client secret").fill(SECRET)
    page.get_by_role("button", name="Map Zoom Account").click()
    expect(page.get_by_text("The Zoom account is connected as “Zoom”")).to_be_visible()
    expect(page.get_by_role("heading", name="Zoom", exact=True)).to_be_visible()
    expect(page.get_by_text("••••••••")).to_be_visible()
    expect(page.locator("#mapping")).to_contain_text("No one is mapped yet")

    zoom.account.delay = 0.3
    _refresh_sync(page)
    expect(page.locator("#sync-status")).to_contain_text("2 newly mapped")
    mapping = page.locator("#mapping")
    expect(mapping).to_contain_text("Grace Hopper")
    expect(mapping).to_contain_text("Alan Turing")
    expect(mapping.get_by_role("link", name=re.compile(r"^Mapped \(2\)"))).to_be_visible()

    mapping.get_by_role("link", name=re.compile("^People without a Zoom account")).click()
    expect(page.locator("#mapping")).to_contain_text("Ada Lovelace")
    expect(page.locator("#mapping")).to_contain_text("No Zoom user has this email")
    page.locator("#mapping").get_by_role(
        "link", name=re.compile("^Zoom users without a portal person")
    ).click()
    unmatched = page.locator("#mapping")
    expect(unmatched).to_contain_text("stranger@elsewhere.example")
    expect(unmatched).to_contain_text("No portal person has this email")

    # Kenji uses a personal address at Zoom: the admin maps him by hand.
    unmatched.get_by_role("link", name="Map to a person for kenji@personal.example").click()
    expect(
        page.get_by_role("heading", name="Map kenji@personal.example to a person")
    ).to_be_visible()
    page.get_by_label("Find a person").fill("kenji")
    page.get_by_role("button", name="Map to Kenji Watanabe").click()
    expect(page.get_by_text("kenji@personal.example is mapped by hand")).to_be_visible()
    row = page.locator("#mapping tbody tr", has_text="Kenji Watanabe")
    expect(row).to_contain_text("Manual")

    # The next sync keeps the hand mapping.
    _refresh_sync(page)
    page.get_by_label("Find in the mapping").fill("kenji")
    row = page.locator("#mapping tbody tr", has_text="Kenji Watanabe")
    expect(row).to_contain_text("Manual")
    expect(row).to_contain_text("kenji@personal.example")
    page.get_by_role("link", name="Sync history").click()
    expect(page.locator("#history tbody tr")).to_have_count(2)

    # The connection serves Engineering and Product only: Sales people are no longer listed.
    page.get_by_role("link", name="← Zoom").click()
    page.get_by_label("People of some departments").check()
    page.get_by_label("Engineering").check()
    page.get_by_label("Product").check()
    page.get_by_role("button", name="Save the settings").click()
    expect(page.get_by_text("The settings of “Zoom” are saved.")).to_be_visible()
    _refresh_sync(page)
    page.locator("#mapping").get_by_role(
        "link", name=re.compile("^People without a Zoom account")
    ).click()
    people = page.locator("#mapping")
    expect(people).to_contain_text("Katherine Johnson")
    expect(people).not_to_contain_text("Chloé Martin")
    expect(people).not_to_contain_text("Ada Lovelace")

    # The overview lists it with whom it serves and its last sync.
    page.get_by_role("link", name="← Web Conferencing").click()
    row = page.locator("tbody tr", has_text="Zoom")
    expect(row).to_contain_text("People of Engineering, Product")
    expect(row).to_contain_text("3 mapped")
    expect(row).to_contain_text("Succeeded")
    admin.close()

    # Grace is mapped: her Meet Now opens her Zoom personal room.
    host, grace = signed_in(browser, conferencing_server, "grace.hopper@acme.example")
    # The simulator's join links are on a reserved domain: a stand-in answers.
    host.route(
        "https://zoom.example/j/**",
        lambda route: route.fulfill(content_type="text/html", body="<title>Zoom</title>"),
    )
    grace.get_by_label("Search people").first.fill("alan")
    alan = grace.locator("#people-results").get_by_role("link", name="Alan Turing")
    alan.hover()
    card = grace.get_by_role("dialog", name="Alan Turing")
    expect(card).to_be_visible()
    with host.expect_page() as opened:
        card.get_by_role("button", name="Meet Now").click()
    room = opened.value
    # The user list carries the PMI, not the link with its passcode: Zoom is asked for it.
    room.wait_for_url(zoom.users["grace"]["personal_meeting_url"])
    host.close()
