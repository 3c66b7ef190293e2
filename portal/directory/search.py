"""Finding colleagues by what they are called, do, belong to, or are written to.

Each word of a search is found, case folded, in a person's name, title, department or email
(search_index.searchable_text). The people a word of whose name one of the words begins come
first, then the others, each in name order. The People page and the top bar read their rows
lean (find_people, first_matches), and a search with no word long enough for the trigram
indexes ranks only the first people it finds (SCAN_LIMIT); Company Setup and the meeting
picker, which need the ORM's entities, read the same people in the same order, all of them
(search_people).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from portal.accounts.models import User
from portal.db import COMPANY_PARAM, CompanyQuery, CompanyReader, Read, like_literal
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
# A search none of whose words is long enough for a trigram index ("a", "al": what the top bar
# asks for at the first keystrokes) reads the people it finds in name order and stops at this
# many, which it then ranks and counts ("1000+"): in a large company such words find a third
# of everyone, and ranking them all took 70 to 150 ms a keystroke at 100,000 people.
SCAN_LIMIT = 1000
# The first page of a search, and the top bar's suggestions, are looked for first among the
# company's first people in name order, this many per row wanted (2,000 for a page of 25): a
# name that one person in 80 or more bears fills the page there, in a walk that stops at its
# last row, where the ranked read orders every match (a common surname: 2,481 at 100,000 people,
# 2.6 ms against 0.4 on SQLite). A rarer word costs the walk (at most 0.5 ms on SQLite, 1 ms on
# PostgreSQL, which lower-cases each name) before the ranked read, which for it is short.
WALK_PER_ROW = 80

_USERS = User.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ListedPerson:
    """A person as the People page and the top bar's suggestions list them."""

    id: int
    display_name: str
    title: str
    department: str
    email: str

    @property
    def initial(self) -> str:
        return self.display_name[:1]

    @property
    def subtitle(self) -> str:
        """Title and department, as one line under the name."""
        return " · ".join(part for part in (self.title, self.department) if part)


@dataclass(frozen=True)
class _Shape:
    """What a search's statement depends on; all else is parameters."""

    sqlite: bool
    words: int
    # Some word is long enough for the trigram indexes.
    trigrams: bool
    # SQLite's trigram index picks the candidates (PostgreSQL's planner uses its own unasked).
    indexed: bool
    department: bool

    @property
    def scan(self) -> bool:
        """On SQLite, no index narrows it: it may read every person of the company."""
        return self.sqlite and not self.indexed

    @property
    def limited(self) -> bool:
        """No index narrows it, and it finds too many to rank them all: see SCAN_LIMIT."""
        return self.words > 0 and not self.trigrams

    @property
    def walks(self) -> bool:
        """Its first rows are looked for in a walk in name order first: see WALK_PER_ROW. (In
        one department, a walk of the whole company finds too few of them.)"""
        return self.words > 0 and self.trigrams and not self.department


@dataclass(frozen=True)
class _Search:
    shape: _Shape
    params: dict[str, str]


def _search(sqlite: bool, text: str, department: str, *, indexable: bool = True) -> _Search:
    # No stored text holds a NUL: PostgreSQL refuses one in a parameter, SQLite's LIKE stops at it.
    words = text.replace("\x00", " ").split()[:MAX_TERMS]
    params: dict[str, str] = {}
    for number, word in enumerate(words):
        params[f"word{number}"] = f"%{like_literal(word, '/')}%"
        # A word of the name begins with it: the name is read with a space before it.
        params[f"start{number}"] = f"% {like_literal(word, '/')}%"
    trigrams = any(len(word) >= search_index.SHORTEST_WORD for word in words)
    # SQLite's trigram index holds active people only.
    phrases = search_index.phrases(words) if sqlite and indexable else None
    indexed = phrases is not None
    if phrases is not None:
        params["phrases"] = phrases
    if department:
        params["department"] = department
    shape = _Shape(sqlite, len(words), trigrams, indexed, bool(department))
    return _Search(shape, params)


def _folded(name: str, sqlite: bool) -> ColumnElement[str]:
    """The parameter `name`, its case folded as the searchable text's is."""
    value = bindparam(name, type_=String())
    return value if sqlite else func.lower(value)


@functools.lru_cache(maxsize=64)
def _criteria(shape: _Shape, status: str) -> tuple[ColumnElement[bool], ...]:
    """People of `status` (and of the department), each word found in their searchable text."""
    found = [
        search_index.word_found(User.__table__, f"word{number}", sqlite=shape.sqlite)  # type: ignore[attr-defined]
        for number in range(shape.words)
    ]
    if status != EVERYONE:
        found.append(_USERS.active.is_(status == ACTIVE))
    if shape.indexed:
        # The index picks the candidates, the LIKEs above keep the exact matches.
        found.append(_USERS.id.in_(search_index.MATCHING_IDS))
    if shape.department:
        found.append(_USERS.department == bindparam("department"))
    return tuple(found)


