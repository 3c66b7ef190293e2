"""Finding colleagues, and what time it is where they are."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only
from sqlmodel import col

from portal.accounts.models import User
from portal.pagination import Page

# More words than this add nothing to a name search and only make the query longer.
MAX_TERMS = 5
# A list of people shows these; anything else read from a listed person is an error, not a query.
LISTED_COLUMNS = ("id", "display_name", "title", "department", "email")
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


def _word_found(word: str, *, sqlite: bool) -> ColumnElement[bool]:
    """`word` appears, in any case, in the name, email, title or department."""
    texts = (col(User.display_name), col(User.title), col(User.department))
    if sqlite:
        # SQLite's LIKE already ignores ASCII case, and its lower() folds nothing beyond ASCII:
        # ilike's lower() on every row would change no result and double the scan's time.
        return or_(*(field.contains(word, autoescape=True) for field in (*texts, col(User.email))))
    return or_(
        *(field.icontains(word, autoescape=True) for field in texts),
        # stored lower-cased, so a plain LIKE finds it
        col(User.email).contains(word.lower(), autoescape=True),
    )


def _matching(session: AsyncSession, text: str, department: str) -> Select[Any]:
    """Active colleagues, in name order, each of whose words in `text` appears in some field."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    query = (
        select(User)
        # What a list of people shows, all of it in ix_user_company_directory: the search then
        # reads that index alone, never the table's rows.
        .options(load_only(*(getattr(User, name) for name in LISTED_COLUMNS)))
        .where(col(User.active).is_(True))
        .order_by(col(User.display_name), col(User.id))
    )
    for word in text.split()[:MAX_TERMS]:
        query = query.where(_word_found(word, sqlite=sqlite))
    if department:
        query = query.where(col(User.department) == department)
    return query


async def search_people(
    session: AsyncSession, text: str, *, department: str = "", page: int = 1, size: int = 25
) -> Page[User]:
    """Active colleagues whose name, email, title or department contain the words of `text`."""
    query = _matching(session, text, department)
    number = page
    items = await _rows(session, query, number, size)
    # The page itself tells the total when it is a short one: no second scan to count.
    if 0 < len(items) < size or (number == 1 and not items):
        return Page(items, number, size, (number - 1) * size + len(items))
    total = (
        await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    ).scalar_one()
    last = max(1, math.ceil(total / size))
    if number > last:  # past the end: the last page, as for any list
        number = last
        items = await _rows(session, query, number, size)
    return Page(items, number, size, total)


async def _rows(session: AsyncSession, query: Select[Any], number: int, size: int) -> list[User]:
    rows = await session.execute(query.limit(size).offset((number - 1) * size))
    return list(rows.scalars())


async def first_matches(session: AsyncSession, text: str, *, limit: int = 6) -> list[User]:
    """The first few people `text` finds, for the top bar's suggestions (no count needed)."""
    if not text.strip():
        return []
    rows = await session.execute(_matching(session, text, "").limit(limit))
    return list(rows.scalars())


async def colleague(session: AsyncSession, user_id: int) -> User | None:
    """An active person of the session's company; anyone else is nobody to this viewer."""
    person = await session.get(User, user_id)
    return person if person is not None and person.active else None


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # A zone that a later tzdata dropped: UTC is a known answer rather than an error page.
        return zoneinfo.ZoneInfo("UTC")


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
    return LocalTime(now.astimezone(_zone(zone)), now.astimezone(_zone(viewer_zone)))
