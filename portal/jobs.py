"""The background jobs, defined once, and the two ways they run.

In-process (the default on SQLite): a loop inside each web process. Worker (the default on
PostgreSQL): procrastinate; web processes defer jobs, `portal worker` runs them, and each job's
cron is the safety net for work that nothing woke. A new job is an `async def run(env, **kwargs)`
and a `Job(...)` line in JOBS; views start it with `await defer(request.app.state, JOB, ...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import croniter
import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.datastructures import State

from portal.db import Database, utcnow
from portal.mail.interfaces import MailSender
from portal.mail.outbox import send_outbox
from portal.mail.smtp import SmtpSender
from portal.settings import Settings

log = logging.getLogger(__name__)


def mail_sender(settings: Settings) -> MailSender | None:
    """The SMTP sender, or None when no mail server is configured (messages are held)."""
    return SmtpSender(settings.smtp) if settings.smtp.configured else None


@dataclass(frozen=True)
class JobEnv:
    """What a job may use: the database, the settings, and a sender for each run."""

    db: Database
    settings: Settings
    new_sender: Callable[[], MailSender | None]


@dataclass(frozen=True)
class Job:
    """One kind of background work; both runners run it the same way."""

    name: str
    run: Callable[..., Awaitable[object]]  # async def run(env: JobEnv, **kwargs)
    # When it also runs on its own: procrastinate's cron (UTC; a sixth field counts seconds).
    cron: str | None = None


async def _send_outbox(env: JobEnv) -> None:
    sender = env.new_sender()
    if sender is not None:  # without a mail server messages are held: nothing to send
        await send_outbox(env.db, env.settings, sender)


# Woken by mail_queued; every minute it also sends the retries whose time has come.
SEND_OUTBOX = Job("send_outbox", _send_outbox, cron="* * * * *")
JOBS: tuple[Job, ...] = (SEND_OUTBOX,)

# A failed run is tried again after 2, 4, 8, 16 and 32 seconds, then given up (its cron, if
# any, starts it afresh later).
RETRY_ATTEMPTS = 5
RETRY_BASE_SECONDS = 2


def _queueing_lock(job: Job, kwargs: dict[str, Any]) -> str:
    """At most one waiting run per job and arguments: the run that comes does all the work."""
    return job.name if not kwargs else f"{job.name}:{json.dumps(kwargs, sort_keys=True)}"


@dataclass(frozen=True)
class JobHealth:
    """How a job is doing, for admins: its last failure, while no run has succeeded since."""

    failed_at: dt.datetime | None = None
    error: str = ""  # the in-process runner knows it; a worker writes it to its log
    retry_at: dt.datetime | None = None  # when the worker tries that run again
    workers: int | None = None  # `portal worker`s alive; None when jobs run in-process


class JobRunner(Protocol):
    async def defer(self, job: Job, **kwargs: Any) -> None:
        """Run `job` with `kwargs` soon."""
        ...

    async def health(self, job: Job) -> JobHealth:
        """The job's last failure, if it has not succeeded since."""
        ...

    async def stop(self) -> None:
        """Stop running jobs and let go of connections."""
        ...


