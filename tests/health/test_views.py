"""/healthz and /readyz: for load balancers, without sign-in, on both databases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os

import httpx
import pytest
from sqlalchemy import text
from starlette.applications import Starlette

from portal import migrate
from portal.app import create_app
from portal.db import Database
from portal.jobs.schema import apply_procrastinate_schema
from portal.settings import Settings
from tests.conftest import BASE_URL, PortalClient
from tests.servers import scratch_postgres_database

UNREACHABLE = "postgresql://portal@127.0.0.1:1/portal"


async def test_healthz_answers_without_the_database(client: PortalClient, db: Database) -> None:
    await db.engine.dispose()
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "set-cookie" not in response.headers


async def test_readyz_checks_the_database_and_the_schema(
    client: PortalClient, db: Database
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok"},
    }
    async with db.engine.begin() as connection:
        (revision,) = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).one()
        await connection.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    try:
        response = await client.get("/readyz")
    finally:
        async with db.engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
            )
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "not at head: run portal db upgrade"


async def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    # Nothing listens on port 1 (psycopg is there on the SQLite pass too).
    app = create_app(dataclasses.replace(settings, database_url=UNREACHABLE))
    async with _client(app) as http:
        response = await http.get("/readyz")
    await app.state.db.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["database"].startswith("failed (OperationalError")


@pytest.mark.parametrize("host", ["10.1.2.3:8000", "localhost", "evil.example"])
async def test_probes_answer_on_any_host_name(app: Starlette, host: str) -> None:
    async with _client(app) as http:
        for path in ("/healthz", "/readyz"):
            response = await http.get(path, headers={"Host": host})
            assert response.status_code == 200, (path, response.status_code)
        # Every other page still refuses a host that is not the portal's.
        assert (await http.get("/signin", headers={"Host": "evil.example"})).status_code == 400


async def test_readyz_in_worker_mode_needs_a_worker_heartbeat(settings: Settings) -> None:
    admin_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if not admin_url:
        pytest.skip("procrastinate's workers live in PostgreSQL: the PostgreSQL pass runs this")
    with scratch_postgres_database(admin_url, "portal_health") as url:
        migrate.upgrade(url)
        apply_procrastinate_schema(url)
        app = create_app(dataclasses.replace(settings, database_url=url, jobs="worker"))
        try:
            async with _client(app) as http:
                response = await http.get("/readyz")
                assert response.status_code == 503
                assert response.json()["checks"] == {
                    "database": "ok",
                    "migrations": "ok",
                    "worker": "no worker heartbeat in 2 minutes",
                }
                stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
                await _add_worker(app, stale)
                assert (await http.get("/readyz")).status_code == 503
                await _add_worker(app, dt.datetime.now(dt.UTC))
                response = await http.get("/readyz")
                assert response.status_code == 200, response.text
                assert response.json()["checks"]["worker"] == "ok"
        finally:
            await app.state.db.dispose()


async def _add_worker(app: Starlette, heartbeat: dt.datetime) -> None:
    async with app.state.db.engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (:at)"),
            {"at": heartbeat},
        )


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