def _begins(shape: _Shape) -> ColumnElement[bool]:
    """One of the words begins a word of the person's name."""
    name = literal_column("' '") + _USERS.display_name
    if not shape.sqlite:
        name = func.lower(name)
    return or_(
        *(
            name.like(_folded(f"start{number}", shape.sqlite), escape="/")
            for number in range(shape.words)
        )
    )


def _rank(shape: _Shape) -> ColumnElement[int]:
    """0 for a person a word of whose name one of the words begins, else 1."""
    # Literals, not parameters: a CompanyQuery is run with the caller's parameters alone.
    first: ColumnElement[int] = literal_column("0")
    then: ColumnElement[int] = literal_column("1")
    return case((_begins(shape), first), else_=then)


def _ordered(query: Select[Any], shape: _Shape) -> Select[Any]:
    """Name order; with words, first those a word of whose name one of the words begins."""
    order: list[ColumnElement[Any]] = [_USERS.display_name, _USERS.id]
    if shape.words:
        order.insert(0, _rank(shape))
    query = query.order_by(*order).limit(bindparam("limit")).offset(bindparam("offset"))
    return _by_id(query, shape)


def _by_id(query: Select[Any], shape: _Shape) -> Select[Any]:
    if not shape.indexed:
        return query
    # With no statistics, SQLite would rather scan the company's index and look each row up in
    # the candidates, a scan as long as the one the index avoids: they are read by id instead.
    return query.with_hint(User.__table__, "NOT INDEXED", "sqlite")  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=64)
def _listed(shape: _Shape, counted: bool) -> CompanyQuery:
    """A page of the People page's search; `counted` adds how many it finds in all."""
    columns = [_USERS[name] for name in LISTED_COLUMNS]
    if counted:
        columns.append(_total(shape))
    return CompanyQuery(
        User,
        *columns,
        where=and_(*_criteria(shape, ACTIVE)),
        finish=lambda query: _ordered(query, shape),
        scan=shape.scan,
    )


def _total(shape: _Shape) -> ColumnElement[int]:
    """How many people the search finds in all, beside each row of its page."""
    if not shape.sqlite:
        # Counted from the rows read for the page's order anyway.
        return func.count().over().label("total")
    # SQLite's window functions copy every row found into a table of their own: finding them
    # again to count them costs less (2.7 ms for "novak" among 100,000 people, against 4.1).
    company = _USERS.company_id == bindparam(COMPANY_PARAM)
    counting = select(func.count()).where(company, *_criteria(shape, ACTIVE)).correlate(None)
    return _by_id(counting, shape).scalar_subquery().label("total")


@functools.lru_cache(maxsize=64)
def _walked(shape: _Shape) -> CompanyQuery:
    """The first people (`limit`) in name order a word of whose name one of the words begins,
    among the company's first active people in name order (the parameter `walk`): the first
    of the search's order, when there are `limit` of them. The walk reads the index of the
    company's people in order alone (ix_user_company_directory), and stops at its `limit`th
    row, or at the name the subqueries find: the `walk`th person's, or in a company of fewer
    people the last one's (an index's end, one probe)."""
    company, active = _USERS.company_id == bindparam(COMPANY_PARAM), _USERS.active.is_(True)
    walked = (
        select(_USERS.display_name)
        .where(company, active)
        .order_by(_USERS.display_name, _USERS.id)
        # A literal, not a parameter: a CompanyQuery is run with the caller's parameters alone.
        .limit(literal_column("1"))
        .offset(bindparam("walk"))
        .scalar_subquery()
    )
    everyone = select(func.max(_USERS.display_name)).where(company, active).scalar_subquery()
    last = func.coalesce(walked, everyone)
    users = User.__table__  # type: ignore[attr-defined]
    found = [
        search_index.word_in_fields(users, f"word{number}", sqlite=shape.sqlite)
        for number in range(shape.words)
    ]
    return CompanyQuery(
        User,
        *(_USERS[name] for name in LISTED_COLUMNS),
        # The name's test first: it rules out most people, and with one word it implies the rest.
        where=and_(active, _USERS.display_name <= last, _begins(shape), *found),
        finish=lambda query: query.order_by(_USERS.display_name, _USERS.id).limit(
            bindparam("limit")
        ),
    )


