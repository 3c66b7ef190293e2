"""The outbox: writing messages in the caller's transaction, and dispatching them in batches."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import random
import secrets
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from email.message import Message
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

import psycopg
import stamina
from sqlalchemy import exists, func, literal_column, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from portal.db import UNSCOPED, Database, database_unavailable, utcnow
from portal.jobs import defer_after_commit
from portal.mail.interfaces import MailSender, SendResult
from portal.mail.messages import EmailContent, OutgoingMessage, build_mime, header_safe
from portal.mail.models import FAILED, HELD, PENDING, SENT, OutboxAttachment, OutboxMessage
from portal.settings import Settings

log = logging.getLogger(__name__)

# The job that sends the outbox (portal.mail.jobs), named here: that module imports this one.
SEND_OUTBOX_JOB = "send_outbox"


def enqueue(
    session: AsyncSession,
    settings: Settings,
    *,
    company_id: int,
    to_address: str,
    to_name: str,
    content: EmailContent,
    template: str,
    reply_to: str = "",
    calendar_method: str = "",
    calendar_ics: str = "",
) -> OutboxMessage:
    """Add a message to the session; it is sent only if, and as soon as, the caller's
    transaction commits."""
    domain = urlsplit(settings.base_url).hostname or "localhost"
    message = OutboxMessage(
        company_id=company_id,
        message_id=make_msgid(domain=domain),
        to_address=to_address,
        to_name=header_safe(to_name),
        reply_to=reply_to,
        subject=content.subject,
        body_text=content.text,
        body_html=content.html,
        template=template,
        calendar_method=calendar_method,
        calendar_ics=calendar_ics,
        status=PENDING if settings.smtp.configured else HELD,
    )
    session.add(message)
    if settings.smtp.configured:
        defer_after_commit(session, SEND_OUTBOX_JOB)
    else:
        log.info("mail held (no SMTP configured): %s to %s", template, to_address)
    return message


async def attach(
    session: AsyncSession, message: OutboxMessage, filename: str, content_type: str, data: bytes
) -> OutboxAttachment:
    """Add a file to a message that `enqueue` put in this session."""
    await session.flush()
    attachment = OutboxAttachment(
        company_id=message.company_id,
        message_id=message.id or 0,
        filename=header_safe(filename),
        content_type=content_type,
        data=data,
    )
    session.add(attachment)
    return attachment


BATCH_SIZE = 250
# Messages built between two looks at the event loop (see _prepare).
BUILD_SLICE = 10
# A claim lasts this long unless its dispatcher's heartbeat renews it: one that died (killed,
# its machine gone) stops beating, and its messages are free to others 30 seconds later.
CLAIM_FOR = dt.timedelta(seconds=30)
HEARTBEAT_SECONDS = 5.0
# With nothing of its own to send while another dispatcher holds claims, a dispatcher looks
# again this often (for new mail, and for those claims if they run out) until they are gone.
WATCH_SECONDS = 2.0
# Recording results is retried on a database error that may pass (a dropped connection, a
# lock, a failover) for this long; past it the claims run out and what was sent goes again.
RECORD_RETRY_SECONDS = 20.0
# A write waits this long for this many results (one per SMTP connection) before it starts.
GATHER_SECONDS = 0.003
GATHER_COUNT = 4
FIRST_RETRY = dt.timedelta(seconds=30)
LONGEST_RETRY = dt.timedelta(minutes=30)
# Temporary failures are retried for this long before the message is marked failed.
GIVE_UP_AFTER = dt.timedelta(hours=48)


@dataclass
class DispatchReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def add(self, other: DispatchReport) -> None:
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential backoff with jitter: 30 s, 1 min, 2 min ... at most 30 min, each ±25%."""
    base = min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_RETRY)
    return base * random.uniform(0.75, 1.25)


