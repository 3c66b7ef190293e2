"""Meet Now in Chromium: from a hover card and from the Create menu, with real email."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from portal.accounts.demo import DEMO_PASSWORD
from tests.browser.conftest import ARTIFACTS, Server, serve_demo
from tests.mail.conftest import Inbox, SmtpServer
from tests.servers import free_port

pytestmark = pytest.mark.browser

ADA = "ada.lovelace@acme.example"
ROOM = re.compile(r"http://127\.0\.0\.1:\d+/rooms/portal-[a-z2-7]{26}$")


class _RoomPage(BaseHTTPRequestHandler):
    """Stands in for the Jitsi service: any room path answers with a page naming the room."""

    def do_GET(self) -> None:
        body = f"<title>Room {self.path}</title><h1>Jitsi room {self.path}</h1>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def rooms_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RoomPage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/rooms"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port(), Inbox())
    server.start()
    yield server
    server.stop()


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


def _signed_in(browser: Browser, server: Server, email: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server.url}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="People")).to_be_visible()
    return context, page


def _mail_to(smtp: SmtpServer, address: str, *, count: int = 1) -> list[EmailMessage]:
    """The messages to `address`, once `count` have arrived; then a moment for any extra one."""
    deadline = time.monotonic() + 15
    while len(smtp.inbox.to(address)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    return smtp.inbox.to(address)


def _join_link(mail: EmailMessage) -> str:
    text = mail.get_body(("plain",))
    assert text is not None
    match = re.search(r"https?://\S+/join/\S+", text.get_content())
    assert match, text.get_content()
    return match.group(0)


def test_hover_a_name_and_meet_now(browser: Browser, meet_server: Server, smtp: SmtpServer) -> None:
    context, page = _signed_in(browser, meet_server, ADA)
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

    (mail,) = _mail_to(smtp, "grace.hopper@acme.example")
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
    host, page = _signed_in(browser, meet_server, ADA)
    invitee, alan = _signed_in(browser, meet_server, "alan.turing@acme.example")

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
        mails = _mail_to(smtp, address)
        assert len(mails) == 1, address
        assert "Design review in 2 minutes?" in mails[0].get_body(("plain",)).get_content()
    host.close()
    invitee.close()
