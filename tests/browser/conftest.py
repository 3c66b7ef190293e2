"""A real portal server on a free port with the demo company, and Debian's Chromium to drive it."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from portal.accounts.demo import DEMO_PASSWORD
from tests.mail.conftest import Inbox, SmtpServer
from tests.servers import free_port, wait_until_serving

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path


@contextlib.contextmanager
def serve_demo(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`portal demo` in a subprocess on a free port, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({"PORTAL_DATA_DIR": str(data_dir), "PORTAL_BASE_URL": url, **(extra_env or {})})
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        wait_until_serving(url, process, data_dir / "server.log")
        yield Server(url, data_dir)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_demo(tmp_path_factory.mktemp("portal-data")) as running:
        yield running


# Per module: Playwright's sync API runs an event loop while it is open, and the async tests in
# other modules need the thread's loop free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium package as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context()
    new_page = context.new_page()
    new_page.set_default_timeout(10_000)
    yield new_page
    ARTIFACTS.mkdir(exist_ok=True)
    new_page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


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


# Per module, as each module serves its own portal with them.
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


def signed_in(browser: Browser, server: Server, email: str) -> tuple[BrowserContext, Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server.url}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="People")).to_be_visible()
    return context, page


def mail_to(smtp: SmtpServer, address: str, *, count: int = 1) -> list[EmailMessage]:
    """The messages to `address`, once `count` have arrived; then a moment for any extra one."""
    deadline = time.monotonic() + 15
    while len(smtp.inbox.to(address)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    return smtp.inbox.to(address)
