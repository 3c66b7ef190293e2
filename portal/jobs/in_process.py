"""The in-process runner: jobs run as tasks inside each web process (the default on SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

import croniter

from portal.db import utcnow
from portal.jobs import base
from portal.jobs.base import Job, JobEnv, JobHealth, Runner, job_name, queueing_lock

log = logging.getLogger(__name__)

# On stop, jobs under way get this long to finish what they hold (they see env.stopping).
STOP_GRACE_SECONDS = 5.0


class InProcessRunner(Runner):
    """Runs the jobs inside the web process: polled jobs every `poll_seconds` or when deferred,
    periodic ones when their cron comes, deferred ones at once, with retries.

    Safe with several processes on one database as long as each job is: the outbox claims its
    messages atomically, so two runners never take the same message.
    """

    def __init__(self, env: JobEnv, jobs: Sequence[Job]) -> None:
        super().__init__(env.db)
        self.env = env
        self.jobs = {job.name: job for job in jobs}
        self._failed: dict[str, tuple[dt.datetime, str]] = {}
        self._succeeded: dict[str, dt.datetime] = {}
        self._wakes = {job.name: asyncio.Event() for job in jobs if job.poll_seconds is not None}
        # A run waits or runs for each key here; True: deferred again since that run began.
        self._deferred_again: dict[str, bool] = {}

    def start(self) -> None:
        self._listen_for_commits()
        for job in self.jobs.values():
            if job.poll_seconds is not None:
                self._spawn(self._poll(job, job.poll_seconds), job.name)
        if any(job.cron and job.poll_seconds is None for job in self.jobs.values()):
            self._spawn(self._run_periodic_jobs(), "periodic")

    async def stop(self) -> None:
        """Ask the jobs under way to stop (env.stopping), give them a few seconds, then cancel
        those still running."""
        self._stop_listening()
        self.env.stopping.set()
        late: set[asyncio.Task[None]] = set(self._tasks)
        if late:
            _, late = await asyncio.wait(late, timeout=STOP_GRACE_SECONDS)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def defer(self, job: Job | str, **kwargs: Any) -> None:
        self._defer_now(self._job(job), kwargs)

    async def health(self, job: Job | str) -> JobHealth:
        name = job_name(job)
        failed_at, error = self._failed.get(name, (None, ""))
        succeeded_at = self._succeeded.get(name)
        if failed_at is None or (succeeded_at is not None and succeeded_at > failed_at):
            return JobHealth()
        return JobHealth(failed_at=failed_at, error=error)

    async def run_once(self, job: Job | str, **kwargs: Any) -> bool:
        """Run `job` now, here, once (no retry); False if it failed."""
        return await self._run(self._job(job), kwargs)

    def _job(self, job: Job | str) -> Job:
        if isinstance(job, Job):
            return job
        if job not in self.jobs:
            raise LookupError(f"no job is named {job!r}")
        return self.jobs[job]

    def _defer_from_commit(self, name: str, kwargs: dict[str, Any]) -> None:
        if self._loop is None:
            return  # stopped since the commit
        try:
            self._defer_now(self._job(name), kwargs)
        except Exception:
            log.exception("could not defer the job %s after a commit; its next run will do", name)

    def _defer_now(self, job: Job, kwargs: dict[str, Any]) -> None:
        wake = self._wakes.get(job.name)
        if wake is not None and not kwargs:
            wake.set()  # its poller looks at once (or again, if it is looking now)
            return
        key = queueing_lock(job.name, kwargs)
        if key in self._deferred_again:
            self._deferred_again[key] = True
            return
        self._deferred_again[key] = False
        self._spawn(self._run_coalesced(job, kwargs, key), job.name)

    async def _run_coalesced(self, job: Job, kwargs: dict[str, Any], key: str) -> None:
        """The in-process queueing lock: deferrals while this run waits are this run; those
        while it runs get one more run after it."""
        try:
            again = True
            while again:
                self._deferred_again[key] = False
                await self._run_with_retries(job, kwargs)
                again = self._deferred_again[key]
        finally:
            del self._deferred_again[key]

    async def _run(self, job: Job, kwargs: dict[str, Any], *, polled: bool = False) -> bool:
        started = time.monotonic()
        try:
            await job.run(self.env, **kwargs)
        except Exception as error:
            # Tried again on the next poll or retry; admins see it on the job's page meanwhile.
            log.exception("the job %s failed", job.name)
            self._failed[job.name] = (utcnow(), f"{type(error).__name__}: {error}")
            return False
        self._succeeded[job.name] = utcnow()
        # A poll every few seconds would fill the log at INFO; what it sent is logged by the job.
        level = logging.DEBUG if polled else logging.INFO
        log.log(level, "job %s ran in %.0f ms", job.name, (time.monotonic() - started) * 1000)
        return True

    async def _run_with_retries(self, job: Job, kwargs: dict[str, Any]) -> None:
        for attempt in range(base.RETRY_ATTEMPTS + 1):
            if await self._run(job, kwargs) or attempt == base.RETRY_ATTEMPTS:
                return
            if await self._stopped_within(base.RETRY_BASE_SECONDS ** (attempt + 1)):
                return

    async def _stopped_within(self, seconds: float, wake: asyncio.Event | None = None) -> bool:
        """Wait `seconds`, or until a stop request (True) or `wake`."""
        waits = [asyncio.ensure_future(self.env.stopping.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self.env.stopping.is_set()

    async def _poll(self, job: Job, seconds: float) -> None:
        wake = self._wakes[job.name]
        while not self.env.stopping.is_set():
            wake.clear()
            await self._run(job, {}, polled=True)  # a failure is tried again on the next poll
            if await self._stopped_within(seconds, wake):
                return

    async def _run_periodic_jobs(self) -> None:
        periodic = [j for j in self.jobs.values() if j.cron and j.poll_seconds is None]
        now = utcnow()
        due = {job.name: _next_run(job, now) for job in periodic}
        while True:
            if await self._stopped_within(max(0.0, (min(due.values()) - utcnow()).total_seconds())):
                return
            now = utcnow()
            for job in periodic:
                if due[job.name] <= now:
                    self._defer_now(job, {})
                    due[job.name] = _next_run(job, now)


def _next_run(job: Job, after: dt.datetime) -> dt.datetime:
    return croniter.croniter(job.cron, after).get_next(dt.datetime)  # type: ignore[no-any-return]