class InProcessRunner:
    """Runs the jobs inside the web process: the outbox every `interval` seconds or when
    woken, periodic jobs when their cron comes, deferred jobs at once.

    Safe with several processes on one database: messages are claimed atomically, so two
    runners never take the same message.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        sender: MailSender,
        *,
        interval: float = 2.0,
        jobs: tuple[Job, ...] = JOBS,
    ) -> None:
        self.env = JobEnv(db, settings, lambda: sender)
        self.interval = interval
        self.jobs = jobs
        self._failed: dict[str, tuple[dt.datetime, str]] = {}
        self._succeeded: dict[str, dt.datetime] = {}
        self._next_runs: dict[str, dt.datetime] = {}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._spawn(self._loop(), "portal-jobs")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def defer(self, job: Job, **kwargs: Any) -> None:
        if job is SEND_OUTBOX and not kwargs:
            self.wake()
        else:
            self._spawn(self._run_with_retries(job, kwargs), f"portal-job-{job.name}")

    async def health(self, job: Job) -> JobHealth:
        failed_at, error = self._failed.get(job.name, (None, ""))
        succeeded_at = self._succeeded.get(job.name)
        if failed_at is None or (succeeded_at is not None and succeeded_at > failed_at):
            return JobHealth()
        return JobHealth(failed_at=failed_at, error=error)

    async def run_once(self) -> None:
        """Send the outbox now (the loop's tick)."""
        await self._run(SEND_OUTBOX, {})

    async def _run(self, job: Job, kwargs: dict[str, Any]) -> bool:
        try:
            await job.run(self.env, **kwargs)
        except Exception as error:
            # Tried again on the next tick or retry; admins see it on the job's page meanwhile.
            log.exception("the job %s failed", job.name)
            self._failed[job.name] = (utcnow(), f"{type(error).__name__}: {error}")
            return False
        self._succeeded[job.name] = utcnow()
        return True

    async def _run_with_retries(self, job: Job, kwargs: dict[str, Any]) -> None:
        for attempt in range(RETRY_ATTEMPTS + 1):
            if await self._run(job, kwargs) or attempt == RETRY_ATTEMPTS:
                return
            await asyncio.sleep(RETRY_BASE_SECONDS ** (attempt + 1))

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_due_periodic_jobs(self, now: dt.datetime) -> None:
        # The outbox is polled on every tick here (a cheap query); its cron serves the worker.
        for job in self.jobs:
            if job.cron is None or job is SEND_OUTBOX:
                continue
            due = self._next_runs.get(job.name)
            if due is not None and due <= now:
                self._spawn(self._run_with_retries(job, {}), f"portal-job-{job.name}")
            if due is None or due <= now:
                self._next_runs[job.name] = croniter.croniter(job.cron, now).get_next(dt.datetime)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            await self.run_once()
            self._start_due_periodic_jobs(utcnow())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)


