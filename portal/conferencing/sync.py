"""Sync: read every provider user, then store the whole mapping in one transaction.

Reading commits the run's progress page by page (the admin page polls it); the mapping is
applied all at once, so a sync that fails keeps the previous mapping. Only the people the
connection serves are mapped. One sync per connection at a time: a unique index on running
runs, a PostgreSQL advisory lock around the apply, and SQLite's single writer. A person's own
sync (a run with `person_id`, portal.conferencing.person_sync) is none of this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import gc
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import stamina
from sqlalchemy import and_, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.conferencing import secrets
from portal.conferencing.connections import (
    auto_create,
    credentials,
    keep_renewed_credentials,
    provisioning_method,
    sitewide_settings,
)
from portal.conferencing.interfaces import (
    BadCredentials,
    ConferencingError,
    NewUser,
    NotAdministrator,
    Provider,
    ProviderUnavailable,
    ProviderUser,
    RateLimited,
    UserPage,
)
from portal.conferencing.mapping import Decision, Person, Stored, email_key, match
from portal.conferencing.models import (
    FAILED,
    GONE,
    MANUAL,
    RUNNING,
    SUCCEEDED,
    ConferencingConnection,
    ConferencingSettings,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.providers import open_provider
from portal.conferencing.serving import served_clause
from portal.db import Database, add_or_find, utcnow
from portal.jobs import defer_after_commit
from portal.settings import Settings

log = logging.getLogger(__name__)

SYNC_JOB = "sync_conferencing"
# A running run whose heartbeat is older was left by a process that died.
STALE_AFTER = dt.timedelta(minutes=10)
# Past the adapter's own retries, a rate-limited sync waits this many more times, as long as the
# provider asks (capped), and then fails.
RATE_LIMIT_ATTEMPTS = 6
RATE_LIMIT_WAIT_MAX = 60.0
# Progress is written at most this often: a commit per page cost a 336-page sync a second.
PROGRESS_EVERY = dt.timedelta(seconds=0.5)
_LOCK_SPACE = 0x5C0F  # pg_try_advisory_xact_lock(space, connection_id): conferencing syncs

T = TypeVar("T")


class SyncStopped(Exception):
    """The sync cannot go on; the message is the run's error for the admin."""


def _of_all_users(connection: ConferencingConnection) -> Any:
    """The connection's runs of all its users, not one person's."""
    return and_(col(SyncRun.connection_id) == connection.id, col(SyncRun.person_id).is_(None))


async def _running(session: AsyncSession, connection: ConferencingConnection) -> SyncRun | None:
    query = select(SyncRun).where(_of_all_users(connection), col(SyncRun.status) == RUNNING)
    return (await session.execute(query)).scalars().first()


async def request_sync(
    session: AsyncSession,
    connection: ConferencingConnection,
    *,
    trigger: str = MANUAL,
    requested_by: int | None = None,
) -> SyncRun:
    """The connection's running sync: the one under way, or a new one whose job starts once
    the caller commits."""
    running = await _running(session, connection)
    if running is not None:
        if utcnow() - running.heartbeat_at < STALE_AFTER:
            return running
        _finish(running, FAILED, "The sync stopped without finishing: the portal restarted.")
        await session.flush()
    run = SyncRun(
        company_id=connection.company_id,
        connection_id=connection.id or 0,
        trigger=trigger,
        requested_by=requested_by,
    )
    # Another request may start the connection's sync at the same moment.
    running = await add_or_find(session, run, lambda: _running(session, connection))
    if running is not None:
        return running
    defer_after_commit(session, SYNC_JOB, run_id=run.id)
    return run


async def sync_run(session: AsyncSession, run_id: int) -> SyncRun | None:
    """One of the company's runs (None: not the company's, or no such run)."""
    return (
        (await session.execute(select(SyncRun).where(col(SyncRun.id) == run_id))).scalars().first()
    )


async def latest_run(session: AsyncSession, connection: ConferencingConnection) -> SyncRun | None:
    """The connection's latest run of all its users, if any."""
    query = (
        select(SyncRun)
        .where(_of_all_users(connection))
        .order_by(col(SyncRun.started_at).desc(), col(SyncRun.id).desc())
        .limit(1)
    )
    return (await session.execute(query)).scalars().first()


def _finish(run: SyncRun, status: str, error: str = "") -> None:
    run.status, run.error, run.finished_at = status, error, utcnow()


