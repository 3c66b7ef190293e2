"""A person's first day, in Chromium: the admin adds them, they set a password from the email,
edit their profile, and find Company Setup closed to them."""

from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import Page, expect

from portal.accounts.demo import DEMO_PASSWORD
from tests.browser.conftest import Server

pytestmark = pytest.mark.browser


def _set_password_link(server: Server, email: str) -> str:
    with sqlite3.connect(server.data_dir / "portal.db") as connection:
        (body,) = connection.execute(
            "select body_text from outbox_message where to_address = ? order by id desc limit 1",
            (email,),
        ).fetchone()
    match = re.search(r"https?://\S+/set-password/\S+", body)
    assert match, body
    return match.group(0)


def _sign_in(page: Page, server: Server, email: str, password: str) -> None:
    page.goto(f"{server.url}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def _sign_out(page: Page) -> None:
    page.locator("details.user-menu summary").click()
    page.get_by_role("menuitem", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()


def test_admin_adds_a_person_who_sets_a_password_and_edits_their_profile(
    page: Page, server: Server
) -> None:
    _sign_in(page, server, "ada.lovelace@acme.example", DEMO_PASSWORD)
    expect(page.get_by_role("heading", name="People")).to_be_visible()
    page.get_by_role("link", name="Company Setup").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    page.get_by_role("link", name="Add person").click()
    page.get_by_label("Name").fill("Rosalind Franklin")
    page.get_by_label("Email").fill("Rosalind.Franklin@acme.example")
    page.get_by_label("Title").fill("Research Scientist")
    page.get_by_label("Department").fill("Product")
    page.get_by_label("Time zone").select_option("Europe/London")
    page.get_by_role("button", name="Add person and send the link").click()
    expect(page.get_by_text("Rosalind Franklin is added")).to_be_visible()
    expect(page.get_by_role("heading", name="Rosalind Franklin")).to_be_visible()
    page.get_by_role("link", name="← Users").click()
    page.get_by_label("Find people").fill("rosalind")
    expect(page.locator("#user-list tbody tr")).to_have_count(1)
    expect(page.locator("#user-list")).to_contain_text("Invited")
    _sign_out(page)

    page.goto(_set_password_link(server, "rosalind.franklin@acme.example"))
    expect(page.get_by_text("rosalind.franklin@acme.example")).to_be_visible()
    page.get_by_label("New password").fill("double helix photo 51")
    page.get_by_label("Type it again").fill("double helix photo 51")
    page.get_by_role("button", name="Set password and sign in").click()
    expect(page.get_by_text("Your password is set.")).to_be_visible()
    _sign_out(page)

    _sign_in(page, server, "rosalind.franklin@acme.example", "double helix photo 51")
    expect(page.get_by_role("heading", name="People")).to_be_visible()
    expect(page.get_by_role("link", name="Company Setup")).to_have_count(0)
    page.locator("details.user-menu summary").click()
    page.get_by_role("menuitem", name="Account Settings").click()
    page.get_by_label("Title").fill("Chemist and X-ray crystallographer")
    page.get_by_label("Phone").fill("+44 20 7946 0051")
    page.get_by_label("Time zone").select_option("Europe/Paris")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Your profile is saved.")).to_be_visible()
    expect(page.get_by_label("Title")).to_have_value("Chemist and X-ray crystallographer")

    page.goto(f"{server.url}/setup/users")
    expect(page.get_by_text("Only company admins can open Company Setup.")).to_be_visible()


def test_wrong_password_shows_a_message_in_the_page(page: Page, server: Server) -> None:
    _sign_in(page, server, "grace.hopper@acme.example", "not her password")
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")


def test_people_search_filters_as_you_type(page: Page, server: Server) -> None:
    _sign_in(page, server, "grace.hopper@acme.example", DEMO_PASSWORD)
    page.get_by_label("Search people", exact=True).first.fill("engineer")
    page.keyboard.press("Enter")
    expect(page.locator("li.person")).to_have_count(9)
    page.locator("#people-q").fill("Tanaka")
    expect(page.locator("li.person")).to_have_count(1)
    expect(page.locator("li.person")).to_contain_text("Mei Tanaka")
