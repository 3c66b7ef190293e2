"""Colleagues: who is one, and what time it is where they are (directory/search.py finds them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import bindparam, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal import timezones
from portal.accounts.models import ADMIN, Company, User
from portal.db import CompanyQuery, CompanyReader, Read

# We store no working hours; a weekday from 9:00 to 18:00 local is the convention the card states.
WORKDAY_START = dt.time(9)
WORKDAY_END = dt.time(18)


def _department_after(previous: Any) -> Any:
    """The first department of an active colleague after `previous`, in the database's order."""
    department = col(User.department)
    after = select(func.min(department)).where(col(User.active).is_(True), department > previous)
    return after.scalar_subquery().label("department")


async def departments(session: AsyncSession) -> list[str]:
    """The departments that active colleagues are in, for the People page's filter.

    Stepped through in the company's index of departments (ix_user_company_department), one
    probe a department, where a DISTINCT read every person of the company: 27 ms at 100,000
    people on PostgreSQL and 9 ms on SQLite, against a few hundredths of a millisecond. The
    session's company criterion applies to each step's subquery as to any query of User.
    """
    found = select(_department_after(literal(""))).cte("departments", recursive=True)
    step = select(_department_after(found.c.department)).where(found.c.department.is_not(None))
    found = found.union_all(step)
    rows = await session.execute(select(found.c.department).where(found.c.department.is_not(None)))
    return list(rows.scalars())


async def colleague(session: AsyncSession, user_id: int) -> User | None:
    """An active person of the session's company; anyone else is nobody to this viewer."""
    person = await session.get(User, user_id)
    return person if person is not None and person.active else None


def _duration(delta: dt.timedelta) -> str:
    minutes = abs(int(delta.total_seconds())) // 60
    hours, minutes = divmod(minutes, 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes else [])
    return " ".join(parts)


@dataclass(frozen=True)
class LocalTime:
    """What a person's clock says at one instant, and how it compares with the viewer's."""

    at: dt.datetime
    viewer_at: dt.datetime

    @property
    def zone(self) -> str:
        return str(self.at.tzinfo).replace("_", " ")

    @property
    def clock(self) -> str:
        return self.at.strftime("%H:%M")

    @property
    def day(self) -> str:
        """'tomorrow' or 'yesterday' when their date is not the viewer's, else ''."""
        days = (self.at.date() - self.viewer_at.date()).days
        return {1: "tomorrow", -1: "yesterday"}.get(days, "")

    @property
    def relation(self) -> str:
        ahead = (self.at.utcoffset() or dt.timedelta()) - (
            self.viewer_at.utcoffset() or dt.timedelta()
        )
        if not ahead:
            return "same time as you"
        return f"{_duration(ahead)} {'ahead of' if ahead > dt.timedelta() else 'behind'} you"

    @property
    def working_hours(self) -> bool:
        return self.at.weekday() < 5 and WORKDAY_START <= self.at.time() < WORKDAY_END

    @property
    def status(self) -> str:
        if self.working_hours:
            return "Working hours"
        weekend = f"{self.at:%A} " if self.at.weekday() >= 5 else ""
        return f"Outside working hours ({weekend}{self.clock} local)"


def local_time(zone: str, viewer_zone: str, now: dt.datetime) -> LocalTime:
    """The time in `zone` at the instant `now`, compared with `viewer_zone` at that instant."""
    return LocalTime(
        now.astimezone(timezones.zone(zone)), now.astimezone(timezones.zone(viewer_zone))
    )


@dataclass(frozen=True, slots=True)
class Person:
    """A person as the read-only pages about one person show them: plain columns, no session."""

    id: int
    company_id: int
    email: str
    display_name: str
    title: str
    department: str
    phone: str
    time_zone: str
    role: str
    active: bool
    session_version: int

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True, slots=True)
class CompanyName:
    """What a page's top bar shows of the viewer's company."""

    id: int
    name: str


_PERSON_FIELDS = tuple(field.name for field in fields(Person))
_USERS = User.__table__.c  # type: ignore[attr-defined]
# The viewer's row and the person's in one statement: each query is a round trip, and the viewer
# is checked against the database on every request (a signed-out or deactivated session ends).
_VIEWER_AND_PERSON = CompanyQuery(
    User,
    *(_USERS[name] for name in _PERSON_FIELDS),
    select(col(Company.name))
    .where(col(Company.id) == _USERS.company_id)
    .scalar_subquery()
    .label("company_name"),
    where=_USERS.id.in_([bindparam("viewer"), bindparam("person")]),
)


def _person(row: dict[str, Any] | None) -> Person | None:
    if row is None:
        return None
    values = {name: row[name] for name in _PERSON_FIELDS}
    values["active"] = bool(values["active"])  # SQLite keeps booleans as 0 and 1
    return Person(**values)


@dataclass(frozen=True, slots=True)
class Viewing:
    """Who is looking (None once their session has ended), at whom, and the rows of the reads
    the page sent along."""

    viewer: Person | None
    company: CompanyName | None
    person: Person | None
    along: list[list[dict[str, Any]]]


async def viewer_and_person(
    reader: CompanyReader, viewer_id: int, person_id: int | None, *along: Read
) -> Viewing:
    """The viewer, their company's name, and the person `person_id` (None if not a colleague's
    row): one lean query, for the pages every list of people links to; with it, in the same
    round trip, the page's own reads (`along`), which need not wait for the viewer's check
    (they read the signed session's company, and nothing is shown before the check)."""
    found, *along_rows = await reader.rows_together(
        (_VIEWER_AND_PERSON, {"viewer": viewer_id, "person": person_id or 0}), *along
    )
    by_id = {row["id"]: row for row in found}
    viewer = by_id.get(viewer_id)
    company = CompanyName(reader.company_id, viewer["company_name"]) if viewer else None
    person = _person(by_id.get(person_id)) if person_id is not None else None
    return Viewing(_person(viewer), company, person, along_rows)
