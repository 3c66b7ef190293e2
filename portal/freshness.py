"""Knowing, without asking the database, that rows a web process read a moment ago are still
current: what lets it keep the hottest reads (the hover card's) in memory.

Each read kept is stamped, before it is made, with the count of changes the process has heard
of for the company (`Changes.stamp`); it is good while the count stays the same, and for a
bounded time however quiet things are. The process hears of changes three ways:

- PostgreSQL tells it of every row written to the tables such reads come from, by company: the
  triggers of migration 0014 NOTIFY on CHANNEL, and a connection of the process LISTENs.
  While that connection is not listening (not yet, or lost) nothing is kept; when it listens
  again, all that was kept before is dropped, since what changed meanwhile went unheard.
- On SQLite, `PRAGMA data_version` on the process's lean connection: it moves whenever another
  connection (another process, or this one's engine) commits to the file.
- A session of this process that commits counts at once for its company (for every company if
  unscoped), without waiting to be told: a person who saves and looks again sees what they
  saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from portal.listening import listen

CHANNEL = "portal_changes"
# The listening connection's name in pg_stat_activity.
APPLICATION_NAME = "portal-changes"

Stamp = tuple[int, int]


class _Commits:
    """This process's own commits, on any Database: counted per company, and in all."""

    every = 0
    by_company: dict[int, int] = {}


@event.listens_for(Session, "after_commit")
def _count_commit(session: Session) -> None:
    company = session.info.get("company_id")
    if isinstance(company, int) and not isinstance(company, bool):
        _Commits.by_company[company] = _Commits.by_company.get(company, 0) + 1
    else:
        _Commits.every += 1


class Changes:
    """What this process has heard of changes to one database's rows (see the module)."""

    def __init__(self, *, sqlite: Callable[[], sqlite3.Connection | None] | None, conninfo: str):
        self._sqlite = sqlite
        self._conninfo = conninfo
        self._every = 0
        self._by_company: dict[int, int] = {}
        self._data_version: int | None = None
        self._listening = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    def stamp(self, company_id: int) -> Stamp | None:
        """The count of changes heard of for `company_id`, or None while changes may go
        unheard (nothing may be kept then)."""
        if self._sqlite is not None:
            if not self._sqlite_heard(self._sqlite):
                return None
        elif not self._listening.is_set():
            self._listen_soon()
            return None
        return (
            self._every + _Commits.every,
            self._by_company.get(company_id, 0) + _Commits.by_company.get(company_id, 0),
        )

    async def listening(self) -> None:
        """Returns once changes are heard of (on SQLite, at once)."""
        if self._sqlite is None:
            self._listen_soon()
            await self._listening.wait()

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    def _sqlite_heard(self, lean: Callable[[], sqlite3.Connection | None]) -> bool:
        connection = lean()
        if connection is None:
            return False  # a memory database: no lean connection to ask
        version = connection.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._every += 1
        return True

    def _heard(self, payload: str) -> None:
        if payload.isascii() and payload.isdigit():
            company = int(payload)
            self._by_company[company] = self._by_company.get(company, 0) + 1
        else:
            self._every += 1

    def _listen_soon(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(
                listen(
                    self._conninfo,
                    CHANNEL,
                    name=APPLICATION_NAME,
                    heard=self._heard,
                    listening=self._listened,
                    lost=self._lost,
                )
            )

    def _listened(self) -> None:
        self._every += 1  # anything kept before went unheard
        self._listening.set()

    def _lost(self) -> None:
        self._listening.clear()
        self._every += 1


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    stamp: Stamp
    until: float  # time.monotonic()
    value: V


class Kept(Generic[K, V]):
    """Reads of one kind kept by this process, per company, while current (see the module),
    for at most `keep_for` seconds, at most `at_most` of them (the oldest go first)."""

    def __init__(self, changes: Changes, *, keep_for: float, at_most: int) -> None:
        self._changes = changes
        self._keep_for = keep_for
        self._at_most = at_most
        self._entries: dict[tuple[int, K], _Entry[V]] = {}

    def stamp(self, company_id: int) -> Stamp | None:
        """Taken before a read that may be kept (`keep`): a change heard of meanwhile makes
        the read stale at once."""
        return self._changes.stamp(company_id)

    def get(self, company_id: int, key: K) -> V | None:
        entry = self._entries.get((company_id, key))
        if entry is None:
            return None
        if entry.until > time.monotonic() and entry.stamp == self._changes.stamp(company_id):
            return entry.value
        del self._entries[(company_id, key)]
        return None

    def keep(self, company_id: int, key: K, stamp: Stamp | None, value: V) -> None:
        if stamp is None:
            return
        entries = self._entries
        entries.pop((company_id, key), None)
        while len(entries) >= self._at_most:
            del entries[next(iter(entries))]
        entries[(company_id, key)] = _Entry(stamp, time.monotonic() + self._keep_for, value)


@dataclass(frozen=True, slots=True)
class CompanyKept(Generic[K, V]):
    """A Kept as one company's reader sees it (CompanyReader.kept): the company is the
    reader's, never the caller's, as for the reads themselves."""

    kept: Kept[K, V]
    company_id: int

    def stamp(self) -> Stamp | None:
        return self.kept.stamp(self.company_id)

    def get(self, key: K) -> V | None:
        return self.kept.get(self.company_id, key)

    def keep(self, key: K, stamp: Stamp | None, value: V) -> None:
        self.kept.keep(self.company_id, key, stamp, value)
