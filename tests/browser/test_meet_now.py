"""Meet Now in Chromium: from a hover card and from the Create menu, with real email."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import ARTIFACTS, ROOM, Server, mail_to, serve_demo, signed_in
from tests.mail.conftest import SmtpServer

pytestmark = pytest.mark.browser

ADA = "ada.lovelace@acme.example"


@pytest.fixture(scope="module")
def meet_server(
    tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer, rooms_url: str
) -> Iterator[Server]:
    env = {
        "PORTAL_SMTP_HOST": smtp.host,
        "PORTAL_SMTP_PORT": str(smtp.port),
        "PORTAL_SMTP_TLS": "none",
        "PORTAL_JITSI_URL": rooms_url,
    }
    with serve_demo(tmp_path_factory.mktemp("meet-now"), env) as running:
        yield running


def _join_link(mail: EmailMessage) -> str:
    text = mail.get_body(("plain",))
    assert text is not None
    match = re.search(r"https?://\S+/join/\S+", text.get_content())
    assert match, text.get_content()
    return match.group(0)


def test_hover_a_name_and_meet_now(browser: Browser, meet_server: Server, smtp: SmtpServer) -> None:
    context, page = signed_in(browser, meet_server, ADA)
    page.get_by_label("Search people").first.fill("grace")
    grace = page.locator("#people-results").get_by_role("link", name="Grace Hopper")
    grace.hover()
    card = page.get_by_role("dialog", name="Grace Hopper")
    expect(card).to_be_visible()
    expect(card).to_contain_text("VP Engineering")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "hover_card.png"))
    with context.expect_page() as opened:
        card.get_by_role("button", name="Meet Now").click()
    room = opened.value
    room.wait_for_url(ROOM)
    expect(
        page.get_by_role("status").filter(has_text="Invitation sent to Grace Hopper")
    ).to_be_visible()

    (mail,) = mail_to(smtp, "grace.hopper@acme.example")
    assert mail["Subject"] == "Ada Lovelace invites you to meet now"
    guest = browser.new_context()
    joined = guest.new_page()
    joined.goto(_join_link(mail))
    assert joined.url == room.url
    with sqlite3.connect(meet_server.data_dir / "portal.db") as db:
        (joins,) = db.execute("select count(*) from meeting_join").fetchone()
    assert joins == 1
    guest.close()
    context.close()


def test_create_menu_invites_three_colleagues_and_a_guest(
    browser: Browser, meet_server: Server, smtp: SmtpServer
) -> None:
    host, page = signed_in(browser, meet_server, ADA)
    invitee, alan = signed_in(browser, meet_server, "alan.turing@acme.example")

    page.locator("details.create-menu summary").click()
    page.get_by_role("menuitem", name="Meet Now").click()
    dialog = page.get_by_role("dialog", name="Meet Now")
    expect(dialog).to_be_visible()
    picker = dialog.get_by_role("combobox", name="Colleagues")
    for typed, name in (("alan", "Alan Turing"), ("mei", "Mei Tanaka"), ("ravi", "Ravi Iyer")):
        picker.fill(typed)
        expect(dialog.get_by_role("option", name=re.compile(name))).to_be_visible()
        picker.press("Enter")
        expect(dialog.locator(".chip", has_text=name)).to_be_visible()
    # Backspace in the empty field takes the last one off; pick them again.
    picker.press("Backspace")
    expect(dialog.locator(".chip")).to_have_count(2)
    picker.fill("ravi")
    dialog.get_by_role("option", name=re.compile("Ravi Iyer")).click()
    dialog.get_by_label("Guests' email addresses").fill("guest@example.org")
    dialog.get_by_label("Message").fill("Design review in 2 minutes?")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "meet_now_dialog.png"))
    with host.expect_page() as opened:
        dialog.get_by_role("button", name="Send").click()
    opened.value.wait_for_url(ROOM)
    expect(dialog).to_be_hidden()

    # Alan, signed in elsewhere, sees the invitation arrive without reloading.
    expect(alan.get_by_text("Ada Lovelace invites you to meet now").first).to_be_visible()

    for address in (
        "alan.turing@acme.example",
        "mei.tanaka@acme.example",
        "ravi.iyer@acme.example",
        "guest@example.org",
    ):
        mails = mail_to(smtp, address)
        assert len(mails) == 1, address
        assert "Design review in 2 minutes?" in mails[0].get_body(("plain",)).get_content()
    host.close()
    invitee.close()
