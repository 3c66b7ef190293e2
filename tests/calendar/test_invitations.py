"""Invitation and cancellation emails, sent through the outbox to a real SMTP server and parsed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import secrets
from collections.abc import Iterator
from email.message import EmailMessage

import icalendar
import pytest
from sqlalchemy import select

from portal.accounts.models import Company, User
from portal.calendar.ics import event_calendar
from portal.calendar.invitations import (
    repeat_text,
    send_cancellations,
    send_invitations,
)
from portal.calendar.links import join_link
from portal.calendar.models import CalendarEvent, EventParticipant
from portal.calendar.wording import as_occurrence, when
from portal.db import UNSCOPED, Database, utcnow
from portal.mail.dispatch import send_outbox
from portal.mail.models import OutboxMessage
from portal.mail.services import readable_bodies
from portal.mail.smtp import SmtpSender
from portal.notifications.models import Notification
from portal.settings import Settings, SmtpSettings
from tests.mail.conftest import Inbox, SmtpServer
from tests.servers import free_port

GUEST = "gina@guest.example"
# Monday 7 December 2026, 09:00 in Berlin (08:00 UTC, 08:00 in London).
START = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port(), Inbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    smtp = SmtpSettings(
        host=smtp_server.host,
        port=smtp_server.port,
        tls="none",
        mail_from="Portal <portal@acme.example>",
    )
    return dataclasses.replace(settings, smtp=smtp)


async def make_event(
    db: Database,
    organizer: User,
    guests: list[User | str],
    *,
    title: str = "Weekly sync",
    starts_at: dt.datetime = START,
    minutes: int = 30,
    time_zone: str = "Europe/Berlin",
    uses_room: bool = True,
    rrule: str = "",
    last_ends_at: dt.datetime | None = None,
    all_day: bool = False,
) -> tuple[CalendarEvent, list[EventParticipant]]:
    """A series (or single event) and its participants, written directly as services would."""
    ends_at = starts_at + dt.timedelta(minutes=minutes)
    async with db.session(company_id=organizer.company_id, write=True) as session:
        event = CalendarEvent(
            company_id=organizer.company_id,
            organizer_id=organizer.id or 0,
            uid=f"{secrets.token_hex(8)}@portal.test",
            title=title,
            description="Agenda:\n1. Numbers\n2. Plans",
            location="Room 4",
            time_zone=time_zone,
            all_day=all_day,
            starts_at=starts_at,
            ends_at=ends_at,
            rrule=rrule,
            last_ends_at=last_ends_at or ends_at,
            uses_room=uses_room,
            room_url="https://rooms.example/ada" if uses_room else "",
        )
        session.add(event)
        await session.flush()
        participants = [
            EventParticipant(
                company_id=organizer.company_id,
                event_id=event.id or 0,
                user_id=guest.id if isinstance(guest, User) else None,
                email=guest.email if isinstance(guest, User) else guest,
                name=guest.display_name if isinstance(guest, User) else "",
                join_token=secrets.token_urlsafe(24),
            )
            for guest in guests
        ]
        session.add_all(participants)
        await session.commit()
    return event, participants


async def invite(
    db: Database,
    settings: Settings,
    company: Company,
    event: CalendarEvent,
    participants: list[EventParticipant],
    *,
    updated: bool = False,
) -> None:
    async with db.session(company_id=company.id, write=True) as session:
        series = await session.get(CalendarEvent, event.id)
        assert series is not None
        await send_invitations(session, settings, company, series, participants, updated=updated)
        await session.commit()


async def deliver(db: Database, settings: Settings, server: SmtpServer) -> list[EmailMessage]:
    before = len(server.inbox.received)
    await send_outbox(db, settings, SmtpSender(settings.smtp, timeout=5))
    return server.inbox.received[before:]


def calendar_of(mail: EmailMessage) -> tuple[EmailMessage, icalendar.Calendar, str]:
    """The text/calendar alternative, the calendar it holds, and the attached invite.ics."""
    assert mail.get_content_type() == "multipart/mixed"
    alternative, attached = mail.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    parts = list(alternative.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html", "text/calendar"]
    assert attached.get_filename() == "invite.ics"
    part = parts[2]
    assert isinstance(part, EmailMessage)
    text = part.get_content()
    assert attached.get_content() in (text, text.encode())
    return part, icalendar.Calendar.from_ical(text), text


def subject(mail: EmailMessage) -> str:
    return str(mail["Subject"])


def body(mail: EmailMessage, kind: str = "plain") -> str:
    found = mail.get_body((kind,))
    assert found is not None
    content: str = found.get_content()
    return content


async def notices(db: Database) -> list[Notification]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(select(Notification).order_by(Notification.id))
        return list(rows.scalars())


async def outbox(db: Database) -> list[OutboxMessage]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))
        return list(rows.scalars())


async def test_an_invitation_carries_the_event_the_calendar_and_the_reply_links(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    smtp_server: SmtpServer,
) -> None:
    event, (bob, gina) = await make_event(db, admin, [member, GUEST])
    await invite(db, mail_settings, acme, event, [bob, gina])
    mails = await deliver(db, mail_settings, smtp_server)
    assert sorted(str(m["To"]) for m in mails) == sorted(["Bob Member <bob@acme.example>", GUEST])
    (to_bob,) = smtp_server.inbox.to("bob@acme.example")
    assert to_bob["Reply-To"] == admin.email
    # Bob reads London time (the company's default zone), and the event's own beside it.
    assert subject(to_bob) == (
        "Invitation: Weekly sync @ Mon 7 Dec 2026, 08:00–08:30 (Europe/London)"
    )
    part, calendar, _ = calendar_of(to_bob)
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_charset() == "utf-8"
    assert calendar["METHOD"] == "REQUEST"
    (vevent,) = calendar.walk("VEVENT")
    assert str(vevent["UID"]) == event.uid
    assert int(vevent["SEQUENCE"]) == 0
    assert "ada@acme.example" in str(vevent["ORGANIZER"]).lower()
    attendees = vevent.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees]
    assert sorted(str(a).lower() for a in attendees) == [
        "mailto:bob@acme.example",
        f"mailto:{GUEST}",
    ]
    # Each recipient's calendar carries their own join link.
    assert f"/calendar/join/{bob.join_token}" in str(vevent["URL"])
    text = body(to_bob)
    assert "Weekly sync" in text and "Room 4" in text and "1. Numbers" in text
    assert "Mon 7 Dec 2026, 08:00–08:30 (Europe/London)" in text
    assert "Mon 7 Dec 2026, 09:00–09:30 (Europe/Berlin) in the event's time zone" in text
    assert "Ada Admin <ada@acme.example>" in text
    assert f"http://testserver/calendar/join/{bob.join_token}" in text
    assert "15 minutes before the start" in text
    for label in ("Accept", "Tentative", "Decline"):
        assert f"{label}: http://testserver/calendar/reply/" in text
    assert f"http://testserver/calendar/events/{event.id}" in text
    html = body(to_bob, "html")
    assert html.count('href="http://testserver/calendar/reply/') == 3
    assert f"/calendar/join/{bob.join_token}" in html

    (to_gina,) = smtp_server.inbox.to(GUEST)
    # A guest reads the event's zone, and gets no link into the portal they cannot open.
    assert "@ Mon 7 Dec 2026, 09:00–09:30 (Europe/Berlin)" in subject(to_gina)
    guest_text = body(to_gina)
    assert "in the event's time zone" not in guest_text
    assert "/calendar/events/" not in guest_text
    assert f"/calendar/join/{gina.join_token}" in guest_text
    assert f"/calendar/join/{bob.join_token}" not in guest_text
    _, guest_calendar, _ = calendar_of(to_gina)
    assert str(guest_calendar.walk("VEVENT")[0]["UID"]) == event.uid

    (notice,) = await notices(db)
    assert notice.user_id == member.id and notice.actor_id == admin.id
    assert notice.kind == "calendar_invitation"
    assert notice.url == f"/calendar/events/{event.id}"
    assert notice.text.startswith("Ada Admin invited you to “Weekly sync”")


async def test_the_calendar_part_is_labelled_as_the_issue_writes_it(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    smtp_server: SmtpServer,
) -> None:
    event, participants = await make_event(db, admin, [GUEST])
    await invite(db, mail_settings, acme, event, participants)
    (mail,) = await deliver(db, mail_settings, smtp_server)
    part, _, _ = calendar_of(mail)
    # Quoting a parameter's value changes nothing (RFC 2045); the parser on the way in adds it.
    label = str(part["Content-Type"]).replace('"', "")
    assert label == "text/calendar; method=REQUEST; charset=UTF-8"


async def test_without_the_room_there_is_no_join_link(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    smtp_server: SmtpServer,
) -> None:
    event, participants = await make_event(db, admin, [GUEST], uses_room=False)
    await invite(db, mail_settings, acme, event, participants)
    (mail,) = await deliver(db, mail_settings, smtp_server)
    assert "/calendar/join/" not in body(mail)
    assert "Join" not in body(mail)
    _, _, ics = calendar_of(mail)
    assert "/calendar/join/" not in ics


async def test_an_update_raises_the_sequence_and_keeps_the_uid(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    smtp_server: SmtpServer,
) -> None:
    event, participants = await make_event(db, admin, [member])
    await invite(db, mail_settings, acme, event, participants)
    async with db.session(company_id=acme.id, write=True) as session:
        series = await session.get(CalendarEvent, event.id)
        assert series is not None
        series.sequence = 1
        series.location = "Room 5"
        await session.commit()
    await invite(db, mail_settings, acme, event, participants, updated=True)
    # Sent side by side, they may arrive in either order.
    first, second = sorted(
        await deliver(db, mail_settings, smtp_server), key=lambda mail: subject(mail)[0] == "U"
    )
    assert subject(first).startswith("Invitation: Weekly sync @ ")
    assert subject(second).startswith("Updated invitation: Weekly sync @ ")
    assert "changed an event you are invited to" in body(second)
    _, before, _ = calendar_of(first)
    _, after, _ = calendar_of(second)
    assert after["METHOD"] == "REQUEST"
    (old,), (new,) = before.walk("VEVENT"), after.walk("VEVENT")
    assert str(old["UID"]) == str(new["UID"]) == event.uid
    assert int(new["SEQUENCE"]) > int(old["SEQUENCE"])
    assert "Room 5" in str(new["LOCATION"]) or "Room 5" in str(new.get("DESCRIPTION", ""))
    assert [n.text.split(":")[0] for n in await notices(db)] == [
        "Ada Admin invited you to “Weekly sync”",
        "Ada Admin updated “Weekly sync”",
    ]


async def test_a_cancelled_event_sends_cancel_with_the_same_uid(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    smtp_server: SmtpServer,
) -> None:
    event, participants = await make_event(db, admin, [member, GUEST])
    async with db.session(company_id=acme.id, write=True) as session:
        series = await session.get(CalendarEvent, event.id)
        assert series is not None
        series.cancelled_at = utcnow()
        series.sequence = 1
        await send_cancellations(session, mail_settings, acme, series, participants)
        await session.commit()
    mails = await deliver(db, mail_settings, smtp_server)
    assert len(mails) == 2
    for mail in mails:
        assert subject(mail).startswith("Cancelled: Weekly sync @ Mon 7 Dec 2026")
        assert "cancelled this event" in body(mail)
        part, calendar, _ = calendar_of(mail)
        assert part.get_param("method") == "CANCEL"
        assert calendar["METHOD"] == "CANCEL"
        (vevent,) = calendar.walk("VEVENT")
        assert str(vevent["UID"]) == event.uid
        assert str(vevent["STATUS"]) == "CANCELLED"
        assert "/calendar/reply/" not in body(mail)
    (notice,) = await notices(db)
    assert notice.kind == "calendar_cancelled" and notice.user_id == member.id
    assert notice.text == "Ada Admin cancelled “Weekly sync”"
    assert notice.url == f"/calendar/events/{event.id}"


async def test_cancelling_one_occurrence_names_it(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    smtp_server: SmtpServer,
) -> None:
    event, participants = await make_event(
        db,
        admin,
        [member],
        rrule="FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10",
        last_ends_at=START + dt.timedelta(days=32, minutes=30),
    )
    second_monday = START + dt.timedelta(days=7)
    async with db.session(company_id=acme.id, write=True) as session:
        series = await session.get(CalendarEvent, event.id)
        assert series is not None
        exception = CalendarEvent(
            company_id=acme.id or 0,
            organizer_id=admin.id or 0,
            uid=event.uid,
            sequence=1,
            title=event.title,
            time_zone=event.time_zone,
            starts_at=second_monday,
            ends_at=second_monday + dt.timedelta(minutes=30),
            last_ends_at=second_monday + dt.timedelta(minutes=30),
            series_id=event.id,
            recurrence_id=second_monday,
            cancelled_at=utcnow(),
        )
        session.add(exception)
        await session.flush()
        await send_cancellations(
            session, mail_settings, acme, series, participants, occurrence=exception
        )
        await session.commit()
    (mail,) = await deliver(db, mail_settings, smtp_server)
    assert subject(mail) == "Cancelled: Weekly sync @ Mon 14 Dec 2026, 08:00–08:30 (Europe/London)"
    assert "The other occurrences go ahead as planned." in body(mail)
    _, calendar, _ = calendar_of(mail)
    assert calendar["METHOD"] == "CANCEL"
    cancelled = [v for v in calendar.walk("VEVENT") if "RECURRENCE-ID" in v]
    assert len(cancelled) == 1
    assert str(cancelled[0]["UID"]) == event.uid
    assert cancelled[0]["RECURRENCE-ID"].dt.astimezone(dt.UTC) == second_monday
    (notice,) = await notices(db)
    assert notice.text == (
        "Ada Admin cancelled “Weekly sync” on Mon 14 Dec 2026, 08:00–08:30 (Europe/London)"
    )


async def test_a_removed_participant_is_told_so(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    smtp_server: SmtpServer,
) -> None:
    event, (bob, _gina) = await make_event(db, admin, [member, GUEST])
    async with db.session(company_id=acme.id, write=True) as session:
        series = await session.get(CalendarEvent, event.id)
        removed = await session.get(EventParticipant, bob.id)
        assert series is not None and removed is not None
        await session.delete(removed)
        await session.flush()
        await send_cancellations(session, mail_settings, acme, series, [removed])
        await session.commit()
    (mail,) = await deliver(db, mail_settings, smtp_server)
    assert mail["To"] == "Bob Member <bob@acme.example>"
    assert "removed you from this event" in body(mail)
    _, calendar, _ = calendar_of(mail)
    assert calendar["METHOD"] == "CANCEL"
    (vevent,) = calendar.walk("VEVENT")
    assert str(vevent["UID"]) == event.uid
    attendees = vevent.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees]
    assert "mailto:bob@acme.example" in [str(a).lower() for a in attendees]
    (notice,) = await notices(db)
    assert notice.text == "Ada Admin removed you from “Weekly sync”"
    # The event is no longer Bob's to open.
    assert notice.url == "/calendar"


async def test_the_outbox_view_hides_reply_and_join_links(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    event, (bob,) = await make_event(db, admin, [member])
    await invite(db, settings, acme, event, [bob])
    (message,) = await outbox(db)
    assert "/calendar/reply/" in message.body_text and bob.join_token in message.body_text
    readable = readable_bodies(message)
    for text in (readable.text, readable.html):
        assert "/calendar/reply/" not in text
        assert bob.join_token not in text
        assert "[link to answer the invitation: hidden]" in text
        assert "[link to join the meeting: hidden]" in text


def test_the_outbox_view_hides_join_links_in_the_calendar_wherever_a_line_folds(
    settings: Settings,
) -> None:
    # Meet Now's /join/ is declared too in the running app, and hides a join link's tail
    # when the fold falls before it.
    importlib.import_module("portal.meetings.services")
    organizer = User(id=1, company_id=1, email="ada@acme.example", display_name="Ada Admin")
    guest = EventParticipant(
        id=1, company_id=1, event_id=1, email=GUEST, join_token=secrets.token_urlsafe(24)
    )
    token = guest.join_token
    leaks = []
    # Each longer description moves the fold in the "Join: <link>" line by one octet.
    for padding in range(75):
        event = _event(id=1, uses_room=True, description="x" * padding)
        ics = event_calendar(
            "REQUEST", event, [], organizer, [guest], join_url=join_link(settings, guest)
        )
        message = OutboxMessage(
            company_id=1,
            message_id="<m@x>",
            to_address=GUEST,
            to_name="",
            subject="s",
            body_text="",
            body_html="",
            template="t",
            calendar_ics=ics,
        )
        calendar = readable_bodies(message).calendar or ""
        if any(token[i : i + 6] in calendar for i in range(len(token) - 5)):
            leaks.append(padding)
    assert leaks == []


async def test_titles_cannot_add_header_lines(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    smtp_server: SmtpServer,
) -> None:
    event, participants = await make_event(
        db,
        admin,
        [GUEST],
        title="Sync\r\nBcc: victim@evil.example =?utf-8?q?=0ABcc:_x@evil.example?=",
    )
    await invite(db, mail_settings, acme, event, participants)
    (mail,) = await deliver(db, mail_settings, smtp_server)
    assert mail["Bcc"] is None
    assert "\n" not in str(mail["Subject"]) and "=?" not in str(mail["Subject"])
    assert subject(mail).startswith("Invitation: Sync Bcc: victim@evil.example")


async def test_the_html_body_escapes_what_the_organizer_typed(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    admin: User,
    smtp_server: SmtpServer,
) -> None:
    event, participants = await make_event(db, admin, [GUEST], title="<img src=x onerror=alert(1)>")
    await invite(db, mail_settings, acme, event, participants)
    (mail,) = await deliver(db, mail_settings, smtp_server)
    html = body(mail, "html")
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    # The text body is no HTML: it says what was typed.
    assert "<img src=x onerror=alert(1)>" in body(mail)


def _event(**fields: object) -> CalendarEvent:
    values: dict[str, object] = {
        "company_id": 1,
        "organizer_id": 1,
        "uid": "x@portal.test",
        "title": "T",
        "time_zone": "Europe/Berlin",
        "starts_at": START,
        "ends_at": START + dt.timedelta(minutes=30),
        "last_ends_at": START + dt.timedelta(minutes=30),
    }
    return CalendarEvent(**(values | fields))


def test_when_reads_in_the_zone_asked_for() -> None:
    event = _event()
    assert (
        when(as_occurrence(event), "Europe/Berlin", email=True)
        == "Mon 7 Dec 2026, 09:00–09:30 (Europe/Berlin)"
    )
    assert when(as_occurrence(event), "America/New_York", email=True) == (
        "Mon 7 Dec 2026, 03:00–03:30 (America/New_York)"
    )
    late = _event(ends_at=START + dt.timedelta(hours=15))
    assert when(as_occurrence(late), "Europe/Berlin", email=True) == (
        "Mon 7 Dec 2026, 09:00 – Tue 8 Dec 2026, 00:00 (Europe/Berlin)"
    )


def test_all_day_events_are_dates_in_every_zone() -> None:
    # Midnights of Berlin, the end exclusive: Monday to Wednesday.
    midnight = dt.datetime(2026, 12, 6, 23, 0, tzinfo=dt.UTC)
    three_days = _event(all_day=True, starts_at=midnight, ends_at=midnight + dt.timedelta(days=3))
    assert when(as_occurrence(three_days), "America/New_York", email=True) == (
        "Mon 7 Dec 2026 – Wed 9 Dec 2026 (all day)"
    )
    one_day = _event(all_day=True, starts_at=midnight, ends_at=midnight + dt.timedelta(days=1))
    assert when(as_occurrence(one_day), "Asia/Tokyo", email=True) == "Mon 7 Dec 2026 (all day)"


@pytest.mark.parametrize(
    ("rrule", "words"),
    [
        ("", ""),
        ("FREQ=DAILY;COUNT=5", "Every day, 5 times"),
        (
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=10",
            "Every 2 weeks on Monday, Wednesday, 10 times",
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=7;UNTIL=20271231T225959Z",
            "Every month on day 7, until Fri 31 Dec 2027",
        ),
        ("FREQ=MONTHLY;BYDAY=2TU;COUNT=6", "Every month on the second Tuesday, 6 times"),
        (
            "FREQ=MONTHLY;BYDAY=TU;BYSETPOS=-1;UNTIL=20270630",
            "Every month on the last Tuesday, until Wed 30 Jun 2027",
        ),
    ],
)
def test_a_series_says_how_it_repeats(rrule: str, words: str) -> None:
    assert repeat_text(_event(rrule=rrule)) == words