def dispatcher_id() -> str:
    """Who holds a claim: the host, the process and the run, as the Outbox's rows show it."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


# What a claim returns: the columns of OutgoingMessage, as plain rows rather than ORM objects,
# and whether the message has attachments (few do: the others need no second query). The
# claimed row's id is spelled out: in SQLite's RETURNING, SQLAlchemy leaves column names
# unqualified, and a bare "id" inside the subquery would be the attachment's own.
_CLAIMED = [col(getattr(OutboxMessage, field.name)) for field in fields(OutgoingMessage)]
_HAS_ATTACHMENTS = exists().where(
    col(OutboxAttachment.message_id) == literal_column(f"{OutboxMessage.__tablename__}.id")
)


def _free(now: dt.datetime) -> ColumnElement[bool]:
    """Not held by anyone: never claimed, let go of, or its holder stopped beating."""
    return or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now)


async def claim_batch(
    db: Database, limit: int = BATCH_SIZE, claimed_by: str = ""
) -> tuple[list[OutgoingMessage], dict[int, list[OutboxAttachment]]]:
    """Take up to `limit` due messages (and their attachments); no other dispatcher gets them
    while `claimed_by`'s heartbeat renews the claim."""
    now = utcnow()
    due = (
        select(col(OutboxMessage.id))
        .where(
            col(OutboxMessage.status) == PENDING,
            col(OutboxMessage.next_attempt_at) <= now,
            _free(now),
        )
        .order_by(col(OutboxMessage.next_attempt_at), col(OutboxMessage.id))
        .limit(limit)
        # PostgreSQL: concurrent dispatchers skip each other's rows. SQLite: BEGIN IMMEDIATE.
        .with_for_update(skip_locked=True)
    )
    async with db.session(company_id=UNSCOPED, write=True) as session:
        claimed = await session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(due.scalar_subquery()))
            .values(
                claimed_until=now + CLAIM_FOR,
                claimed_by=claimed_by or None,
                attempts=col(OutboxMessage.attempts) + 1,
            )
            .returning(*_CLAIMED, _HAS_ATTACHMENTS)
            .execution_options(synchronize_session=False)
        )
        rows = claimed.all()
        with_files = [row.id for row in rows if row[-1]]
        attachments = await _attachments(session, with_files) if with_files else {}
        await session.commit()
    messages = sorted((OutgoingMessage(*row[:-1]) for row in rows), key=lambda m: m.id)
    return messages, attachments


async def _attachments(session: AsyncSession, ids: list[int]) -> dict[int, list[OutboxAttachment]]:
    found: dict[int, list[OutboxAttachment]] = {}
    rows = await session.execute(
        select(OutboxAttachment).where(col(OutboxAttachment.message_id).in_(ids))
    )
    for attachment in rows.scalars():
        found.setdefault(attachment.message_id, []).append(attachment)
    return found


def _transient(error: Exception) -> bool:
    """A database error that trying again may get past: the connection dropped or was
    terminated, a lock timed out, a deadlock was broken, SQLite was busy (from SQLAlchemy, or
    from the drivers themselves, which the recorder uses directly)."""
    if database_unavailable(error):
        return True
    driver_errors = (sqlite3.OperationalError, psycopg.OperationalError, psycopg.InterfaceError)
    return isinstance(error, (*driver_errors, ConnectionError, TimeoutError))


async def _retrying(write: Callable[[], Awaitable[None]]) -> None:
    async for attempt in stamina.retry_context(
        on=_transient, attempts=None, timeout=RECORD_RETRY_SECONDS, wait_initial=0.05, wait_max=2
    ):
        with attempt:
            await write()


_Result = tuple[OutgoingMessage, SendResult]


