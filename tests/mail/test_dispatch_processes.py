"""Real portal processes sending to a real (slow) SMTP server, stopped and killed mid-send:
how many messages go twice, how fast a worker stops, and how fast another takes over."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import pytest
from sqlalchemy import func, select, update
from sqlmodel import col
from starlette.datastructures import Secret, State

from portal import jobs
from portal.accounts.models import Company
from portal.db import UNSCOPED, Database, utcnow
from portal.jobs import ProcrastinateJobs, procrastinate_app
from portal.mail.dispatch import send_outbox
from portal.mail.jobs import JOBS, SEND_OUTBOX
from portal.mail.models import PENDING, SENT, OutboxMessage
from portal.mail.smtp import SmtpSender
from portal.settings import Settings, SmtpSettings
from tests.jobs_support import (
    PortalProcess,
    portal_env,
    postgres_admin_url,
    run_portal,
    start_portal,
    wait_for_log,
)
from tests.mail.conftest import SmtpServer
from tests.mail.test_outbox import queue
from tests.servers import free_port, scratch_postgres_database

SECRET = "dispatch-test-secret-" + "x" * 40
# What `portal serve` and `portal worker` send over: at most this many messages in flight.
CONNECTIONS = 4


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A database of the pass's kind, of its own: a process is killed on it."""
    if os.environ.get("PORTAL_TEST_DATABASE_URL"):
        with scratch_postgres_database(postgres_admin_url(), "portal_dispatch") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'portal.db'}"


def environment(url: str, tmp_path: Path, smtp: SmtpServer, **values: str) -> dict[str, str]:
    env = portal_env(
        PORTAL_DATABASE_URL=url,
        PORTAL_SECRET_KEY=SECRET,
        PORTAL_DATA_DIR=str(tmp_path),
        PORTAL_SMTP_HOST=smtp.host,
        PORTAL_SMTP_PORT=str(smtp.port),
        PORTAL_SMTP_TLS="none",
        **values,
    )
    run_portal(env, "db", "upgrade")
    run_portal(env, "create-company", "Acme", "--slug", "acme")
    return env


async def queue_mail(db: Database, url: str, smtp: SmtpServer, count: int) -> None:
    settings = Settings(url, secret_key=Secret(SECRET), smtp=SmtpSettings(host=smtp.host))
    async with db.session(company_id=UNSCOPED) as session:
        acme = (await session.execute(select(Company))).scalar_one()
    for start in range(0, count, 500):
        await queue(db, settings, acme, count=min(500, count - start))


async def until(condition: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        await asyncio.sleep(0.02)


def arrived(smtp: SmtpServer, count: int) -> object:
    async def check() -> bool:
        return len(smtp.inbox.received) >= count

    return check


def duplicates(smtp: SmtpServer) -> int:
    counts = Counter(str(m["Message-ID"]) for m in smtp.inbox.received)
    return sum(n - 1 for n in counts.values())


async def status_counts(db: Database) -> Counter[str]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(
            select(col(OutboxMessage.status), func.count()).group_by(col(OutboxMessage.status))
        )
        return Counter({status: count for status, count in rows.all()})


async def send_the_rest(db: Database, smtp: SmtpServer) -> None:
    """What a process that died had claimed, sent once its claims have run out (here: now)."""
    async with db.session(company_id=UNSCOPED, write=True) as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.claimed_until.is_not(None))  # type: ignore[union-attr]
            .values(claimed_until=utcnow() - dt.timedelta(seconds=1))
        )
        await session.commit()
    smtp.inbox.delay = 0
    settings = SmtpSettings(host=smtp.host, port=smtp.port, tls="none")
    await send_outbox(
        db, Settings(db.url, secret_key=Secret(SECRET), smtp=settings), SmtpSender(settings)
    )


