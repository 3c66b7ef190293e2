"""The dispatcher under faults: results recorded as they come, a stop request honoured, a
recording that fails retried, and the claims of a dispatcher that died taken over in seconds."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from portal.accounts.models import Company
from portal.db import UNSCOPED, Database, utcnow
from portal.jobs import InProcessRunner, JobEnv
from portal.mail import dispatch, recording
from portal.mail.dispatch import send_outbox
from portal.mail.interfaces import NOT_ATTEMPTED, SendResult
from portal.mail.jobs import SEND_OUTBOX
from portal.mail.models import PENDING, SENT, OutboxMessage
from portal.mail.smtp import SmtpSender
from portal.settings import Settings, SmtpSettings
from tests.mail.conftest import SmtpServer
from tests.mail.test_outbox import queue, stored

CONNECTIONS = 4


@pytest.fixture
def mail_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    smtp = SmtpSettings(host=smtp_server.host, port=smtp_server.port, tls="none")
    return dataclasses.replace(settings, smtp=smtp, jobs="in-process")


def sender(settings: Settings) -> SmtpSender:
    return SmtpSender(settings.smtp, connections=CONNECTIONS, timeout=5)


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.02)


def received(smtp_server: SmtpServer) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in smtp_server.inbox.received)


async def sent_ids(db: Database) -> set[str]:
    return {row.message_id for row in await stored(db) if row.status == SENT}


async def test_each_result_is_recorded_as_it_comes_not_after_the_batch(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    smtp_server.inbox.delay = 0.02
    await queue(db, mail_settings, acme, count=120)  # one batch
    sending = asyncio.create_task(send_outbox(db, mail_settings, sender(mail_settings)))
    try:
        await eventually(lambda: _arrived(smtp_server, 60))
        # What the server has taken is marked sent, but for the one message each connection
        # may have in hand.
        arrived = set(received(smtp_server))
        assert len(arrived - await sent_ids(db)) <= CONNECTIONS
    finally:
        report = await sending
    assert report.sent == 120 and len(smtp_server.inbox.received) == 120


async def _arrived(smtp_server: SmtpServer, count: int) -> bool:
    return len(smtp_server.inbox.received) >= count


async def test_a_stop_request_ends_the_send_with_every_result_recorded_and_the_rest_let_go(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    """The in-process runner stopping with the web process: the send finishes the messages in
    hand, records them and lets go of its other claims, in well under its grace time."""
    smtp_server.inbox.delay = 0.05
    await queue(db, mail_settings, acme, count=300)
    runner = InProcessRunner(
        JobEnv(db, mail_settings, lambda: sender(mail_settings)), [SEND_OUTBOX]
    )
    runner.start()
    await eventually(lambda: _arrived(smtp_server, 20))
    began = time.monotonic()
    await runner.stop()
    assert time.monotonic() - began < 1.5
    rows = await stored(db)
    assert set(received(smtp_server)) == {r.message_id for r in rows if r.status == SENT}
    unsent = [row for row in rows if row.status != SENT]
    assert unsent and all(row.status == PENDING for row in unsent)
    assert all(row.claimed_by is None and row.claimed_until is None for row in unsent)
    assert all(row.attempts == 0 for row in unsent)  # let go of as if never claimed
    # The next run sends the rest, and nothing twice.
    smtp_server.inbox.delay = 0
    assert (await send_outbox(db, mail_settings, sender(mail_settings))).sent == len(unsent)
    assert max(received(smtp_server).values()) == 1 and len(received(smtp_server)) == 300


async def test_a_recording_that_fails_on_a_passing_database_error_is_tried_again(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection cut or a lock broken while the results are written: written again, on a
    fresh connection, rather than thrown away (and every message sent again later)."""
    monkeypatch.setattr(dispatch, "BATCH_SIZE", 10)
    await queue(db, mail_settings, acme, count=30)
    failures = 0
    cut = asyncio.Event()

    async def cut_once(self: recording._RawWriter, sql: str, params: tuple[object, ...]) -> None:
        nonlocal failures
        if not cut.is_set() and "'sent'" in sql:
            cut.set()
            failures += 1
            raise ConnectionResetError("server closed the connection unexpectedly")
        await original(self, sql, params)

    original = recording._RawWriter.execute
    monkeypatch.setattr(recording._RawWriter, "execute", cut_once)
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    assert failures == 1 and report.sent == 30
    assert {row.status for row in await stored(db)} == {SENT}
    assert len(received(smtp_server)) == 30 and max(received(smtp_server).values()) == 1


