"""Who is mapped to whom: matching provider users to portal people by email (a pure function
from what sync read and what was stored, so the rules read in one place), the lists the admin
page shows, and mapping or unmapping by hand."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.accounts.models import User
from portal.conferencing.interfaces import INACTIVE, PENDING, ProviderUser
from portal.conferencing.models import (
    DEACTIVATED,
    DUPLICATE_EMAIL,
    EMPTY_EMAIL,
    INACTIVE_AT_PROVIDER,
    NO_ACCOUNT,
    NO_PERSON,
    NOT_LICENSED,
    NOT_SERVED,
    PENDING_CONFIRMATION,
    TAKEN,
    TWO_PEOPLE,
    UNMAPPED_BY_HAND,
    ConferencingConnection,
    ProviderAccount,
    SyncRun,
)
from portal.conferencing.serving import NotFoundError, like_pattern, person_matches, served_clause
from portal.db import utcnow
from portal.forms import FormErrors
from portal.pagination import Page

SHARED = -1  # by_key's id for an email two people have


def email_key(email: str) -> str:
    """What matching compares: the address trimmed and lower-cased."""
    return email.strip().lower()


class Person(NamedTuple):
    id: int
    email: str
    active: bool
    served: bool = True  # by the connection being synced


class Stored(NamedTuple):
    """A provider account row as stored before this sync: what matching reads, the room link
    (which a list without one keeps), and a digest of every column sync writes, by which sync
    tells an unchanged row without holding its text (60 MB for 100,000 users)."""

    provider_user_id: str
    id: int
    room_url: str
    user_id: int | None
    reason: str
    manual: bool
    digest: int


class Decision(NamedTuple):
    """What a provider user's row should say after this sync."""

    user: ProviderUser
    key: str  # the user's email key
    user_id: int | None
    reason: str
    manual: bool


def status_reason(status: str, licensed: bool) -> str:
    """Why a matched account with this status at the provider has no usable room, or "" when
    it has one."""
    if status == INACTIVE:
        return INACTIVE_AT_PROVIDER
    if status == PENDING:
        return PENDING_CONFIRMATION
    return "" if licensed else NOT_LICENSED


def _barred(person: Person) -> str:
    """Why the person cannot be mapped, or "" when they can."""
    if not person.active:
        return DEACTIVATED
    return "" if person.served else NOT_SERVED


def match(
    users: Iterable[ProviderUser], stored: Mapping[str, Stored], people: Iterable[Person]
) -> list[Decision]:
    """Each provider user's person and reason.

    Hand choices come first and are kept; then links made by earlier syncs (so an email
    changed on either side keeps its person); then the rest by email. A person is mapped to
    one provider user at most, and usably only while active and served by the connection.
    """
    keyed = {user.id: (user, email_key(user.email)) for user in users}
    # Why each person cannot be mapped ("" when they can); someone unknown is as deactivated.
    barred: dict[int, str] = {}
    # A person's id by email key, or SHARED when two people have it (a list each would weigh
    # 10 MB more for 100,000 people).
    by_key: dict[str, int] = {}
    for person in people:
        barred[person.id] = _barred(person)
        key = email_key(person.email)
        by_key[key] = SHARED if key in by_key else person.id
    emails = Counter(key for _, key in keyed.values())
    claimed: set[int] = set()
    decisions: dict[str, Decision] = {}
    # One look at what was stored sorts the users into the three rounds below.
    by_hand: list[tuple[ProviderUser, str, Stored]] = []
    linked: list[tuple[ProviderUser, str, int]] = []
    by_email: list[tuple[ProviderUser, str]] = []
    for user_id, (user, key) in keyed.items():
        row = stored.get(user_id)
        if row is None:
            by_email.append((user, key))
        elif row.manual:
            by_hand.append((user, key, row))
        elif row.user_id is not None:
            linked.append((user, key, row.user_id))
        else:
            by_email.append((user, key))

    for user, key, row in by_hand:
        if row.user_id is None:
            reason = UNMAPPED_BY_HAND
        else:
            claimed.add(row.user_id)
            barring = barred.get(row.user_id, DEACTIVATED)
            reason = barring or status_reason(user.status, user.licensed)
        decisions[user.id] = Decision(user, key, row.user_id, reason, True)
    for user, key, person_id in linked:
        if barred.get(person_id, DEACTIVATED) == "" and person_id not in claimed:
            claimed.add(person_id)
            reason = status_reason(user.status, user.licensed)
            decisions[user.id] = Decision(user, key, person_id, reason, False)
        else:
            by_email.append((user, key))
    # Their order does not matter: two users who reach one person share an email, so neither
    # is matched.
    for user, key in by_email:
        found, reason = _by_email(key, emails, by_key, barred, claimed)
        if found is not None:
            reason = status_reason(user.status, user.licensed)
            claimed.add(found)
        decisions[user.id] = Decision(user, key, found, reason, False)
    return [decisions[user_id] for user_id in keyed]


