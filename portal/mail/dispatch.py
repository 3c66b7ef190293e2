"""Dispatching the outbox: claiming due messages in batches, sending them, and recording each
result as it comes, so that a crash sends again at most the messages in flight."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, fields
from email.message import Message
from typing import Any

from sqlalchemy import exists, func, literal_column, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from portal.db import UNSCOPED, Database, utcnow
from portal.mail.interfaces import NOT_ATTEMPTED, MailSender, SendResult
from portal.mail.messages import OutgoingMessage, build_mime
from portal.mail.models import PENDING, OutboxAttachment, OutboxMessage
from portal.mail.recording import DispatchReport, Recorder
from portal.settings import Settings

log = logging.getLogger(__name__)


BATCH_SIZE = 250
# Messages built between two looks at the event loop (see _prepare).
BUILD_SLICE = 10
# A claim lasts this long unless its dispatcher's heartbeat renews it: one that died (killed,
# its machine gone) stops beating, and its messages are free to others 30 seconds later.
CLAIM_FOR = dt.timedelta(seconds=30)
HEARTBEAT_SECONDS = 5.0
# By its own clock a run commits a message to the server (its final ".") only within this share
# of its claim's time since the last renewal (10 of 30 seconds; the heartbeat renews every 5):
# a message committed last then has 20 seconds for the server's reply (the SMTP sender waits
# 15 at most) and its recording before another dispatcher may take it.
COMMIT_WITHIN = 1 / 3
# With nothing of its own to send while another dispatcher holds claims, a dispatcher looks
# again this often (for new mail, and for those claims if they run out) until they are gone.
WATCH_SECONDS = 2.0


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


@dataclass(frozen=True)
class _Batch:
    messages: list[OutgoingMessage]
    mimes: list[Message]


class _Held:
    """Until when (time.monotonic()) this run may still commit each message it claimed. A
    heartbeat that cannot renew lets the claims run out while the SMTP connections go on
    sending; another dispatcher may take the messages from then on, so this run must not."""

    def __init__(self) -> None:
        self._until: dict[int, float] = {}

    def claimed(self, ids: list[int], since: float) -> None:
        """`ids` are this run's for CLAIM_FOR from `since`, read before the claim was made."""
        self._until.update(dict.fromkeys(ids, since + CLAIM_FOR.total_seconds() * COMMIT_WITHIN))

    def renewed(self, ids: list[int], since: float) -> None:
        """As claimed, for those still in hand (a batch sent meanwhile is forgotten)."""
        self.claimed([id_ for id_ in ids if id_ in self._until], since)

    def ours(self, id_: int) -> bool:
        return time.monotonic() < self._until.get(id_, 0.0)

    def forget(self, ids: list[int]) -> None:
        for id_ in ids:
            self._until.pop(id_, None)


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
        self.held = _Held()
        self._lock = asyncio.Lock()
        self.recorder = Recorder(db, self._lock, self.me)

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._beat())
        try:
            while not self.stop.is_set():
                if await self._send_due():
                    continue  # what ran out unsent was let go of: claim it again
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

    async def _send_due(self) -> bool:
        """Send what is due, in batches: while one batch sends, the next is claimed and built,
        so the SMTP connections wait only for the first claim. True if claims ran out on
        messages not yet sent: let go of, they are due again."""
        upcoming: asyncio.Task[_Batch] | None = None
        ran_out = False
        try:
            batch = await self._prepare()
            while batch.messages and not self.stop.is_set():
                if len(batch.messages) == BATCH_SIZE:
                    upcoming = asyncio.create_task(self._prepare())
                ids = [message.id for message in batch.messages]
                results = await self.sender.send_batch(
                    batch.mimes,
                    on_result=functools.partial(self._record, batch.messages),
                    stop=self.stop,
                    may_send=functools.partial(self._ours, ids),
                )
                self.held.forget(ids)
                unsent = [
                    i for i, result in zip(ids, results, strict=True) if result is NOT_ATTEMPTED
                ]
                if unsent and not self.stop.is_set():
                    await self._update_own_claims(unsent, **_LET_GO)
                    ran_out = True
                batch = await upcoming if upcoming is not None else _Batch([], [])
                upcoming = None
            return ran_out
        finally:
            if upcoming is not None:
                upcoming.cancel()  # what it claimed is let go of with the rest (_release)
                with contextlib.suppress(BaseException):
                    await upcoming

    def _ours(self, ids: list[int], index: int) -> bool:
        return self.held.ours(ids[index])

    def _record(
        self, messages: list[OutgoingMessage], index: int, result: SendResult
    ) -> asyncio.Future[None]:
        return self.recorder.add(messages[index], result)

    async def _prepare(self) -> _Batch:
        if self.stop.is_set():
            return _Batch([], [])
        since = time.monotonic()
        messages, attachments = await claim_batch(self.db, BATCH_SIZE, self.me)
        self.held.claimed([message.id for message in messages], since)
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
            since = time.monotonic()
            try:
                renewed = await self._update_own_claims(None, claimed_until=utcnow() + CLAIM_FOR)
            except Exception:
                log.warning("outbox: could not renew the claims of %s", self.me, exc_info=True)
                continue
            # Only what still names this run: a claim that ran out before this renewal may
            # have been taken meanwhile, and then it is the other dispatcher's to send.
            self.held.renewed(renewed, since)

    async def _update_own_claims(self, ids: list[int] | None, **values: Any) -> list[int]:
        """Set `values` on the messages (of `ids`, or all) this run claimed and has no result
        for yet; returns their ids."""
        mine = [col(OutboxMessage.claimed_by) == self.me, col(OutboxMessage.status) == PENDING]
        if ids is not None:
            mine.append(col(OutboxMessage.id).in_(ids))
        async with self._lock, self.db.session(company_id=UNSCOPED, write=True) as session:
            updated = await session.execute(
                update(OutboxMessage)
                .where(*mine)
                .values(**values)
                .returning(col(OutboxMessage.id))
                .execution_options(synchronize_session=False)
            )
            updated_ids: list[int] = list(updated.scalars())  # type: ignore[arg-type]
            await session.commit()
        return updated_ids

    async def _others_hold_claims(self) -> float | None:
        """Seconds to wait before looking again while other dispatchers hold due messages
        (None: nobody does, this run is over; 0: a claim ran out while this run was sending,
        so its messages are due now)."""
        now = utcnow()
        async with self.db.session(company_id=UNSCOPED) as session:
            ends = (
                await session.execute(
                    select(func.min(col(OutboxMessage.claimed_until))).where(
                        col(OutboxMessage.status) == PENDING,
                        col(OutboxMessage.next_attempt_at) <= now,
                        col(OutboxMessage.claimed_by) != self.me,
                        col(OutboxMessage.claimed_until).is_not(None),
                    )
                )
            ).scalar()
        if ends is None:
            return None
        return max(0.0, min(WATCH_SECONDS, (ends - now).total_seconds() + 0.1))

    async def _release(self) -> None:
        """Let go of the claims this run holds without a result (never sent, or cut short), so
        another run sends them at once rather than after the claim runs out."""
        try:
            await self._update_own_claims(None, **_LET_GO)
        except Exception:
            # They are free all the same once the claim runs out, the heartbeat stopped.
            log.warning("outbox: could not let go of the claims of %s", self.me, exc_info=True)


# A claim let go of without a result: the attempt it counted is taken back.
_LET_GO: dict[str, Any] = {
    "claimed_until": None,
    "claimed_by": None,
    "attempts": col(OutboxMessage.attempts) - 1,
}


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
