"""Mail's background job: sending the outbox."""

from __future__ import annotations

from portal.jobs import Job, JobEnv
from portal.mail.outbox import SEND_OUTBOX_JOB, send_outbox


async def _send_outbox(env: JobEnv) -> None:
    sender = env.new_mail_sender()
    if sender is not None:  # without a mail server messages are held: nothing to send
        # On a stop request it finishes the messages in hand, records them and lets go of the rest.
        await send_outbox(env.db, env.settings, sender, env.stopping)


# Started by each commit that queues mail (outbox.enqueue). In-process the outbox is also
# looked at every 2 seconds; a worker looks every minute, for the retries whose time has come.
SEND_OUTBOX = Job(SEND_OUTBOX_JOB, _send_outbox, cron="* * * * *", poll_seconds=2.0)
JOBS = (SEND_OUTBOX,)