def _by_email(
    key: str,
    emails: Counter[str],
    by_key: dict[str, int],
    barred: dict[int, str],
    claimed: set[int],
) -> tuple[int | None, str]:
    if not key:
        return None, EMPTY_EMAIL
    if emails[key] > 1:
        return None, DUPLICATE_EMAIL
    person_id = by_key.get(key)
    if person_id is None:
        return None, NO_PERSON
    if person_id == SHARED:
        return None, TWO_PEOPLE
    if barred[person_id]:
        return None, barred[person_id]
    if person_id in claimed:
        return None, TAKEN
    return person_id, ""


PAGE_SIZE = 50


@dataclass(frozen=True)
class MappingCounts:
    mapped: int
    people_unmapped: int
    provider_unmapped: int
    pending: int


@dataclass(frozen=True)
class MappedRow:
    account: ProviderAccount
    person: User


@dataclass(frozen=True)
class UnmappedPerson:
    person: User
    reason: str
    account: ProviderAccount | None  # linked but of no use yet (pending, not licensed, ...)


def _account_matches(pattern: str) -> Any:
    return or_(
        col(ProviderAccount.email_key).like(pattern, escape="\\"),
        func.lower(col(ProviderAccount.name)).like(pattern, escape="\\"),
    )


def _usable(connection: ConferencingConnection) -> Any:
    return and_(
        col(ProviderAccount.connection_id) == connection.id,
        col(ProviderAccount.user_id).is_not(None),
        col(ProviderAccount.reason) == "",
    )


async def _rows(session: AsyncSession, query: Select[*tuple[Any, ...]], number: int) -> Page[Any]:
    """One page of `query`'s rows (tuples when it selects several things), with their count."""
    total = (
        await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    ).scalar_one()
    number = max(1, min(number, math.ceil(total / PAGE_SIZE)))
    rows = (await session.execute(query.limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE))).all()
    return Page(list(rows), number, PAGE_SIZE, total)


async def counts(session: AsyncSession, connection: ConferencingConnection) -> MappingCounts:
    """How many are in each of the page's lists, and how many accounts await confirmation."""
    mapped = (
        select(func.count())
        .select_from(ProviderAccount)
        .join(User, col(User.id) == col(ProviderAccount.user_id))
        .where(_usable(connection), col(User.active))
    )
    mine = col(ProviderAccount.connection_id) == connection.id
    provider_unmapped = select(func.count()).where(mine, col(ProviderAccount.user_id).is_(None))
    pending = select(func.count()).where(mine, col(ProviderAccount.reason) == PENDING_CONFIRMATION)
    people_unmapped = select(func.count()).select_from(_without_account(connection).subquery())
    return MappingCounts(
        mapped=(await session.execute(mapped)).scalar_one(),
        people_unmapped=(await session.execute(people_unmapped)).scalar_one(),
        provider_unmapped=(
            await session.execute(provider_unmapped.select_from(ProviderAccount))
        ).scalar_one(),
        pending=(await session.execute(pending.select_from(ProviderAccount))).scalar_one(),
    )


async def mapped_people(
    session: AsyncSession, connection: ConferencingConnection, search: str = "", page: int = 1
) -> Page[MappedRow]:
    """The people with a usable account, in name order; search by name or email either side."""
    query = (
        select(ProviderAccount, User)
        .join(User, col(User.id) == col(ProviderAccount.user_id))
        .where(_usable(connection), col(User.active))
        .order_by(col(User.display_name), col(User.id))
    )
    if pattern := like_pattern(search):
        query = query.where(or_(_account_matches(pattern), person_matches(pattern)))
    found = await _rows(session, query, page)
    return Page([MappedRow(a, p) for a, p in found.items], found.number, found.size, found.total)


def _without_account(connection: ConferencingConnection) -> Select[User, ProviderAccount]:
    """The active people the connection serves who have no usable account there."""
    linked = and_(
        col(ProviderAccount.user_id) == col(User.id),
        col(ProviderAccount.connection_id) == connection.id,
    )
    return (
        select(User, ProviderAccount)
        .outerjoin(ProviderAccount, linked)
        .where(
            col(User.active),
            served_clause(connection),
            or_(col(ProviderAccount.id).is_(None), col(ProviderAccount.reason) != ""),
        )
    )


