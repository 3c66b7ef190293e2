"""Engine, sessions and metadata; the one place that scopes queries to a company."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import DateTime, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.orm.util import LoaderCriteriaOption
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

metadata = SQLModel.metadata

UNSCOPED = "unscoped"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no offset) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


TENANT_TABLES: list[type[Any]] = []


class TenantScoped:
    """Marker for tables whose rows belong to one company (they carry `company_id`)."""

    company_id: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        TENANT_TABLES.append(cls)


class UnscopedQuery(RuntimeError):
    """A company's table was queried from a session that names no company."""


@event.listens_for(Session, "do_orm_execute")
def _scope_to_company(state: ORMExecuteState) -> None:
    """Every ORM query on a TenantScoped table sees only the session's company."""
    if not (state.is_select or state.is_update or state.is_delete):
        return
    company_id = state.session.info.get("company_id")
    if company_id == UNSCOPED:
        return
    if company_id is None:
        if any(
            isinstance(m.class_, type) and issubclass(m.class_, TenantScoped)
            for m in state.all_mappers
        ):
            raise UnscopedQuery("open the session with Database.session(company_id=...)")
        return
    state.statement = state.statement.options(*_company_criteria(company_id, tuple(TENANT_TABLES)))


@functools.lru_cache(maxsize=1024)
def _company_criteria(
    company_id: int, tables: tuple[type[Any], ...]
) -> tuple[LoaderCriteriaOption, ...]:
    """The options that scope `tables` to one company, built once per company and table set.

    Building them analyses a lambda per table: a tenth of a millisecond on every query when
    done each time. Keyed by the tables too, so a table registered later is never left out.
    """
    # One option per table rather than one on the marker class: the criteria lambda must be
    # able to read `company_id` from the class it is given, and the marker has no column.
    return tuple(
        with_loader_criteria(table, lambda cls: cls.company_id == company_id, include_aliases=True)
        for table in tables
    )


def _with_driver(url: str, sqlite_driver: str) -> str:
    # psycopg 3 serves PostgreSQL both ways; SQLite needs aiosqlite for async.
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername=sqlite_driver).render_as_string(hide_password=False)
    if parsed.get_backend_name() in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def async_url(url: str) -> str:
    """The async driver for a database URL given in its plain form."""
    return _with_driver(url, "sqlite+aiosqlite")


def sync_url(url: str) -> str:
    """The sync driver for a database URL (Alembic and the CLI use it)."""
    return _with_driver(url, "sqlite")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how each transaction starts (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A deferred transaction that later writes can fail at once with "database is locked";
        # writers take the lock up front and wait on busy_timeout instead.
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The engine and the session factory of one portal instance."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        # A pre-ping finds connections a server dropped; a SQLite file drops none, and the ping
        # costs four round trips to aiosqlite's thread on every request.
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.engine = create_async_engine(
            async_url(url), echo=echo, pool_pre_ping=not self.is_sqlite
        )
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._write_engine = self.engine.execution_options(sqlite_immediate=True)
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self._write_engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(
        self, *, company_id: int | str | None, write: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session whose queries see only `company_id`'s rows (or UNSCOPED, said on purpose)."""
        maker = self._write if write else self._read
        async with maker() as session:
            session.info["company_id"] = company_id
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