class _Recorder:
    """Writes each result as it comes, in small groups: what arrives while one write runs goes
    in the next (a group commit). A connection waits for its accepted message to be written
    before it sends another, so a process that dies has sent again at most the message each
    connection had in hand."""

    def __init__(self, db: Database, lock: asyncio.Lock) -> None:
        self.db = db
        self.report = DispatchReport()
        self._lock = lock  # shared with the heartbeat: their updates touch the same rows
        self._pending: list[_Result] = []
        self._group: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._enough = asyncio.Event()
        # One connection for the run's writes (see _RawWriter): no checkout (nor, on
        # PostgreSQL, its ping) for each.
        self._connection: _RawWriter | None = None

    def add(self, message: OutgoingMessage, result: SendResult) -> asyncio.Future[None]:
        """Write `result` soon; done once it is written (at once if it need not be waited
        for: only what the server accepted must be written before more is sent)."""
        self._pending.append((message, result))
        if len(self._pending) >= GATHER_COUNT:
            self._enough.set()
        if self._group is None:
            self._group = asyncio.get_running_loop().create_future()
        group = self._group
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        if result.accepted:
            return group  # shared by the connections: they await it shielded
        written = asyncio.get_running_loop().create_future()
        written.set_result(None)
        return written

    async def close(self) -> None:
        """Write what is left; on cancellation too (the caller awaits this in a `finally`)."""
        try:
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._writer)
            if self._pending:
                self._writer = asyncio.create_task(self._write_pending())
                await asyncio.shield(self._writer)
        finally:
            await self._drop_connection()

    async def _write_pending(self) -> None:
        while self._pending:
            if len(self._pending) < GATHER_COUNT:
                # A connection needs its result written only once its next message is ready to
                # commit, a few round trips from now: a moment's wait makes one write of what
                # several connections have, each write costing the event loop as much as a send.
                self._enough.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._enough.wait(), timeout=GATHER_SECONDS)
            results, self._pending = self._pending, []
            group, self._group = self._group, None
            try:
                await _retrying(functools.partial(self._write, results))
            except BaseException as error:
                self._pending[:0] = results  # close() tries once more
                if group is not None and not group.done():
                    group.set_exception(error)
                    group.exception()  # retrieved: the connections that wait raise it
                raise
            if group is not None and not group.done():
                group.set_result(None)

    async def _write(self, results: list[_Result]) -> None:
        report = DispatchReport()
        now = utcnow()
        writes: list[tuple[str, tuple[object, ...]]] = []
        sent_ids = [message.id for message, result in results if result.accepted]
        if sent_ids:
            # One statement, atomic on its own (so no BEGIN and COMMIT around it). A group holds
            # a few ids, one per connection: bound, so the few statements there are stay
            # prepared (in sqlite3's statement cache; PostgreSQL's after a few runs).
            ids = ",".join(["{p}"] * len(sent_ids))
            writes.append((_MARK_SENT.replace("{ids}", ids), (now, *sent_ids)))
            report.sent = len(sent_ids)
        for message, result in results:
            if not result.accepted:
                writes.append(_not_sent(message, result, now, report))
        async with self._lock:
            writer = await self._writer_connection()
            try:
                for sql, params in writes:
                    await writer.execute(sql, params)
            except BaseException:
                await self._drop_connection()  # the next try takes a fresh one
                raise
        self.report.add(report)

    async def _writer_connection(self) -> _RawWriter:
        if self._connection is None:
            self._connection = await _RawWriter.open(self.db)
        return self._connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()


# The recorder's statements, in SQL: {p} is the driver's placeholder, {ids} one per sent id.
_MARK_SENT = (
    "UPDATE outbox_message SET status = 'sent', sent_at = {p}, claimed_until = NULL,"
    " claimed_by = NULL, last_error = '' WHERE id IN ({ids})"
)
_MARK_FAILED = (
    "UPDATE outbox_message SET status = 'failed', claimed_until = NULL, claimed_by = NULL,"
    " last_error = {p} WHERE id = {p}"
)
_MARK_RETRY = (
    "UPDATE outbox_message SET next_attempt_at = {p}, claimed_until = NULL, claimed_by = NULL,"
    " last_error = {p} WHERE id = {p}"
)
assert (OutboxMessage.__tablename__, SENT, FAILED) == ("outbox_message", "sent", "failed")


