"""What the web and worker processes log: timestamped lines, or JSON lines when asked, with a
line for each batch the outbox sends and each job run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import pytest

from portal import features, jobs, migrate
from portal.jobs.schema import apply_procrastinate_schema
from portal.jobs.worker import procrastinate_app
from portal.logs import configure_logging
from tests.conftest import PASSWORD
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

SECRET = "log-test-secret-" + "x" * 40
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer("127.0.0.1", free_port(), Inbox())
    server.start()
    yield server
    server.stop()


def _json_lines(log: str) -> list[dict[str, str]]:
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    for line in lines:
        assert set(line) >= {"time", "level", "logger", "message"}, line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", line["time"])
    return lines


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_portal_serve_logs_timestamped_lines_and_each_batch_sent(
    tmp_path: Path, smtp: SmtpServer, log_format: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = portal_env(
        PORTAL_DATA_DIR=str(tmp_path),
        PORTAL_BASE_URL=url,
        PORTAL_SMTP_HOST=smtp.host,
        PORTAL_SMTP_PORT=str(smtp.port),
        PORTAL_SMTP_TLS="none",
        PORTAL_LOG_FORMAT=log_format,
    )
    run_portal(env, "create-company", "Acme", "--slug", "acme")
    admin = ["--email", "ada@acme.example", "--name", "Ada", "--admin", "--password-stdin"]
    run_portal(env, "create-user", "--company", "acme", *admin, stdin=PASSWORD + "\n")
    web = start_portal(env, tmp_path, "web", "serve", "--port", str(port))
    try:
        wait_until_serving(url, web.process, web.log_path)
        client = ServerClient(url)
        try:
            await client.sign_in("ada@acme.example", PASSWORD)
            person = {"display_name": "Bob", "email": "bob@acme.example", "time_zone": "UTC"}
            assert (await client.post_form("/setup/users/new", person)).status_code == 303
            assert (await client.http.get("/healthz")).status_code == 200
        finally:
            await client.aclose()
        await asyncio.to_thread(wait_for_log, web, "outbox: 1 sent")
    finally:
        web.stop()
    log = web.log()
    if log_format == "json":
        messages = [(line["logger"], line["message"]) for line in _json_lines(log)]
        assert ("portal.mail.dispatch", "outbox: 1 sent, 0 retrying, 0 failed") in messages
        assert any(logger == "uvicorn.error" for logger, _ in messages)  # uvicorn's own
        assert any("GET /healthz" in message for logger, message in messages)  # access log
    else:
        lines = [line for line in log.splitlines() if line.strip()]
        assert lines and all(TEXT_LINE.match(line) for line in lines), log
        assert any(" INFO portal.mail.dispatch: outbox: 1 sent" in line for line in lines)


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_portal_worker_logs_each_job_run(tmp_path: Path, log_format: str) -> None:
    with scratch_postgres_database(postgres_admin_url(), "portal_logs") as url:
        migrate.upgrade(url)
        apply_procrastinate_schema(url)
        env = portal_env(
            PORTAL_DATABASE_URL=url,
            PORTAL_SECRET_KEY=SECRET,
            PORTAL_DATA_DIR=str(tmp_path),
            PORTAL_LOG_FORMAT=log_format,
        )
        worker = start_portal(env, tmp_path, "worker", "worker")
        try:
            await asyncio.to_thread(wait_for_log, worker, "Starting worker")
            connector = procrastinate.PsycopgConnector(conninfo=jobs.libpq_conninfo(url))
            async with procrastinate_app(connector, features.jobs()).open_async() as app:
                # The worker's own first run may still be queued under the job's lock: then that
                # run is the one logged.
                with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
                    await app.configure_task("send_outbox").defer_async()
            await asyncio.to_thread(wait_for_log, worker, "job send_outbox ran in")
        finally:
            assert worker.stop() == 0
    log = worker.log()
    if log_format == "json":
        lines = _json_lines(log)
        assert any(line["logger"] == "portal.jobs.worker" for line in lines)
        assert any(line["logger"].startswith("procrastinate") for line in lines)
    else:
        lines = [line for line in log.splitlines() if line.strip()]
        assert lines and all(TEXT_LINE.match(line) for line in lines), log


def test_the_lean_reads_pool_does_not_log_each_connection_it_lends() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("INFO")
        assert logging.getLogger("portal").isEnabledFor(logging.INFO)
        # psycopg_pool says "connection given" and "returning connection" at INFO on each read.
        assert not logging.getLogger("psycopg.pool").isEnabledFor(logging.INFO)
        assert logging.getLogger("psycopg.pool").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
