"""Background jobs: which runner runs them (always one, mail server or not), work deferred after
commit, procrastinate's worker and schema, failures shown to admins, and two web processes with two
workers delivering every message exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from email.message import Message
from pathlib import Path

import procrastinate
import psycopg
import pytest
from alembic import command
from procrastinate.testing import InMemoryConnector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.datastructures import Secret, State

from portal import features, jobs, migrate
from portal.accounts.models import Company
from portal.app import create_app
from portal.cli import main
from portal.db import UNSCOPED, Database
from portal.jobs import (
    InProcessRunner,
    Job,
    JobEnv,
    ProcrastinateJobs,
    procrastinate_app,
)
from portal.jobs.schema import apply_procrastinate_schema, pending_migrations
from portal.mail.interfaces import MaySend, OnResult, SendResult
from portal.mail.jobs import JOBS, SEND_OUTBOX
from portal.mail.messages import EmailContent
from portal.mail.models import PENDING, SENT, OutboxMessage
from portal.mail.outbox import enqueue
from portal.mail.smtp import SmtpSender
from portal.settings import Settings, SettingsError, SmtpSettings
from tests.conftest import PASSWORD, PortalClient
from tests.jobs_support import (
    ServerClient,
    portal_env,
    postgres_admin_url,
    run_portal,
    start_portal,
    wait_for_log,
)
from tests.mail.conftest import Inbox, SmtpServer
from tests.servers import free_port, scratch_postgres_database, wait_until_serving

CONTENT = EmailContent(subject="Hello", text="Plain body", html="<p>HTML body</p>")
SECRET = "jobs-test-secret-" + "x" * 40


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port(), Inbox())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_settings(settings: Settings, smtp: SmtpServer) -> Settings:
    smtp_settings = SmtpSettings(host=smtp.host, port=smtp.port, tls="none")
    return dataclasses.replace(settings, smtp=smtp_settings)


class BrokenSender:
    """A mail transport that fails as a whole (a bug, a lost database) `failures` times, then
    hands over to a real one; `meanwhile` runs during the first failure."""

    def __init__(
        self,
        then: SmtpSender | None = None,
        failures: int = 1_000,
        meanwhile: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.then = then
        self.failures = failures
        self.meanwhile = meanwhile

    async def send_batch(
        self,
        messages: Sequence[Message],
        *,
        on_result: OnResult | None = None,
        stop: asyncio.Event | None = None,
        may_send: MaySend | None = None,
    ) -> list[SendResult]:
        if self.failures > 0 or self.then is None:
            self.failures -= 1
            if self.meanwhile is not None:
                meanwhile, self.meanwhile = self.meanwhile, None
                await meanwhile()
            raise ConnectionResetError("the mail relay went away")
        return await self.then.send_batch(
            messages, on_result=on_result, stop=stop, may_send=may_send
        )

    async def close(self) -> None:
        if self.then is not None:
            await self.then.close()


async def queue_mail(db: Database, settings: Settings, company: Company, count: int) -> None:
    async with db.session(company_id=company.id, write=True) as session:
        for i in range(count):
            enqueue(
                session,
                settings,
                company_id=company.id or 0,
                to_address=f"person{i}@acme.example",
                to_name=f"Person {i}",
                content=CONTENT,
                template="test",
            )
        await session.commit()


async def statuses(db: Database) -> Counter[str]:
    async with db.session(company_id=UNSCOPED) as session:
        rows = await session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        return Counter({status: count for status, count in rows.all()})


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.05)


# Which runner


def test_the_runner_follows_the_database_unless_told() -> None:
    sqlite = Settings.from_env(
        {"PORTAL_DATABASE_URL": "sqlite:///x.db", "PORTAL_SECRET_KEY": SECRET}
    )
    postgres = {"PORTAL_DATABASE_URL": "postgresql://db/portal", "PORTAL_SECRET_KEY": SECRET}
    assert sqlite.jobs_runner == "in-process"
    assert Settings.from_env(postgres).jobs_runner == "worker"
    assert Settings.from_env({**postgres, "PORTAL_JOBS": "in-process"}).jobs_runner == "in-process"
    with pytest.raises(SettingsError, match="needs PostgreSQL"):
        Settings.from_env({"PORTAL_JOBS": "worker", "PORTAL_DATABASE_URL": "sqlite:///x.db"})
    with pytest.raises(SettingsError, match="in-process or worker"):
        Settings.from_env({**postgres, "PORTAL_JOBS": "celery"})


def smtp_env(db: Database, settings: Settings) -> JobEnv:
    return JobEnv(db, settings, lambda: SmtpSender(settings.smtp))


class Probe:
    """A job of a feature to come (reminders, a provider sync) that only notes its runs."""

    def __init__(self) -> None:
        self.runs: list[dict[str, object]] = []

    async def run(self, env: JobEnv, **kwargs: object) -> None:
        assert env.new_mail_sender() is None  # no mail server: jobs run all the same
        self.runs.append(kwargs)


async def test_in_process_jobs_run_without_a_mail_server(db: Database, settings: Settings) -> None:
    held = dataclasses.replace(settings, jobs="in-process")
    assert not held.smtp.configured
    probe = Probe()
    nightly = Job("sync_providers", probe.run, cron="* * * * * *")  # every second, for the test
    reminders = Job("send_reminders", probe.run)
    runner = await jobs.start(JobEnv(db, held, lambda: None), (nightly, reminders))
    try:
        assert isinstance(runner, InProcessRunner)
        await jobs.defer(State({"jobs": runner}), "send_reminders", event_id=3)
        await eventually(lambda: _true({"event_id": 3} in probe.runs))
        await eventually(lambda: _true({} in probe.runs), within=3)  # the cron's run
    finally:
        await runner.stop()


async def _true(value: bool) -> bool:
    return value


async def test_the_app_always_starts_a_runner_with_every_features_jobs(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = Probe()
    monkeypatch.setattr(features, "jobs", lambda: (Job("sync_providers", probe.run),))
    app = create_app(dataclasses.replace(settings, jobs="in-process"))
    async with app.router.lifespan_context(app):
        assert isinstance(app.state.jobs, InProcessRunner)  # no SMTP server, and still a runner
        await jobs.defer(app.state, "sync_providers", company_id=1)
        await eventually(lambda: _true(probe.runs == [{"company_id": 1}]))


async def test_in_worker_mode_the_web_process_only_defers(
    db: Database, mail_settings: Settings
) -> None:
    if db.is_sqlite:
        pytest.skip("worker mode needs PostgreSQL: procrastinate keeps its queue there")
    runner = await jobs.start(smtp_env(db, mail_settings), JOBS)
    try:
        assert mail_settings.jobs_runner == "worker"
        assert isinstance(runner, ProcrastinateJobs)
    finally:
        await runner.stop()


async def test_a_worker_runs_jobs_without_a_mail_server(settings: Settings) -> None:
    """On a database of its own: procrastinate's tables stay out of the run's shared one."""
    with scratch_postgres_database(postgres_admin_url(), "portal_jobs") as url:
        migrate.upgrade(url)
        apply_procrastinate_schema(url)
        held = dataclasses.replace(settings, database_url=url)
        assert held.jobs_runner == "worker" and not held.smtp.configured
        probe = Probe()
        reminders = (Job("send_reminders", probe.run),)
        db = Database(url)
        try:
            web = await jobs.start(JobEnv(db, held, lambda: None), reminders)
            assert isinstance(web, ProcrastinateJobs)
            await jobs.defer(State({"jobs": web}), "send_reminders", event_id=3)
            await web.stop()
            await jobs.run_worker(held, reminders, wait=False)
        finally:
            await db.dispose()
    assert probe.runs == [{"event_id": 3}]


# Work deferred after commit


def counting(job: Job, poll_seconds: float) -> tuple[Job, list[int]]:
    """`job`, polled every `poll_seconds` in-process, noting each of its runs."""
    runs: list[int] = []

    async def run(env: JobEnv, **kwargs: object) -> None:
        runs.append(len(runs) + 1)
        await job.run(env, **kwargs)

    return dataclasses.replace(job, run=run, poll_seconds=poll_seconds), runs


async def test_a_commit_that_queues_mail_wakes_the_in_process_runner_and_a_rollback_does_not(
    db: Database, mail_settings: Settings, acme: Company, smtp: SmtpServer
) -> None:
    send, runs = counting(SEND_OUTBOX, poll_seconds=3600)  # the next poll is an hour away
    runner = await jobs.start(
        smtp_env(db, dataclasses.replace(mail_settings, jobs="in-process")), (send,)
    )
    try:
        await eventually(lambda: _true(runs == [1]))  # the first poll has found nothing
        async with db.session(company_id=acme.id, write=True) as session:
            _enqueue(session, mail_settings, acme)
            await session.rollback()
            await session.commit()  # a later commit of the session: the mail was forgotten
        async with db.session(company_id=acme.id, write=True) as session:
            async with session.begin_nested():
                _enqueue(session, mail_settings, acme)  # a SAVEPOINT released commits nothing
            await asyncio.sleep(0.3)
            assert runs == [1]
            await session.rollback()
            await session.commit()
        await asyncio.sleep(0.3)
        assert runs == [1] and not await statuses(db)
        await queue_mail(db, mail_settings, acme, 3)
        await eventually(lambda: _sent(db, 3), within=1.5)
    finally:
        await runner.stop()
    assert len(smtp.inbox.received) == 3


def _enqueue(session: AsyncSession, settings: Settings, company: Company) -> None:
    enqueue(
        session,
        settings,
        company_id=company.id or 0,
        to_address="person@acme.example",
        to_name="Person",
        content=CONTENT,
        template="test",
    )


async def _sent(db: Database, count: int) -> bool:
    return (await statuses(db))[SENT] == count


async def test_in_process_periodic_and_deferred_jobs_run_and_failures_are_retried(
    db: Database, mail_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What later jobs (a company's sync, reminders) get from the in-process runner."""
    monkeypatch.setattr(jobs.base, "RETRY_BASE_SECONDS", 0)
    calls: list[tuple[str, dict[str, object]]] = []

    async def remind(env: JobEnv) -> None:
        calls.append(("remind", {}))

    async def sync(env: JobEnv, company_id: int) -> None:
        calls.append(("sync", {"company_id": company_id}))
        if len([c for c in calls if c[0] == "sync"]) < 3:
            raise TimeoutError("the provider did not answer")

    reminders = Job("send_reminders", remind, cron="* * * * * *")  # every second
    company_sync = Job("sync_company", sync)
    runner = InProcessRunner(smtp_env(db, mail_settings), (reminders,))
    runner.start()
    try:
        await jobs.defer(State({"jobs": runner}), company_sync, company_id=7)
        await asyncio.sleep(2.2)
        assert await runner.health(company_sync) == jobs.JobHealth()  # succeeded at last
    finally:
        await runner.stop()
    assert calls.count(("sync", {"company_id": 7})) == 3
    assert 1 <= calls.count(("remind", {})) <= 3


