"""Mail's background job: sending the outbox."""

from __future__ import annotations

from portal.jobs import Job, JobEnv
from portal.mail.dispatch import send_outbox
from portal.mail.outbox import SEND_OUTBOX_JOB


async def _send_outbox(env: JobEnv) -> None:
    sender = env.new_mail_sender()
    if sender is not None:  # without a mail server messages are held: nothing to send
        # On a stop request it finishes the messages in hand, records them and lets go of the rest.
        await send_outbox(env.db, env.settings, sender, env.stopping)


# Started by each commit that queues mail (outbox.enqueue). In-process the outbox is also
# looked at every 2 seconds; workers look every 20 seconds, for the retries whose time has come
# and for the claims of a worker that died (free 30 s after its last heartbeat): an idle worker
# takes them over within 50 seconds.
SEND_OUTBOX = Job(SEND_OUTBOX_JOB, _send_outbox, cron="* * * * * */20", poll_seconds=2.0)
JOBS = (SEND_OUTBOX,)
