"""Engine, sessions and metadata; the one place that scopes queries to a company."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import DateTime, Select, Table, bindparam, event, select
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.orm.util import LoaderCriteriaOption
from sqlalchemy.sql import visitors
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from portal.freshness import Changes, CompanyKept, Kept

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


def database_unavailable(error: BaseException) -> bool:
    """The database could not answer (gone, restarting, cut the connection, locked, or no
    connection free in the pool), rather than refused what was asked of it."""
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    return isinstance(error, PoolTimeout)


# A file holding seconds to add to the clock, or None for real time: browser tests move a served
# portal's clock with it (a Join button goes live 15 minutes before a meeting) without waiting.
_clock_file: Path | None = None
_clock_offset: tuple[int, dt.timedelta] = (0, dt.timedelta())


def set_clock_file(path: Path | None) -> None:
    """Read the clock's offset from `path` from now on (PORTAL_TEST_CLOCK_FILE); None: real time."""
    global _clock_file
    _clock_file = path


def like_literal(text: str, escape: str) -> str:
    """`text` for a LIKE pattern whose escape character is `escape`: its wildcards (and that
    character) taken literally."""
    return (
        text.replace(escape, escape + escape).replace("%", escape + "%").replace("_", escape + "_")
    )


def utcnow() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now if _clock_file is None else now + _offset(_clock_file)


def _offset(path: Path) -> dt.timedelta:
    """The file's offset, read again only when the file changed."""
    global _clock_offset
    try:
        changed = path.stat().st_mtime_ns
        if changed != _clock_offset[0]:
            _clock_offset = (changed, dt.timedelta(seconds=float(path.read_text() or 0)))
    except (OSError, ValueError):
        return dt.timedelta()
    return _clock_offset[1]


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


class _SQLiteHintingCompiler(SQLiteCompiler):
    """SQLite's compiler, rendering the table hints (`NOT INDEXED`, `INDEXED BY ...`) it drops.

    `select(...).with_hint(Table, "NOT INDEXED", "sqlite")` then says how to read a table where
    SQLite's planner, which keeps no statistics here, would choose worse.
    """

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


def _configure_sqlite(engine: AsyncEngine) -> None:
    engine.dialect.statement_compiler = _SQLiteHintingCompiler

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


COMPANY_PARAM = "company_id"
# A lean read waits at most this long for SQLite's lock (WAL readers almost never wait at all):
# it runs on the event loop, where a long wait would stall every other request.
LEAN_READ_BUSY_MS = 200