async def test_in_process_a_run_deferred_again_before_it_starts_is_one_run(
    db: Database, settings: Settings
) -> None:
    """The in-process queueing lock: one waiting run per job and arguments; deferred while it
    runs, one more run comes after it."""
    running, release = asyncio.Event(), asyncio.Event()
    runs: list[int] = []

    async def sync(env: JobEnv, company_id: int) -> None:
        runs.append(company_id)
        running.set()
        await release.wait()

    company_sync = Job("sync_company", sync)
    runner = InProcessRunner(JobEnv(db, settings, lambda: None), (company_sync,))
    runner.start()
    try:
        for _ in range(3):
            await runner.defer("sync_company", company_id=7)
        await runner.defer(company_sync, company_id=8)  # other arguments: a run of their own
        await running.wait()
        await asyncio.sleep(0.1)
        assert sorted(runs) == [7, 8]
        for _ in range(3):
            await runner.defer(company_sync, company_id=7)  # while 7 runs: once more after it
        release.set()
        await eventually(lambda: _true(len(runs) == 3))
        await asyncio.sleep(0.2)
    finally:
        await runner.stop()
    assert Counter(runs) == Counter({7: 2, 8: 1})


async def test_commits_defer_one_waiting_send_to_procrastinate(
    db: Database, mail_settings: Settings, acme: Company
) -> None:
    connector = InMemoryConnector()
    app = procrastinate_app(connector, JOBS)
    await app.open_async()
    runner = ProcrastinateJobs(app, db)
    runner.start()
    try:
        for _ in range(3):
            await queue_mail(db, mail_settings, acme, 1)
        await eventually(lambda: _true(len(connector.jobs) == 1))
        await jobs.defer(State({"jobs": runner}), SEND_OUTBOX)
        await asyncio.sleep(0.1)
    finally:
        await runner.stop()
    (job,) = connector.jobs.values()
    assert (job["task_name"], job["status"], job["queueing_lock"]) == (
        "send_outbox",
        "todo",
        "send_outbox",
    )