@functools.lru_cache(maxsize=64)
def _first_found(shape: _Shape) -> CompanyQuery:
    """The first people a limited search finds (SCAN_LIMIT, as the parameter `limit`), in name
    order, which the index of the company's people gives, so the read stops there; each with
    its rank, for them to be ranked in that order."""
    columns = [*(_USERS[name] for name in LISTED_COLUMNS), _rank(shape).label("rank")]
    return CompanyQuery(
        User,
        *columns,
        where=and_(*_criteria(shape, ACTIVE)),
        finish=lambda query: query.order_by(_USERS.display_name, _USERS.id).limit(
            bindparam("limit")
        ),
        scan=True,
    )


def _ranked(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A stable sort: in name order within each rank, as the database's own order has it.
    return sorted(found, key=itemgetter("rank"))


@functools.lru_cache(maxsize=64)
def _listed_count(shape: _Shape) -> CompanyQuery:
    criteria = and_(*_criteria(shape, ACTIVE))
    total = func.count().label("total")
    return CompanyQuery(
        User, total, where=criteria, finish=lambda query: _by_id(query, shape), scan=shape.scan
    )


def _bounded(page: int) -> int:
    """The page number a list fetches first: its offset must fit the databases' integers."""
    return min(max(1, page), MAX_PAGE)


async def _page(
    rows: Callable[[int], Awaitable[list[Any]]],
    counted: Callable[[Any], int] | None,
    count: Callable[[], Awaitable[int]],
    page: int,
    size: int,
) -> tuple[list[Any], int, int]:
    """The rows of page `page` (or of the last page, past it), its number, and the total:
    `counted` reads it from a row, else the page tells it, else `count` counts."""
    number = _bounded(page)
    found = await rows(number)
    total = counted(found[0]) if counted is not None and found else None
    # A short page tells the total: no second scan to count.
    if total is None and (0 < len(found) < size or (number == 1 and not found)):
        total = (number - 1) * size + len(found)
    if total is None:
        total = await count()
    last = max(1, math.ceil(total / size))
    if number > last:  # past the end: the last page, as for any list
        number = last
        found = await rows(number)
    return found, number, total


def _listed_person(row: dict[str, Any]) -> ListedPerson:
    return ListedPerson(*(row[name] for name in LISTED_COLUMNS))


def _page_of(found: list[dict[str, Any]], page: int, size: int) -> Page[ListedPerson]:
    """Page `page` (or the last) of a limited search's ranked people."""
    total = len(found)
    number = min(max(1, page), max(1, math.ceil(total / size)))
    rows = found[(number - 1) * size : number * size]
    more = total >= SCAN_LIMIT
    return Page([_listed_person(row) for row in rows], number, size, total, more=more)


def _walk(search: _Search, limit: int) -> Read:
    return _walked(search.shape), {"limit": limit, "walk": limit * WALK_PER_ROW, **search.params}


@dataclass(frozen=True)
class PeopleSearch:
    """A People page search of one page: the reads it begins with (`first`), which a page may
    send along with its others and hand read_people the rows of."""

    search: _Search
    page: int
    size: int

    @property
    def first(self) -> tuple[Read, ...]:
        shape = self.search.shape
        if shape.limited:
            return ((_first_found(shape), {"limit": SCAN_LIMIT, **self.search.params}),)
        if self.walks:
            # The walk may find the page; how many there are in all is counted beside it.
            return _walk(self.search, self.size), (_listed_count(shape), self.search.params)
        return (self.page_read(self.number),)

    @property
    def number(self) -> int:
        """The page `first` reads: the one _page fetches first."""
        return _bounded(self.page)

    @property
    def walks(self) -> bool:
        """Its page is looked for in a walk in name order first (see WALK_PER_ROW)."""
        return self.search.shape.walks and self.number == 1

    def page_read(self, number: int, *, counted: bool = True) -> Read:
        # Ordering by relevance reads every match already: the count comes in the same statement.
        query = _listed(self.search.shape, counted and self.search.shape.words > 0)
        offset = (number - 1) * self.size
        return query, {"limit": self.size, "offset": offset, **self.search.params}


def people_search(
    sqlite: bool, text: str, *, department: str = "", page: int = 1, size: int = 25
) -> PeopleSearch:
    """Active people whose name, email, title or department contain the words of `text`."""
    return PeopleSearch(_search(sqlite, text, department), page, size)


async def find_people(
    reader: CompanyReader, text: str, *, department: str = "", page: int = 1, size: int = 25
) -> Page[ListedPerson]:
    """people_search, read."""
    wanted = people_search(reader.is_sqlite, text, department=department, page=page, size=size)
    return await read_people(reader, wanted)


async def read_people(
    reader: CompanyReader, wanted: PeopleSearch, first: list[list[dict[str, Any]]] | None = None
) -> Page[ListedPerson]:
    """The page of people `wanted` finds; `first`: the rows of its first reads, when the page
    has read them already."""
    shape = wanted.search.shape
    if first is None:
        first = await reader.rows_together(*wanted.first)
    if shape.limited:
        return _page_of(_ranked(first[0]), wanted.page, wanted.size)
    if wanted.walks:
        walked, [counted] = first
        # (At least what the walk found: a person added between the two reads is no error.)
        total = max(int(counted["total"]), len(walked))
        # A full page is the page; as many as there are in all is every one of them.
        if len(walked) < min(total, wanted.size):
            query, params = wanted.page_read(1, counted=False)
            walked = await reader.rows(query, **params)
        return Page([_listed_person(row) for row in walked], 1, wanted.size, total)
    [read_first] = first

    async def rows(number: int) -> list[dict[str, Any]]:
        if number == wanted.number:  # _page's first read
            return read_first
        query, params = wanted.page_read(number)
        return await reader.rows(query, **params)

    async def count() -> int:
        found = await reader.rows(_listed_count(shape), **wanted.search.params)
        return int(found[0]["total"])

    total_of = (lambda row: int(row["total"])) if shape.words > 0 else None
    found, number, total = await _page(rows, total_of, count, wanted.page, wanted.size)
    return Page([_listed_person(row) for row in found], number, wanted.size, total)


@dataclass(frozen=True)
class FirstMatches:
    """How the top bar's suggestions for a text are found: the read they begin with (None when
    the text has no word), which a page may send along with its others, and the people its
    rows make (`people`), with a second read when a walk (WALK_PER_ROW) found too few."""

    read: Read | None
    ranked: bool
    limit: int
    # The ranked read, when `read` is a walk.
    then: Read | None = None

    async def people(
        self, reader: CompanyReader, found: list[dict[str, Any]]
    ) -> list[ListedPerson]:
        if self.then is not None and len(found) < self.limit:
            [found] = await reader.rows_together(self.then)
        if self.ranked:
            found = _ranked(found)
        return [_listed_person(row) for row in found[: self.limit]]


def first_matches_of(sqlite: bool, text: str, *, limit: int = 8) -> FirstMatches:
    """The first few people `text` finds (no count needed), for the top bar's suggestions."""
    search = _search(sqlite, text, "")
    shape = search.shape
    if not shape.words:
        return FirstMatches(None, False, limit)
    if shape.limited:
        return FirstMatches(
            (_first_found(shape), {"limit": SCAN_LIMIT, **search.params}), True, limit
        )
    ranked = (_listed(shape, False), {"limit": limit, "offset": 0, **search.params})
    return FirstMatches(_walk(search, limit), False, limit, then=ranked)


async def first_matches(reader: CompanyReader, text: str, *, limit: int = 8) -> list[ListedPerson]:
    """first_matches_of, read."""
    matches = first_matches_of(reader.is_sqlite, text, limit=limit)
    if matches.read is None:
        return []
    [found] = await reader.rows_together(matches.read)
    return await matches.people(reader, found)


@functools.lru_cache(maxsize=64)
def _entities(shape: _Shape, status: str, columns: tuple[str, ...]) -> Select[Any]:
    query = (
        select(User)
        # What a list of people shows: a search by LIKE alone then reads the index of them
        # (ix_user_company_directory) alone, never the table's rows.
        .options(load_only(*(getattr(User, name) for name in columns)))
        .where(*_criteria(shape, status))
    )
    if shape.words:
        query = query.add_columns(func.count().over())
    return _ordered(query, shape)


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
    """find_people's search among people of `status` (Company Setup lists the inactive too),
    as User entities of which only `columns` are loaded."""
    if status not in STATUSES:
        raise ValueError(f"no such status: {status!r}")
    sqlite = session.get_bind().dialect.name == "sqlite"
    search = _search(sqlite, text, department, indexable=status == ACTIVE)
    shape = search.shape
    query = _entities(shape, status, columns)

    async def rows(number: int) -> list[Any]:
        params = {**search.params, "limit": size, "offset": (number - 1) * size}
        return list((await session.execute(query, params)).all())

    async def count() -> int:
        matching = _by_id(select(User.id).where(*_criteria(shape, status)), shape)  # type: ignore[call-overload]
        counting = select(func.count()).select_from(matching.subquery())
        return int((await session.execute(counting, search.params)).scalar_one())

    total_of = (lambda row: int(row[1])) if shape.words else None
    found, number, total = await _page(rows, total_of, count, page, size)
    return Page([row[0] for row in found], number, size, total)