async def test_a_portal_killed_mid_send_sends_again_at_most_what_it_had_in_flight(
    database: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Measured before: kill -9 mid-batch sent 128 of 500 messages twice. Now a result is
    recorded before its connection commits the next message, so at most one per connection."""
    total = 600
    env = environment(database, tmp_path, smtp_server, PORTAL_JOBS="in-process")
    db = Database(database)
    try:
        await queue_mail(db, database, smtp_server, total)
        smtp_server.inbox.delay = 0.01
        port = free_port()
        # One process: a SIGKILL of it kills every sender.
        web = start_portal(env, tmp_path, "web", "serve", "--port", str(port), "--workers", "1")
        try:
            await until(arrived(smtp_server, 150), 60, f"sending\n{web.log()}")
        finally:
            web.process.send_signal(signal.SIGKILL)
            web.process.wait()
            web.stop()
        await asyncio.sleep(0.3)  # the server finishes the messages that were in flight
        killed_at = len(smtp_server.inbox.received)
        await send_the_rest(db, smtp_server)
        assert (await status_counts(db))[SENT] == total
    finally:
        await db.dispose()
    ids = {str(m["Message-ID"]) for m in smtp_server.inbox.received}
    print(f"\nSIGKILL after {killed_at} of {total}: {duplicates(smtp_server)} sent twice")
    assert len(ids) == total and duplicates(smtp_server) <= CONNECTIONS


def postgres_only() -> None:
    if not os.environ.get("PORTAL_TEST_DATABASE_URL"):
        postgres_admin_url()  # skips: `portal worker` keeps its queue in PostgreSQL


async def defer_send(db: Database, url: str) -> None:
    connector = procrastinate.PsycopgConnector(conninfo=jobs.libpq_conninfo(url))
    async with procrastinate_app(connector, JOBS).open_async() as app:
        await jobs.defer(State({"jobs": ProcrastinateJobs(app, db)}), SEND_OUTBOX)


async def test_a_worker_stopped_mid_send_records_lets_go_and_exits_in_seconds(
    database: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """SIGTERM during a long send: the send finishes the messages in hand, records them, lets
    go of its other claims and returns; the worker exits well before its 25 s grace limit."""
    postgres_only()
    total = 2000
    env = environment(database, tmp_path, smtp_server)
    db = Database(database)
    try:
        await queue_mail(db, database, smtp_server, total)
        smtp_server.inbox.delay = 0.02
        worker = start_portal(env, tmp_path, "worker", "worker")
        try:
            wait_for_log(worker, "Starting worker")
            await defer_send(db, database)
            await until(arrived(smtp_server, 100), 30, f"sending\n{worker.log()}")
        finally:
            began = time.monotonic()
            exit_code = worker.stop(timeout=30)
            took = time.monotonic() - began
        print(f"\nSIGTERM mid-send: the worker exited after {took:.1f} s")
        assert exit_code == 0 and "Stopped worker" in worker.log(), worker.log()
        assert took < 5, worker.log()
        async with db.session(company_id=UNSCOPED) as session:
            rows = (await session.execute(select(OutboxMessage))).scalars().all()
        assert {r.message_id for r in rows if r.status == SENT} == {
            str(m["Message-ID"]) for m in smtp_server.inbox.received
        }
        unsent = [r for r in rows if r.status == PENDING]
        assert unsent and all(r.claimed_until is None and r.claimed_by is None for r in unsent)
    finally:
        await db.dispose()
    assert duplicates(smtp_server) == 0


async def test_when_a_worker_is_killed_mid_send_another_delivers_the_rest_within_a_minute(
    database: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Two workers share a large send; one is killed (SIGKILL). Its claims stop being renewed
    and the other worker, watching them, sends what they held once they run out (30 s)."""
    postgres_only()
    total = 2000
    env = environment(database, tmp_path, smtp_server)
    db = Database(database)
    workers: list[PortalProcess] = []
    try:
        await queue_mail(db, database, smtp_server, total)
        smtp_server.inbox.delay = 0.03
        workers += _start_workers(env, tmp_path, "worker1", "worker2")
        await defer_send(db, database)
        await until(lambda: _holders(db, 1), 30, "the first worker's claims")
        await defer_send(db, database)  # the first is busy: the other takes this one
        await until(lambda: _holders(db, 2), 30, "both workers' claims")
        recovered = await _kill_and_time_the_rest(db, workers[0], total)
    finally:
        await _stop(workers, db)
    print(
        f"\nSIGKILL of one of two workers: the rest delivered {recovered:.1f} s later,"
        f" {duplicates(smtp_server)} sent twice"
    )
    assert recovered < 60, workers[1].log()
    ids = {str(m["Message-ID"]) for m in smtp_server.inbox.received}
    assert len(ids) == total and duplicates(smtp_server) <= CONNECTIONS


async def test_when_a_worker_is_killed_mid_send_an_idle_one_delivers_the_rest_within_a_minute(
    database: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """One worker sends, the other has nothing to do; the sender is killed (SIGKILL). No commit
    wakes the idle one: its look every 20 seconds does, and it takes the dead worker's claims
    once they run out (30 s after the last heartbeat)."""
    postgres_only()
    total = 240  # one batch (250): the sender claims it all, and the idle worker nothing
    env = environment(database, tmp_path, smtp_server)
    db = Database(database)
    workers: list[PortalProcess] = []
    try:
        await queue_mail(db, database, smtp_server, total)
        smtp_server.inbox.delay = 0.05  # about 3 s for the whole send over four connections
        workers += _start_workers(env, tmp_path, "sender", "idle")
        await defer_send(db, database)
        await until(arrived(smtp_server, 20), 30, "the first messages")
        claimers = await _claimers(db)
        sender_process = workers[0] if _claimed_by_pid(claimers, workers[0]) else workers[1]
        idle = workers[1] if sender_process is workers[0] else workers[0]
        assert not _claimed_by_pid(claimers, idle), "both workers were sending"
        recovered = await _kill_and_time_the_rest(db, sender_process, total)
    finally:
        await _stop(workers, db)
    print(
        f"\nSIGKILL of the sending worker, the other idle: the rest delivered {recovered:.1f} s"
        f" later, {duplicates(smtp_server)} sent twice"
    )
    assert recovered < 60
    ids = {str(m["Message-ID"]) for m in smtp_server.inbox.received}
    assert len(ids) == total and duplicates(smtp_server) <= CONNECTIONS


def _start_workers(env: dict[str, str], tmp_path: Path, *names: str) -> list[PortalProcess]:
    workers = [start_portal(env, tmp_path, name, "worker", "--concurrency", "1") for name in names]
    for worker in workers:
        wait_for_log(worker, "Starting worker")
    return workers


async def _kill_and_time_the_rest(db: Database, victim: PortalProcess, total: int) -> float:
    """SIGKILL `victim`; how long until every message is sent."""
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    killed = time.monotonic()
    await until(lambda: _all_sent(db, total), 90, "the rest")
    return time.monotonic() - killed


async def _stop(workers: list[PortalProcess], db: Database) -> None:
    for worker in workers:
        with contextlib.suppress(Exception):
            worker.stop()
    await db.dispose()


async def _claimers(db: Database) -> set[str]:
    """The dispatchers that hold claims on messages not yet sent."""
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(
            select(col(OutboxMessage.claimed_by))
            .where(col(OutboxMessage.status) == PENDING, col(OutboxMessage.claimed_by).is_not(None))
            .distinct()
        )
        return {str(claimer) for claimer in rows.scalars()}


def _claimed_by_pid(claimers: set[str], worker: PortalProcess) -> bool:
    """Whether `worker` holds claims: a claim names its dispatcher's host:pid:run."""
    return any(claimer.rsplit(":", 2)[1] == str(worker.process.pid) for claimer in claimers)


async def _holders(db: Database, count: int) -> bool:
    return len(await _claimers(db)) >= count


async def _all_sent(db: Database, total: int) -> bool:
    return (await status_counts(db))[SENT] == total