async def test_a_commit_never_fails_for_want_of_a_runner(
    db: Database, mail_settings: Settings, acme: Company, caplog: pytest.LogCaptureFixture
) -> None:
    class Unreachable(ProcrastinateJobs):
        async def defer(self, job: Job | str, **kwargs: object) -> None:
            raise OSError("connection refused")

    await jobs.defer(State(), SEND_OUTBOX)  # an app whose lifespan has not run: nothing to do
    await queue_mail(db, mail_settings, acme, 1)  # no runner of this database: nothing to wake
    runner = Unreachable(procrastinate_app(InMemoryConnector(), JOBS), db)
    runner.start()
    try:
        with caplog.at_level(logging.ERROR, logger="portal.jobs"):
            await queue_mail(db, mail_settings, acme, 1)
            await asyncio.sleep(0.1)
    finally:
        await runner.stop()
    assert "could not defer the job send_outbox after a commit" in caplog.text
    assert (await statuses(db))[PENDING] == 2  # committed all the same; the cron will send it


# The worker's tasks


def test_the_worker_knows_every_job_its_schedule_and_its_retries() -> None:
    assert SEND_OUTBOX in features.jobs()
    app = procrastinate_app(InMemoryConnector(), JOBS)
    periodic = {name: task.cron for (name, _), task in app.periodic_registry.periodic_tasks.items()}
    assert periodic == {
        "send_outbox": "* * * * * */20",
        "prune_job_history": "17 * * * *",
        "retry_stalled_jobs": "* * * * *",
    }
    send = app.tasks["send_outbox"]
    assert send.queueing_lock == "send_outbox" and send.pass_context
    assert isinstance(send.retry_strategy, procrastinate.RetryStrategy)
    assert send.retry_strategy.exponential_wait == 2 and send.retry_strategy.max_attempts == 5


