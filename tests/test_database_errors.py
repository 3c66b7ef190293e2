"""When the database cannot answer: a read cut off mid-way is read again once, and a request
that still cannot be served is a 503 with Retry-After, not a 500."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import User
from portal.db import Database, libpq_conninfo
from portal.web import read_again_once
from tests.conftest import PortalClient, before_lean_reads

UNREACHABLE = "postgresql://portal@127.0.0.1:1/portal"  # nothing listens on port 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/notifications"),
        ("POST", "/notifications/read-all"),
        # Lean reads, on connections of their own.
        ("GET", "/people/1/card"),
        ("GET", "/people?q=ada"),
    ],
)
async def test_an_unreachable_database_is_a_503_with_retry_after(
    app: Starlette, admin_client: PortalClient, method: str, path: str
) -> None:
    await admin_client.csrf()
    reachable, app.state.db = app.state.db, Database(UNREACHABLE)
    try:
        if method == "GET":
            response = await admin_client.get(path)
        else:
            response = await admin_client.post(path)
    finally:
        await app.state.db.dispose()
        app.state.db = reachable
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "cannot reach its database" in response.text


async def test_a_request_that_waited_out_the_pool_is_not_made_to_wait_again() -> None:
    """A read cut off mid-way is read again; one that found no connection free in the pool's
    time would only wait as long again (twice 30 s, for an unreachable database)."""
    calls: list[str] = []

    async def waited() -> Response:
        calls.append("read")
        raise PoolTimeout("no connection came free")

    request = Request({"type": "http", "method": "GET", "path": "/people", "headers": []})
    with pytest.raises(PoolTimeout):
        await read_again_once(request, waited)
    assert calls == ["read"]


class BackendKiller:
    """Terminates the connection a statement is about to run on, from another connection, as
    a database restart or an idle-connection killer would: the ORM's statements, and with
    `lean` (a MonkeyPatch) the lean reads' too, which run on psycopg connections of their own."""

    def __init__(self, db: Database, matching: str, lean: pytest.MonkeyPatch | None = None) -> None:
        self.conninfo = libpq_conninfo(db.url)
        self.matching = matching
        self.armed = 0
        self.killed = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._before)
        if lean is not None:
            before_lean_reads(
                lean, lambda conn, statement: self._kill(conn.info.backend_pid, statement)
            )

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self._kill(conn.connection.driver_connection.info.backend_pid, statement)

    def _kill(self, pid: int, statement: str) -> None:
        if self.armed and self.matching in statement:
            self.armed -= 1
            with psycopg.connect(self.conninfo, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            self.killed += 1


def _postgres_only(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("a SQLite file never drops a connection: the PostgreSQL pass runs this")


async def test_a_read_cut_off_by_the_database_is_read_again_once(
    admin_client: PortalClient, db: Database
) -> None:
    _postgres_only(db)
    killer = BackendKiller(db, "FROM users")
    killer.armed = 1
    response = await admin_client.get("/notifications")
    assert killer.killed == 1
    assert response.status_code == 200, response.text
    # Cut off twice running: the database really is in trouble; say so, and when to come back.
    killer.armed = 2
    response = await admin_client.get("/notifications")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


async def test_a_write_cut_off_by_the_database_is_not_run_again(
    admin_client: PortalClient, db: Database, admin: User
) -> None:
    _postgres_only(db)
    await admin_client.csrf()
    killer = BackendKiller(db, "FROM users")
    killer.armed = 1
    response = await admin_client.post("/notifications/read-all")
    assert killer.killed == 1
    assert response.status_code == 503
    assert killer.armed == 0  # the sign-in check ran once


async def test_pages_survive_backends_terminated_during_requests(
    admin_client: PortalClient, db: Database
) -> None:
    """The issue's measurement: backends terminated every 0.7 s under load made 3.3% of
    requests a 500. Here every 0.25 s, five page reads at a time."""
    _postgres_only(db)
    stop = threading.Event()
    conninfo = libpq_conninfo(db.url)

    def terminate_backends() -> None:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            while not stop.wait(0.25):
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )

    killer = threading.Thread(target=terminate_backends)
    killer.start()
    statuses: list[int] = []
    try:
        for _ in range(40):
            responses = await asyncio.gather(
                *(admin_client.get("/notifications") for _ in range(5))
            )
            statuses.extend(response.status_code for response in responses)
    finally:
        stop.set()
        killer.join()
    assert 500 not in statuses
    assert statuses.count(200) >= 0.98 * len(statuses), Counter(statuses)


# The card's reads go in one pipeline: the viewer's first, the person's invitations last.
@pytest.mark.parametrize("statement", ["FROM users", "FROM event_participant "])
async def test_a_lean_page_cut_off_by_the_database_is_read_again_once(
    admin_client: PortalClient,
    db: Database,
    admin: User,
    member: User,
    monkeypatch: pytest.MonkeyPatch,
    statement: str,
) -> None:
    _postgres_only(db)
    killer = BackendKiller(db, statement, lean=monkeypatch)
    killer.armed = 1
    response = await admin_client.get(f"/people/{member.id}/card", headers={"HX-Request": "true"})
    assert killer.killed == 1
    assert response.status_code == 200, response.text
    assert member.display_name in response.text
    killer.armed = 2
    # Another card: the member's may be kept by now (portal.directory.cards), and read nothing.
    response = await admin_client.get(f"/people/{admin.id}/card", headers={"HX-Request": "true"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


async def test_lean_reads_after_a_server_restart_are_served(
    admin_client: PortalClient, db: Database, member: User
) -> None:
    """The lean reads' pool pings no connection before a read: every one it holds is dead
    after a restart, and the first read that finds out makes the pool drop them all."""
    _postgres_only(db)
    card = f"/people/{member.id}/card"
    # Fill the lean reads' pool with several connections, as a busy process has.
    await asyncio.gather(
        *(admin_client.get(card, headers={"HX-Request": "true"}) for _ in range(5))
    )
    with psycopg.connect(libpq_conninfo(db.url), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    for _ in range(3):
        response = await admin_client.get(card, headers={"HX-Request": "true"})
        assert response.status_code == 200, response.text
