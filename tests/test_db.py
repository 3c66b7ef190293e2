"""The lean read path: a CompanyReader sees one company's rows, and only the signed-in one's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import bindparam, select, text
from sqlmodel import col

from portal import migrate
from portal.accounts.models import Company, User
from portal.db import UNSCOPED, CompanyQuery, Database, UnscopedQuery, libpq_conninfo
from portal.meetings.models import Meeting
from tests.conftest import make_company, make_user

USERS = User.__table__.c  # type: ignore[attr-defined]
BY_IDS = CompanyQuery(
    User, USERS.id, USERS.display_name, where=USERS.id.in_([bindparam("a"), bindparam("b")])
)


async def test_a_reader_returns_only_its_companys_rows(
    db: Database, acme: Company, admin: User
) -> None:
    globex = await make_company(db, "Globex")
    outsider = await make_user(db, globex, "eve@globex.example", name="Eve Outsider")
    rows = await db.reader(company_id=acme.id or 0).rows(BY_IDS, a=admin.id, b=outsider.id)
    assert rows == [{"id": admin.id, "display_name": "Ada Admin"}]
    theirs = await db.reader(company_id=globex.id or 0).rows(BY_IDS, a=admin.id, b=outsider.id)
    assert theirs == [{"id": outsider.id, "display_name": "Eve Outsider"}]


async def test_times_and_flags_read_lean_are_what_the_orm_reads(
    db: Database, acme: Company, admin: User
) -> None:
    # On SQLite the lean path runs sqlite3 itself, where a time is text and a flag 0 or 1.
    since = CompanyQuery(
        User, USERS.created_at, USERS.active, where=USERS.created_at >= bindparam("since")
    )
    reader = db.reader(company_id=acme.id or 0)
    moment = admin.created_at
    assert await reader.rows(since, since=moment) == [{"created_at": moment, "active": True}]
    assert await reader.rows(since, since=moment + dt.timedelta(microseconds=1)) == []


async def test_the_caller_cannot_name_another_company(
    db: Database, acme: Company, admin: User
) -> None:
    globex = await make_company(db, "Globex")
    reader = db.reader(company_id=acme.id or 0)
    with pytest.raises(UnscopedQuery):
        await reader.rows(BY_IDS, a=admin.id, b=admin.id, company_id=globex.id)


async def test_reads_together_are_each_its_own_read_of_the_company(
    db: Database, acme: Company, admin: User, member: User
) -> None:
    globex = await make_company(db, "Globex")
    outsider = await make_user(db, globex, "eve@globex.example", name="Eve Outsider")
    reader = db.reader(company_id=acme.id or 0)
    found = await reader.rows_together(
        (BY_IDS, {"a": member.id, "b": outsider.id}),
        (BY_IDS, {"a": outsider.id, "b": outsider.id}),
        (BY_IDS, {"a": admin.id, "b": admin.id}),
    )
    assert found == [
        [{"id": member.id, "display_name": member.display_name}],
        [],
        [{"id": admin.id, "display_name": "Ada Admin"}],
    ]
    with pytest.raises(UnscopedQuery):
        await reader.rows_together(
            (BY_IDS, {"a": admin.id, "b": admin.id}),
            (BY_IDS, {"a": outsider.id, "b": outsider.id, "company_id": globex.id}),
        )


@pytest.mark.parametrize("company_id", [None, UNSCOPED, "1", True])
async def test_a_reader_needs_a_company_id(db: Database, company_id: Any) -> None:
    with pytest.raises(UnscopedQuery):
        db.reader(company_id=company_id)


def test_a_company_query_reads_its_table_alone() -> None:
    with pytest.raises(ValueError, match="alone"):
        CompanyQuery(User, USERS.id, col(Company.name))
    hosts = select(col(Meeting.host_id))  # another company's meetings would decide
    with pytest.raises(ValueError, match="alone"):
        CompanyQuery(User, USERS.id, where=col(User.id).in_(hosts))


def test_the_sqlite_file_and_its_folder_are_private_to_the_portal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'portal.db'}"
    migrate.upgrade(url)
    assert data_dir.stat().st_mode & 0o777 == 0o700
    for name in ("portal.db", "portal.db-wal", "portal.db-shm"):
        if (data_dir / name).exists():  # WAL and SHM take the main file's mode
            assert (data_dir / name).stat().st_mode & 0o777 == 0o600, name


async def test_a_database_opened_first_by_the_app_is_private_too(tmp_path: Path) -> None:
    path = tmp_path / "portal.db"
    db = Database(f"sqlite:///{path}")
    try:
        async with db.session(company_id=UNSCOPED) as session:
            await session.execute(text("SELECT 1"))
    finally:
        await db.dispose()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_database_url_is_handed_to_psycopg_as_libpq_reads_it() -> None:
    # SQLAlchemy writes a space in the query as "+", which libpq would keep: "-c+role=...".
    url = "postgresql+psycopg://ann%40ops:p%20w@db.internal:6432/portal?options=-c+role%3Dreader"
    assert conninfo_to_dict(libpq_conninfo(url)) == {
        "host": "db.internal",
        "port": "6432",
        "user": "ann@ops",
        "password": "p w",
        "dbname": "portal",
        "options": "-c role=reader",
    }
