"""Directory factories: colleagues with a title, a department, a time zone and a phone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlmodel import col

from portal.accounts.models import Company, User
from portal.db import Database
from tests.conftest import before_lean_reads, make_user


async def make_colleague(
    db: Database,
    company: Company,
    email: str,
    name: str,
    *,
    title: str = "",
    department: str = "",
    time_zone: str = "Europe/London",
    phone: str = "",
    active: bool = True,
) -> User:
    user = await make_user(db, company, email, name=name, title=title, department=department)
    async with db.session(company_id=company.id, write=True) as session:
        await session.execute(
            update(User)
            .where(col(User.id) == user.id)
            .values(time_zone=time_zone, phone=phone, active=active)
        )
        await session.commit()
    user.time_zone, user.phone, user.active = time_zone, phone, active
    return user


@pytest.fixture
def lean_statements(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements CompanyReader runs: on sqlite3 directly, or on psycopg's connections."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    before_lean_reads(monkeypatch, lambda _conn, statement: seen.append(statement))
    connection = db.lean_sqlite_connection()
    if connection is not None:
        connection.set_trace_callback(seen.append)
    # A memory database reads on the ORM's engine.
    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    if connection is not None:
        connection.set_trace_callback(None)
