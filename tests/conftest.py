"""Test set-up: a migrated database (SQLite, or PostgreSQL when PORTAL_TEST_DATABASE_URL is set),
an app built from test settings, and a client that signs in and sends CSRF tokens like a browser."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.datastructures import Secret

from portal import migrate
from portal.accounts import services
from portal.accounts.forms import clean_person
from portal.accounts.models import Company, User
from portal.app import create_app
from portal.db import UNSCOPED, Database, metadata
from portal.settings import Settings
from tests.servers import scratch_postgres_database

# Argon2 at its cheapest: the tests check behaviour, and 120 ms a hash would dominate the run.
FAST_HASHER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
PASSWORD = "correct horse battery"
BASE_URL = "http://testserver"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def _postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, migrated database for this run on the server behind `admin_url`."""
    conninfo = (
        make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        psycopg.connect(conninfo, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            raise RuntimeError(f"CI needs PostgreSQL at {admin_url}: {error}") from error
        pytest.exit(
            f"PostgreSQL is not reachable at {admin_url}; skipped the PostgreSQL run", returncode=0
        )
    with scratch_postgres_database(admin_url, "portal_test") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrated once per run; each test leaves it empty again (see `db`)."""
    admin_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if admin_url:
        yield from _postgres_database(admin_url)
        return
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'portal.db'}"
    migrate.upgrade(url)
    yield url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=Secret("test-secret-" + "x" * 40),
        base_url=BASE_URL,
        data_dir=tmp_path,
        password_hasher=FAST_HASHER,
    )


async def _empty_tables(db: Database) -> None:
    async with db.engine.begin() as connection:
        if db.is_sqlite:
            for table in reversed(metadata.sorted_tables):
                await connection.execute(table.delete())
        else:
            names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url)
    try:
        yield database
    finally:
        await _empty_tables(database)
        await database.dispose()


@pytest.fixture
async def app(settings: Settings, db: Database) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    # The test's own Database, so services called from tests and the app share one engine.
    await application.state.db.dispose()
    application.state.db = db
    yield application


class PortalClient:
    """An httpx client with a cookie jar that fills in the CSRF token the way a page's forms do."""

    def __init__(self, app: Starlette) -> None:
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        self._token: str | None = None

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.get(url, **kwargs)
        match = CSRF_INPUT.search(response.text)
        if match:
            self._token = match.group(1)
        elif response.status_code == 303:
            self._token = None  # signed out on the way: the session (and its token) is new
        return response

    async def csrf(self) -> str:
        if self._token is None:
            await self.get("/signin", follow_redirects=True)
        assert self._token
        return self._token

    async def post(
        self, url: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        form = {"csrf_token": await self.csrf(), **(data or {})}
        response = await self.http.post(url, data=form, **kwargs)
        if response.status_code == 303:
            self._token = None  # the session may have been renewed: read the token again
        return response

    async def sign_in(self, email: str, password: str = PASSWORD) -> httpx.Response:
        response = await self.post("/signin", {"email": email, "password": password})
        assert response.status_code == 303, response.text
        return response

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[PortalClient]:
    portal_client = PortalClient(app)
    yield portal_client
    await portal_client.aclose()


@pytest.fixture
def new_client(app: Starlette) -> Iterator[Any]:
    """Another browser: its own cookies."""
    clients: list[PortalClient] = []

    def make() -> PortalClient:
        clients.append(PortalClient(app))
        return clients[-1]

    yield make


def before_lean_reads(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[psycopg.AsyncConnection[Any], str], None]
) -> None:
    """Calls `before` with the connection and the statement of each PostgreSQL lean read
    (CompanyReader), which runs on psycopg itself, out of SQLAlchemy's events' sight."""
    execute = psycopg.AsyncConnection.execute

    async def watched_execute(
        connection: psycopg.AsyncConnection[Any], query: Any, *args: Any, **kwargs: Any
    ) -> Any:
        before(connection, str(query))
        return await execute(connection, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", watched_execute)


async def make_company(db: Database, name: str = "Acme", slug: str | None = None) -> Company:
    async with db.session(company_id=UNSCOPED, write=True) as session:
        company = await services.create_company(
            session, name, slug or name.lower(), "Europe/London"
        )
        await session.commit()
        return company


async def make_user(
    db: Database,
    company: Company,
    email: str,
    *,
    name: str | None = None,
    admin: bool = False,
    password: str | None = PASSWORD,
    department: str = "",
    title: str = "",
) -> User:
    values = {
        "display_name": name or email.split("@")[0].title(),
        "email": email,
        "department": department,
        "title": title,
        "role": "admin" if admin else "member",
    }
    person, errors = clean_person(values, default_tz=company.default_time_zone)
    assert not errors, errors
    async with db.session(company_id=company.id, write=True) as session:
        user = await services.create_user(session, FAST_HASHER, company, person, password)
        await session.commit()
        return user


@pytest.fixture
async def acme(db: Database) -> Company:
    return await make_company(db, "Acme")


@pytest.fixture
async def admin(db: Database, acme: Company) -> User:
    return await make_user(db, acme, "ada@acme.example", name="Ada Admin", admin=True)


@pytest.fixture
async def member(db: Database, acme: Company) -> User:
    return await make_user(db, acme, "bob@acme.example", name="Bob Member", department="Sales")


@pytest.fixture
async def admin_client(client: PortalClient, admin: User) -> PortalClient:
    await client.sign_in(admin.email)
    return client