async def run_sync(
    db: Database,
    settings: Settings,
    company_id: int,
    run_id: int,
    stopping: asyncio.Event | None = None,
) -> SyncRun | None:
    """Do the run: read, create accounts if asked, apply; a failure marks the run failed with
    its reason and leaves the mapping as it was. Owns its transactions."""
    async with db.session(company_id=company_id) as session:
        run = await sync_run(session, run_id)
        connection = await session.get(ConferencingConnection, run.connection_id) if run else None
        sitewide = await sitewide_settings(session, company_id)
    if run is None or run.finished or connection is None:
        return run
    try:
        provider = open_provider(
            connection.provider, credentials(settings, connection), settings.provider_endpoints
        )
        try:
            progress = _Progress(db, company_id, run_id, stopping)
            progress.people = await _served_emails(db, connection)
            users = await _read_all(provider, progress)
            created = await _create_accounts(db, connection, sitewide, provider, users, progress)
        finally:
            await provider.aclose()
            await _keep_credentials(db, settings, connection, provider)
        with _no_cycle_collection():
            await _apply(db, connection, run_id, users + created, len(created))
    except (ConferencingError, secrets.UnreadableSecrets, SyncStopped) as error:
        await _fail(db, company_id, run_id, str(error))
    except Exception:
        log.exception("the conferencing sync %s of company %s failed", run_id, company_id)
        await _fail(db, company_id, run_id, "The sync failed unexpectedly: see the portal's log.")
    async with db.session(company_id=company_id) as session:
        return await sync_run(session, run_id)


async def _keep_credentials(
    db: Database, settings: Settings, connection: ConferencingConnection, provider: Provider
) -> None:
    """The credentials the provider renewed while the sync read (Webex's refresh token), kept in
    a short transaction of their own whether the sync goes on or failed: a token rotated on
    page 1 is the only one that works once page 3 fails. Without any, the stored ones are
    encrypted again with the first key, so that old keys can be dropped after a night."""
    async with db.transaction(company_id=connection.company_id) as session:
        if await keep_renewed_credentials(session, settings, connection, provider):
            return  # written anew, with the first key
        fresh = await session.get(ConferencingConnection, connection.id)
        if fresh is not None:
            fresh.secret_credentials = secrets.rotate(settings, fresh.secret_credentials)


async def _fail(db: Database, company_id: int, run_id: int, error: str) -> None:
    async with db.transaction(company_id=company_id) as session:
        run = await sync_run(session, run_id)
        if run is not None and not run.finished:
            _finish(run, FAILED, error)


async def _served_emails(db: Database, connection: ConferencingConnection) -> set[str]:
    """The email keys of the active people the connection serves, to count matches while
    reading."""
    async with db.session(company_id=connection.company_id) as session:
        emails = await session.execute(
            select(col(User.email)).where(col(User.active), served_clause(connection))
        )
        return {email_key(email) for email in emails.scalars()}


@dataclass
class _Progress:
    """The run's pages read, users seen and people matched so far, committed as they grow
    (at most every PROGRESS_EVERY) so the page can show them."""

    db: Database
    company_id: int
    run_id: int
    stopping: asyncio.Event | None
    people: set[str] = field(default_factory=set)
    pages: int = 0
    users: int = 0
    matched: int = 0
    written: dt.datetime | None = None

    def read(self, page: UserPage) -> None:
        self.pages += 1
        self.users += len(page.users)
        self.matched += sum(1 for user in page.users if email_key(user.email) in self.people)

    async def beat(self, *, last: bool = False) -> None:
        if self.stopping is not None and self.stopping.is_set():
            raise SyncStopped("The portal stopped during the sync: run it again.")
        now = utcnow()
        if not last and self.written is not None and now - self.written < PROGRESS_EVERY:
            return
        self.written = now
        async with self.db.transaction(company_id=self.company_id) as session:
            result = await session.execute(
                update(SyncRun)
                .where(col(SyncRun.id) == self.run_id, col(SyncRun.status) == RUNNING)
                .values(
                    pages_read=self.pages,
                    users_seen=self.users,
                    people_matched=self.matched,
                    heartbeat_at=now,
                )
            )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise SyncStopped("The sync was stopped: it ran too long without a sign of life.")


def _rate_limit_wait(error: Exception) -> bool | float:
    """How long to wait when the provider still limits us after the adapter's own retries."""
    if isinstance(error, RateLimited):
        return min(error.retry_after or RATE_LIMIT_WAIT_MAX, RATE_LIMIT_WAIT_MAX)
    return False


async def _patiently(call: Callable[[], Awaitable[T]]) -> T:
    async for attempt in stamina.retry_context(
        on=_rate_limit_wait, attempts=RATE_LIMIT_ATTEMPTS, timeout=None
    ):
        with attempt:
            return await call()
    raise AssertionError("stamina gives up by raising")  # pragma: no cover


