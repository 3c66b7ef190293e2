"""Recording what the SMTP server answered, as it answers: each result written in small groups
(a group commit), retried on a database error that may pass, written even on cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import stamina
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from portal.db import Database, database_unavailable, utcnow
from portal.mail.interfaces import SendResult
from portal.mail.messages import OutgoingMessage
from portal.mail.models import FAILED, PENDING, SENT, OutboxMessage

log = logging.getLogger(__name__)

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


class Recorder:
    """Writes each result as it comes, in small groups: what arrives while one write runs goes
    in the next (a group commit). A connection waits for its accepted message to be written
    before it sends another, so a process that dies has sent again at most the message each
    connection had in hand."""

    def __init__(self, db: Database, lock: asyncio.Lock, claimed_by: str) -> None:
        self.db = db
        self.claimed_by = claimed_by
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
                writes.append(_not_sent(message, result, now, self.claimed_by))
        async with self._lock:
            writer = await self._writer_connection()
            try:
                for sql, params in writes:
                    marked = await writer.execute(sql, params)
                    if sql is _MARK_FAILED:
                        report.failed += marked
                    elif sql is _MARK_RETRY:
                        report.retrying += marked
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
# A failure is marked only while the message is still this run's: one whose claim ran out
# before its result was written may be another dispatcher's by then, in its hands. (Sent is
# marked whoever holds it: the server has it.)
_MARK_FAILED = (
    "UPDATE outbox_message SET status = 'failed', claimed_until = NULL, claimed_by = NULL,"
    " last_error = {p} WHERE id = {p} AND claimed_by = {p} AND status = 'pending'"
)
_MARK_RETRY = (
    "UPDATE outbox_message SET next_attempt_at = {p}, claimed_until = NULL, claimed_by = NULL,"
    " last_error = {p} WHERE id = {p} AND claimed_by = {p} AND status = 'pending'"
)
assert (OutboxMessage.__tablename__, PENDING, SENT, FAILED) == (
    "outbox_message", "pending", "sent", "failed"
)  # fmt: skip


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

    async def execute(self, sql: str, params: tuple[object, ...]) -> int:
        """Run `sql`; how many rows it changed."""
        if not self.sqlite:
            return int((await self.driver.execute(sql.replace("{p}", "%s"), params)).rowcount)
        sql = sql.replace("{p}", "?")
        values = tuple(_sqlite_time(v) if isinstance(v, dt.datetime) else v for v in params)
        if self.at_once is not None:
            try:
                return self.at_once.execute(sql, values).rowcount
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode not in _SQLITE_BUSY:
                    raise
        return int((await self.driver.execute(sql, values)).rowcount)

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
    message: OutgoingMessage, result: SendResult, now: dt.datetime, claimed_by: str
) -> tuple[str, tuple[object, ...]]:
    gave_up = now - message.created_at > GIVE_UP_AFTER
    error = result.error
    if gave_up and not result.permanent:
        error = f"gave up after {GIVE_UP_AFTER // dt.timedelta(hours=1)} hours: {error}"
    if result.permanent or gave_up:
        return _MARK_FAILED, (error[:2000], message.id, claimed_by)
    next_attempt = now + retry_delay(message.attempts)
    return _MARK_RETRY, (next_attempt, error[:2000], message.id, claimed_by)
