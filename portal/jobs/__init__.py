"""Background jobs and the two ways they run; which jobs there are, each feature says.

A job is a name, an `async def run(env, **kwargs)` and, if it also runs on its own, a cron. Each
feature lists its jobs in `<feature>/jobs.py` (`JOBS`); the app collects them with
`portal.features.jobs()` and hands them to `start`. Nothing here names a particular job.

In-process (the default on SQLite): tasks inside each web process. Worker (the default on
PostgreSQL): procrastinate; web processes defer jobs, `portal worker` runs them, and each job's
cron is the safety net for work that nothing woke. Code that writes work for a job in a
transaction calls `defer_after_commit(session, name)`: the job starts once that commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import procrastinate
from starlette.datastructures import State

from portal.db import libpq_conninfo
from portal.jobs.base import (
    RETRY_ATTEMPTS,
    RETRY_BASE_SECONDS,
    Job,
    JobEnv,
    JobHealth,
    JobRunner,
    defer_after_commit,
    job_name,
)
from portal.jobs.in_process import InProcessRunner
from portal.jobs.worker import (
    JobsUnavailable,
    ProcrastinateJobs,
    procrastinate_app,
    run_worker,
)

__all__ = [
    "RETRY_ATTEMPTS",
    "RETRY_BASE_SECONDS",
    "InProcessRunner",
    "Job",
    "JobEnv",
    "JobHealth",
    "JobRunner",
    "JobsUnavailable",
    "ProcrastinateJobs",
    "defer",
    "defer_after_commit",
    "health",
    "libpq_conninfo",
    "procrastinate_app",
    "run_worker",
    "start",
]

log = logging.getLogger(__name__)


async def start(env: JobEnv, jobs: Sequence[Job]) -> JobRunner:
    """What runs `jobs` for this web process, chosen by PORTAL_JOBS."""
    runner: InProcessRunner | ProcrastinateJobs
    if env.settings.jobs_runner == "worker":
        connector = procrastinate.PsycopgConnector(
            conninfo=libpq_conninfo(env.settings.database_url), min_size=1, max_size=2
        )
        app = procrastinate_app(connector, jobs)
        await app.open_async()
        runner = ProcrastinateJobs(app, env.db)
    else:
        runner = InProcessRunner(env, jobs)
    runner.start()
    return runner


async def defer(state: State, job: Job | str, **kwargs: Any) -> None:
    """Run `job` with `kwargs` soon, in this process or on a worker."""
    runner: JobRunner | None = getattr(state, "jobs", None)
    if runner is not None:  # None: an app whose lifespan has not run (some tests)
        await runner.defer(job, **kwargs)


async def health(state: State, job: Job | str) -> JobHealth:
    """How `job` is doing, for an admin page; never raises."""
    runner: JobRunner | None = getattr(state, "jobs", None)
    if runner is None:
        return JobHealth()
    try:
        return await runner.health(job)
    except Exception:
        log.exception("could not read how the job %s is doing", job_name(job))
        return JobHealth()
