"""The calendar in Chromium: an event with the organizer's room, from the form to the room, and
an external guest answering from the invitation email."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ARTIFACTS, ROOM, Server, mail_to, serve_demo, signed_in
from tests.mail.conftest import SmtpServer

pytestmark = pytest.mark.browser

ADA = "ada.lovelace@acme.example"
ALAN = "alan.turing@acme.example"
GUEST = "guest@example.org"
# The room button asks for itself every 15 seconds.
POLL_MS = 20_000


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "offset"
    path.write_text("0")
    return path


@pytest.fixture(scope="module")
def calendar_server(
    tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer, rooms_url: str, clock_file: Path
) -> Iterator[Server]:
    env = {
        "PORTAL_SMTP_HOST": smtp.host,
        "PORTAL_SMTP_PORT": str(smtp.port),
        "PORTAL_SMTP_TLS": "none",
        "PORTAL_JITSI_URL": rooms_url,
        "PORTAL_TEST_CLOCK_FILE": str(clock_file),
    }
    with serve_demo(tmp_path_factory.mktemp("calendar"), env) as running:
        yield running


def _query(server: Server, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(server.data_dir / "portal.db") as db:
        return db.execute(sql, args).fetchall()


def _server_now(clock_file: Path) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float(clock_file.read_text()))


def _set_server_now(clock_file: Path, moment: dt.datetime) -> None:
    offset = moment - dt.datetime.now(dt.UTC)
    clock_file.write_text(str(offset.total_seconds()))


def _fill_event(page: Page, title: str, start: dt.datetime, end: dt.datetime) -> None:
    """The form's title and times; `start` and `end` are wall clock in the form's time zone."""
    page.get_by_label("Title").fill(title)
    page.get_by_label("Start date").fill(f"{start:%Y-%m-%d}")
    page.get_by_label("Start time").fill(f"{start:%H:%M}")
    page.get_by_label("End date").fill(f"{end:%Y-%m-%d}")
    page.get_by_label("End time").fill(f"{end:%H:%M}")


def _calendar_part(mail: EmailMessage) -> icalendar.Calendar:
    """The text/calendar alternative (not the invite.ics attachment), parsed."""
    parts = [
        part
        for part in mail.walk()
        if part.get_content_type() == "text/calendar" and not part.get_filename()
    ]
    assert len(parts) == 1, [part.get_content_type() for part in mail.walk()]
    assert parts[0].get_param("method") == "REQUEST"
    attachments = [part.get_filename() for part in mail.walk() if part.get_filename()]
    assert "invite.ics" in attachments
    return icalendar.Calendar.from_ical(parts[0].get_content())


def _attendees(event: icalendar.Event) -> list[str]:
    found = event.get("ATTENDEE", [])
    return [str(a).lower() for a in (found if isinstance(found, list) else [found])]


def _vevent(calendar: icalendar.Calendar) -> icalendar.Event:
    (event,) = calendar.walk("VEVENT")
    return event


def test_join_the_organizers_room_from_an_event(
    browser: Browser, calendar_server: Server, smtp: SmtpServer, clock_file: Path
) -> None:
    ((zone,),) = _query(calendar_server, "select time_zone from users where email = ?", ADA)
    ((alan_id, alan_zone),) = _query(
        calendar_server, "select id, time_zone from users where email = ?", ALAN
    )
    # 25 minutes ahead, on a whole minute: the form has no seconds.
    start = (_server_now(clock_file) + dt.timedelta(minutes=26)).replace(second=0, microsecond=0)
    local_start = start.astimezone(ZoneInfo(str(zone)))
    title = "Roadmap review"

    organizer, ada = signed_in(browser, calendar_server, ADA)
    participant, alan = signed_in(browser, calendar_server, ALAN)
    ada.goto(f"{calendar_server.url}/calendar/events/new")
    expect(ada.get_by_role("heading", name="New event")).to_be_visible()
    expect(ada.get_by_label("Time zone")).to_have_value(str(zone))
    _fill_event(ada, title, local_start, local_start + dt.timedelta(hours=1))
    picker = ada.get_by_role("combobox", name="Participants")
    picker.fill("alan")
    ada.get_by_role("option", name=re.compile("Alan Turing")).click()
    expect(ada.locator("#picker-chips .chip", has_text="Alan Turing")).to_be_visible()
    ada.get_by_role("group", name="Options").get_by_label("Use meeting organizer's room").check()
    ARTIFACTS.mkdir(exist_ok=True)
    ada.screenshot(path=str(ARTIFACTS / "calendar_event_form.png"), full_page=True)
    ada.get_by_role("button", name="Save", exact=True).click()

    expect(ada.get_by_role("heading", name=title)).to_be_visible()
    expect(ada.get_by_role("status").filter(has_text="Event created.")).to_be_visible()
    match = re.search(r"/calendar/events/(\d+)$", ada.url)
    assert match, ada.url
    event_id = int(match.group(1))
    expect(ada.get_by_role("link", name="Start meeting", disabled=True)).to_be_visible()

    alan.goto(f"{calendar_server.url}/calendar/events/{event_id}")
    expect(alan.get_by_role("heading", name=title)).to_be_visible()
    expect(alan.get_by_role("link", name="Join room", disabled=True)).to_be_visible()
    opens = (start - dt.timedelta(minutes=15)).astimezone(ZoneInfo(str(alan_zone)))
    expect(alan.get_by_text(f"Opens at {opens:%H:%M}")).to_be_visible()

    # Ten minutes before the start: the button's own poll brings it to life.
    _set_server_now(clock_file, start - dt.timedelta(minutes=10))
    join = alan.get_by_role("link", name="Join room", disabled=False)
    expect(join).to_be_visible(timeout=POLL_MS)
    expect(ada.get_by_role("link", name="Start meeting", disabled=False)).to_be_visible(
        timeout=POLL_MS
    )
    alan.screenshot(path=str(ARTIFACTS / "calendar_join_room.png"), full_page=True)
    join_href = join.get_attribute("href")
    assert join_href and "/calendar/join/" in join_href
    with participant.expect_page() as opened:
        join.click()
    room = opened.value
    room.wait_for_url(ROOM)
    expect(room.get_by_role("heading", name=re.compile("Jitsi room"))).to_be_visible()
    ((room_url,),) = _query(
        calendar_server, "select room_url from calendar_event where id = ?", event_id
    )
    assert room.url == room_url

    joins = _query(
        calendar_server,
        "select j.user_id, p.email from event_join j"
        " join event_participant p on p.id = j.participant_id where j.event_id = ?",
        event_id,
    )
    assert joins == [(alan_id, ALAN)]

    (mail,) = mail_to(smtp, ALAN)
    assert mail["Subject"].startswith(f"Invitation: {title} @ ")
    calendar = _calendar_part(mail)
    assert calendar["METHOD"] == "REQUEST"
    event = _vevent(calendar)
    assert event.decoded("DTSTART") == start
    assert f"mailto:{ALAN}" in _attendees(event)
    assert str(event["LOCATION"]) == join_href
    assert str(event["URL"]) == join_href
    organizer.close()
    participant.close()
    room.close()


def test_an_external_guest_accepts_from_the_email(
    browser: Browser, calendar_server: Server, smtp: SmtpServer, clock_file: Path
) -> None:
    ((zone,),) = _query(calendar_server, "select time_zone from users where email = ?", ADA)
    tomorrow = _server_now(clock_file).astimezone(ZoneInfo(str(zone))) + dt.timedelta(days=1)
    start = tomorrow.replace(hour=10, minute=0, second=0, microsecond=0)
    title = "Partner kickoff"

    organizer, ada = signed_in(browser, calendar_server, ADA)
    ada.goto(f"{calendar_server.url}/calendar/events/new")
    _fill_event(ada, title, start, start + dt.timedelta(hours=1))
    ada.get_by_label("Guests' email addresses").fill(GUEST)
    ada.get_by_role("button", name="Save", exact=True).click()
    expect(ada.get_by_role("heading", name=title)).to_be_visible()
    event_url = ada.url
    guest_row = ada.get_by_role("listitem").filter(has_text=GUEST)
    expect(guest_row).to_contain_text("No reply")

    (mail,) = mail_to(smtp, GUEST)
    event = _vevent(_calendar_part(mail))
    assert f"mailto:{GUEST}" in _attendees(event)
    text = mail.get_body(("plain",))
    assert text is not None
    accept = re.search(r"^Accept: (\S+)$", text.get_content(), re.MULTILINE)
    assert accept, text.get_content()

    outsider = browser.new_context()
    guest = outsider.new_page()
    guest.set_default_timeout(10_000)
    guest.goto(accept.group(1))
    expect(guest.get_by_role("heading", name=title)).to_be_visible()
    expect(guest.get_by_text("You have not answered yet.")).to_be_visible()
    guest.get_by_role("button", name="Accept").click()
    expect(
        guest.get_by_role("status").filter(has_text="Ada Lovelace now has your answer (Accepted)")
    ).to_be_visible()
    expect(guest.get_by_text("Your answer: Accepted.")).to_be_visible()
    expect(guest.get_by_role("button", name="Accept")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    guest.screenshot(path=str(ARTIFACTS / "calendar_guest_reply.png"), full_page=True)
    outsider.close()

    ada.goto(event_url)
    expect(guest_row).to_contain_text("Accepted")
    ada.goto(f"{calendar_server.url}/notifications")
    expect(ada.get_by_text(f"{GUEST} accepted “{title}”")).to_be_visible()
    organizer.close()