async def people_without_account(
    session: AsyncSession, connection: ConferencingConnection, search: str = "", page: int = 1
) -> Page[UnmappedPerson]:
    """Active people the connection serves with no usable account, each with why, in name
    order."""
    query = _without_account(connection).order_by(col(User.display_name), col(User.id))
    if pattern := like_pattern(search):
        query = query.where(person_matches(pattern))
    found = await _rows(session, query, page)
    items = [
        UnmappedPerson(person, account.reason if account else NO_ACCOUNT, account)
        for person, account in found.items
    ]
    return Page(items, found.number, found.size, found.total)


async def provider_users_without_person(
    session: AsyncSession, connection: ConferencingConnection, search: str = "", page: int = 1
) -> Page[ProviderAccount]:
    """Provider users mapped to no one, each with its `reason`, in email order."""
    query = (
        select(ProviderAccount)
        .where(
            col(ProviderAccount.connection_id) == connection.id,
            col(ProviderAccount.user_id).is_(None),
        )
        .order_by(col(ProviderAccount.email_key), col(ProviderAccount.id))
    )
    if pattern := like_pattern(search):
        query = query.where(_account_matches(pattern))
    found = await _rows(session, query, page)
    return Page([row[0] for row in found.items], found.number, found.size, found.total)


async def sync_history(
    session: AsyncSession, connection: ConferencingConnection, page: int = 1
) -> Page[SyncRun]:
    """The connection's sync runs of all its users (not one person's), newest first."""
    query = (
        select(SyncRun)
        .where(col(SyncRun.connection_id) == connection.id, col(SyncRun.person_id).is_(None))
        .order_by(col(SyncRun.started_at).desc(), col(SyncRun.id).desc())
    )
    found = await _rows(session, query, page)
    return Page([row[0] for row in found.items], found.number, found.size, found.total)


async def _account(
    session: AsyncSession, connection: ConferencingConnection, account_id: int
) -> ProviderAccount:
    account = await session.get(ProviderAccount, account_id)
    # `get` may answer from the identity map, which the company scope does not filter.
    if account is None or account.connection_id != connection.id:
        raise NotFoundError(account_id)
    return account


async def map_by_hand(
    session: AsyncSession, connection: ConferencingConnection, account_id: int, user_id: int
) -> ProviderAccount:
    """Map a provider user to a person for good: later syncs keep it. Another account mapped
    to that person loses it."""
    account = await _account(session, connection, account_id)
    person = (await session.execute(select(User).where(col(User.id) == user_id))).scalars().first()
    if person is None or person.company_id != connection.company_id:
        raise NotFoundError(user_id)
    if not person.active:
        raise FormErrors({"form": f"{person.display_name} is deactivated: reactivate them first."})
    served = select(col(User.id)).where(col(User.id) == person.id, served_clause(connection))
    if (await session.execute(served)).first() is None:
        raise FormErrors(
            {"form": f"{person.display_name} is not among the people this connection serves."}
        )
    now = utcnow()
    for other in await other_accounts(session, connection, person, account.id or 0):
        other.user_id, other.reason, other.manual, other.updated_at = None, TAKEN, False, now
    account.user_id, account.manual, account.updated_at = person.id, True, now
    account.reason = status_reason(account.status, account.licensed)
    await session.flush()
    return account


async def usable_account(
    session: AsyncSession, connection: ConferencingConnection, person: User
) -> ProviderAccount | None:
    """The provider user mapped to the person at the connection, if they can host with it."""
    query = select(ProviderAccount).where(
        col(ProviderAccount.connection_id) == connection.id,
        col(ProviderAccount.user_id) == person.id,
        col(ProviderAccount.reason) == "",
    )
    return (await session.execute(query)).scalars().first()


async def other_accounts(
    session: AsyncSession, connection: ConferencingConnection, person: User, account_id: int
) -> list[ProviderAccount]:
    """The provider users mapped to the person at the connection other than `account_id`."""
    query = select(ProviderAccount).where(
        col(ProviderAccount.connection_id) == connection.id,
        col(ProviderAccount.user_id) == person.id,
        col(ProviderAccount.id) != account_id,
    )
    return list((await session.execute(query)).scalars())


async def unmap_by_hand(
    session: AsyncSession, connection: ConferencingConnection, account_id: int
) -> ProviderAccount:
    """Unmap a provider user for good: later syncs leave it unmapped."""
    account = await _account(session, connection, account_id)
    account.user_id, account.reason, account.manual = None, UNMAPPED_BY_HAND, True
    account.updated_at = utcnow()
    await session.flush()
    return account


async def clear_manual(
    session: AsyncSession, connection: ConferencingConnection, account_id: int
) -> ProviderAccount:
    """Forget the hand choice: the next sync matches the provider user by email again."""
    account = await _account(session, connection, account_id)
    account.manual = False
    account.updated_at = utcnow()
    await session.flush()
    return account
