"""Calendar's background job: sending the reminders whose time has come."""

from __future__ import annotations

import logging

from portal.calendar.reminders import send_due_reminders
from portal.db import UNSCOPED, utcnow
from portal.jobs import Job, JobEnv

log = logging.getLogger(__name__)


async def _send_reminders(env: JobEnv) -> None:
    # One transaction for the run: a reminder's claim, its emails and its notices commit
    # together, or none of them do and the next run (within GRACE) sends it.
    async with env.db.transaction(company_id=UNSCOPED) as session:
        sent = await send_due_reminders(session, env.settings, utcnow())
    if sent:
        log.info("calendar reminders: sent %d", sent)


# Every minute (five fields: no seconds), in each web process in-process and on one worker
# with procrastinate; the delivery rows keep two runs from sending one reminder twice.
SEND_CALENDAR_REMINDERS = Job("send_calendar_reminders", _send_reminders, cron="* * * * *")
JOBS = (SEND_CALENDAR_REMINDERS,)
