"""Notifications in Chromium: a colleague's invitation appears live in an open page, on the
embedded demo and across two web processes on PostgreSQL."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from portal.accounts.demo import DEMO_PASSWORD
from tests.browser.conftest import Server
from tests.conftest import PASSWORD
from tests.notifications.servers import (
    add_people,
    fresh_database,
    invite,
    signed_in,
    user_id,
    web_process,
)

pytestmark = pytest.mark.browser

HOST = "grace.hopper@acme.example"
INVITEE = "mei.tanaka@acme.example"
ROOM = re.compile(r"^https://meet\.jit\.si/")
# A live notice must show within this many milliseconds of being raised.
LIVE_MS = 2_000


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A second person's browser, beside the `page` fixture's."""
    other = browser.new_context()
    yield other
    other.close()


def _sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="People")).to_be_visible()


def _csrf(page: Page) -> str:
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


def _demo_user_id(server: Server, email: str) -> int:
    with sqlite3.connect(server.data_dir / "portal.db") as connection:
        (found,) = connection.execute("select id from users where email = ?", (email,)).fetchone()
    return int(found)


def _meet_now(host: Page, server: Server, invitee_id: int) -> None:
    """The host invites from their own browser, as the Meet Now form posts."""
    response = host.request.post(
        f"{server.url}/meetings/start",
        form={"invitee": str(invitee_id), "request_key": os.urandom(8).hex()},
        headers={"X-CSRF-Token": _csrf(host)},
    )
    assert response.status == 200 and "Invitation sent to" in response.text(), response.text()


def _stand_in_for_jitsi(route: Route) -> None:
    route.fulfill(content_type="text/html", body="<title>Room</title><h1>The room</h1>")


def test_an_invitation_appears_live_and_opens_the_room(
    page: Page, context: BrowserContext, server: Server
) -> None:
    _sign_in(page, server.url, INVITEE, DEMO_PASSWORD)
    page.request.post(f"{server.url}/notifications/read-all", headers={"X-CSRF-Token": _csrf(page)})
    page.reload()
    bell = page.locator("#notifications-bell")
    expect(bell).to_have_attribute("aria-label", "Notifications")
    host = context.new_page()
    _sign_in(host, server.url, HOST, DEMO_PASSWORD)

    _meet_now(host, server, _demo_user_id(server, INVITEE))
    toast = page.locator("#toasts .toast-notice")
    expect(toast).to_contain_text("Grace Hopper invites you to meet now", timeout=LIVE_MS)
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread", timeout=LIVE_MS)
    expect(bell.locator(".bell-badge")).to_have_text("1")

    bell.click()
    dropdown = page.locator(".notifications-dropdown")
    expect(dropdown.locator(".notice-unread")).to_contain_text("Grace Hopper invites you")
    dropdown.get_by_role("button", name="Mark all as read").click()
    expect(bell).to_have_attribute("aria-label", "Notifications")
    expect(dropdown.locator(".notice-unread")).to_have_count(0)

    _meet_now(host, server, _demo_user_id(server, INVITEE))
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread", timeout=LIVE_MS)
    page.route(ROOM, _stand_in_for_jitsi)
    page.goto(f"{server.url}/notifications")
    page.locator(".notice-unread").get_by_role("button").click()
    expect(page).to_have_url(ROOM)
    page.goto(f"{server.url}/notifications")
    expect(page.locator(".notice-unread")).to_have_count(0)
    expect(page.locator("#notifications-bell")).to_have_attribute("aria-label", "Notifications")


def test_a_notice_raised_in_one_web_process_reaches_a_browser_on_another(
    page: Page, tmp_path: Path
) -> None:
    if not os.environ.get("PORTAL_TEST_DATABASE_URL"):
        pytest.skip("several web processes need PostgreSQL: set PORTAL_TEST_DATABASE_URL")
    people = {"ada@acme.example": "Ada Lovelace", "bob@acme.example": "Bob Member"}
    with fresh_database(tmp_path) as database_url:
        add_people(database_url, tmp_path, people)
        bob_id = user_id(database_url, "bob@acme.example")
        with (
            web_process(database_url, tmp_path / "a") as first,
            web_process(database_url, tmp_path / "b") as second,
            signed_in(first, "ada@acme.example") as ada,
        ):
            invite(ada, bob_id)
            _sign_in(page, second.url, "bob@acme.example", PASSWORD)
            bell = page.locator("#notifications-bell")
            # The stream's first count: the page on the second process is listening.
            expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread")

            invite(ada, bob_id)
            expect(page.locator("#toasts .toast-notice")).to_contain_text(
                "Ada Lovelace invites you to meet now", timeout=LIVE_MS
            )
            expect(bell).to_have_attribute("aria-label", "Notifications, 2 unread")