async def test_a_worker_runs_the_deferred_send(
    db: Database, mail_settings: Settings, acme: Company, smtp: SmtpServer
) -> None:
    connector = InMemoryConnector()
    app = procrastinate_app(connector, JOBS)
    env = smtp_env(db, mail_settings)
    await queue_mail(db, mail_settings, acme, 5)
    async with app.open_async():
        await jobs.defer(State({"jobs": ProcrastinateJobs(app, db)}), SEND_OUTBOX)
        await app.run_worker_async(
            wait=False, additional_context={"portal": env}, install_signal_handlers=False
        )
    assert (await statuses(db))[SENT] == 5 and len(smtp.inbox.received) == 5
    assert {job["status"] for job in connector.jobs.values()} == {"succeeded"}


# Failures are shown to admins


async def test_an_in_process_failure_shows_on_the_outbox_page_until_a_run_succeeds(
    app: Starlette,
    admin_client: PortalClient,
    db: Database,
    mail_settings: Settings,
    acme: Company,
) -> None:
    sender = BrokenSender(then=SmtpSender(mail_settings.smtp), failures=1)
    runner = InProcessRunner(JobEnv(db, mail_settings, lambda: sender), JOBS)
    app.state.jobs = runner
    app.state.settings = mail_settings
    await queue_mail(db, mail_settings, acme, 1)
    assert not await runner.run_once(SEND_OUTBOX)
    health = await runner.health(SEND_OUTBOX)
    assert health.failed_at is not None
    assert health.error == "ConnectionResetError: the mail relay went away"
    page = await admin_client.get("/setup/outbox")
    assert "Sending failed at" in page.text and "the mail relay went away" in page.text
    assert (await statuses(db))[PENDING] == 1  # nothing dropped: the message waits its turn
    assert await runner.run_once(SEND_OUTBOX)
    assert await runner.health(SEND_OUTBOX) == jobs.JobHealth()
    assert "Sending failed" not in (await admin_client.get("/setup/outbox")).text