class CompanyQuery:
    """A SQLAlchemy Core select of one company's rows of one TenantScoped table.

    The lean read path for hot read-only pages, beside the ORM's `do_orm_execute` hook: no
    session, no ORM hydration, no transaction, only the columns a page shows. The company
    criterion is added here, to a bind parameter that only `CompanyReader.rows` fills, from the
    company id the reader was opened with (the signed session's, in `portal.web`): a query
    built here can neither be run without a company nor be given another one by its caller.
    The select may name only `table` in its FROM and no other company's table anywhere (a
    subquery of a table that is not TenantScoped, such as the company's name, is allowed),
    so the criterion covers every row it reads.
    """

    def __init__(
        self,
        table: type[TenantScoped],
        *columns: Any,
        where: Any = None,
        finish: Callable[[Select[Any]], Select[Any]] | None = None,
        scan: bool = False,
    ) -> None:
        table_columns = table.__table__.c  # type: ignore[attr-defined]
        statement = select(*columns).where(table_columns.company_id == bindparam(COMPANY_PARAM))
        if where is not None:
            statement = statement.where(where)
        if finish is not None:
            # The rest of the statement (its order, a limit, a hint), checked like the rest.
            statement = finish(statement)
        own = table.__table__  # type: ignore[attr-defined]
        others = {tenant.__table__ for tenant in TENANT_TABLES} - {own}  # type: ignore[attr-defined]
        read = {element for element in visitors.iterate(statement) if isinstance(element, Table)}
        if statement.get_final_froms() != [own] or read & others:
            raise ValueError(
                f"a CompanyQuery reads {table.__name__} alone, not {sorted(map(str, read))}"
            )
        self.statement: Select[Any] = statement
        # It may read many rows: on SQLite it runs on aiosqlite's thread (see CompanyReader).
        self.scan = scan
        # Compiled once: SQLAlchemy's cache key alone costs more than a primary-key lookup.
        dialect = sqlite_dialect.dialect()
        # As the engine compiles for SQLite: with the table hints a statement gives.
        dialect.statement_compiler = _SQLiteHintingCompiler
        compiled = statement.compile(dialect=dialect)
        self.sqlite_sql = str(compiled)
        self.sqlite_params = tuple(compiled.positiontup or ())
        # Values the statement holds itself, where SQLite's compiler makes parameters of them (the
        # OFFSET 0 it writes after any LIMIT): the caller's parameters never name them.
        self.sqlite_fixed = {
            name: compiled.binds[name].value
            for name in self.sqlite_params
            if not compiled.binds[name].required
        }
        self.keys = tuple(statement.selected_columns.keys())
        # What the engine would do to values on their way in and out (a UTCDateTime is text in
        # SQLite), for the sqlite3 path: only the processors there are, looked up once.
        binds = (
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.sqlite_params
        )
        self.sqlite_binds = tuple(
            (index, process) for index, process in enumerate(binds) if process is not None
        )
        self.sqlite_results = self._result_processors(dialect)
        # The same for psycopg on PostgreSQL, whose parameters are named (%(name)s).
        postgresql = PGDialect_psycopg()
        compiled = statement.compile(dialect=postgresql)
        self.postgresql_sql = str(compiled)
        self.postgresql_binds = tuple(
            (name, process)
            for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(postgresql).bind_processor(postgresql))
        )
        self.postgresql_results = self._result_processors(postgresql)

    def _result_processors(self, dialect: Dialect) -> tuple[tuple[str, Callable[..., Any]], ...]:
        """The selected columns' result processors on `dialect`, by key: only those there are."""
        return tuple(
            (key, process)
            for key, column in zip(self.keys, self.statement.selected_columns, strict=True)
            if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
        )

    def as_rows(
        self, found: Sequence[Sequence[Any]], processors: tuple[tuple[str, Callable[..., Any]], ...]
    ) -> list[dict[str, Any]]:
        """The driver's rows as dicts of the selected columns, each value processed as the
        engine would (`processors`: sqlite_results or postgresql_results)."""
        rows = [dict(zip(self.keys, row, strict=True)) for row in found]
        for row in rows:
            for key, process in processors:
                row[key] = process(row[key])
        return rows


# A CompanyQuery and the parameters to run it with (CompanyReader.rows_together).
Read = tuple[CompanyQuery, dict[str, Any]]