class _RawWriter:
    """The recorder's own connection, used through its driver in autocommit: each result write
    is one statement and one round trip (to PostgreSQL, or to aiosqlite's thread), where a
    session's BEGIN, UPDATE and COMMIT take three, and each round trip waits for a turn of an
    event loop that is busy sending.

    On a SQLite file, a write is first tried right here on a connection of its own that never
    waits for the lock (an UPDATE of a few rows by their key, in WAL mode without a sync: tens
    of microseconds); only if another writer holds the lock does it go to aiosqlite's thread,
    which waits its turn. A thread hop costs the event loop more than the write."""

    def __init__(
        self,
        connection: AsyncConnection,
        driver: Any,
        sqlite: bool,
        at_once: sqlite3.Connection | None = None,
    ) -> None:
        self.connection = connection
        self.driver = driver
        self.sqlite = sqlite
        self.at_once = at_once

    @classmethod
    async def open(cls, db: Database) -> _RawWriter:
        connection = await db.engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            if not db.is_sqlite:
                await driver.set_autocommit(True)  # SQLite's connections run in autocommit
        except BaseException:
            await connection.close()
            raise
        return cls(connection, driver, db.is_sqlite, _sqlite_at_once(db))

    async def execute(self, sql: str, params: tuple[object, ...]) -> None:
        if not self.sqlite:
            await self.driver.execute(sql.replace("{p}", "%s"), params)
            return
        sql = sql.replace("{p}", "?")
        values = tuple(_sqlite_time(v) if isinstance(v, dt.datetime) else v for v in params)
        if self.at_once is not None:
            try:
                self.at_once.execute(sql, values)
                return
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode not in _SQLITE_BUSY:
                    raise
        await self.driver.execute(sql, values)

    async def close(self) -> None:
        if self.at_once is not None:
            self.at_once.close()
        with contextlib.suppress(Exception):
            if not self.sqlite:
                # Its driver is in autocommit: it must not go back to the pool like that.
                await self.connection.invalidate()
        with contextlib.suppress(Exception):
            await self.connection.close()


_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def _sqlite_at_once(db: Database) -> sqlite3.Connection | None:
    path = make_url(db.url).database if db.is_sqlite else None
    if not path or path == ":memory:":
        return None
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=0")  # never wait here: aiosqlite's thread waits
    connection.execute("PRAGMA synchronous=NORMAL")  # as the engine's: no sync per commit
    connection.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints (and their syncs) elsewhere
    return connection


