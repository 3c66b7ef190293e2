"""Live delivery: a notice committed in any web process reaches its recipient's open pages.

A notice travels as ids only (`Event`); each stream loads the row itself, scoped to the
recipient's company, so nothing private crosses the channel and a stale event shows nothing.

PostgreSQL: `publish` runs `SELECT pg_notify(...)` in the caller's transaction, and PostgreSQL
delivers a NOTIFY only when that transaction commits, so a rolled-back invitation raises no
notice. Each web process LISTENs on one connection of its own and hands events to the streams
it serves. The broadcaster library was the issue's suggestion, but it publishes on its own
asyncpg connection, outside the caller's transaction, so a notice could announce a row that
then rolls back; and the portal already speaks psycopg. Hence this small listener.

SQLite (the embedded default, one process by design): events wait in the session until it
commits (SQLAlchemy's `after_commit`) and are then handed to the broadcasters of this process;
a rollback drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Final

from sqlalchemy import event, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from portal.db import async_url
from portal.listening import listen

log = logging.getLogger(__name__)

CHANNEL: Final = "portal_notifications"
PENDING: Final = "notifications.pending"
QUEUE_SIZE = 32
HEARTBEAT_SECONDS = 15.0
# How long start-up waits for the first LISTEN before serving anyway (and retrying behind).
STARTUP_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Event:
    """Something changed for `user_id`: a new notice, or (notification_id None) only the count."""

    notification_id: int | None
    user_id: int
    company_id: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, payload: str) -> Event:
        data = json.loads(payload)
        notification_id = data["notification_id"]
        return cls(
            None if notification_id is None else int(notification_id),
            int(data["user_id"]),
            int(data["company_id"]),
        )


def _channel_key(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=False)


# The embedded default's channel: the broadcasters of this process, by database.
_local: dict[str, set[Broadcaster]] = defaultdict(set)


async def publish(session: AsyncSession, event: Event) -> None:
    """Announce `event` if, and when, the session's transaction commits."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(CHANNEL, event.to_json())))
        return
    pending = session.info.setdefault(PENDING, [])
    pending.append((_channel_key(connection.engine.url), event))


@event.listens_for(Session, "after_commit")
def _deliver_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT released: nothing is committed until the outer transaction is
    # (An event from a savepoint that rolled back still goes out with the outer commit; its
    # stream finds no row and only recounts the bell.)
    for key, pending in session.info.pop(PENDING, []):
        for broadcaster in list(_local.get(key, ())):
            broadcaster.deliver_soon(pending)


@event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the events are gone already; after a rollback they must never be sent.
    if transaction.parent is None:
        session.info.pop(PENDING, None)


class Subscription:
    """One open stream's queue: bounded, and a slow reader loses its oldest events, not others'."""

    def __init__(self, user_id: int, company_id: int, size: int = QUEUE_SIZE) -> None:
        self.user_id = user_id
        self.company_id = company_id
        # None tells the stream to end (the server is stopping).
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=size)

    def offer(self, item: Event | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    async def next(self) -> Event | None:
        return await self._queue.get()


class Broadcaster:
    """Hands the events of this database to the streams open in this process."""

    def __init__(self, database_url: str, *, heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.heartbeat = heartbeat
        self._url = make_url(database_url)
        self._is_postgres = self._url.get_backend_name() == "postgresql"
        self._local_key = _channel_key(async_url(database_url))
        self._subscriptions: dict[int, set[Subscription]] = defaultdict(set)
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._listened_before = False
        self._previous_handlers: dict[int, Any] = {}

    async def start(self) -> None:
        """Begin receiving events: LISTEN on PostgreSQL, join this process's channel on SQLite."""
        self._closed = False
        self._loop = asyncio.get_running_loop()
        if self._is_postgres:
            self._listener = asyncio.create_task(self._listen(), name="portal-notifications")
            try:
                await asyncio.wait_for(self._listening.wait(), STARTUP_WAIT_SECONDS)
            except TimeoutError:
                log.warning("notifications: not listening yet; live notices wait for PostgreSQL")
        else:
            _local[self._local_key].add(self)
        self._end_streams_on_exit_signals()

    async def stop(self) -> None:
        """End every stream and stop receiving."""
        self.close_streams()
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()
        _local.get(self._local_key, set()).discard(self)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    @contextlib.contextmanager
    def subscribe(self, user_id: int, company_id: int) -> Iterator[Subscription]:
        """A queue of `user_id`'s events for as long as the block runs."""
        subscription = Subscription(user_id, company_id)
        if self._closed:
            subscription.offer(None)
        self._subscriptions[user_id].add(subscription)
        try:
            yield subscription
        finally:
            members = self._subscriptions.get(user_id)
            if members is not None:
                members.discard(subscription)
                if not members:
                    del self._subscriptions[user_id]

    def deliver(self, event: Event) -> None:
        for subscription in self._subscriptions.get(event.user_id, ()):
            subscription.offer(event)

    def deliver_soon(self, event: Event) -> None:
        """`deliver` on the broadcaster's own loop, whichever thread committed."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.deliver, event)

    def close_streams(self) -> None:
        self._closed = True
        for members in self._subscriptions.values():
            for subscription in members:
                subscription.offer(None)

    def _resync(self) -> None:
        # Events may have been missed while the listener was away: every badge recounts.
        for members in self._subscriptions.values():
            for subscription in members:
                subscription.offer(Event(None, subscription.user_id, subscription.company_id))

    async def _listen(self) -> None:
        conninfo = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._listened_before = False  # the first LISTEN of a start has missed nothing
        await listen(
            conninfo,
            CHANNEL,
            name="portal-notifications",
            heard=self._deliver_payload,
            listening=self._listened,
            lost=self._listening.clear,
        )

    def _listened(self) -> None:
        self._listening.set()
        if self._listened_before:
            self._resync()
        self._listened_before = True

    def _deliver_payload(self, payload: str) -> None:
        try:
            event = Event.from_json(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("notifications: ignored a malformed payload %r", payload[:200])
            return
        self.deliver(event)

    def _end_streams_on_exit_signals(self) -> None:
        """Uvicorn waits for open responses to finish before it runs the lifespan shutdown, and
        a stream never finishes by itself: when the server is told to stop, end the streams
        first, then let the server's own handler stop it."""
        if threading.current_thread() is not threading.main_thread() or self._loop is None:
            return
        loop = self._loop
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if not callable(previous):
                continue  # the default action ends the process without waiting for anyone

            def handler(number: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self.close_streams)
                previous(number, frame)

            self._previous_handlers[signum] = previous
            signal.signal(signum, handler)
