"""What a job is, what it may use, and starting one once a transaction commits."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from portal.db import Database
from portal.mail.interfaces import MailSender
from portal.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobEnv:
    """What a job may use: the database, the settings, a new mail sender for each run (None
    when no mail server is configured: messages are held), and the runner's stop request.

    A long job looks at `stopping` between steps: once it is set, the job finishes the step in
    hand, saves what it did and returns. The runner cancels the jobs still running a few
    seconds later (a cancelled job's `finally` blocks still run)."""

    db: Database
    settings: Settings
    new_mail_sender: Callable[[], MailSender | None]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Job:
    """One kind of background work; both runners run it the same way."""

    name: str
    run: Callable[..., Awaitable[object]]  # async def run(env: JobEnv, **kwargs)
    # When it also runs on its own: procrastinate's cron (UTC; a sixth field counts seconds).
    cron: str | None = None
    # In-process only: run it every so many seconds instead of on its cron (a cheap look for
    # work, such as the outbox's), and at once when it is deferred without arguments.
    poll_seconds: float | None = None


# A failed run is tried again after 2, 4, 8, 16 and 32 seconds, then given up (its cron, if
# any, starts it afresh later).
RETRY_ATTEMPTS = 5
RETRY_BASE_SECONDS = 2


def job_name(job: Job | str) -> str:
    return job if isinstance(job, str) else job.name


def queueing_lock(name: str, kwargs: dict[str, Any]) -> str:
    """At most one waiting run per job and arguments: the run that comes does all the work."""
    return name if not kwargs else f"{name}:{json.dumps(kwargs, sort_keys=True)}"


@dataclass(frozen=True)
class JobHealth:
    """How a job is doing, for admins: its last failure, while no run has succeeded since."""

    failed_at: dt.datetime | None = None
    error: str = ""  # the in-process runner knows it; a worker writes it to its log
    retry_at: dt.datetime | None = None  # when the worker tries that run again
    workers: int | None = None  # `portal worker`s alive; None when jobs run in-process


class JobRunner(Protocol):
    async def defer(self, job: Job | str, **kwargs: Any) -> None:
        """Run `job` with `kwargs` soon."""
        ...

    def defer_soon(self, name: str, kwargs: dict[str, Any]) -> None:
        """`defer` from a commit hook, on the runner's own loop; never raises."""
        ...

    async def health(self, job: Job | str) -> JobHealth:
        """The job's last failure, if it has not succeeded since."""
        ...

    async def stop(self) -> None:
        """Stop running jobs and let go of connections."""
        ...


# Work after commit. Runners of this process, by database: a commit defers to each of them.
AFTER_COMMIT: Final = "jobs.after_commit"
_runners: dict[str, set[Runner]] = defaultdict(set)


def _database_key(url: str | URL) -> str:
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


def defer_after_commit(session: Session | AsyncSession, name: str, **kwargs: Any) -> None:
    """Start the job `name` once `session`'s transaction commits; a rollback forgets it.

    By name: the module that writes the work need not import the one that does it.
    """
    session.info.setdefault(AFTER_COMMIT, {})[queueing_lock(name, kwargs)] = (name, kwargs)


@event.listens_for(Session, "after_commit")
def _defer_after_commit(session: Session) -> None:
    if session.in_nested_transaction() or AFTER_COMMIT not in session.info:
        return  # a SAVEPOINT released: nothing is committed until the outer transaction is
    pending: dict[str, tuple[str, dict[str, Any]]] = session.info.pop(AFTER_COMMIT)
    try:
        bind = session.get_bind()
        runners = list(_runners.get(_database_key(bind.engine.url), ()))
    except Exception:
        # The commit has happened: never undo it with an error. The job's periodic run is the
        # safety net.
        log.exception("could not find the job runners to defer %s to", ", ".join(pending))
        return
    for runner in runners:
        for name, kwargs in pending.values():
            runner.defer_soon(name, kwargs)


@event.listens_for(Session, "after_transaction_end")
def _drop_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the jobs are deferred already; after a rollback they must never be.
    if transaction.parent is None:
        session.info.pop(AFTER_COMMIT, None)


class Runner:
    """What both runners share: being found by the commits of their database, and their
    asyncio tasks."""

    def __init__(self, db: Database) -> None:
        self._key = _database_key(db.engine.url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def defer(self, job: Job | str, **kwargs: Any) -> None:
        raise NotImplementedError

    def defer_soon(self, name: str, kwargs: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._defer_from_commit, name, kwargs)
        except RuntimeError:  # the loop closed meanwhile
            log.warning("could not defer the job %s: its runner has stopped", name)

    def _defer_from_commit(self, name: str, kwargs: dict[str, Any]) -> None:
        if self._loop is not None:  # not stopped since the commit
            self._spawn(self._defer_logged(name, kwargs), name)

    async def _defer_logged(self, name: str, kwargs: dict[str, Any]) -> None:
        try:
            await self.defer(name, **kwargs)
        except Exception:
            log.exception("could not defer the job %s after a commit; its next run will do", name)

    def _listen_for_commits(self) -> None:
        self._loop = asyncio.get_running_loop()
        _runners[self._key].add(self)

    def _stop_listening(self) -> None:
        _runners.get(self._key, set()).discard(self)
        self._loop = None

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(f"portal-job-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
