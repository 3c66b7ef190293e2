"""Worker mode: procrastinate's queue in PostgreSQL. Web processes defer jobs to it, and
`portal worker` runs them (the default on PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import procrastinate
from procrastinate import signals
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import text

from portal.db import Database, libpq_conninfo
from portal.jobs.base import (
    RETRY_ATTEMPTS,
    RETRY_BASE_SECONDS,
    Job,
    JobEnv,
    JobHealth,
    Runner,
    job_name,
    queueing_lock,
)
from portal.mail.interfaces import MailSender
from portal.settings import Settings

log = logging.getLogger(__name__)


def procrastinate_app(
    connector: procrastinate.BaseConnector, jobs: Sequence[Job]
) -> procrastinate.App:
    """`jobs` as procrastinate tasks, with their crons and retries, plus hourly pruning."""
    app = procrastinate.App(connector=connector)
    retry = procrastinate.RetryStrategy(
        max_attempts=RETRY_ATTEMPTS, exponential_wait=RETRY_BASE_SECONDS
    )
    for job in jobs:
        task = app.task(name=job.name, pass_context=True, retry=retry, queueing_lock=job.name)(
            _procrastinate_task(job)
        )
        if job.cron:
            app.periodic(cron=job.cron, periodic_id=job.name)(task)
    prune = app.task(name="prune_job_history", pass_context=True, queueing_lock="prune")(
        _prune_job_history
    )
    app.periodic(cron="17 * * * *", periodic_id="prune_job_history")(prune)
    retry_stalled = app.task(
        name="retry_stalled_jobs", pass_context=True, queueing_lock="retry_stalled_jobs"
    )(_retry_stalled_jobs)
    app.periodic(cron="* * * * *", periodic_id="retry_stalled_jobs")(retry_stalled)
    return app


def _procrastinate_task(job: Job) -> Callable[..., Awaitable[None]]:
    async def task(
        context: procrastinate.JobContext, timestamp: int | None = None, **kwargs: Any
    ) -> None:
        # `timestamp` is the cron time procrastinate hands a periodic run.
        env: JobEnv = context.additional_context["portal"]
        started = time.monotonic()
        try:
            await job.run(env, **kwargs)
        except Exception:
            await _releasequeueing_lock(context)
            raise
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info(
            "job %s ran in %.0f ms (procrastinate job %s)", job.name, elapsed_ms, context.job.id
        )

    return task


async def _releasequeueing_lock(context: procrastinate.JobContext) -> None:
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


# Workers beat every 10 s and procrastinate counts one gone after 30 s without a beat; a
# minute leaves room for a worker that is only slow (a busy machine, a long GC pause).
STALLED_AFTER_SECONDS = 60


async def _retry_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Jobs left "doing" by a worker that died (killed, out of memory, its machine lost) go
    back to the queue, and the rows of workers that stopped beating are deleted."""
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS):
        # A fresh run of the job may already wait with the same queueing lock.
        await context.app.connector.execute_query_async(
            "UPDATE procrastinate_jobs SET queueing_lock = NULL WHERE id = %(job_id)s",
            job_id=job.id,
        )
        await manager.retry_job(job)
        log.warning("job %s (%s) was left running by a dead worker: retried", job.task_name, job.id)
    await manager.prune_stalled_workers(STALLED_AFTER_SECONDS)


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


STOP_DEFERRING_SECONDS = 5.0


class ProcrastinateJobs(Runner):
    """Worker mode in a web process: defers jobs to procrastinate and reads how they went."""

    def __init__(self, app: procrastinate.App, db: Database) -> None:
        super().__init__(db)
        self.app = app
        self.db = db

    def start(self) -> None:
        """Defer the jobs that commits of this database ask for (the app is open already)."""
        self._listen_for_commits()

    async def defer(self, job: Job | str, **kwargs: Any) -> None:
        name = job_name(job)
        if name not in self.app.tasks:
            raise LookupError(f"no job is named {name!r}")
        deferrer = self.app.configure_task(name, queueing_lock=queueing_lock(name, kwargs))
        with contextlib.suppress(AlreadyEnqueued):
            # A run is already waiting; a worker hears of it through LISTEN/NOTIFY.
            await deferrer.defer_async(**kwargs)

    async def health(self, job: Job | str) -> JobHealth:
        task = {"task": job_name(job)}
        async with self.db.engine.connect() as connection:
            workers = (await connection.execute(_LIVE_WORKERS)).scalar_one()
            failure = (await connection.execute(_LAST_FAILURE, task)).first()
            if failure is None:
                return JobHealth(workers=workers)
            failed_at, status, scheduled_at = failure
            if (await connection.execute(_SUCCEEDED_SINCE, {**task, "since": failed_at})).first():
                return JobHealth(workers=workers)
        retry_at = scheduled_at if status == "todo" else None
        return JobHealth(failed_at=failed_at, retry_at=retry_at, workers=workers)

    async def stop(self) -> None:
        self._stop_listening()
        # Deferrals under way finish first (each is one short insert), unless the database hangs.
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=STOP_DEFERRING_SECONDS)
            for task in late:
                task.cancel()
        await self.app.close_async()


SHUTDOWN_GRACE_SECONDS = 25.0  # under the 30 s most process managers wait after SIGTERM


async def _until_stopped(worker: asyncio.Future[None], env: JobEnv) -> None:
    """Run the worker until SIGTERM or SIGINT. The signal also tells the running jobs
    (env.stopping): procrastinate's own handlers only stop fetching new ones, which a job cannot
    see, so a long one would run on until the grace limit cancels it."""

    def stop() -> None:
        env.stopping.set()
        worker.cancel()  # a cancelled run_worker_async stops fetching and waits for the jobs

    with signals.on_stop(stop):
        try:
            await worker
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not env.stopping.is_set() or (current is not None and current.cancelling()):
                raise  # cancelled from outside, not stopped by a signal


class JobsUnavailable(RuntimeError):
    """The worker cannot start; the message says why."""


async def run_worker(
    settings: Settings,
    jobs: Sequence[Job],
    *,
    concurrency: int = 4,
    wait: bool = True,
    new_mail_sender: Callable[[], MailSender | None] | None = None,
) -> None:
    """`portal worker`: run `jobs` until SIGTERM or SIGINT; running jobs get time to finish.

    Without `new_mail_sender` jobs get no sender (as without a mail server).
    """
    db = Database(settings.database_url)
    env = JobEnv(db, settings, new_mail_sender or (lambda: None))
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_conninfo(settings.database_url), min_size=1, max_size=concurrency + 3
    )
    app = procrastinate_app(connector, jobs)
    try:
        async with app.open_async():
            if not await app.check_connection_async():
                raise JobsUnavailable("procrastinate's tables are missing: run `portal db upgrade`")
            worker = asyncio.ensure_future(
                app.run_worker_async(
                    concurrency=concurrency,
                    wait=wait,
                    additional_context={"portal": env},
                    shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
                    install_signal_handlers=False,
                )
            )
            await _until_stopped(worker, env)
    finally:
        await db.dispose()
