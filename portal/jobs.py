"""The background jobs, defined once, and the runner that runs them inside the web process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass

from portal.db import Database, utcnow
from portal.mail.interfaces import MailSender
from portal.mail.outbox import send_outbox
from portal.mail.smtp import SmtpSender
from portal.settings import Settings

log = logging.getLogger(__name__)


def mail_sender(settings: Settings) -> MailSender | None:
    """The SMTP sender, or None when no mail server is configured (messages are held)."""
    return SmtpSender(settings.smtp) if settings.smtp.configured else None


@dataclass
class JobStatus:
    last_run: dt.datetime | None = None
    last_error: str = ""
    last_error_at: dt.datetime | None = None


class InProcessRunner:
    """Sends the outbox every `interval` seconds, or sooner when woken.

    Safe with several processes on one PostgreSQL database: messages are claimed with
    FOR UPDATE SKIP LOCKED, so two runners never take the same message.
    """

    def __init__(
        self, db: Database, settings: Settings, sender: MailSender, *, interval: float = 2.0
    ) -> None:
        self.db = db
        self.settings = settings
        self.sender = sender
        self.interval = interval
        self.status = JobStatus()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="portal-jobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> None:
        try:
            await send_outbox(self.db, self.settings, self.sender)
        except Exception as error:
            # The job is retried on the next tick; admins see the error on the Outbox page.
            log.exception("sending the outbox failed")
            self.status.last_error = f"{type(error).__name__}: {error}"
            self.status.last_error_at = utcnow()
        self.status.last_run = utcnow()

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()