def libpq_url(database_url: str) -> str:
    """The database URL as psycopg and procrastinate take it (no SQLAlchemy driver name)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def procrastinate_app(connector: procrastinate.BaseConnector) -> procrastinate.App:
    """Our jobs as procrastinate tasks, with their crons and retries, plus hourly pruning."""
    app = procrastinate.App(connector=connector)
    retry = procrastinate.RetryStrategy(
        max_attempts=RETRY_ATTEMPTS, exponential_wait=RETRY_BASE_SECONDS
    )
    for job in JOBS:
        task = app.task(name=job.name, pass_context=True, retry=retry, queueing_lock=job.name)(
            _procrastinate_task(job)
        )
        if job.cron:
            app.periodic(cron=job.cron, periodic_id=job.name)(task)
    prune = app.task(name="prune_job_history", pass_context=True, queueing_lock="prune")(
        _prune_job_history
    )
    app.periodic(cron="17 * * * *", periodic_id="prune_job_history")(prune)
    return app


def _procrastinate_task(job: Job) -> Callable[..., Awaitable[None]]:
    async def task(
        context: procrastinate.JobContext, timestamp: int | None = None, **kwargs: Any
    ) -> None:
        # `timestamp` is the cron time procrastinate hands a periodic run.
        env: JobEnv = context.additional_context["portal"]
        try:
            await job.run(env, **kwargs)
        except Exception:
            await _release_queueing_lock(context)
            raise

    return task


async def _release_queueing_lock(context: procrastinate.JobContext) -> None:
    """A failed run goes back to the queue for its retry with its queueing lock, and fails to
    if a fresh run of the job already waits there (procrastinate issues #1446 and #1543): the
    job would stay "doing" and the failure unrecorded. The retry does not need the lock."""
    try:
        await context.app.connector.execute_query_async(
            "UPDATE procrastinate_jobs SET queueing_lock = NULL WHERE id = %(job_id)s",
            job_id=context.job.id,
        )
    except Exception:
        log.exception("could not release the queueing lock of job %s", context.job.id)


async def _prune_job_history(context: procrastinate.JobContext, timestamp: int) -> None:
    """Keep a day of finished runs (the Outbox page compares failures with them) and a month
    of failed ones."""
    manager = context.app.job_manager
    await manager.delete_old_jobs(nb_hours=24)
    await manager.delete_old_jobs(
        nb_hours=24 * 30, include_failed=True, include_cancelled=True, include_aborted=True
    )


_LAST_FAILURE = text(
    "SELECT e.at, j.status, j.scheduled_at FROM procrastinate_events e"
    " JOIN procrastinate_jobs j ON j.id = e.job_id"
    " WHERE j.task_name = :task AND e.type IN ('deferred_for_retry', 'failed')"
    " ORDER BY e.at DESC LIMIT 1"
)
_SUCCEEDED_SINCE = text(
    "SELECT 1 FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id"
    " WHERE j.task_name = :task AND e.type = 'succeeded' AND e.at > :since LIMIT 1"
)
_LIVE_WORKERS = text(
    "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - interval '1 minute'"
)


class ProcrastinateJobs:
    """Worker mode in a web process: defers jobs to procrastinate and reads how they went."""

    def __init__(self, app: procrastinate.App, db: Database) -> None:
        self.app = app
        self.db = db

    async def defer(self, job: Job, **kwargs: Any) -> None:
        deferrer = self.app.configure_task(job.name, queueing_lock=_queueing_lock(job, kwargs))
        with contextlib.suppress(AlreadyEnqueued):
            # A run is already waiting; a worker hears of it through LISTEN/NOTIFY.
            await deferrer.defer_async(**kwargs)

    async def health(self, job: Job) -> JobHealth:
        async with self.db.engine.connect() as connection:
            workers = (await connection.execute(_LIVE_WORKERS)).scalar_one()
            failure = (await connection.execute(_LAST_FAILURE, {"task": job.name})).first()
            if failure is None:
                return JobHealth(workers=workers)
            failed_at, status, scheduled_at = failure
            since = {"task": job.name, "since": failed_at}
            if (await connection.execute(_SUCCEEDED_SINCE, since)).first():
                return JobHealth(workers=workers)
        retry_at = scheduled_at if status == "todo" else None
        return JobHealth(failed_at=failed_at, retry_at=retry_at, workers=workers)

    async def stop(self) -> None:
        await self.app.close_async()


async def start(db: Database, settings: Settings) -> JobRunner | None:
    """What runs the jobs for this web process, chosen by PORTAL_JOBS (None: nothing to run)."""
    if settings.jobs_runner == "worker":
        connector = procrastinate.PsycopgConnector(
            conninfo=libpq_url(settings.database_url), min_size=1, max_size=2
        )
        app = procrastinate_app(connector)
        await app.open_async()
        return ProcrastinateJobs(app, db)
    sender = mail_sender(settings)
    if sender is None:
        return None  # the only job today sends mail, and there is no server to send it to
    runner = InProcessRunner(db, settings, sender)
    runner.start()
    return runner


async def defer(state: State, job: Job, **kwargs: Any) -> None:
    """Run `job` with `kwargs` soon, in this process or on a worker."""
    runner: JobRunner | None = getattr(state, "jobs", None)
    if runner is not None:
        await runner.defer(job, **kwargs)


async def mail_queued(state: State) -> None:
    """Call after committing outbox messages: the send starts now rather than on the next tick.

    Never raises: the outbox row is the durable record, and the periodic send picks it up.
    """
    try:
        await defer(state, SEND_OUTBOX)
    except Exception:
        log.exception("could not start sending the outbox; the periodic send will")


async def health(state: State, job: Job = SEND_OUTBOX) -> JobHealth:
    """How `job` is doing, for an admin page; never raises."""
    runner: JobRunner | None = getattr(state, "jobs", None)
    if runner is None:
        return JobHealth()
    try:
        return await runner.health(job)
    except Exception:
        log.exception("could not read how the job %s is doing", job.name)
        return JobHealth()


SHUTDOWN_GRACE_SECONDS = 25.0  # under the 30 s most process managers wait after SIGTERM


class JobsUnavailable(RuntimeError):
    """The worker cannot start; the message says why."""


async def run_worker(
    settings: Settings,
    *,
    concurrency: int = 4,
    wait: bool = True,
    new_sender: Callable[[], MailSender | None] | None = None,
) -> None:
    """`portal worker`: run the jobs until SIGTERM or SIGINT; running jobs get time to finish."""
    db = Database(settings.database_url)
    env = JobEnv(db, settings, new_sender or (lambda: mail_sender(settings)))
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(settings.database_url), min_size=1, max_size=concurrency + 3
    )
    app = procrastinate_app(connector)
    try:
        async with app.open_async():
            if not await app.check_connection_async():
                raise JobsUnavailable("procrastinate's tables are missing: run `portal db upgrade`")
            await app.run_worker_async(
                concurrency=concurrency,
                wait=wait,
                additional_context={"portal": env},
                shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
            )
    finally:
        await db.dispose()