class CompanyReader:
    """Runs CompanyQuery selects for one company; `Database.reader` is the only way to open one.

    On SQLite the query runs on a read-only sqlite3 connection on the event loop, as the
    raw-sqlite3 baseline does: a query of a few indexed rows takes tens of microseconds,
    where aiosqlite's hops to its thread and back (cursor, execute, fetch, close, plus BEGIN
    and ROLLBACK) cost ten times that. Keep it for lookups by key and reads of few rows: a
    query that may scan says so (`CompanyQuery(..., scan=True)`) and runs on the engine's
    connection, on aiosqlite's thread, where it holds up no other request of the process. On
    PostgreSQL every query runs on a psycopg connection of the Database's own pool (see
    _reading_pool), whose I/O does not block the loop.
    """

    def __init__(self, db: Database, company_id: int) -> None:
        if isinstance(company_id, bool) or not isinstance(company_id, int):
            raise UnscopedQuery("a CompanyReader needs the signed-in company's id")
        self._db = db
        self.company_id = company_id

    @property
    def is_sqlite(self) -> bool:
        return self._db.is_sqlite

    def kept(self, name: str, *, keep_for: float, at_most: int) -> CompanyKept[Any, Any]:
        """Database.kept, for this reader's company."""
        return CompanyKept(self._db.kept(name, keep_for=keep_for, at_most=at_most), self.company_id)

    async def rows(self, query: CompanyQuery, **params: Any) -> list[dict[str, Any]]:
        """The rows `query` finds among the company's, as dicts of the selected columns."""
        [found] = await self.rows_together((query, params))
        return found

    async def rows_together(self, *reads: Read) -> list[list[dict[str, Any]]]:
        """The rows of each read, in order, as `rows` finds them; on PostgreSQL sent together,
        in one round trip on one connection (psycopg's pipeline mode): for a page whose reads
        do not depend on each other."""
        scoped = [(query, self._scoped(params)) for query, params in reads]
        if not self._db.is_sqlite:
            return await self._db.read_postgresql(scoped)
        return [await self._read_sqlite(query, params) for query, params in scoped]

    def _scoped(self, params: dict[str, Any]) -> dict[str, Any]:
        if COMPANY_PARAM in params:
            raise UnscopedQuery("the company comes from the reader, never from the caller")
        return {**params, COMPANY_PARAM: self.company_id}

    async def _read_sqlite(
        self, query: CompanyQuery, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        connection = None if query.scan else self._db.lean_sqlite_connection()
        if connection is not None:
            if query.sqlite_fixed:
                params = {**query.sqlite_fixed, **params}
            values = [params[name] for name in query.sqlite_params]
            for index, process in query.sqlite_binds:
                values[index] = process(values[index])
            found = connection.execute(query.sqlite_sql, values).fetchall()
            return query.as_rows(found, query.sqlite_results)
        async with self._db.engine.connect() as async_connection:
            result = await async_connection.execute(query.statement, params)
            return [dict(row._mapping) for row in result]


Found = TypeVar("Found")


async def add_or_find(
    session: AsyncSession, row: object, find: Callable[[], Awaitable[Found | None]]
) -> Found | None:
    """Add and flush `row`: None once it is added; or, when a unique constraint says that a
    request racing this one added its twin first, what `find` returns for that twin.

    The insert runs in a savepoint, so the session stays usable after the refusal; an
    IntegrityError that `find` cannot explain (no twin) is raised as it came.
    """
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        twin = await find()
        if twin is None:
            raise
        return twin
    return None


def create_sqlite_file(url: str) -> None:
    """Create a SQLite database file (and its folder) readable by this user only.

    SQLite creates a missing file with the umask's mode, usually 0644: anyone on the machine
    could read the password hashes and links. Its -wal and -shm files take the main file's mode.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Another process may create it first, the same way.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


# Lean reads wait for one of these connections rather than open more: opening one starts a
# server process, which under load costs more than the reads themselves (measured: one new
# connection every seven hover cards with SQLAlchemy's default 5 + 10 overflow). A request that
# waits past the pool's timeout is answered 503 (database_unavailable). Two a process: a page's
# reads go out in one pipeline, so one connection is busy for one round trip a page, and more
# reads at once only wait in the database server's scheduler, beside the web processes, instead
# of in this pool's queue, which serves them in turn. Measured with 10,000 people, two web
# processes on two cores, at the same rate: searches at p99 60 ms with 2 a process, 100 ms with
# 3, 116 to 139 ms with 4, 157 to 260 ms with 8; cards at 27 ms with 2, 32 ms with 3 (with
# 100,000 people and a pool of 10, searches were at 326 to 675 ms). One a process did as
# well, but held every lean read of the process behind any slower one.
READING_POOL_SIZE = 2
# How long a lean read waits for a connection: for one to come free under load, or for the
# server to accept one (psycopg_pool keeps trying to connect while readers wait, so a restart
# of a second or two costs a slower page, not an error page). Past it the request is answered
# 503; a page taking longer is broken anyway, and a database that is down must not hold every
# request for the pool's default of 30 s.
READING_WAIT_SECONDS = 5.0


def libpq_conninfo(database_url: str) -> str:
    """The database URL as psycopg and procrastinate take it: libpq's key=value string (a URL
    would do but for its query: SQLAlchemy writes a space there as "+", which libpq keeps)."""
    url = make_url(database_url)
    parts: dict[str, str | int | None] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    for key, value in url.query.items():
        parts[key] = value if isinstance(value, str) else value[-1]  # libpq takes one of each
    return make_conninfo("", **{key: value for key, value in parts.items() if value is not None})


def _reading_pool(url: str) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    """PostgreSQL's connections for CompanyReader, whose reads run on psycopg directly
    (Database.read_postgresql): a statement a read, and nothing else. No transaction around
    it (BEGIN, and a ROLLBACK on return to the pool, are two round trips more than the query),
    no ping before it (its reads run in web.read_again_once, which reads again on a fresh
    connection when the server dropped the one the pool handed out), and none of SQLAlchemy's
    execution or pool, which cost more than the query: a hover card's three reads took 1.00 ms
    of the process's CPU through SQLAlchemy's pool (its checkout and return each a greenlet
    switch), 0.70 ms through psycopg_pool's. Opened as load needs them, none kept idle."""
    return AsyncConnectionPool(
        libpq_conninfo(url),
        min_size=0,
        max_size=READING_POOL_SIZE,
        timeout=READING_WAIT_SECONDS,
        kwargs={"autocommit": True},
        name="portal-lean-reads",
        open=False,
    )


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
            create_sqlite_file(url)
            _configure_sqlite(self.engine)
        self._write_engine = self.engine.execution_options(sqlite_immediate=True)
        self._reading_pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._lean: sqlite3.Connection | None = None
        self.changes = Changes(
            sqlite=self.lean_sqlite_connection if self.is_sqlite else None,
            conninfo="" if self.is_sqlite else libpq_conninfo(url),
        )
        self._kept: dict[str, Kept[Any, Any]] = {}

    @asynccontextmanager
    async def session(
        self, *, company_id: int | str | None, write: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """A session whose queries see only `company_id`'s rows (or UNSCOPED, said on purpose)."""
        maker = self._write if write else self._read
        async with maker() as session:
            session.info["company_id"] = company_id
            yield session

    @asynccontextmanager
    async def transaction(self, *, company_id: int | str | None) -> AsyncIterator[AsyncSession]:
        """A write session that commits once, when the block ends without an exception.

        For the owners of a unit of work (a public view, a job, the command line); services
        called inside only add and flush.
        """
        async with self.session(company_id=company_id, write=True) as session:
            yield session
            await session.commit()

    def reader(self, *, company_id: int) -> CompanyReader:
        """A reader of `company_id`'s rows by Core selects (see CompanyQuery)."""
        return CompanyReader(self, company_id)

    def kept(self, name: str, *, keep_for: float, at_most: int) -> Kept[Any, Any]:
        """This process's kept reads of kind `name` from this database (see portal.freshness);
        the first call for a name sets how long and how many."""
        kept = self._kept.get(name)
        if kept is None:
            kept = self._kept[name] = Kept(self.changes, keep_for=keep_for, at_most=at_most)
        return kept

    def lean_sqlite_connection(self) -> sqlite3.Connection | None:
        """This process's read-only sqlite3 connection for lean reads; None off SQLite."""
        if self._lean is None and self.is_sqlite:
            path = make_url(self.url).database
            if not path or path == ":memory:":
                return None  # a memory database is private to the engine's own connection
            # Used only from the event loop's thread, which may not be the one that opened it.
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={LEAN_READ_BUSY_MS}")
            connection.execute("PRAGMA query_only=ON")
            self._lean = connection
        return self._lean

    async def read_postgresql(self, reads: list[Read]) -> list[list[dict[str, Any]]]:
        """CompanyReader's reads on PostgreSQL, on one connection, more than one in a pipeline;
        psycopg's errors raised as SQLAlchemy's, which the web layer answers (read again once,
        or 503)."""
        for query, params in reads:
            for name, process in query.postgresql_binds:
                params[name] = process(params[name])
        pool = await self._reading_connections()
        try:
            async with pool.connection() as connection:
                # A pipeline costs a sync of its own: a single read goes without one.
                if len(reads) == 1:
                    [(query, params)] = reads
                    cursors = [await connection.execute(query.postgresql_sql, params)]
                else:
                    async with connection.pipeline():
                        cursors = [
                            await connection.execute(query.postgresql_sql, params)
                            for query, params in reads
                        ]
                found = [await cursor.fetchall() for cursor in cursors]
        except psycopg_pool.PoolTimeout as error:
            raise PoolTimeout(f"no connection for lean reads: {error}") from error
        except psycopg.Error as error:
            if isinstance(error, psycopg.OperationalError):
                # The server dropped this connection (the pool discards it), and with a
                # restart its idle siblings too: those are tried now, not by the next reads.
                await pool.check()
            statement = ";\n".join(query.postgresql_sql for query, _ in reads)
            raise DBAPIError.instance(statement, reads[0][1], error, psycopg.Error) from error
        return [
            query.as_rows(rows, query.postgresql_results)
            for (query, _), rows in zip(reads, found, strict=True)
        ]

    async def _reading_connections(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        """The lean reads' pool, opened on the first read (on the loop that serves them)."""
        if self._reading_pool is None:
            self._reading_pool = _reading_pool(self.url)
        if self._reading_pool.closed:
            await self._reading_pool.open()
        return self._reading_pool

    async def dispose(self) -> None:
        """Close every connection; the next query opens new ones."""
        await self.changes.close()
        self._kept.clear()
        if self._lean is not None:
            self._lean.close()
            self._lean = None
        await self.engine.dispose()
        # A closed psycopg pool cannot be opened again: the next read makes a new one.
        pool, self._reading_pool = self._reading_pool, None
        if pool is not None:
            await pool.close()
