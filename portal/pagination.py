"""One page of a longer list, counted in the database."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

# Past any real list's end (which shows the last page), and small enough that the offset it
# makes fits both databases' integers: no page number a link can carry is an error.
MAX_PAGE = 100_000
_PAGE = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    number: int
    size: int
    total: int
    # The list stopped counting at `total`: there may be more (shown as "1000+").
    more: bool = False

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.size + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return min(self.number * self.size, self.total)


def page_number(raw: str | None) -> int:
    """The page a link asks for: ASCII digits, 1 to MAX_PAGE; anything else is the first."""
    if raw is None or not _PAGE.fullmatch(raw):
        return 1
    digits = raw.lstrip("0")
    # Counted before int(): Python refuses to read more than 4,300 digits.
    if len(digits) > len(str(MAX_PAGE)):
        return MAX_PAGE
    return min(max(1, int(digits or 1)), MAX_PAGE)


async def paginate(session: AsyncSession, query: Select[Any], number: int, size: int) -> Page[Any]:
    """Run `query` for one page (clamped to the last one) and count all its rows."""
    total = (
        await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    ).scalar_one()
    number = max(1, min(number, math.ceil(total / size)))
    rows = (await session.execute(query.limit(size).offset((number - 1) * size))).scalars().all()
    return Page(list(rows), number, size, total)
