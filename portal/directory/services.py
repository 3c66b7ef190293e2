"""Finding colleagues, and what time it is where they are."""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only
from sqlmodel import col

from portal import timezones
from portal.accounts.models import ADMIN, Company, User
from portal.db import CompanyQuery, CompanyReader
from portal.directory import search_index
from portal.pagination import MAX_PAGE, Page

# More words than this add nothing to a name search and only make the query longer.
MAX_TERMS = 5
# A list of people shows these; anything else read from a listed person is an error, not a query.
LISTED_COLUMNS = ("id", "display_name", "title", "department", "email")
# Company Setup's list of people also shows their role and whether they are active or invited.
ADMIN_LISTED_COLUMNS = (*LISTED_COLUMNS, "role", "active", "password_hash")
# Who a search looks among: the directory shows active people; Company Setup everyone, or either.
ACTIVE, INACTIVE, EVERYONE = "active", "inactive", ""
STATUSES = (ACTIVE, INACTIVE, EVERYONE)
# We store no working hours; a weekday from 9:00 to 18:00 local is the convention the card states.
WORKDAY_START = dt.time(9)
WORKDAY_END = dt.time(18)


async def departments(session: AsyncSession) -> list[str]:
    """The departments that active colleagues are in, for the People page's filter."""
    rows = await session.execute(
        select(col(User.department))
        .where(col(User.active).is_(True), col(User.department) != "")
        .distinct()
        .order_by(col(User.department))
    )
    return list(rows.scalars())


def _pattern(word: str) -> str:
    """A LIKE pattern (escape character /) of `word` anywhere, its wildcards taken literally."""
    escaped = word.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def _word_found(number: int, *, sqlite: bool) -> ColumnElement[bool]:
    """Word `number` appears, in any case, in the name, email, title or department."""
    pattern = bindparam(f"word{number}", type_=String())
    texts = (col(User.display_name), col(User.title), col(User.department))
    if sqlite:
        # SQLite's LIKE already ignores ASCII case, and its lower() folds nothing beyond ASCII:
        # ilike's lower() on every row would change no result and double the scan's time.
        return or_(*(field.like(pattern, escape="/") for field in (*texts, col(User.email))))
    return or_(
        *(field.ilike(pattern, escape="/") for field in texts),
        # stored lower-cased, so a plain LIKE finds it
        col(User.email).like(bindparam(f"email{number}"), escape="/"),
    )


@functools.lru_cache(maxsize=64)
def _statement(
    sqlite: bool,
    words: int,
    indexed: bool,
    department: bool,
    status: str,
    columns: tuple[str, ...],
) -> Select[Any]:
    """The search for one shape of input, built once (it takes a fifth of a millisecond): all
    else is parameters. People of `status`, in name order, each word found in some field."""
    query = (
        select(User)
        # What a list of people shows, all of it in ix_user_company_directory: a search by LIKE
        # alone then reads that index alone, never the table's rows.
        .options(load_only(*(getattr(User, name) for name in columns)))
        .order_by(col(User.display_name), col(User.id))
    )
    if status != EVERYONE:
        query = query.where(col(User.active).is_(status == ACTIVE))
    for number in range(words):
        query = query.where(_word_found(number, sqlite=sqlite))
    if indexed:
        # The trigram index picks the candidates, the LIKEs above keep the exact matches. Their
        # rows are read by id: with no statistics, SQLite would rather scan the company's index
        # and look each row up in the candidates, a scan as long as the one the index avoids.
        query = query.where(col(User.id).in_(search_index.MATCHING_IDS))
        query = query.with_hint(User, "NOT INDEXED", "sqlite")
    if department:
        query = query.where(col(User.department) == bindparam("department"))
    return query


@dataclass(frozen=True)
class _Search:
    query: Select[Any]
    params: dict[str, str]
    # The trigram index picks the candidates: they are few, and cheap to count.
    indexed: bool


