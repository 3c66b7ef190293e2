"""Whom a connection serves: everyone, the people of some departments, or people an admin chose
by hand; and, where people sign in to the provider themselves, who has linked an account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.conferencing.models import (
    CHOSEN,
    DEPARTMENTS,
    LOGIN_OK,
    LOGIN_REFUSED,
    ConferencingConnection,
    ConferencingLogin,
    ConnectionMember,
)
from portal.db import add_or_find, like_literal
from portal.forms import FormErrors
from portal.pagination import Page, paginate

PAGE_SIZE = 50
# A search for people to choose shows this many: a finder, not a list to page through.
FINDER_SIZE = 10
# The lists of a connection whose people sign in themselves, by the page's `show` parameter.
LINKED, REFUSED, UNLINKED = "linked", "refused", "unlinked"
LOGIN_LISTS = (LINKED, REFUSED, UNLINKED)


class NotFoundError(LookupError):
    """No such provider account or person in the company (the view answers 404)."""


def served_clause(connection: ConferencingConnection) -> ColumnElement[bool]:
    """True for the people (User rows) the connection serves."""
    if connection.serves == DEPARTMENTS:
        return col(User.department).in_(connection.departments)
    if connection.serves == CHOSEN:
        return col(User.id).in_(_chosen_ids(connection))
    return true()


def _chosen_ids(connection: ConferencingConnection) -> Any:
    return select(col(ConnectionMember.user_id)).where(
        col(ConnectionMember.connection_id) == connection.id
    )


def like_pattern(search: str) -> str | None:
    """A LIKE pattern (escape \\) of the search, lower-cased, its wildcards taken literally."""
    words = search.strip().lower()
    if not words:
        return None
    return "%" + like_literal(words, "\\") + "%"


def person_matches(pattern: str) -> Any:
    """A person whose email or name holds `pattern` (emails are stored lower-cased)."""
    return or_(
        col(User.email).like(pattern, escape="\\"),
        func.lower(col(User.display_name)).like(pattern, escape="\\"),
    )


def _found(query: Any, search: str) -> Any:
    pattern = like_pattern(search)
    return query if pattern is None else query.where(person_matches(pattern))


def _by_name(query: Any) -> Any:
    return query.order_by(col(User.display_name), col(User.id))


async def served_people(
    session: AsyncSession,
    connection: ConferencingConnection,
    search: str = "",
    page: int = 1,
    size: int = PAGE_SIZE,
) -> Page[User]:
    """The active people the connection serves, in name order; search by name or email."""
    query = select(User).where(col(User.active), served_clause(connection))
    return await paginate(session, _by_name(_found(query, search)), page, size)


# People chosen by hand.


async def members(
    session: AsyncSession, connection: ConferencingConnection, search: str = "", page: int = 1
) -> Page[User]:
    """The people chosen for the connection, in name order; search by name or email."""
    query = select(User).where(col(User.id).in_(_chosen_ids(connection)))
    return await paginate(session, _by_name(_found(query, search)), page, PAGE_SIZE)


async def member_count(session: AsyncSession, connection: ConferencingConnection) -> int:
    query = select(func.count()).where(col(ConnectionMember.connection_id) == connection.id)
    return (await session.execute(query.select_from(ConnectionMember))).scalar_one()


async def candidates(
    session: AsyncSession, connection: ConferencingConnection, search: str
) -> list[User]:
    """Active people not chosen yet whose name or email holds `search` (none for no search)."""
    pattern = like_pattern(search)
    if pattern is None:
        return []
    query = select(User).where(
        col(User.active), not_(col(User.id).in_(_chosen_ids(connection))), person_matches(pattern)
    )
    return list((await session.execute(_by_name(query).limit(FINDER_SIZE))).scalars())


async def _member(
    session: AsyncSession, connection: ConferencingConnection, user_id: int
) -> ConnectionMember | None:
    query = select(ConnectionMember).where(
        col(ConnectionMember.connection_id) == connection.id,
        col(ConnectionMember.user_id) == user_id,
    )
    return (await session.execute(query)).scalars().first()


async def _person(session: AsyncSession, user_id: int) -> User:
    person = (await session.execute(select(User).where(col(User.id) == user_id))).scalars().first()
    if person is None:
        raise NotFoundError(user_id)
    return person


async def _choose(
    session: AsyncSession, connection: ConferencingConnection, person: User, field: str
) -> bool:
    """Choose `person` for the connection; False when they were chosen already."""
    if not person.active:
        raise FormErrors({field: f"{person.display_name} is deactivated: reactivate them first."})
    user_id = person.id or 0
    if await _member(session, connection, user_id) is not None:
        return False
    member = ConnectionMember(
        company_id=connection.company_id, connection_id=connection.id or 0, user_id=user_id
    )
    # Another admin may choose the same person at the same moment: one row, and no error.
    return await add_or_find(session, member, lambda: _member(session, connection, user_id)) is None


async def add_member(
    session: AsyncSession, connection: ConferencingConnection, user_id: int
) -> tuple[User, bool]:
    """Choose a person of the company by id (NotFoundError); True when newly chosen."""
    person = await _person(session, user_id)
    return person, await _choose(session, connection, person, "form")


async def add_member_by_email(
    session: AsyncSession, connection: ConferencingConnection, email: str
) -> tuple[User, bool]:
    """Choose a person of the company by email (FormErrors on "email"); True when newly chosen."""
    key = email.strip().lower()
    if not key:
        raise FormErrors({"email": "Enter the email address of a person of your company."})
    person = (await session.execute(select(User).where(col(User.email) == key))).scalars().first()
    if person is None:
        raise FormErrors({"email": f"No one in your company has the email address {key[:254]}."})
    return person, await _choose(session, connection, person, "email")


async def remove_member(
    session: AsyncSession, connection: ConferencingConnection, user_id: int
) -> User:
    """Take a person off the connection's chosen people (NotFoundError if not among them)."""
    member = await _member(session, connection, user_id)
    if member is None:
        raise NotFoundError(user_id)
    person = await _person(session, user_id)
    await session.delete(member)
    await session.flush()
    return person