async def _read_all(provider: Provider, progress: _Progress) -> list[ProviderUser]:
    """Every provider user, page by page."""
    users: list[ProviderUser] = []
    cursor: str | None = None
    while True:
        page = await _patiently(functools.partial(provider.users, cursor))
        users.extend(page.users)
        progress.read(page)
        await progress.beat(last=page.next_cursor is None)
        if page.next_cursor is None:
            progress.people = set()  # 10 MB for 100,000 people, not needed past the reading
            return users
        cursor = page.next_cursor


async def _create_accounts(
    db: Database,
    connection: ConferencingConnection,
    sitewide: ConferencingSettings,
    provider: Provider,
    users: list[ProviderUser],
    progress: _Progress,
) -> list[ProviderUser]:
    """Provider accounts for the active people served whom the provider has no user for, when
    the connection (or, as it says, the sitewide setting) asks for them."""
    method = provisioning_method(connection)
    if not (auto_create(connection, sitewide) and method):
        return []
    at_provider = {email_key(user.email) for user in users}
    async with db.session(company_id=connection.company_id) as session:
        query = select(col(User.email), col(User.display_name)).where(
            col(User.active), served_clause(connection)
        )
        wanted = [
            (email, name)
            for email, name in await session.execute(query)
            if email_key(email) not in at_provider
        ]
    created: list[ProviderUser] = []
    for email, name in wanted:
        first, _, last = name.partition(" ")
        new_user = NewUser(email=email, first_name=first, last_name=last)
        try:
            create = functools.partial(provider.create_user, new_user, method)
            created.append(await _patiently(create))
        except (RateLimited, ProviderUnavailable, BadCredentials, NotAdministrator):
            raise  # the provider is down or refuses the account: the run fails
        except ConferencingError as error:
            # This one person (an address the provider refuses, say): the others go on.
            log.warning("could not create a provider account for %s: %s", email, error)
        await progress.beat()
    return created


_ACCOUNT = ProviderAccount.__table__  # type: ignore[attr-defined]
# The columns sync writes, after the provider user id, in the order of _changes' values; the
# last four are Stored's after its ids.
_FIELDS = (
    "email", "email_key", "name", "status", "licensed", "room_url", "user_id", "reason", "manual"
)  # fmt: skip
# Stored rows are read this many at a time: all at once, the driver's rows and SQLAlchemy's
# would weigh 45 MB more at the top of a sync of 100,000 users.
STORED_BATCH = 5000


def _digest(values: tuple[Any, ...]) -> int:
    """The written columns' values, hashed: equal values give equal digests in this process
    (str hashes are keyed per process, so no provider user can craft a collision to keep a
    change from being written)."""
    return hash(values)


async def _stored(conn: AsyncConnection, connection: ConferencingConnection) -> dict[str, Stored]:
    columns = [_ACCOUNT.c[name] for name in ("provider_user_id", "id", *_FIELDS)]
    query = select(*columns).where(
        _ACCOUNT.c.company_id == connection.company_id,
        _ACCOUNT.c.connection_id == connection.id,
    )
    stored: dict[str, Stored] = {}
    result = await conn.stream(query.execution_options(yield_per=STORED_BATCH))
    async for rows in result.partitions():
        for key, row_id, *written in rows:
            room_url, user_id, reason, manual = written[-4:]
            digest = _digest(tuple(written))
            stored[key] = Stored(key, row_id, room_url, user_id, reason, manual, digest)
    return stored


async def _people(conn: AsyncConnection, connection: ConferencingConnection) -> list[Person]:
    """Every person of the company, with whether the connection serves them: one it does not
    serve keeps its email's match from going to a stranger."""
    users = User.__table__.c  # type: ignore[attr-defined]
    served = served_clause(connection)
    rows = await conn.execute(
        select(users.id, users.email, users.active, served).where(
            users.company_id == connection.company_id
        )
    )
    return [Person(user_id, email, active, bool(yes)) for user_id, email, active, yes in rows]


@dataclass
class _Changes:
    inserts: list[tuple[str, tuple[Any, ...]]]  # (provider user id, values), made rows later
    updates: list[dict[str, Any]]
    gone_ids: list[int]  # rows of users who left the provider: unmapped, their details kept
    newly_mapped: int