def _matching(
    session: AsyncSession,
    text: str,
    department: str,
    status: str = ACTIVE,
    columns: tuple[str, ...] = LISTED_COLUMNS,
) -> _Search:
    """People of `status`, in name order, each of whose words in `text` appears in some field."""
    if status not in STATUSES:
        raise ValueError(f"no such status: {status!r}")
    sqlite = session.get_bind().dialect.name == "sqlite"
    # No stored text holds a NUL: PostgreSQL refuses one in a parameter, SQLite's LIKE stops at it.
    words = text.replace("\x00", " ").split()[:MAX_TERMS]
    params = {f"word{number}": _pattern(word) for number, word in enumerate(words)}
    if not sqlite:
        params |= {f"email{number}": _pattern(word.lower()) for number, word in enumerate(words)}
    # The trigram index holds active people only.
    phrases = search_index.phrases(words) if sqlite and status == ACTIVE else None
    if phrases is not None:
        params["phrases"] = phrases
    if department:
        params["department"] = department
    query = _statement(sqlite, len(words), phrases is not None, bool(department), status, columns)
    return _Search(query, params, phrases is not None)


async def search_people(
    session: AsyncSession,
    text: str,
    *,
    department: str = "",
    status: str = ACTIVE,
    columns: tuple[str, ...] = LISTED_COLUMNS,
    page: int = 1,
    size: int = 25,
) -> Page[User]:
    """People (active ones unless `status` says otherwise) whose name, email, title or
    department contain the words of `text`; only `columns` of them are loaded."""
    search = _matching(session, text, department, status, columns)
    # Bounded before the first fetch: its offset must fit the databases' integers.
    number = min(max(1, page), MAX_PAGE)
    # Candidates from the index are cheap to count twice, dearer to fetch in a second round trip.
    items, total = await _rows(session, search, number, size, counted=search.indexed)
    # The page itself tells the total when it is a short one: no second scan to count.
    if total is None and (0 < len(items) < size or (number == 1 and not items)):
        total = (number - 1) * size + len(items)
    if total is None:
        total = (await session.execute(_count(search.query), search.params)).scalar_one()
    last = max(1, math.ceil(total / size))
    if number > last:  # past the end: the last page, as for any list
        number = last
        items, _ = await _rows(session, search, number, size)
    return Page(items, number, size, total)


def _count(query: Select[Any]) -> Select[int]:
    return select(func.count()).select_from(query.order_by(None).subquery())


async def _rows(
    session: AsyncSession, search: _Search, number: int, size: int, *, counted: bool = False
) -> tuple[list[User], int | None]:
    """One page of the search; with `counted`, also how many it finds in all (None on no row)."""
    query = search.query
    if counted:
        query = query.add_columns(_count(query).scalar_subquery())
    page = query.limit(size).offset((number - 1) * size)
    rows = (await session.execute(page, search.params)).all()
    total = rows[0][1] if counted and rows else None
    return [row[0] for row in rows], total


async def first_matches(session: AsyncSession, text: str, *, limit: int = 6) -> list[User]:
    """The first few people `text` finds, for the top bar's suggestions (no count needed)."""
    if not text.strip():
        return []
    search = _matching(session, text, "")
    rows = await session.execute(search.query.limit(limit), search.params)
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


async def viewer_and_person(
    reader: CompanyReader, viewer_id: int, person_id: int | None
) -> tuple[Person | None, CompanyName | None, Person | None]:
    """The viewer, their company's name, and the person `person_id` (None if not a colleague's
    row): one lean query, for the pages every list of people links to."""
    rows = await reader.rows(_VIEWER_AND_PERSON, viewer=viewer_id, person=person_id or 0)
    by_id = {row["id"]: row for row in rows}
    viewer = by_id.get(viewer_id)
    company = CompanyName(reader.company_id, viewer["company_name"]) if viewer else None
    person = _person(by_id.get(person_id)) if person_id is not None else None
    return _person(viewer), company, person
