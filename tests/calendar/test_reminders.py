"""Reminders: sent at their time by email and as notices, once each however many workers run,
for the right occurrence of a series, to the people who have not declined."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from procrastinate.testing import InMemoryConnector
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.datastructures import State

from portal import features, jobs, migrate
from portal.accounts.models import Company, User
from portal.calendar import reminders
from portal.calendar.jobs import JOBS, SEND_CALENDAR_REMINDERS
from portal.calendar.models import (
    ACCEPTED,
    DECLINED,
    NEEDS_ACTION,
    TENTATIVE,
    CalendarEvent,
    EventParticipant,
    EventReminder,
    ReminderDelivery,
)
from portal.calendar.recurrence import last_end, series_starts
from portal.calendar.reminders import GRACE, send_due_reminders
from portal.db import UNSCOPED, Database, utcnow
from portal.jobs import InProcessRunner, JobEnv, ProcrastinateJobs, procrastinate_app
from portal.jobs.schema import apply_procrastinate_schema
from portal.mail.models import OutboxMessage
from portal.mail.smtp import SmtpSender
from portal.notifications.models import Notification
from portal.settings import Settings, SmtpSettings
from tests.conftest import make_company, make_user
from tests.jobs_support import postgres_admin_url
from tests.mail.conftest import Inbox, SmtpServer
from tests.servers import free_port, scratch_postgres_database

START = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)  # a Monday
MINUTE = dt.timedelta(minutes=1)
GUEST = "gina@guest.example"

Invitee = tuple[User | str, str]  # a portal user or a guest's address, and their answer


async def make_event(
    db: Database,
    company: Company,
    organizer: User,
    *,
    title: str = "Design review",
    start: dt.datetime = START,
    minutes: int = 30,
    rrule: str = "",
    time_zone: str = "Europe/London",
    reminders_before: Sequence[int] = (15,),
    invitees: Sequence[Invitee] = (),
    uses_room: bool = False,
    location: str = "",
    all_day: bool = False,
    cancelled: bool = False,
) -> CalendarEvent:
    event = CalendarEvent(
        company_id=company.id or 0,
        organizer_id=organizer.id or 0,
        uid=f"{uuid.uuid4()}@portal.test",
        title=title,
        location=location,
        time_zone=time_zone,
        all_day=all_day,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=minutes),
        rrule=rrule,
        last_ends_at=start,
        uses_room=uses_room,
        cancelled_at=START - dt.timedelta(days=1) if cancelled else None,
    )
    event.last_ends_at = last_end(event)
    async with db.transaction(company_id=company.id) as session:
        session.add(event)
        await session.flush()
        for minutes_before in reminders_before:
            session.add(
                EventReminder(
                    company_id=event.company_id,
                    event_id=event.id or 0,
                    minutes_before=minutes_before,
                )
            )
        for who, partstat in invitees:
            session.add(_participant(event, who, partstat))
    return event


def _participant(event: CalendarEvent, who: User | str, partstat: str) -> EventParticipant:
    user = who if isinstance(who, User) else None
    return EventParticipant(
        company_id=event.company_id,
        event_id=event.id or 0,
        user_id=user.id if user else None,
        email=user.email if user else str(who),
        name=user.display_name if user else "",
        partstat=partstat,
        join_token=secrets.token_urlsafe(32),
    )


async def make_exception(
    db: Database,
    series: CalendarEvent,
    original: dt.datetime,
    *,
    moved_to: dt.datetime | None = None,
    title: str | None = None,
    cancelled: bool = False,
) -> CalendarEvent:
    start = moved_to or original
    exception = CalendarEvent(
        company_id=series.company_id,
        organizer_id=series.organizer_id,
        uid=series.uid,
        sequence=series.sequence + 1,
        title=title or series.title,
        time_zone=series.time_zone,
        starts_at=start,
        ends_at=start + (series.ends_at - series.starts_at),
        last_ends_at=start + (series.ends_at - series.starts_at),
        series_id=series.id,
        recurrence_id=original,
        cancelled_at=START if cancelled else None,
    )
    async with db.transaction(company_id=series.company_id) as session:
        session.add(exception)
    return exception


async def run(db: Database, settings: Settings, now: dt.datetime) -> int:
    async with db.transaction(company_id=UNSCOPED) as session:
        return await send_due_reminders(session, settings, now)


async def outbox(db: Database) -> list[OutboxMessage]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return list(rows.scalars())


async def notices(db: Database) -> list[Notification]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(select(Notification).order_by(col(Notification.id)))
        return list(rows.scalars())


def mail_to(messages: Sequence[OutboxMessage], address: str) -> OutboxMessage:
    (message,) = [m for m in messages if m.to_address == address]
    return message


async def set_time_zone(db: Database, user: User, time_zone: str) -> None:
    async with db.transaction(company_id=user.company_id) as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.time_zone = time_zone
    user.time_zone = time_zone


# Once each


async def test_a_reminder_goes_out_once_however_often_the_job_runs(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    await make_event(db, acme, admin, invitees=[(member, ACCEPTED), (GUEST, NEEDS_ACTION)])
    due = START - 15 * MINUTE
    assert await run(db, settings, due + dt.timedelta(seconds=20)) == 1
    assert await run(db, settings, due + dt.timedelta(seconds=20)) == 0
    assert await run(db, settings, due + 10 * MINUTE) == 0  # a later run within the grace
    messages = await outbox(db)
    assert sorted(m.to_address for m in messages) == sorted([admin.email, member.email, GUEST])
    assert {m.template for m in messages} == {"event_reminder"}
    assert sorted(n.user_id for n in await notices(db)) == sorted([admin.id, member.id])


async def test_two_workers_at_once_send_it_once(
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_event(db, acme, admin, invitees=[(member, ACCEPTED)])
    await make_event(db, acme, member, title="Stand-up", reminders_before=(15, 60))
    now = START - 15 * MINUTE
    if not db.is_sqlite:
        # Both read that nothing went out before either claims: the race a worker loses on
        # its insert. (SQLite runs writers one after the other: the second finds the first's.)
        both_read = asyncio.Barrier(2)
        looked = reminders._already_sent

        async def look_then_wait(*args: Any) -> set[tuple[int, dt.datetime, int]]:
            found = await looked(*args)
            await asyncio.wait_for(both_read.wait(), timeout=10)
            return found

        monkeypatch.setattr(reminders, "_already_sent", look_then_wait)
    results = await asyncio.gather(run(db, settings, now), run(db, settings, now))
    assert sorted(results) == [0, 2]
    assert len(await outbox(db)) == 3  # admin and member for the review, member for the stand-up
    assert len(await notices(db)) == 3
    async with db.session(company_id=UNSCOPED) as session:
        deliveries = (await session.execute(select(ReminderDelivery))).scalars().all()
    assert sorted(d.minutes_before for d in deliveries) == [15, 15]


async def test_a_claim_lost_to_another_worker_is_skipped_and_the_rest_still_goes_out(
    db: Database,
    settings: Settings,
    acme: Company,
    admin: User,
    member: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = await make_event(db, acme, admin, invitees=[(member, ACCEPTED)])
    await make_event(db, acme, member, title="Stand-up")
    async with db.transaction(company_id=acme.id) as session:
        session.add(
            ReminderDelivery(
                company_id=acme.id or 0,
                event_id=taken.id or 0,
                occurrence_start=START,
                minutes_before=15,
            )
        )

    async def nothing_sent_yet(*args: Any) -> set[tuple[int, dt.datetime, int]]:
        return set()  # as a worker that read before the other committed its claim

    monkeypatch.setattr(reminders, "_already_sent", nothing_sent_yet)
    assert await run(db, settings, START - 15 * MINUTE) == 1
    (message,) = await outbox(db)
    assert message.to_address == member.email and "Stand-up" in message.subject


# When


async def test_nothing_goes_out_before_its_time_nor_after_the_grace(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    await make_event(db, acme, admin, reminders_before=(60,))
    due = START - 60 * MINUTE
    assert await run(db, settings, due - dt.timedelta(seconds=1)) == 0
    assert await run(db, settings, due + GRACE) == 0  # a worker down too long: stale, dropped
    assert await run(db, settings, START) == 0
    assert not await outbox(db) and not await notices(db)
    assert await run(db, settings, due + GRACE - dt.timedelta(seconds=1)) == 1


async def test_each_lead_of_an_event_goes_out_at_its_own_time(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    await make_event(db, acme, admin, reminders_before=(15, 24 * 60))
    assert await run(db, settings, START - dt.timedelta(days=1)) == 1
    assert await run(db, settings, START - 30 * MINUTE) == 0
    assert await run(db, settings, START - 15 * MINUTE) == 1
    assert len(await outbox(db)) == 2


async def test_a_cancelled_event_is_never_reminded(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    await make_event(db, acme, admin, invitees=[(member, ACCEPTED)], cancelled=True)
    assert await run(db, settings, START - 15 * MINUTE) == 0
    assert not await outbox(db)


# Recurring series


async def test_a_series_reminds_the_occurrence_whose_time_has_come(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    series = await make_event(
        db, acme, admin, rrule="FREQ=DAILY;COUNT=5", invitees=[(member, TENTATIVE)]
    )
    third = START + dt.timedelta(days=2)
    assert await run(db, settings, third - 15 * MINUTE) == 1
    message = mail_to(await outbox(db), member.email)
    assert "Wed 9 Dec 2026, 09:00" in message.subject
    key = int(third.timestamp())
    assert {n.url for n in await notices(db)} == {f"/calendar/events/{series.id}?occurrence={key}"}
    assert f"http://testserver/calendar/events/{series.id}?occurrence={key}" in message.body_text
    assert await run(db, settings, third + dt.timedelta(days=1) - 15 * MINUTE) == 1  # the 4th
    assert await run(db, settings, START + dt.timedelta(days=5) - 15 * MINUTE) == 0  # none


async def test_a_series_keeps_its_wall_clock_across_a_daylight_saving_change(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    # 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC once summer time starts on 28 March.
    first = dt.datetime(2027, 3, 22, 8, 0, tzinfo=dt.UTC)
    await make_event(
        db, acme, admin, start=first, rrule="FREQ=WEEKLY;COUNT=3", time_zone="Europe/Berlin"
    )
    await set_time_zone(db, admin, "Europe/Berlin")
    after_change = dt.datetime(2027, 3, 29, 7, 0, tzinfo=dt.UTC)
    assert await run(db, settings, after_change - 15 * MINUTE) == 1
    (message,) = await outbox(db)
    assert "Mon 29 Mar 2027, 09:00–09:30 (Europe/Berlin)" in message.subject


async def test_a_moved_occurrence_is_reminded_at_its_new_time_and_a_cancelled_one_never(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    series = await make_event(
        db, acme, admin, rrule="FREQ=DAILY;COUNT=5", invitees=[(member, ACCEPTED)]
    )
    second, third = series_starts(series)[1:3]
    later = second + dt.timedelta(hours=3)
    await make_exception(db, series, second, moved_to=later, title="Design review (moved)")
    await make_exception(db, series, third, cancelled=True)
    assert await run(db, settings, second - 15 * MINUTE) == 0  # nothing at the old time
    assert await run(db, settings, later - 15 * MINUTE) == 1
    messages = await outbox(db)
    assert len(messages) == 2
    assert all("Design review (moved)" in m.subject and "12:00" in m.subject for m in messages)
    key = int(second.timestamp())  # an occurrence keeps its original start as its name
    assert {n.url for n in await notices(db)} == {f"/calendar/events/{series.id}?occurrence={key}"}
    assert await run(db, settings, third - 15 * MINUTE) == 0
    assert len(await outbox(db)) == 2


async def test_an_occurrence_moved_before_its_series_begins_is_still_reminded(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    series = await make_event(db, acme, admin, rrule="FREQ=WEEKLY;COUNT=3")
    earlier = START - dt.timedelta(days=2)
    await make_exception(db, series, START, moved_to=earlier)
    assert await run(db, settings, earlier - 15 * MINUTE) == 1
    assert await run(db, settings, START - 15 * MINUTE) == 0


# Who gets what


async def test_declined_participants_get_nothing_and_guests_get_mail_but_no_notice(
    db: Database, settings: Settings, acme: Company, admin: User, member: User, make_person: Any
) -> None:
    carol = await make_person("carol@acme.example")
    await make_event(
        db,
        acme,
        admin,
        invitees=[(member, DECLINED), (carol, NEEDS_ACTION), (GUEST, ACCEPTED)],
    )
    assert await run(db, settings, START - 15 * MINUTE) == 1
    assert sorted(m.to_address for m in await outbox(db)) == sorted(
        [admin.email, carol.email, GUEST]
    )
    assert sorted(n.user_id for n in await notices(db)) == sorted([admin.id, carol.id])
    assert {n.kind for n in await notices(db)} == {"calendar_reminder"}


async def test_people_who_were_deactivated_get_nothing(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    await make_event(db, acme, admin, invitees=[(member, ACCEPTED)])
    async with db.transaction(company_id=acme.id) as session:
        row = await session.get(User, member.id)
        assert row is not None
        row.active = False
    assert await run(db, settings, START - 15 * MINUTE) == 1
    assert [m.to_address for m in await outbox(db)] == [admin.email]
    assert [n.user_id for n in await notices(db)] == [admin.id]


async def test_an_event_moved_after_its_reminder_is_reminded_again_at_its_new_time(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    event = await make_event(db, acme, admin)
    assert await run(db, settings, START - 15 * MINUTE) == 1
    later = START + dt.timedelta(hours=2)
    async with db.transaction(company_id=acme.id) as session:
        row = await session.get(CalendarEvent, event.id)
        assert row is not None
        row.starts_at, row.ends_at, row.last_ends_at = (
            later,
            later + 30 * MINUTE,
            later + 30 * MINUTE,
        )
    assert await run(db, settings, later - 15 * MINUTE) == 1
    assert [("11:00" in m.subject) for m in await outbox(db)] == [False, True]


async def test_each_reminder_says_when_in_its_readers_zone_with_their_own_link(
    db: Database, settings: Settings, acme: Company, admin: User, member: User
) -> None:
    await set_time_zone(db, member, "America/New_York")
    event = await make_event(
        db,
        acme,
        admin,
        time_zone="Asia/Tokyo",
        uses_room=True,
        location="Room 4 & the <terrace>",
        invitees=[(member, ACCEPTED), (GUEST, NEEDS_ACTION)],
    )
    assert await run(db, settings, START - 15 * MINUTE) == 1
    async with db.session(company_id=acme.id) as session:
        tokens = await _tokens(session, event)
    messages = await outbox(db)
    details = f"http://testserver/calendar/events/{event.id}"

    organizer = mail_to(messages, admin.email)  # Europe/London: GMT in December
    assert (
        organizer.subject == "Reminder: Design review @ Mon 7 Dec 2026, 09:00–09:30 (Europe/London)"
    )
    assert details in organizer.body_text and "Start the meeting" in organizer.body_html
    assert "/calendar/join/" not in organizer.body_text

    bob = mail_to(messages, member.email)
    assert "Mon 7 Dec 2026, 04:00–04:30 (America/New_York)" in bob.subject
    assert f"http://testserver/calendar/join/{tokens[member.email]}" in bob.body_text
    assert details in bob.body_text  # the details page too: Bob can sign in
    assert "Room 4 &amp; the &lt;terrace&gt;" in bob.body_html
    assert "Where: Room 4 & the <terrace>" in bob.body_text

    guest = mail_to(messages, GUEST)  # the event's own zone
    assert "Mon 7 Dec 2026, 18:00–18:30 (Asia/Tokyo)" in guest.subject
    assert f"http://testserver/calendar/join/{tokens[GUEST]}" in guest.body_text
    assert "/calendar/events/" not in guest.body_text  # a guest cannot sign in

    texts = {n.user_id: n.text for n in await notices(db)}
    assert (
        texts[member.id]
        == "Reminder: Design review, Mon 7 Dec 2026, 04:00–04:30 (America/New_York)"
    )


async def test_an_all_day_event_is_reminded_by_its_dates(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    await set_time_zone(db, admin, "America/New_York")
    midnight = dt.datetime(2026, 12, 7, 23, 0, tzinfo=dt.UTC)  # 8 December in Berlin
    await make_event(
        db,
        acme,
        admin,
        start=midnight,
        minutes=2 * 24 * 60,
        time_zone="Europe/Berlin",
        reminders_before=(24 * 60,),
        all_day=True,
    )
    assert await run(db, settings, midnight - dt.timedelta(days=1)) == 1
    (message,) = await outbox(db)
    assert message.subject == "Reminder: Design review @ Tue 8 Dec 2026 – Wed 9 Dec 2026 (all day)"


async def test_every_row_belongs_to_the_events_company(
    db: Database, settings: Settings, acme: Company, admin: User
) -> None:
    globex = await make_company(db, "Globex")
    gus = await make_user(db, globex, "gus@globex.example")
    gail = await make_user(db, globex, "gail@globex.example")
    await make_event(db, acme, admin)
    await make_event(db, globex, gus, invitees=[(gail, ACCEPTED), (GUEST, ACCEPTED)])
    assert await run(db, settings, START - 15 * MINUTE) == 2
    async with db.session(company_id=UNSCOPED) as session:
        deliveries = (await session.execute(select(ReminderDelivery))).scalars().all()
        events = {
            e.id: e.company_id for e in (await session.execute(select(CalendarEvent))).scalars()
        }
    assert all(d.company_id == events[d.event_id] for d in deliveries) and len(deliveries) == 2
    by_address = {m.to_address: m.company_id for m in await outbox(db)}
    assert by_address == {
        admin.email: acme.id,
        gus.email: globex.id,
        gail.email: globex.id,
        GUEST: globex.id,
    }
    assert {(n.user_id, n.company_id) for n in await notices(db)} == {
        (admin.id, acme.id),
        (gus.id, globex.id),
        (gail.id, globex.id),
    }


async def _tokens(session: AsyncSession, event: CalendarEvent) -> dict[str, str]:
    rows = await session.execute(
        select(EventParticipant).where(col(EventParticipant.event_id) == event.id)
    )
    return {p.email: p.join_token for p in rows.scalars()}


@pytest.fixture
def make_person(db: Database, acme: Company) -> Any:
    async def make(email: str) -> User:
        return await make_user(db, acme, email)

    return make


# The job


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port(), Inbox())
    server.start()
    yield server
    server.stop()


def test_the_job_runs_every_minute_on_either_runner() -> None:
    assert SEND_CALENDAR_REMINDERS in features.jobs()
    app = procrastinate_app(InMemoryConnector(), JOBS)
    periodic = {name: task.cron for (name, _), task in app.periodic_registry.periodic_tasks.items()}
    assert periodic["send_calendar_reminders"] == "* * * * *"


async def test_the_job_sends_reminders_in_process_through_the_mail_server(
    db: Database, settings: Settings, acme: Company, admin: User, member: User, smtp: SmtpServer
) -> None:
    mail_settings = dataclasses.replace(
        settings, smtp=SmtpSettings(host=smtp.host, port=smtp.port, tls="none"), jobs="in-process"
    )
    start = utcnow().replace(microsecond=0) + 14 * MINUTE  # its reminder came a minute ago
    await make_event(db, acme, admin, start=start, invitees=[(member, ACCEPTED)])
    env = JobEnv(db, mail_settings, lambda: SmtpSender(mail_settings.smtp))
    runner = InProcessRunner(env, features.jobs())
    assert await runner.run_once("send_calendar_reminders")
    assert await runner.run_once("send_outbox")
    assert await runner.run_once("send_calendar_reminders")  # nothing more to send
    assert await runner.run_once("send_outbox")
    received = smtp.inbox.to(member.email)
    assert len(received) == 1 and len(smtp.inbox.received) == 2
    assert str(received[0]["Subject"]).strip().startswith("Reminder: Design review @ ")


async def test_a_worker_sends_the_reminders(settings: Settings) -> None:
    """On a database of its own: procrastinate's tables stay out of the run's shared one."""
    with scratch_postgres_database(postgres_admin_url(), "portal_reminders") as url:
        migrate.upgrade(url)
        apply_procrastinate_schema(url)
        held = dataclasses.replace(settings, database_url=url)
        db = Database(url)
        try:
            company = await make_company(db, "Acme")
            ada = await make_user(db, company, "ada@acme.example")
            bob = await make_user(db, company, "bob@acme.example")
            start = utcnow().replace(microsecond=0) + 14 * MINUTE
            await make_event(db, company, ada, start=start, invitees=[(bob, ACCEPTED)])
            web = await jobs.start(JobEnv(db, held, lambda: None), features.jobs())
            assert isinstance(web, ProcrastinateJobs)
            await jobs.defer(State({"jobs": web}), SEND_CALENDAR_REMINDERS)
            await web.stop()
            await jobs.run_worker(held, features.jobs(), wait=False)
            assert sorted(m.to_address for m in await outbox(db)) == [ada.email, bob.email]
            assert len(await notices(db)) == 2
        finally:
            await db.dispose()