async def test_a_failed_worker_run_is_retried_and_shown_to_admins(
    app: Starlette, admin_client: PortalClient, mail_settings: Settings, acme: Company
) -> None:
    """On a database of its own: procrastinate's tables stay out of the run's shared one."""
    with scratch_postgres_database(postgres_admin_url(), "portal_jobs") as url:
        migrate.upgrade(url)
        apply_procrastinate_schema(url)
        settings = dataclasses.replace(mail_settings, database_url=url)
        db = Database(url)
        try:
            await _fail_then_recover(app, admin_client, db, settings)
        finally:
            await db.dispose()


async def _fail_then_recover(
    app: Starlette, admin_client: PortalClient, db: Database, settings: Settings
) -> None:
    queued = await _company_with_mail(db, settings)
    connector = procrastinate.PsycopgConnector(conninfo=jobs.libpq_conninfo(settings.database_url))
    async with procrastinate_app(connector, JOBS).open_async() as procrastinate_jobs:
        worker_mode = ProcrastinateJobs(procrastinate_jobs, db)
        state = State({"jobs": worker_mode})
        await jobs.defer(state, SEND_OUTBOX)
        # While the run fails, an action queues more mail: a fresh run waits with the queueing
        # lock when the failed one goes back to the queue for its retry.
        broken = BrokenSender(meanwhile=lambda: jobs.defer(state, SEND_OUTBOX))
        await jobs.run_worker(settings, JOBS, wait=False, new_mail_sender=lambda: broken)
        runs = await _runs(connector)
        assert len(runs) >= 2 and {status for status, _ in runs} == {"todo"}
        health = await worker_mode.health(SEND_OUTBOX)
        assert health.failed_at is not None and health.retry_at is not None
        assert health.retry_at > health.failed_at and health.workers == 0
        app.state.jobs = worker_mode
        app.state.settings = settings
        assert "No worker is running" in (await admin_client.get("/setup/outbox")).text
        await connector.execute_query_async("SELECT procrastinate_register_worker_v1()")
        page = (await admin_client.get("/setup/outbox")).text
        assert "Sending failed at" in page and "the worker's log says why" in page
        assert "It is tried again at" in page
        # The retries come due after two seconds; this time the relay answers.
        await asyncio.sleep(
            max(retry_at for _, retry_at in runs if retry_at).timestamp() - time.time() + 0.2
        )
        working = SmtpSender(settings.smtp)
        await jobs.run_worker(settings, JOBS, wait=False, new_mail_sender=lambda: working)
        assert {status for status, _ in await _runs(connector)} == {"succeeded"}
        assert await worker_mode.health(SEND_OUTBOX) == jobs.JobHealth(workers=1)
        # The failed run let go of the messages it had claimed: the retry sent them.
    assert (await statuses(db))[SENT] == queued


async def _runs(connector: procrastinate.PsycopgConnector) -> list[tuple[str, dt.datetime]]:
    rows = await connector.execute_query_all_async(
        "SELECT status, scheduled_at FROM procrastinate_jobs WHERE task_name = 'send_outbox'"
    )
    return [(row["status"], row["scheduled_at"]) for row in rows]


async def _company_with_mail(db: Database, settings: Settings) -> int:
    async with db.session(company_id=UNSCOPED, write=True) as session:
        company = Company(name="Acme", slug="acme", default_time_zone="UTC")
        session.add(company)
        await session.commit()
    await queue_mail(db, settings, company, 2)
    return 2


# procrastinate's schema


def test_db_upgrade_applies_procrastinate_once_and_autogenerate_ignores_it() -> None:
    with scratch_postgres_database(postgres_admin_url(), "portal_jobs") as url:
        migrate.upgrade(url)
        assert apply_procrastinate_schema(url) == ["schema.sql"]
        assert apply_procrastinate_schema(url) == []
        with psycopg.connect(jobs.libpq_conninfo(url)) as connection:
            stamp = connection.execute(
                "SELECT obj_description('procrastinate_jobs'::regclass, 'pg_class')"
            ).fetchone()
        assert stamp == (f"procrastinate {procrastinate.__version__}",)
        # env.py leaves procrastinate's tables out: models and migrations still agree.
        command.check(migrate.alembic_config(url))


