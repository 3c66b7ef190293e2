"""Accounts' background job: forgetting the sign-in sources that hold nobody back any more."""

from __future__ import annotations

from portal.accounts.signin import forget_quiet_sources
from portal.db import UNSCOPED, utcnow
from portal.jobs import Job, JobEnv


async def _forget_quiet_sources(env: JobEnv) -> None:
    async with env.db.transaction(company_id=UNSCOPED) as session:
        await forget_quiet_sources(session, utcnow())


FORGET_QUIET_SOURCES = Job("forget_quiet_sign_in_sources", _forget_quiet_sources, cron="23 * * * *")
JOBS = (FORGET_QUIET_SOURCES,)