# People who sign in to the provider themselves.


@dataclass(frozen=True)
class LoginCounts:
    linked: int
    refused: int
    unlinked: int


@dataclass(frozen=True)
class PersonLogin:
    person: User
    login: ConferencingLogin | None  # None: they have not entered their account


def _login_of(connection: ConferencingConnection) -> Any:
    return and_(
        col(ConferencingLogin.user_id) == col(User.id),
        col(ConferencingLogin.connection_id) == connection.id,
    )


def _in_list(show: str) -> Any:
    state = col(ConferencingLogin.state)
    if show == LINKED:
        return state == LOGIN_OK
    if show == REFUSED:
        return state == LOGIN_REFUSED
    return or_(col(ConferencingLogin.id).is_(None), state.not_in((LOGIN_OK, LOGIN_REFUSED)))


async def login_counts(session: AsyncSession, connection: ConferencingConnection) -> LoginCounts:
    """How many of the people served have linked their account, been refused, or neither."""
    query = (
        select(*(func.count().filter(_in_list(show)) for show in LOGIN_LISTS))
        .select_from(User)
        .outerjoin(ConferencingLogin, _login_of(connection))
        .where(col(User.active), served_clause(connection))
    )
    counted = (await session.execute(query)).one()
    return LoginCounts(counted[0], counted[1], counted[2])


async def people_logins(
    session: AsyncSession,
    connection: ConferencingConnection,
    show: str,
    search: str = "",
    page: int = 1,
) -> Page[PersonLogin]:
    """The people served in one list (`show`: LOGIN_LISTS), in name order, with their login."""
    query = (
        select(User)
        .outerjoin(ConferencingLogin, _login_of(connection))
        .where(col(User.active), served_clause(connection), _in_list(show))
    )
    found = await paginate(session, _by_name(_found(query, search)), page, PAGE_SIZE)
    ids = [person.id for person in found.items]
    logins = await session.execute(
        select(ConferencingLogin).where(
            col(ConferencingLogin.connection_id) == connection.id,
            col(ConferencingLogin.user_id).in_(ids),
        )
    )
    by_person = {login.user_id: login for login in logins.scalars()}
    items = [PersonLogin(person, by_person.get(person.id or 0)) for person in found.items]
    return Page(items, found.number, found.size, found.total)