def _sqlite_time(value: dt.datetime) -> str:
    """As UTCDateTime stores it on SQLite: UTC, without an offset."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _not_sent(
    message: OutgoingMessage, result: SendResult, now: dt.datetime, report: DispatchReport
) -> tuple[str, tuple[object, ...]]:
    gave_up = now - message.created_at > GIVE_UP_AFTER
    error = result.error
    if gave_up and not result.permanent:
        error = f"gave up after {GIVE_UP_AFTER // dt.timedelta(hours=1)} hours: {error}"
    if result.permanent or gave_up:
        report.failed += 1
        return _MARK_FAILED, (error[:2000], message.id)
    report.retrying += 1
    return _MARK_RETRY, (now + retry_delay(message.attempts), error[:2000], message.id)


@dataclass(frozen=True)
class _Batch:
    messages: list[OutgoingMessage]
    mimes: list[Message]


class _Dispatcher:
    """One run of send_outbox: its claims, their heartbeat, and the results as they come."""

    def __init__(
        self, db: Database, settings: Settings, sender: MailSender, stop: asyncio.Event
    ) -> None:
        self.db = db
        self.settings = settings
        self.sender = sender
        self.stop = stop
        self.me = dispatcher_id()
        self._lock = asyncio.Lock()
        self.recorder = _Recorder(db, self._lock)

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._beat())
        try:
            while not self.stop.is_set():
                await self._send_due()
                wait = None if self.stop.is_set() else await self._others_hold_claims()
                if wait is None:
                    break
                # Another dispatcher is sending: if it dies, its claims run out and are ours.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=wait)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            try:
                await self.recorder.close()
            finally:
                await self._release()

    async def _send_due(self) -> None:
        """Send what is due, in batches: while one batch sends, the next is claimed and built,
        so the SMTP connections wait only for the first claim."""
        upcoming: asyncio.Task[_Batch] | None = None
        try:
            batch = await self._prepare()
            while batch.messages and not self.stop.is_set():
                if len(batch.messages) == BATCH_SIZE:
                    upcoming = asyncio.create_task(self._prepare())
                record = functools.partial(self._record, batch.messages)
                await self.sender.send_batch(batch.mimes, on_result=record, stop=self.stop)
                batch = await upcoming if upcoming is not None else _Batch([], [])
                upcoming = None
        finally:
            if upcoming is not None:
                upcoming.cancel()  # what it claimed is let go of with the rest (_release)
                with contextlib.suppress(BaseException):
                    await upcoming

    def _record(
        self, messages: list[OutgoingMessage], index: int, result: SendResult
    ) -> asyncio.Future[None]:
        return self.recorder.add(messages[index], result)

    async def _prepare(self) -> _Batch:
        if self.stop.is_set():
            return _Batch([], [])
        messages, attachments = await claim_batch(self.db, BATCH_SIZE, self.me)
        mail_from = self.settings.smtp.mail_from
        mimes: list[Message] = []
        for count, message in enumerate(messages, start=1):
            mimes.append(build_mime(message, attachments.get(message.id, []), mail_from))
            if count % BUILD_SLICE == 0:
                # This runs while the batch before sends: a few messages at a time, so the SMTP
                # replies that arrive meanwhile are answered now rather than after the batch.
                await asyncio.sleep(0)
        return _Batch(messages, mimes)

    async def _beat(self) -> None:
        """Keep this run's claims: every few seconds they are renewed for CLAIM_FOR more."""
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                async with self._lock, self.db.session(company_id=UNSCOPED, write=True) as s:
                    await s.execute(
                        update(OutboxMessage)
                        .where(
                            col(OutboxMessage.claimed_by) == self.me,
                            col(OutboxMessage.status) == PENDING,
                        )
                        .values(claimed_until=utcnow() + CLAIM_FOR)
                        .execution_options(synchronize_session=False)
                    )
                    await s.commit()
            except Exception:
                log.warning("outbox: could not renew the claims of %s", self.me, exc_info=True)

    async def _others_hold_claims(self) -> float | None:
        """Seconds to wait before looking again while other dispatchers hold due messages
        (None: nobody does, this run is over)."""
        now = utcnow()
        async with self.db.session(company_id=UNSCOPED) as session:
            ends = (
                await session.execute(
                    select(func.min(col(OutboxMessage.claimed_until))).where(
                        col(OutboxMessage.status) == PENDING,
                        col(OutboxMessage.claimed_by) != self.me,
                        col(OutboxMessage.claimed_until) >= now,
                    )
                )
            ).scalar()
        if ends is None:
            return None
        return min(WATCH_SECONDS, (ends - now).total_seconds() + 0.1)

    async def _release(self) -> None:
        """Let go of the claims this run holds without a result (never sent, or cut short), so
        another run sends them at once rather than after the claim runs out."""
        try:
            async with self._lock, self.db.session(company_id=UNSCOPED, write=True) as session:
                await session.execute(
                    update(OutboxMessage)
                    .where(
                        col(OutboxMessage.claimed_by) == self.me,
                        col(OutboxMessage.status) == PENDING,
                    )
                    .values(
                        claimed_until=None,
                        claimed_by=None,
                        attempts=col(OutboxMessage.attempts) - 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
        except Exception:
            # They are free all the same once the claim runs out, the heartbeat stopped.
            log.warning("outbox: could not let go of the claims of %s", self.me, exc_info=True)


async def send_outbox(
    db: Database, settings: Settings, sender: MailSender, stop: asyncio.Event | None = None
) -> DispatchReport:
    """Send every message that is due now, in batches, each result recorded as it comes.

    Once `stop` is set no new message is started: the run records what it sent, lets go of the
    rest, and returns. While other dispatchers hold claims it keeps looking, so that what a
    dispatcher that died was sending goes out within seconds of its claims running out.
    """
    dispatcher = _Dispatcher(db, settings, sender, stop or asyncio.Event())
    try:
        await dispatcher.run()
    finally:
        await sender.close()
    total = dispatcher.recorder.report
    if total.sent or total.retrying or total.failed:
        log.info(
            "outbox: %d sent, %d retrying, %d failed", total.sent, total.retrying, total.failed
        )
    return total


async def retry_now(session: AsyncSession, message: OutboxMessage) -> None:
    """An admin's "Retry now": a failed (or held) message goes back to the queue at once."""
    message.status = PENDING
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    message.claimed_by = None
    defer_after_commit(session, SEND_OUTBOX_JOB)
    await session.commit()