async def test_on_sqlite_a_write_lock_held_elsewhere_makes_the_recording_wait_not_fail(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    """The recorder writes without waiting for SQLite's lock; while another process holds it,
    the write waits its turn on aiosqlite's thread (busy_timeout) instead."""
    if not db.is_sqlite:
        pytest.skip("SQLite's write lock")
    smtp_server.inbox.delay = 0.01
    await queue(db, mail_settings, acme, count=60)
    sending = asyncio.create_task(send_outbox(db, mail_settings, sender(mail_settings)))
    await eventually(lambda: _arrived(smtp_server, 5))
    path = make_url(db.url).database
    assert path
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        await asyncio.sleep(0.5)
        assert len(received(smtp_server)) - len(await sent_ids(db)) <= CONNECTIONS
        other.execute("COMMIT")
    finally:
        other.close()
    assert (await sending).sent == 60
    assert {row.status for row in await stored(db)} == {SENT}


async def test_a_recording_whose_connection_is_terminated_while_it_waits_is_tried_again(
    db: Database, mail_settings: Settings, acme: Company, smtp_server: SmtpServer
) -> None:
    """Measured before: the database connection terminated while "mark sent" waited on a lock
    sent all 500 messages of the run again."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL: a server that terminates one session")
    # 200 messages at 50 ms each over four connections: 2.5 s of sending, time enough for the
    # lock to be taken while the results still come, even on a busy machine.
    smtp_server.inbox.delay = 0.05
    await queue(db, mail_settings, acme, count=200)  # one batch, claimed at once
    sending = asyncio.create_task(send_outbox(db, mail_settings, sender(mail_settings)))
    async with db.engine.connect() as blocker:
        await eventually(lambda: _arrived(smtp_server, 1))
        # Another transaction holds the rows: the next "mark sent" waits on their lock, and its
        # connection is terminated meanwhile (a failover, an admin, a pooler's timeout).
        await blocker.execute(text("SELECT id FROM outbox_message FOR UPDATE"))
        assert not sending.done(), "the send ended before the lock was taken"
        waiting = await _wait_for_lock_waiter(blocker)
        await blocker.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting})
        await asyncio.sleep(0.2)
        await blocker.rollback()
    report = await sending
    assert report.sent == 200
    assert {row.status for row in await stored(db)} == {SENT}
    await _claims_run_out(db)
    await send_outbox(db, mail_settings, sender(mail_settings))
    assert len(received(smtp_server)) == 200 and max(received(smtp_server).values()) == 1


async def _wait_for_lock_waiter(blocker: AsyncConnection) -> int:
    """The backend waiting on the blocker's row locks: the run's write (its results or its
    claims' heartbeat; pg_stat_activity's query text for a prepared statement is not reliable,
    so it is found by whom it waits for)."""
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
    )
    deadline = time.monotonic() + 10
    while True:
        pid = (await blocker.execute(query)).scalar()
        if pid is not None:
            return int(pid)
        assert time.monotonic() < deadline, "no write waited on the lock"
        await asyncio.sleep(0.02)


async def _claims_run_out(db: Database) -> None:
    async with db.session(company_id=UNSCOPED, write=True) as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.claimed_until.is_not(None))  # type: ignore[union-attr]
            .values(claimed_until=utcnow() - dt.timedelta(seconds=1))
        )
        await session.commit()


async def _claimed_by_the_dead(db: Database, ids: list[int], left: dt.timedelta) -> None:
    """Claims of a dispatcher killed mid-send: its heartbeat stopped, they run out in `left`."""
    async with db.session(company_id=UNSCOPED, write=True) as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))  # type: ignore[union-attr]
            .values(claimed_by="gone-host:4242:dead", claimed_until=utcnow() + left, attempts=1)
        )
        await session.commit()


async def test_the_claims_of_a_dispatcher_that_died_are_taken_over_once_its_heartbeat_stops(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In-process, the SQLite equivalent of two workers: a dispatcher killed mid-send left its
    claims (its last heartbeat 28 s ago); a live one, busy with its own messages, sends them
    the moment they run out, not minutes later."""
    monkeypatch.setattr(dispatch, "WATCH_SECONDS", 0.2)
    ids = await queue(db, mail_settings, acme, count=20)
    await _claimed_by_the_dead(db, ids[:10], dt.timedelta(seconds=2))
    began = time.monotonic()
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    took = time.monotonic() - began
    assert report.sent == 20 and 1.8 < took < 15  # not before the claim runs out; not minutes later
    assert {row.status for row in await stored(db)} == {SENT}


async def test_claims_that_run_out_while_the_live_dispatcher_sends_go_out_in_the_same_run(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    smtp_server: SmtpServer,
) -> None:
    """The dead dispatcher's claims run out while the live one is still busy with its own
    messages (a slow server, a loaded machine): they are due then, so the run sends them
    too rather than ending with them left for the next run."""
    smtp_server.inbox.delay = 0.3
    ids = await queue(db, mail_settings, acme, count=20)
    await _claimed_by_the_dead(db, ids[:10], dt.timedelta(seconds=0.2))
    report = await send_outbox(db, mail_settings, sender(mail_settings))
    assert report.sent == 20
    assert {row.status for row in await stored(db)} == {SENT}


async def test_a_live_dispatchers_claims_are_renewed_and_never_taken(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claims last CLAIM_FOR unless renewed: a send that takes longer keeps them by its
    heartbeat, so a second dispatcher waits and sends nothing twice."""
    monkeypatch.setattr(dispatch, "CLAIM_FOR", dt.timedelta(seconds=0.6))
    monkeypatch.setattr(dispatch, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(dispatch, "WATCH_SECONDS", 0.1)
    smtp_server.inbox.delay = 0.05
    await queue(db, mail_settings, acme, count=60)  # about 0.8 s over four connections
    await _each_sent_once_by_two(db, mail_settings, smtp_server, lambda: _arrived(smtp_server, 4))


async def _each_sent_once_by_two(
    db: Database,
    mail_settings: Settings,
    smtp_server: SmtpServer,
    second_starts: Callable[[], Awaitable[bool]],
) -> None:
    """A dispatcher sends the 60 queued messages; a second, on its own connections, starts
    once `second_starts`; between them each message is sent and marked once."""
    first = asyncio.create_task(send_outbox(db, mail_settings, sender(mail_settings)))
    await eventually(second_starts)
    other = Database(mail_settings.database_url)
    try:
        second = await send_outbox(other, mail_settings, sender(mail_settings))
    finally:
        await other.dispose()
    assert (await first).sent + second.sent == 60
    assert len(received(smtp_server)) == 60 and max(received(smtp_server).values()) == 1
    assert {row.status for row in await stored(db)} == {SENT}


async def test_claims_that_ran_out_are_never_sent_by_their_old_holder(
    db: Database,
    mail_settings: Settings,
    acme: Company,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A heartbeat that cannot renew (its database writes stalled, its process starved of the
    CPU) lets the claims run out while the sending goes on: another dispatcher takes the
    messages then, so the first must commit none of them to the server after that."""
    monkeypatch.setattr(dispatch, "CLAIM_FOR", dt.timedelta(seconds=1))
    monkeypatch.setattr(dispatch, "HEARTBEAT_SECONDS", 60.0)  # never beats in this test
    monkeypatch.setattr(dispatch, "WATCH_SECONDS", 0.1)
    smtp_server.inbox.delay = 0.1
    await queue(db, mail_settings, acme, count=60)  # about 1.5 s over four connections
    began = time.monotonic()

    async def claims_ran_out() -> bool:
        return time.monotonic() - began > 1.05

    await _each_sent_once_by_two(db, mail_settings, smtp_server, claims_ran_out)


@pytest.mark.parametrize("permanent", [False, True], ids=["to-retry", "failed"])
async def test_a_failure_recorded_after_the_claim_was_taken_leaves_the_new_holder_alone(
    db: Database, mail_settings: Settings, acme: Company, permanent: bool
) -> None:
    """A dispatcher whose claim ran out records a failure late (its recording retried through
    a database outage, its process starved): the message is another dispatcher's by then, in
    its hands. The late mark must neither free it for a third dispatcher nor call it failed."""
    await queue(db, mail_settings, acme)
    late, _ = await dispatch.claim_batch(db, 1, "late-host:1:a")
    await _claims_run_out(db)
    taken, _ = await dispatch.claim_batch(db, 1, "live-host:2:b")
    assert [m.id for m in taken] == [m.id for m in late]
    recorder = recording.Recorder(db, asyncio.Lock(), "late-host:1:a")
    await recorder.add(late[0], SendResult(False, permanent=permanent, error="451 try later"))
    await recorder.close()
    [row] = await stored(db)
    assert (row.status, row.claimed_by, row.last_error) == (PENDING, "live-host:2:b", "")
    assert recorder.report == recording.DispatchReport()  # nothing of it was this run's


@pytest.mark.parametrize("recording", [0.0, 0.2], ids=["recorded-at-once", "recorded-slowly"])
async def test_a_message_refused_before_its_final_dot_leaves_nothing_at_the_server(
    mail_settings: Settings, smtp_server: SmtpServer, recording: float
) -> None:
    """Asked again just before the ".", the claim has run out: the server keeps nothing of the
    message (whether its content went while the result before was being recorded or not),
    the caller never hears of it, and the messages after it go as usual."""
    messages = []
    for n in range(3):
        message = EmailMessage()
        message["From"], message["To"] = "portal@acme.example", f"p{n}@acme.example"
        message["Subject"], message["Message-ID"] = f"n{n}", f"<n{n}@acme.example>"
        message.set_content("hello")
        messages.append(message)
    asked: Counter[int] = Counter()
    heard: list[int] = []

    def may_send(index: int) -> bool:
        asked[index] += 1
        return index != 1 or asked[index] == 1  # message 1 starts, and is refused at its "."

    async def on_result(index: int, result: SendResult) -> None:
        heard.append(index)
        await asyncio.sleep(recording)

    single = SmtpSender(mail_settings.smtp, connections=1, timeout=5)
    try:
        results = await single.send_batch(messages, on_result=on_result, may_send=may_send)
    finally:
        await single.close()
    assert [r.accepted for r in results] == [True, False, True] and results[1] is NOT_ATTEMPTED
    assert heard == [0, 2] and asked[1] == 2
    assert sorted(received(smtp_server)) == ["<n0@acme.example>", "<n2@acme.example>"]