def test_pending_migrations_are_those_after_the_stamp_in_release_order() -> None:
    names = [
        "03.04.00_01_pre_add_retry.sql",
        "03.11.00_02_post_b.sql",
        "03.11.00_01_pre_a.sql",
        "03.10.00_01_pre_old.sql",
        "04.00.00_01_pre_next_major.sql",
        "__init__.py",
    ]
    assert pending_migrations((3, 10, 0), (3, 11, 2), names) == [
        "03.11.00_01_pre_a.sql",
        "03.11.00_02_post_b.sql",
    ]
    assert pending_migrations((3, 10, 0), (3, 10, 0), names) == []


# The command


def test_portal_worker_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["worker", "--help"])
    assert exit_.value.code == 0 and "--concurrency" in capsys.readouterr().out
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    for name in ("PORTAL_DATABASE_URL", "PORTAL_SECRET_KEY", "PORTAL_JOBS"):
        monkeypatch.delenv(name, raising=False)
    assert main(["worker"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


# Two web processes and two workers on one PostgreSQL database


PEOPLE_PER_WEB = 40
QUEUED_DIRECTLY = 300


async def test_two_web_processes_and_two_workers_send_every_message_exactly_once(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    with scratch_postgres_database(postgres_admin_url(), "portal_jobs") as url:
        env = portal_env(
            PORTAL_DATABASE_URL=url,
            PORTAL_SECRET_KEY=SECRET,
            PORTAL_DATA_DIR=str(tmp_path),
            PORTAL_SMTP_HOST=smtp.host,
            PORTAL_SMTP_PORT=str(smtp.port),
            PORTAL_SMTP_TLS="none",
            # One process per `portal serve`: two web processes in all, as the test says.
            WEB_CONCURRENCY="1",
        )
        assert "applied schema.sql" in run_portal(env, "db", "upgrade")  # the release step
        run_portal(env, "create-company", "Acme", "--slug", "acme")
        admin = ["--email", "ada@acme.example", "--name", "Ada", "--admin", "--password-stdin"]
        run_portal(env, "create-user", "--company", "acme", *admin, stdin=PASSWORD + "\n")
        ports = [free_port(), free_port()]
        processes = [
            *(
                start_portal(env, tmp_path, f"worker{i}", "worker", "--concurrency", "2")
                for i in (1, 2)
            ),
            *(
                start_portal(
                    {**env, "PORTAL_BASE_URL": f"http://127.0.0.1:{port}"},
                    tmp_path,
                    f"web{i}",
                    "serve",
                    "--port",
                    str(port),
                )
                for i, port in enumerate(ports, 1)
            ),
        ]
        try:
            for worker in processes[:2]:
                wait_for_log(worker, "Starting worker")
            for web, port in zip(processes[2:], ports, strict=True):
                wait_until_serving(f"http://127.0.0.1:{port}", web.process, web.log_path)
            await _cause_mail_and_wait(url, ports, smtp)
        finally:
            exit_codes = {p.name: p.stop() for p in processes}
        logs = {p.name: p.log() for p in processes}
    for worker in ("worker1", "worker2"):
        assert exit_codes[worker] == 0 and "Stopped worker" in logs[worker], logs[worker]
    # The web processes deferred; only the workers sent.
    assert not any("outbox:" in logs[web] for web in ("web1", "web2"))
    assert any("outbox:" in logs[worker] for worker in ("worker1", "worker2"))


async def _cause_mail_and_wait(url: str, ports: list[int], smtp: SmtpServer) -> None:
    clients = [ServerClient(f"http://127.0.0.1:{port}") for port in ports]
    db = Database(url)
    try:
        for client in clients:
            await client.sign_in("ada@acme.example", PASSWORD)
        first = await clients[0].post_form("/setup/users/new", _person(0, 0))
        assert first.status_code == 303
        # Delivered through LISTEN/NOTIFY at once, not on the minute's periodic run.
        await eventually(lambda: _arrived(smtp, 1), within=5)
        # A bulk send (a large meeting's invitations, say) while both admins add people.
        await _queue_bulk(db, url, smtp)
        await asyncio.gather(*(_add_people(client, web) for web, client in enumerate(clients)))
        total = 1 + 2 * (PEOPLE_PER_WEB - 1) + QUEUED_DIRECTLY
        await eventually(lambda: _sent(db, total), within=90)
        async with db.session(company_id=UNSCOPED) as session:
            ids = (await session.execute(select(OutboxMessage.message_id))).scalars().all()
    finally:
        for client in clients:
            await client.aclose()
        await db.dispose()
    received = Counter(str(message["Message-ID"]) for message in smtp.inbox.received)
    assert len(ids) == total and set(received) == set(ids)
    assert max(received.values()) == 1, [i for i, n in received.items() if n > 1]


async def _queue_bulk(db: Database, url: str, smtp: SmtpServer) -> None:
    settings = Settings(url, secret_key=Secret(SECRET), smtp=SmtpSettings(host=smtp.host))
    async with db.session(company_id=UNSCOPED) as session:
        acme = (await session.execute(select(Company))).scalar_one()
    await queue_mail(db, settings, acme, QUEUED_DIRECTLY)
    connector = procrastinate.PsycopgConnector(conninfo=jobs.libpq_conninfo(url))
    async with procrastinate_app(connector, JOBS).open_async() as app:
        await jobs.defer(State({"jobs": ProcrastinateJobs(app, db)}), SEND_OUTBOX)


async def _arrived(smtp: SmtpServer, count: int) -> bool:
    return len(smtp.inbox.received) >= count


def _person(web: int, number: int) -> dict[str, str]:
    return {
        "display_name": f"Person {web}-{number}",
        "email": f"person-{web}-{number}@acme.example",
        "time_zone": "UTC",
    }


async def _add_people(client: ServerClient, web: int) -> None:
    for number in range(1, PEOPLE_PER_WEB):
        response = await client.post_form("/setup/users/new", _person(web, number))
        assert response.status_code == 303, response.text


# Jobs left running by a worker that died


async def test_jobs_left_running_by_a_dead_worker_are_run_again(settings: Settings) -> None:
    """A worker killed mid-job (SIGKILL, out of memory) leaves its job "doing" for ever unless
    a live worker notices that its heartbeat stopped and puts the job back in the queue."""
    with scratch_postgres_database(postgres_admin_url(), "portal_jobs") as url:
        migrate.upgrade(url)
        apply_procrastinate_schema(url)
        held = dataclasses.replace(settings, database_url=url)
        probe = Probe()
        reminders = (Job("send_reminders", probe.run),)
        connector = procrastinate.PsycopgConnector(conninfo=jobs.libpq_conninfo(url))
        async with procrastinate_app(connector, reminders).open_async() as app:
            deferrer = app.configure_task("send_reminders", queueing_lock="send_reminders:5")
            stalled = await deferrer.defer_async(event_id=5)
            dead = (
                await connector.execute_query_one_async(
                    "INSERT INTO procrastinate_workers (last_heartbeat)"
                    " VALUES (now() - interval '3 minutes') RETURNING id"
                )
            )["id"]
            await connector.execute_query_async(
                "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %(worker)s"
                " WHERE id = %(job)s",
                worker=dead,
                job=stalled,
            )
            # A fresh run waits with the same queueing lock: the retry must not collide with it.
            await deferrer.defer_async(event_id=5)
            await app.configure_task("retry_stalled_jobs").defer_async(timestamp=0)
        await jobs.run_worker(held, reminders, wait=False)  # the fresh run, and the check
        await jobs.run_worker(held, reminders, wait=False)  # the stalled run, back in the queue
        with psycopg.connect(jobs.libpq_conninfo(url)) as check:
            statuses = check.execute(
                "SELECT id, status FROM procrastinate_jobs WHERE task_name = 'send_reminders'"
            ).fetchall()
            workers = check.execute("SELECT id FROM procrastinate_workers").fetchall()
    assert dict(statuses)[stalled] == "succeeded"
    assert {status for _, status in statuses} == {"succeeded"}
    assert probe.runs == [{"event_id": 5}, {"event_id": 5}]
    assert (dead,) not in workers