def _changes(
    decisions: list[Decision], before: dict[str, Stored], connection: ConferencingConnection
) -> _Changes:
    """The rows to insert and the rows to update (only those that changed)."""
    now = utcnow()
    changes = _Changes([], [], [], 0)
    still_there = 0
    for decision in decisions:
        user = decision.user
        old = before.get(user.id)
        # _FIELDS' values, cut to the columns' lengths.
        values = (
            user.email[:254],
            decision.key[:254],
            user.name[:200],
            user.status,
            user.licensed,
            # The provider's list may have no room link (Zoom's has the PMI but not its
            # passcode): the one asked for when the person first hosted stays.
            user.room_url[:500] or (old.room_url if old is not None else ""),
            decision.user_id,
            decision.reason,
            decision.manual,
        )
        usable = decision.user_id is not None and not decision.reason
        if usable and (old is None or old.reason or old.user_id != decision.user_id):
            changes.newly_mapped += 1
        if old is None:
            changes.inserts.append((user.id, values))
            continue
        still_there += 1
        if _digest(values) != old.digest:
            changes.updates.append(_bound(old.id, values, now))
    if still_there < len(before):  # some stored users were not read: they left the provider
        seen = {decision.user.id for decision in decisions}
        for key, old in before.items():
            if key not in seen and old.reason != GONE:
                changes.gone_ids.append(old.id)
    return changes


INSERT_BATCH = 5000


async def _insert(
    conn: AsyncConnection,
    connection: ConferencingConnection,
    inserts: list[tuple[str, tuple[Any, ...]]],
) -> None:
    """New rows, a batch at a time: a dict per row for 100,000 users would weigh 100 MB."""
    fixed = {"company_id": connection.company_id, "connection_id": connection.id}
    now = utcnow()
    if inserts and conn.dialect.name == "postgresql":
        await _copy(conn, (*fixed.values(), now), inserts)
        return
    for start in range(0, len(inserts), INSERT_BATCH):
        rows = [
            {**dict(zip(_FIELDS, values, strict=True)), **fixed, "provider_user_id": user_id}
            | {"updated_at": now}
            for user_id, values in inserts[start : start + INSERT_BATCH]
        ]
        await conn.execute(insert(_ACCOUNT), rows)


async def _copy(
    conn: AsyncConnection, fixed: tuple[Any, ...], inserts: list[tuple[str, tuple[Any, ...]]]
) -> None:
    """PostgreSQL's COPY: ten times faster than INSERTs for a first sync of 100,000 users, in
    the same transaction."""
    columns = ("company_id", "connection_id", "updated_at", "provider_user_id", *_FIELDS)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    statement = f"COPY {_ACCOUNT.name} ({', '.join(columns)}) FROM STDIN"
    async with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for user_id, values in inserts:
            await copy.write_row((*fixed, user_id, *values))


async def _apply(
    db: Database,
    connection: ConferencingConnection,
    run_id: int,
    users: list[ProviderUser],
    created: int,
) -> None:
    """Store the mapping and the run's summary in one transaction."""
    company_id = connection.company_id
    async with db.transaction(company_id=company_id) as session:
        conn = await session.connection()
        if conn.dialect.name == "postgresql":
            locked = await conn.scalar(
                text("SELECT pg_try_advisory_xact_lock(:space, :connection)"),
                {"space": _LOCK_SPACE, "connection": connection.id},
            )
            if not locked:
                raise SyncStopped("Another sync of this connection was being applied: try again.")
        run = await sync_run(session, run_id)
        if run is None or run.finished:
            raise SyncStopped("The sync was stopped before it could be applied.")
        before = await _stored(conn, connection)
        people = await _people(conn, connection)
        decisions = match(users, before, people)
        changes = _changes(decisions, before, connection)
        await _insert(conn, connection, changes.inserts)
        if changes.updates:
            await conn.execute(
                update(_ACCOUNT)
                .where(_ACCOUNT.c.id == bindparam("b_id"))
                .values({name: bindparam(f"b_{name}") for name in (*_FIELDS, "updated_at")}),
                changes.updates,
            )
        if changes.gone_ids:
            await conn.execute(
                update(_ACCOUNT)
                .where(_ACCOUNT.c.id == bindparam("b_id"))
                .values(user_id=None, reason=GONE, manual=False, updated_at=utcnow()),
                [{"b_id": row_id} for row_id in changes.gone_ids],
            )
        mapped = {d.user_id for d in decisions if d.user_id is not None and not d.reason}
        run.newly_mapped = changes.newly_mapped
        run.people_matched = len(mapped)
        run.still_unmapped = sum(1 for p in people if p.active and p.served and p.id not in mapped)
        run.no_longer_at_provider = len(changes.gone_ids)
        run.accounts_created = created
        _finish(run, SUCCEEDED)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused: applying 100,000 users makes half a million objects
    that live until the end, none in a cycle (reference counting frees them), and the collector
    walked them all again and again: a third of an unchanged re-sync's time. Applying reads and
    writes the database only, in seconds; the collector resumes as it was after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _bound(row_id: int, values: tuple[Any, ...], now: dt.datetime) -> dict[str, Any]:
    """An update's parameters: a column's own name is reserved, so each gets a prefix."""
    bound = {f"b_{name}": value for name, value in zip(_FIELDS, values, strict=True)}
    return {**bound, "b_id": row_id, "b_updated_at": now}
