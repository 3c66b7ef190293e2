"""The directory in Chromium: search as you type, move with the keyboard, and hover cards."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from portal.accounts.demo import DEMO_PASSWORD
from tests.browser.conftest import Server

pytestmark = pytest.mark.browser

CARD = "#hovercard"


def _sign_in(page: Page, server: Server, email: str = "grace.hopper@acme.example") -> None:
    page.goto(f"{server.url}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="People")).to_be_visible()


def _card_requests(server: Server, path: str) -> int:
    return (server.data_dir / "server.log").read_text().count(f"GET {path} ")


def test_search_updates_the_results_as_you_type_without_reloading(
    page: Page, server: Server
) -> None:
    _sign_in(page, server)
    page.evaluate("window.stillTheSamePage = true")
    page.locator("#people-q").press_sequentially("tanaka", delay=30)
    expect(page.locator("li.person")).to_have_count(1)
    expect(page.locator("li.person")).to_contain_text("Mei Tanaka")
    expect(page).to_have_url(re.compile(r"/people\?q=tanaka"))
    expect(page.locator("#people-status")).to_have_text("1 person found.")
    page.locator("#people-department").select_option("Sales")
    expect(page.locator("#people-results")).to_contain_text("No one matches “tanaka” in Sales.")
    assert page.evaluate("window.stillTheSamePage") is True


def test_arrow_keys_move_through_the_results_and_enter_opens_a_profile(
    page: Page, server: Server
) -> None:
    _sign_in(page, server)
    page.locator("#people-q").fill("engineer")
    expect(page.locator("li.person")).to_have_count(9)
    names = page.locator("#people-results .person-link")
    page.locator("#people-q").press("ArrowDown")
    expect(names.nth(0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(names.nth(1)).to_be_focused()
    # One Tab stop for the list: the name last visited.
    assert names.nth(1).get_attribute("tabindex") == "0"
    assert names.nth(0).get_attribute("tabindex") == "-1"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    expect(page.locator("#people-q")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("End")
    last = names.nth(8)
    expect(last).to_be_focused()
    name = last.inner_text()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_text("Local time")).to_be_visible()


def test_top_bar_suggests_people_and_opens_one_from_the_keyboard(
    page: Page, server: Server
) -> None:
    _sign_in(page, server)
    search = page.locator("#topbar-search")
    search.press_sequentially("engineer", delay=30)
    listbox = page.get_by_role("listbox", name="People")
    expect(listbox).to_be_visible()
    expect(search).to_have_attribute("aria-expanded", "true")
    options = listbox.get_by_role("option")
    # Eight of the nine engineers, then "See all results".
    expect(options).to_have_count(9)
    expect(options.last).to_have_text("See all results for “engineer”")
    search.press("ArrowDown")
    search.press("ArrowDown")
    second = options.nth(1)
    expect(second).to_have_attribute("aria-selected", "true")
    expect(search).to_have_attribute("aria-activedescendant", second.get_attribute("id") or "")
    name = second.locator("strong").inner_text()
    search.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(name)

    page.locator("#topbar-search").fill("tanaka")
    expect(page.get_by_role("option", name="See all results for “tanaka”")).to_be_visible()
    page.locator("#topbar-search").press("Escape")
    expect(page.get_by_role("listbox", name="People")).to_be_hidden()
    page.locator("#topbar-search").press("Enter")
    expect(page).to_have_url(re.compile(r"/people\?q=tanaka"))
    expect(page.locator("li.person")).to_have_count(1)


def test_hovering_a_name_shows_the_card_which_escape_and_leaving_close(
    page: Page, server: Server
) -> None:
    _sign_in(page, server)
    page.locator("#people-q").fill("hannah")
    expect(page.locator("li.person")).to_have_count(1)
    name = page.locator("#people-results .person-link", has_text="Hannah Schmidt")
    path = "/" + (name.get_attribute("data-hovercard") or "").split("/", 3)[3]
    name.hover()
    card = page.locator(CARD)
    expect(card).to_be_visible()
    expect(card).to_have_attribute("role", "dialog")
    expect(card.get_by_role("heading", name="Hannah Schmidt")).to_be_visible()
    expect(card).to_contain_text("Account Executive · Sales")
    expect(card).to_contain_text("Europe/Berlin")
    expect(card.get_by_role("button", name="Meet Now")).to_be_visible()
    expect(name).to_have_attribute("aria-expanded", "true")
    box, link_box = card.bounding_box(), name.bounding_box()
    assert box and link_box and 0 <= box["y"] - (link_box["y"] + link_box["height"]) <= 16
    page.keyboard.press("Escape")
    expect(card).to_be_hidden()
    expect(name).to_have_attribute("aria-expanded", "false")

    # The pointer can travel onto the card; leaving both closes it.
    page.mouse.move(5, 5)
    name.hover()
    expect(card).to_be_visible()
    card.get_by_role("heading").hover()
    page.wait_for_timeout(400)
    expect(card).to_be_visible()
    page.mouse.move(5, 5)
    expect(card).to_be_hidden()
    # The browser kept the card (Cache-Control: private, max-age=60): no second request.
    assert _card_requests(server, path) == 1


def test_focusing_a_name_from_the_keyboard_shows_the_card_which_tab_enters(
    page: Page, server: Server
) -> None:
    _sign_in(page, server)
    page.locator("#people-q").fill("linus")
    expect(page.locator("li.person")).to_have_count(1)
    name = page.locator("#people-results .person-link")
    page.locator("#people-q").focus()
    page.keyboard.press("Tab")  # the department
    page.keyboard.press("Tab")  # Search
    page.keyboard.press("Tab")
    expect(name).to_be_focused()
    card = page.locator(CARD)
    expect(card).to_be_visible()
    expect(card).to_contain_text("Linus Berg")
    page.keyboard.press("Tab")
    expect(card.get_by_role("link", name="Linus Berg")).to_be_focused()
    page.keyboard.press("Tab")
    expect(card.get_by_role("button", name="Meet Now")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(name).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    expect(card).to_be_hidden()
    expect(name).to_be_focused()
